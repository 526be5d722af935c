"""EnECG / MIMIC-IV-ECG label tables over WFDB records (fixtures written here)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import wfdb

from edge_ecg.data.dataset import load_dataset
from edge_ecg.data.enecg import RR_MISSING, read_labels, record_path
from edge_ecg.data.synth import synthesize
from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.errors import RecordError
from edge_ecg.signal.contract import SignalContract

CLASSES = DEFAULT_TASKS["arrhythmia"].labels
# MIMIC-IV-ECG lead names and order
MIMIC_LEADS = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]


def _write_mimic_like(folder, rel, rec):
    """A 12-lead record as MIMIC-IV-ECG stores it (fmt 16, 200 counts/mV, its lead order)."""
    out = folder / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    order = [rec.leads.index(n) for n in MIMIC_LEADS]
    d = np.round(rec.signal[:, order] * 200).astype(np.int32)
    wfdb.wrsamp(out.name, fs=rec.fs_hz, units=["mV"] * 12, sig_name=MIMIC_LEADS, d_signal=d,
                fmt=["16"] * 12, adc_gain=[200.0] * 12, baseline=[0] * 12,
                write_dir=str(out.parent))
    return out


@pytest.fixture
def table(tmp_path):
    recs = [synthesize("sinus_bradycardia", seed=1, age=52, sex=1),
            synthesize("atrial_fibrillation", seed=2, age=71, sex=0, potassium="hyper"),
            synthesize("sinus_rhythm", seed=3, age=30, sex=0)]
    lines = []
    for i, rec in enumerate(recs):
        rel = f"files/p1000/p1000{i}/s4000{i}/4000{i}"
        _write_mimic_like(tmp_path, rel, rec)
        lines.append({"ecg_path": rel, "subject_id": 1000 + (i // 2), "study_id": 40000 + i,
                      "rr_interval": round(rec.labels["rr_interval"]), "age": rec.labels["age"],
                      "gender": rec.labels["gender"], "flag": rec.labels["flag"],
                      "report_label": rec.labels["report_label"]})
    lines[1]["report_label"] = "atrial_fibrillation"          # a label string is accepted
    lines[2]["rr_interval"] = int(RR_MISSING)                  # EnECG's "not measured"
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path, recs


def test_round_trip_through_load_dataset(table):
    path, recs = table
    ds = load_dataset(str(path), SignalContract(), DEFAULT_TASKS, progress=False)
    assert len(ds) == 3
    assert ds.subjects.tolist() == ["enecg-1000", "enecg-1000", "enecg-1001"]
    rr = ds.labels["rr_interval"]
    assert rr[0] == round(recs[0].labels["rr_interval"]) and np.isnan(rr[2])
    assert ds.labels["age"].tolist() == [52, 71, 30]
    assert ds.labels["sex"].tolist() == [1, 0, 0]
    assert ds.labels["potassium"].tolist() == [0, 1, 0]
    # EnECG's machine-report labels map to rhythm classes (rhythms.toml)
    assert [CLASSES[int(i)] for i in ds.labels["arrhythmia"]] == [
        "normal_sinus", "af_or_flutter", "normal_sinus"]
    # the MIMIC lead order was mapped onto the contract's: lead II of the model is lead II
    ii = ds.inputs["x"][0, 1]
    assert ii.max() > 0.6 and ds.inputs["lead_mask"].all()
    tr, va = ds.split(0.5, seed=0)
    assert set(tr.subjects).isdisjoint(va.subjects)


def test_paths_relative_absolute_and_root(table, tmp_path):
    path, _ = table
    labels = read_labels(path)
    assert record_path(labels[0], path) == tmp_path / labels[0].ecg_path
    assert record_path(labels[0], path, root="/data/mimic") == \
        (tmp_path.__class__("/data/mimic") / labels[0].ecg_path)


@pytest.mark.parametrize("line, match", [
    ("{not json", r":1: not valid JSON"),
    ('["a"]', "JSON object"),
    ('{"subject_id": 1}', "ecg_path"),
    ('{"ecg_path": "x"}', "subject_id"),
    ('{"ecg_path": "x", "subject_id": 1, "gender": 2}', "'gender' must be 0 or 1"),
    ('{"ecg_path": "x", "subject_id": 1, "report_label": "torsades"}', "torsades"),
    ('{"ecg_path": "x", "subject_id": 1, "report_label": 15}', "0..14"),
    ('{"ecg_path": "x", "subject_id": 1, "rr_interval": -5}', "rr_interval"),
    ('{"ecg_path": "x", "subject_id": 1, "age": "old"}', "'age' must be a number"),
])
def test_malformed_lines_are_named(tmp_path, line, match):
    p = tmp_path / "bad.jsonl"
    p.write_text(line + "\n")
    with pytest.raises(RecordError, match=match):
        read_labels(p)


def test_missing_records_are_skipped_then_fatal(table, tmp_path):
    path, _ = table
    text = path.read_text() + json.dumps({"ecg_path": "files/nowhere/1", "subject_id": 7}) + "\n"
    path.write_text(text)
    with pytest.warns(UserWarning, match="1 record"):
        ds = load_dataset(str(path), SignalContract(), DEFAULT_TASKS, progress=False)
    assert len(ds) == 3 and ":4:" in ds.skipped[0] and "nowhere" in ds.skipped[0]
    only_bad = tmp_path / "only_bad.jsonl"
    only_bad.write_text(json.dumps({"ecg_path": "files/nowhere/1", "subject_id": 7}) + "\n")
    with pytest.raises(RecordError, match="nowhere"), pytest.warns(UserWarning):
        load_dataset(str(only_bad), SignalContract(), DEFAULT_TASKS, progress=False)
    with pytest.raises(RecordError, match="cannot read label table"):
        read_labels(tmp_path / "absent.jsonl")
