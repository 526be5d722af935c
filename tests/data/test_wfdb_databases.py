"""SVDB and CUDB through the MIT-BIH-style loader: leads, beat classes, VF episodes, invalid
samples (real records, skipped where ../shared/data lacks them), and the same rules on small
synthetic WFDB records that run everywhere."""

from __future__ import annotations

import collections
import logging
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.data.aami import AAMI_CLASSES
from edge_ecg.data.dataset import build_dataset, load_dataset
from edge_ecg.data.folds import subject_fold
from edge_ecg.data.mitbih import load_record, overlay, rhythm_intervals, vf_episodes
from edge_ecg.data.provenance import source_of
from edge_ecg.data.synth import synthesize
from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.errors import RecordError
from edge_ecg.signal.contract import SignalContract

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SVDB, CUDB = DATA / "svdb", DATA / "cudb"
CLASSES = DEFAULT_TASKS["arrhythmia"].labels
C = SignalContract()


def _need(path: Path):
    if not Path(str(path) + ".hea").is_file():
        pytest.skip(f"{path}.hea absent (../shared/data not here)")


def test_svdb_800_leads_ids_and_beat_classes_from_its_atr():
    _need(SVDB / "800")
    rec = load_record(SVDB / "800", CLASSES, db="svdb")
    # ECG1 as II, ECG2 unused ("-"): the database's default (databases.toml); fs stays 128 Hz
    assert rec.leads == ("II", "-") and rec.fs_hz == 128.0
    assert rec.record_id == "svdb-800" and rec.subject == "svdb-800"
    assert source_of(rec.record_id) == "svdb"
    # 1883 beats in 800.atr: N 1846, S 30, V 6, F 1 (counted from the symbols by hand:
    # the loader must agree with EC57's grouping of them)
    counts = collections.Counter(AAMI_CLASSES[c] for c in rec.meta["beat_classes"] if c >= 0)
    assert rec.ref_beats.size == 1883
    assert counts == {"N": 1846, "S": 30, "V": 6, "F": 1}


def test_svdb_lead_assignment_and_its_errors():
    _need(SVDB / "800")
    rec = load_record(SVDB / "800", CLASSES, db="svdb", leads=("V1", "II"))
    assert rec.leads == ("V1", "II")
    with pytest.raises(RecordError, match="1 lead"):
        load_dataset(f"svdb:{SVDB}/800?leads=II", C, DEFAULT_TASKS, progress=False)
    with pytest.raises(RecordError, match="not standard lead names"):
        load_dataset(f"svdb:{SVDB}/800?leads=II,XX", C, DEFAULT_TASKS, progress=False)


def test_cudb_cu06_episodes_invalid_samples_and_window_labels():
    _need(CUDB / "cu06")
    rec = load_record(CUDB / "cu06", CLASSES, db="cudb")
    assert rec.leads == ("II",) and rec.fs_hz == 250.0 and rec.subject == "cudb-cu06"
    # two `[` ... `]` episodes in cu06.atr
    assert rec.meta["vf_episodes"] == [(46089, 77047), (80028, 83340)]
    # 62 NaN samples in four runs, kept as NaN for the window builder
    assert int(np.isnan(rec.signal).sum()) == 62
    assert rec.meta["invalid_runs"] == [(70163, 70167), (70195, 70199), (83241, 83257),
                                        (83275, 83313)]
    # CUDB's beats are positions only ('N' for every QRS, VT included): no class
    assert (rec.meta["beat_classes"] == -1).all()

    ds = load_dataset(f"cudb:{CUDB}/cu06", C, DEFAULT_TASKS, progress=False)
    starts_s = np.array([m["start_s"] for m in ds.meta])
    assert len(ds) == 50                                   # 508.9 s: 50 whole 10-s windows
    arr, rr = ds.labels["arrhythmia"], ds.labels["rr_interval"]
    other = CLASSES.index("other_rhythm")
    inside = (starts_s >= 46089 / 250) & (starts_s + 10 <= 77047 / 250)
    assert inside.sum() == 11
    assert (arr[inside] == other).all()                    # VF: the "(VFL" note's class
    assert np.isnan(rr[inside]).all()                      # no beats in fibrillation
    assert not np.isfinite(ds.labels["beat"]).any()
    touching = np.zeros(len(ds), bool)
    for a, b in rec.meta["vf_episodes"]:
        touching |= (starts_s < b / 250) & (starts_s + 10 > a / 250)
    assert touching.sum() == 15                            # 180-300 s and 320-330 s
    assert np.isnan(rr[touching]).all() and np.isfinite(rr[~touching]).all()
    # the windows holding NaN samples are kept with those segments invalid on lead II
    lead_ii = C.leads.index("II")
    holes = np.flatnonzero((ds.inputs["valid"][:, lead_ii] == 0).any(axis=1))
    assert list(starts_s[holes]) == [280.0, 330.0]         # 70163/250 = 280.7 s, 83241 = 333 s
    assert ds.records["cudb-cu06"]["vf_episodes_s"] == [(46089 / 250, 77047 / 250),
                                                        (80028 / 250, 83340 / 250)]


