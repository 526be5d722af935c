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
    fs = 360.0
    beats = np.arange(10) * 288                     # 75 bpm
    sym = np.array(list("NNNNVNNNNN"))
    sinus = [(0, 5000, "(N")]
    assert window_label(0, 1100, beats, sym, sinus, fs) == "sinus_rhythm"
    assert window_label(0, 3000, beats, sym, sinus, fs) == "premature_ventricular_contractions"
    assert window_label(0, 3000, beats, sym, [], fs) == "premature_ventricular_contractions"
    assert window_label(0, 1100, beats, sym, [], fs) is None         # rhythm unknown
    assert window_label(0, 1100, beats, np.array(list("NANNNNNNNN")), sinus, fs) == \
        "premature_atrial_contractions"
    assert window_label(0, 1100, beats, np.array(["/"] * 10), [], fs) == "ventricular_paced"
    assert window_label(0, 1100, beats, sym, [(0, 5000, "(AFIB")], fs) == "atrial_fibrillation"
    fast = np.arange(20) * 180                      # 120 bpm
    assert window_label(0, 3000, fast, np.array(["N"] * 20), [(0, 5000, "(AFIB")], fs) == \
        "af_rapid_ventricular_response"
    assert window_label(0, 3000, fast, np.array(["N"] * 20), sinus, fs) == "sinus_tachycardia"
    assert window_label(0, 1100, beats, sym, [(0, 5000, "(VT")], fs) == "other"


def test_header_age_and_sex():
    assert age_sex(["69 M 1085 1629 x1", "Aldomet, Inderal"]) == (69.0, 0)
    assert age_sex(["unrelated", "23 F 2600 ..."]) == (23.0, 1)
    assert age_sex(["age: 41.5", "sex: F"]) == (41.5, 1)
    assert age_sex(["? ? x"]) == (None, None)


def test_written_pvc_record_loads_with_pvc_windows(tmp_path):
    rec = synthesize("premature_ventricular_contractions", seconds=30, seed=6, age=64, sex=0)
    write_record(rec, tmp_path, "pvc1")
    ds = load_dataset(f"mitdb:{tmp_path}", SignalContract(), DEFAULT_TASKS, progress=False)
    assert len(ds) == 3 and set(ds.subjects) == {"mitdb-pvc1"}
    v = rec.r_peaks[np.array(rec.beat_types) == "V"]
    expect = ["premature_ventricular_contractions" if np.any((v >= s) & (v < s + 5000)) else None
              for s in (0, 5000, 10000)]
    assert _names(ds) == expect and expect.count(None) < 3
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
    assert names.count("sinus_rhythm") >= 15 and "premature_atrial_contractions" in names
    assert ds.labels["age"][0] == 69 and ds.labels["sex"][0] == 0
    rr, det = ds.labels["rr_interval"], ds.inputs["period"][:, 0] * 1000
    assert np.median(np.abs(rr - det)) < 10.0 and 700 < np.mean(rr) < 900
