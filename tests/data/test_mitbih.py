"""MIT-BIH-style records as labelled data: RR from reference beats, PVC windows from 'V' beats."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.data.dataset import load_dataset
from edge_ecg.data.mitbih import age_sex, record_paths, window_label
from edge_ecg.data.synth import synthesize
from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.data.wfdb_io import write_record
from edge_ecg.errors import RecordError
from edge_ecg.signal.contract import SignalContract

CLASSES = DEFAULT_TASKS["arrhythmia"].labels


def _names(ds):
    return [None if np.isnan(i) else CLASSES[int(i)] for i in ds.labels["arrhythmia"]]


def test_window_label_rules():
    sinus = [(0, 5000, "(N")]
    assert window_label(0, 1100, sinus) == "normal_sinus"
    assert window_label(0, 1100, []) is None                          # rhythm unknown
    assert window_label(0, 1100, [(0, 5000, "(AFIB")]) == "af_or_flutter"
    assert window_label(0, 1100, [(0, 5000, "(AFL")]) == "af_or_flutter"
    assert window_label(0, 1100, [(0, 5000, "(VT")]) == "other_rhythm"
    assert window_label(0, 1100, [(0, 5000, "(SBR")]) == "normal_sinus"
    # the rhythm covering most of the window wins
    change = [(0, 400, "(N"), (400, 5000, "(AFIB")]
    assert window_label(0, 1000, change) == "af_or_flutter"
    assert window_label(0, 700, change) == "normal_sinus"
    with pytest.raises(RecordError, match="unknown MIT-BIH rhythm"):
        window_label(0, 1000, [(0, 5000, "(XYZ")])


def test_header_age_and_sex():
    assert age_sex(["69 M 1085 1629 x1", "Aldomet, Inderal"]) == (69.0, 0)
    assert age_sex(["unrelated", "23 F 2600 ..."]) == (23.0, 1)
    assert age_sex(["age: 41.5", "sex: F"]) == (41.5, 1)
    assert age_sex(["? ? x"]) == (None, None)


def test_written_record_without_rhythm_annotations_has_no_rhythm_label(tmp_path):
    rec = synthesize("premature_ventricular_contractions", seconds=30, seed=6, age=64, sex=0)
    write_record(rec, tmp_path, "pvc1")
    ds = load_dataset(f"mitdb:{tmp_path}", SignalContract(), DEFAULT_TASKS, progress=False)
    assert len(ds) == 3 and set(ds.subjects) == {"mitdb-pvc1"}
    # beats only, no rhythm annotations: the rhythm is unknown, never guessed from the beats
    assert np.isnan(ds.labels["arrhythmia"]).all()
    for k, s in enumerate((0, 5000, 10000)):
        r = rec.r_peaks[(rec.r_peaks >= s) & (rec.r_peaks < s + 5000)]
        assert ds.labels["rr_interval"][k] == pytest.approx(np.diff(r).mean() * 2.0, rel=1e-5)
    assert ds.labels["age"].tolist() == [64] * 3 and ds.labels["sex"].tolist() == [0] * 3
    assert np.isnan(ds.labels["potassium"]).all()


def test_record_paths(tmp_path):
    with pytest.raises(RecordError, match="no WFDB records"):
        record_paths(str(tmp_path))
    with pytest.raises(RecordError, match="header not found"):
        record_paths(str(tmp_path / "100"))


def test_real_record_100(shared_data):
    # 2 leads at 360 Hz -> the 12-lead 500 Hz contract (resampled, other leads masked)
    ds = load_dataset(f"mitdb:{shared_data}/mitdb/100?seconds=300", SignalContract(),
                      DEFAULT_TASKS, progress=False)
    assert len(ds) == 30 and ds.subjects[0] == "mitdb-100"
    assert ds.inputs["x"].shape == (30, 12, 5000)
    assert ds.inputs["lead_mask"][0].tolist() == [False, True] + [False] * 8 + [True, False]
    names = _names(ds)
    assert names == ["normal_sinus"] * 30                # record 100 is annotated (N throughout
    assert ds.labels["age"][0] == 69 and ds.labels["sex"][0] == 0
    rr, det = ds.labels["rr_interval"], ds.inputs["period"][:, 0] * 1000
    assert np.median(np.abs(rr - det)) < 10.0 and 700 < np.mean(rr) < 900


def test_real_af_record_201_labels_episodes(shared_data):
    ds = load_dataset(f"mitdb:{shared_data}/mitdb/201?seconds=600", SignalContract(fs_hz=250.0),
                      DEFAULT_TASKS, progress=False)
    names = _names(ds)
    # 201 starts in AF (0.2-378 s, PhysioNet annotations), then sinus / other rhythms
    assert names[:30].count("af_or_flutter") >= 28 and "af_or_flutter" not in names[40:45]
    eps = ds.records["mitdb-201"]["af_episodes_s"]
    assert eps[0][0] == pytest.approx(0.17, abs=0.01) and eps[0][1] == pytest.approx(378.4, abs=0.1)
