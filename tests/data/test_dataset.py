"""Windowed labelled data sets: specs, per-window labels, splits by subject."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.data.dataset import build_dataset, load_dataset
from edge_ecg.data.labels import task_value
from edge_ecg.data.rhythms import synth_class
from edge_ecg.data.synth import CONDITIONS, synthesize_schedule
from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.data.windows import LabelledRecord
from edge_ecg.errors import RecordError
from edge_ecg.signal.contract import INPUT_NAMES, SignalContract

C = SignalContract()
CLASSES = DEFAULT_TASKS["arrhythmia"].labels


@pytest.fixture(scope="module")
def synth_ds():
    return load_dataset("synth:14?seconds=10&seed=3&snr=20", C, DEFAULT_TASKS, progress=False)


def test_synth_spec_gives_balanced_labelled_windows(synth_ds):
    ds = synth_ds
    assert len(ds) == 14
    assert set(ds.inputs) == set(INPUT_NAMES)
    assert ds.inputs["x"].shape == (14, 12, 5000) and ds.inputs["x"].dtype == np.float32
    assert set(ds.labels) == set(DEFAULT_TASKS.names)
    for k, v in ds.labels.items():
        if DEFAULT_TASKS[k].per_beat:       # synthetic beats carry no AAMI class
            assert v.shape == (14, 32) and v.dtype == np.float32 and np.isnan(v).all()
            continue
        assert v.shape == (14,) and v.dtype == np.float32 and not np.isnan(v).any()
    # every generated condition once, half the patients potassium-abnormal, both sexes
    # every generated condition once, labelled with its rhythm class (rhythms.toml)
    assert sorted(m["condition"] for m in ds.meta) == sorted(CONDITIONS)
    assert ds.labels["potassium"].sum() == 7 and ds.labels["sex"].sum() == 7
    assert np.all((ds.labels["age"] >= 18) & (ds.labels["age"] <= 90))
    assert [synth_class(m["condition"]) for m in ds.meta] == [
        CLASSES[int(i)] for i in ds.labels["arrhythmia"]]
    # the RR label is the reference beats' mean; the detected RR input agrees
    det = ds.inputs["period"][:, 0] * 1000
    assert np.median(np.abs(det - ds.labels["rr_interval"]) / ds.labels["rr_interval"]) < 0.02


def test_split_is_by_subject():
    ds = load_dataset("synth:6?seconds=20&hop=5&snr=none&leads=I,II,V1&fs=250", C,
                      DEFAULT_TASKS, progress=False)
    assert ds.inputs["lead_mask"][0].tolist() == [True] * 7 + [False] * 5
    assert len(ds) == 6 * 3
    train, val = ds.split(val_frac=0.34, seed=1)
    assert len(train) + len(val) == len(ds)
    assert set(train.subjects).isdisjoint(val.subjects)
    assert len(set(val.subjects)) == 2 and len(val) == 6
    again_train, _ = ds.split(val_frac=0.34, seed=1)
    np.testing.assert_array_equal(again_train.subjects, train.subjects)
    sub = ds.subset([0, 4])
    assert len(sub) == 2 and sub.meta[1] == ds.meta[4]
    np.testing.assert_array_equal(sub.inputs["x"][1], ds.inputs["x"][4])


def test_window_labels_follow_a_rhythm_change():
    rec = synthesize_schedule([("sinus_rhythm", 10), ("atrial_fibrillation", 10)], seed=2)

    def load():
        from edge_ecg.data.synth import arrhythmia_index
        return LabelledRecord(rec.signal, rec.fs_hz, rec.leads, "p1", dict(rec.labels), "r1",
                              ref_beats=rec.r_peaks,
                              window_labels=lambda s, e: {
                                  "report_label": arrhythmia_index(rec.condition_at(s, e))})

    ds = build_dataset([load], C, DEFAULT_TASKS, hop_s=10.0, progress=False)
    assert [CLASSES[int(i)] for i in ds.labels["arrhythmia"]] == ["normal_sinus",
                                                                   "af_or_flutter"]
    r = rec.r_peaks
    first = r[r < 5000]
    assert ds.labels["rr_interval"][0] == pytest.approx(np.diff(first).mean() * 2.0, rel=1e-5)


def test_unusable_records_are_skipped_and_counted(caplog):
    good = synthesize_schedule([("sinus_rhythm", 10)], seed=1)

    def ok():
        return LabelledRecord(good.signal, 500.0, good.leads, "a", dict(good.labels), "ok")

    def broken():
        raise RecordError("x.hea: WFDB header not found")

    def short():
        return LabelledRecord(good.signal[:1000], 500.0, good.leads, "b", {}, "short")

    with pytest.warns(UserWarning, match="2 record"), \
            caplog.at_level("INFO", logger="edge_ecg.data.dataset"):
        ds = build_dataset([ok, broken, short], C, DEFAULT_TASKS, progress=False)
    assert len(ds) == 1 and len(ds.skipped) == 2
    said = [r.getMessage() for r in caplog.records if r.name == "edge_ecg.data.dataset"]
    assert said == ["record skipped: x.hea: WFDB header not found",
                    "record skipped: short: 2.0 s is shorter than one 10.0 s window"]
    with pytest.raises(RecordError, match="no usable windows"), pytest.warns(UserWarning):
        build_dataset([broken], C, DEFAULT_TASKS, progress=False)


def test_task_values():
    t = DEFAULT_TASKS
    assert np.isnan(task_value(t["rr_interval"], 29999))
    assert task_value(t["rr_interval"], 812.5) == 812.5
    assert task_value(t["arrhythmia"], "af_or_flutter") == CLASSES.index("af_or_flutter")
    assert np.isnan(task_value(t["arrhythmia"], "atrial_flutter"))   # a class name, not a cause
    assert np.isnan(task_value(t["arrhythmia"], 99))
    assert task_value(t["sex"], "female") == 1.0
    assert np.isnan(task_value(t["potassium"], 2)) and np.isnan(task_value(t["age"], None))


@pytest.mark.parametrize("spec, match", [
    ("nonsense:3", "not understood"),
    ("synth:0", "positive count"),
    ("synth:3?colour=red", "unknown option"),
    ("synth:3?seconds=ten", "seconds"),
    ("synth:3?conditions=vfib", "vfib"),
    ("synth:3?leads=II,V7", "V7"),
])
def test_bad_specs_are_named(spec, match):
    with pytest.raises(RecordError, match=match):
        load_dataset(spec, C, DEFAULT_TASKS, progress=False)