def test_svdb_and_cudb_folds_split_by_patient():
    _need(SVDB / "800")
    _need(CUDB / "cu06")
    from edge_ecg.data.specs import resolve_spec

    held = resolve_spec(f"svdb:{SVDB}?folds=0", C, DEFAULT_TASKS)
    train = resolve_spec(f"svdb:{SVDB}?folds=1,2,3,4", C, DEFAULT_TASKS)
    names = lambda plan: {Path(p.args[0]).name for p in plan.loaders}   # noqa: E731
    assert names(held) == {"803"} and "803" not in names(train)
    assert len(names(held)) + len(names(train)) == 39
    held = resolve_spec(f"cudb:{CUDB}?folds=0", C, DEFAULT_TASKS)
    assert names(held) == {"cu19", "cu20", "cu24", "cu25"}
    assert all(subject_fold(f"cudb-{n}") == 0 for n in names(held))


def test_vf_episode_marks_and_overlay():
    # an open `[` runs to the end; a stray `]` is ignored
    assert vf_episodes([10, 20, 30, 40], ["[", "]", "]", "["], 100) == [(10, 20), (40, 100)]
    assert vf_episodes([10, 20], ["[", "]"], 15) == [(10, 15)]
    notes = [(0, 100, "(N")]
    assert overlay(notes, [(30, 50)], "(VFL", 100) == [(0, 30, "(N"), (30, 50, "(VFL"),
                                                       (50, 100, "(N")]


def _write(tmp_path, name, signal, fs, sig_names, beats, symbols):
    import wfdb

    d = np.where(np.isnan(signal), -32768, np.round(signal * 200)).astype(np.int32)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(sig_names), sig_name=list(sig_names),
                d_signal=d, fmt=["16"] * len(sig_names), adc_gain=[200.0] * len(sig_names),
                baseline=[0] * len(sig_names), write_dir=str(tmp_path))
    wfdb.wrann(name, "atr", np.asarray(beats, dtype=np.int64), symbol=list(symbols),
               write_dir=str(tmp_path), fs=fs)
    return tmp_path / name


def test_synthetic_record_with_nans_masks_windows_and_drops_mostly_invalid(tmp_path):
    syn = synthesize("sinus_rhythm", seconds=40, fs_hz=250, seed=3, leads=("II",))
    x = syn.signal.astype(np.float64).copy()
    x[2500:2550] = np.nan           # 0.2 s in window 1 (10-20 s)
    x[5000:6500] = np.nan           # 6 s of window 2 (20-30 s): mostly invalid, dropped
    path = _write(tmp_path, "gap", x, 250, ["ECG"], syn.r_peaks, ["V"] * len(syn.r_peaks))
    rec = load_record(path, CLASSES, db="cudb")          # one channel "ECG" -> II
    assert rec.meta["invalid_runs"] == [(2500, 2550), (5000, 6500)]
    near = (rec.ref_beats >= 2500 - 37) & (rec.ref_beats < 2550 + 37)
    assert near.any() and (rec.meta["beat_classes"][near] == -1).all()
    ds = build_dataset([lambda: rec], C, DEFAULT_TASKS, progress=False)
    assert [m["start_s"] for m in ds.meta] == [0.0, 10.0, 30.0]
    lead_ii = C.leads.index("II")
    seg_s = C.valid_seg / C.fs_hz
    bad = np.flatnonzero(ds.inputs["valid"][1, lead_ii] == 0)
    # 10.0-10.2 s of the record is window 1's 0-0.2 s: segments 0..4 (40 ms each)
    assert list(bad) == [0, 1, 2, 3, 4] and seg_s == pytest.approx(0.04)
    assert ds.inputs["valid"][0, lead_ii].all() and ds.inputs["valid"][2, lead_ii].all()
    assert np.isfinite(ds.inputs["x"]).all()


def test_unknown_channels_default_or_refuse(tmp_path, caplog):
    syn = synthesize("sinus_rhythm", seconds=12, fs_hz=250, seed=4, leads=("II", "V1"))
    two = _write(tmp_path, "two", syn.signal.astype(np.float64), 250, ["ECG1", "ECG2"],
                 syn.r_peaks, ["N"] * len(syn.r_peaks))
    with pytest.raises(RecordError, match=r"\?leads="):
        load_record(two, CLASSES, db="mitdb")              # MIT-BIH names no ECG1/ECG2 default
    assert load_record(two, CLASSES, db="mitdb", leads=("II", "-")).leads == ("II", "-")
    one = _write(tmp_path, "one", syn.signal[:, :1].astype(np.float64), 250, ["ECG1"],
                 syn.r_peaks, ["N"] * len(syn.r_peaks))
    with caplog.at_level(logging.WARNING, logger="edge_ecg.signal.leads"):
        assert load_record(one, CLASSES, db="mitdb").leads == ("II",)
    assert "taking it as lead II" in caplog.text


def test_rhythm_intervals_of_a_real_cudb_record_carry_the_notes_and_episodes():
    _need(CUDB / "cu16")
    got = rhythm_intervals(CUDB / "cu16", 127232)
    # "(N" at 42226, episodes 63706-87611 and 116351-120388 laid over it
    assert got == [(42226, 63706, "(N"), (63706, 87611, "(VFL"), (87611, 116351, "(N"),
                   (116351, 120388, "(VFL"), (120388, 127232, "(N")]
