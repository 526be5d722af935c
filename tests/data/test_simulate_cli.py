"""`edge-ecg simulate`: WFDB records + label table + annotations, read back (round trip)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_ecg.cli import main
from edge_ecg.data.dataset import load_dataset
from edge_ecg.data.records import beat_annotations, read_record
from edge_ecg.data.rhythms import rhythm_table, synth_class
from edge_ecg.data.synth import cohort_plan, synthesize
from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.signal.contract import SignalContract

CLASSES = DEFAULT_TASKS["arrhythmia"].labels


def test_simulate_round_trip(tmp_path, capsys):
    out = tmp_path / "sim"
    rc = main(["simulate", "--out", str(out), "--n", "3", "--seconds", "10", "--snr", "20",
               "--seed", "4", "--conditions", "premature_ventricular_contractions,"
               "ventricular_paced,atrial_fibrillation", "--no-progress"])
    assert rc == 0
    assert "wrote 3 records" in capsys.readouterr().out
    lines = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    assert len(lines) == 3
    plan = cohort_plan(3, seed=4, conditions=["premature_ventricular_contractions",
                                              "ventricular_paced", "atrial_fibrillation"])
    for i, (line, e) in enumerate(zip(lines, plan)):
        rec = synthesize(e.condition, seconds=10, seed=e.seed, age=e.age, sex=e.sex,
                         potassium=e.potassium, snr_db=20.0, subject_id=e.subject_id)
        stored = read_record(out / line["ecg_path"])
        assert stored.leads == rec.leads and stored.fs_hz == 500.0
        # format 16 at 1000 counts/mV: microvolt resolution
        assert np.abs(stored.signal - rec.signal).max() <= 0.0005 + 1e-6
        ann = beat_annotations(out / line["ecg_path"])
        np.testing.assert_array_equal(ann.sample, rec.r_peaks)
        assert ann.symbol == tuple({"P": "/"}.get(t, t) for t in rec.beat_types)
        # EnECG's report_label: the index of the machine-report label (the condition)
        assert line["report_label"] == rhythm_table().enecg_report_labels.index(e.condition)
        assert line["subject_id"] == e.subject_id and line["gender"] == e.sex
    ds = load_dataset(str(out / "labels.jsonl"), SignalContract(), DEFAULT_TASKS, progress=False)
    assert len(ds) == 3
    np.testing.assert_allclose(ds.labels["rr_interval"], [x["rr_interval"] for x in lines])
    assert ds.labels["arrhythmia"].tolist() == [CLASSES.index(synth_class(e.condition))
                                                for e in plan]
    assert ds.labels["potassium"].tolist() == [x["flag"] for x in lines]
    assert sorted(set(ds.subjects)) == sorted(f"enecg-{e.subject_id}" for e in plan)


def test_simulate_schedule_212_and_plot(tmp_path):
    out = tmp_path / "sched"
    rc = main(["simulate", "--out", str(out), "--n", "1", "--fmt", "212", "--no-annotations",
               "--schedule", "sinus_rhythm:4,atrial_flutter:6", "--plot", "--no-progress"])
    assert rc == 0
    stored = read_record(out / "records" / "synth_00000")
    assert stored.signal.shape == (5000, 12)
    assert np.all(stored.gain <= 400)
    assert not (out / "records" / "synth_00000.atr").exists()
    assert (out / "synth_00000.png").stat().st_size > 10_000
    line = json.loads((out / "labels.jsonl").read_text())
    assert line["condition"] == "atrial_flutter"       # the longest segment names the record


@pytest.mark.parametrize("args, match", [
    (["--conditions", "vfib"], "unknown condition"),
    (["--schedule", "sinus_rhythm"], "CONDITION:SECONDS"),
    (["--n", "0"], "--n must be positive"),
])
def test_simulate_errors(tmp_path, capsys, args, match):
    rc = main(["simulate", "--out", str(tmp_path / "x"), "--no-progress", *args])
    assert rc == 1
    assert match in capsys.readouterr().err
