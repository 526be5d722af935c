"""Synthetic sustained ventricular runs for the beat stack (edge_ecg.runtime.beat_stack_runs):
laid from a record's own V beats, they look to the patient context as a long run does (on time
once the local RR has adapted, wide and unlike the dominant beat), and they join the trees'
fits only, their held-out figure reported per fold (edge_ecg.model.beat_stacking).

Real signal: the packaged MIT-BIH 223 excerpt (122 V beats), so this runs without
../shared/data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edge_ecg.runtime.beat_stack_runs as runs_mod
from edge_ecg.runtime.beat_stack import FEATURES, parse_beat_stack
from edge_ecg.runtime.beat_stack_rows import BeatRows, labelled_beats, record_run_rows
from edge_ecg.signal.contract import SignalContract

REPO = Path(__file__).resolve().parents[2]
EXCERPT = REPO / "edge_ecg" / "assets" / "demo" / "mitdb_223_excerpt"
LABELS = ("N", "S", "V", "F", "Q")
F = {f: i for i, f in enumerate(FEATURES)}


@pytest.fixture(scope="module")
def record():
    c = SignalContract(fs_hz=250.0)
    _, y, r, cls = labelled_beats(EXCERPT, "mitdb", c, LABELS)
    return c, y, r, cls


def test_a_long_run_reads_on_time_wide_and_unlike_the_dominant_beat(record, monkeypatch):
    c, y, r, cls = record
    monkeypatch.setattr(runs_mod, "LENGTHS", (60, 60))
    monkeypatch.setattr(runs_mod, "IVR_SHARE", 0.0)            # VT rates only
    for seed in (0, 1):
        x, lab = runs_mod.run_rows(y, r, cls, c, (2,), 1, np.random.default_rng(seed))
        # one run: its 60 beats labelled V, then the record's beats again with their own
        # reference classes (223's own PVCs among them)
        assert x.shape == (lab.size, len(FEATURES))
        assert np.all(lab[:60] == 2) and 0 < lab.size - 60 <= runs_mod.FOLLOW
        run = np.arange(60)
        late = x[run[8:30]]                                    # the local RR has adapted
        assert np.median(np.abs(late[:, F["pre_local"]] - 1)) < 0.1
        assert np.all(late[:, F["in_dominant"]] == 0)
        assert np.median(late[:, F["width_ratio"]]) > 1.2
        assert np.median(late[:, F["qrs_corr"]]) < 0.9
        # the run is faster than the sinus rhythm before it: the local RR against the long
        assert np.median(late[:, F["local_long"]]) < 0.95
        # (later the context may hand the run the dominance: the next test)
        # the first beat comes early, as a PVC does
        assert x[0, F["pre_local"]] < 0.85


def test_a_long_monomorphic_run_can_take_the_dominant_template_over(record, monkeypatch):
    """What the patient context does in a long run (BENCHMARKS.md, "sustained ventricular
    runs"): in 4 of 6 seeded 60-beat runs of 223's own PVCs the run becomes the dominant beat
    after 30-49 of its beats, its rows labelled V yet read as the dominant beat. Should the
    context learn to hold a sinus template through a run, this test says so."""
    c, y, r, cls = record
    monkeypatch.setattr(runs_mod, "LENGTHS", (60, 60))
    monkeypatch.setattr(runs_mod, "IVR_SHARE", 0.0)
    firsts = []
    for seed in range(6):
        x, _ = runs_mod.run_rows(y, r, cls, c, (2,), 1, np.random.default_rng(seed))
        dom = x[:60, F["in_dominant"]] > 0
        firsts.append(int(np.argmax(dom)) if dom.any() else None)
    taken = [f for f in firsts if f is not None]
    assert len(taken) == 4 and 30 <= min(taken) and max(taken) <= 49


def test_runs_are_seeded_per_record_and_need_enough_v_beats(record):
    c, y, r, cls = record
    a = runs_mod.run_rows(y, r, cls, c, (2, 1), 6, np.random.default_rng(4))
    b = runs_mod.run_rows(y, r, cls, c, (2, 1), 6, np.random.default_rng(4))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert {1, 2} <= set(a[1].tolist())                        # V runs and S runs (12 S beats)
    few = cls.copy()
    few[np.flatnonzero(cls == 2)[runs_mod.MIN_V - 1:]] = 0     # MIN_V - 1 V beats left
    x, lab = runs_mod.run_rows(y, r, few, c, (2,), 3, np.random.default_rng(4))
    assert x.shape == (0, len(FEATURES)) and lab.size == 0
    # through the record's path: the same rows in any process (seeded by its name)
    one = record_run_rows(EXCERPT, "mitdb", c.to_dict(), LABELS, 2)
    two = record_run_rows(EXCERPT, "mitdb", c.to_dict(), LABELS, 2)
    assert one.record == "mitdb-mitdb_223_excerpt" and one.y.size > 0
    assert np.array_equal(one.x, two.x)
    assert one.p_net.shape == (one.y.size, len(LABELS)) and not one.p_net.any()


def _real(rng, subject, n=1500):
    """Real-like rows: V where the beat is wide (width_ratio > 1), N otherwise; a network
    that is right."""
    x = rng.normal(size=(n, len(FEATURES)))
    y = np.where(x[:, F["width_ratio"]] > 1.0, 2, 0)
    p = np.full((n, 5), 0.02)
    p[np.arange(n), y] = 0.92
    return BeatRows(subject, subject, x, y, p.astype(np.float32))


def _runs(rng, subject, n=400):
    """Run rows where the real rows never are: narrow-ish but far from the dominant in rate
    (local_long << 1), labelled V."""
    x = rng.normal(size=(n, len(FEATURES)))
    x[:, F["width_ratio"]] = rng.uniform(0.2, 0.8, n)
    x[:, F["local_long"]] = rng.uniform(-6.0, -5.0, n)
    return BeatRows(subject, subject, x, np.full(n, 2), np.zeros((n, 5), np.float32))


def test_runs_join_the_trees_fits_and_are_scored_held_out():
    from edge_ecg.model.beat_stacking import fit_beat_stack

    rng = np.random.default_rng(3)
    subjects = [f"mitdb-{i}" for i in range(6)]
    fold = {s: 1 + i % 3 for i, s in enumerate(subjects)}
    rows = [_real(rng, s) for s in subjects]
    oof = {k: [r for r in rows if fold[r.subject] == k] for k in (1, 2, 3)}
    runs = [_runs(rng, s) for s in subjects]

    def fuse(doc, p, x):
        return parse_beat_stack(doc, "candidate").fuse_features(p, x)

    probe = _runs(np.random.default_rng(9), "probe").x
    docs = {}
    for name, extra in (("without", None), ("with", runs)):
        logs = []
        doc = fit_beat_stack(rows, None, "beat", LABELS, FEATURES, fuse, log=logs.append,
                             oof=oof, fold_of=fold.__getitem__, runs=extra)
        docs[name] = parse_beat_stack(json.loads(json.dumps(doc)), "fitted")
    st = docs["with"]
    info = st.info["synthetic_runs"]
    assert info["records"] == 6 and info["rows"] == 6 * 400
    # each fold's runs are scored by trees that never saw them, and they generalise
    assert sorted(info["held_out_v_se"]) == ["1", "2", "3"]
    assert min(info["held_out_v_se"].values()) > 0.9
    assert docs["without"].info["synthetic_runs"] is None
    # the shipped trees learned the runs; without them, such beats read N
    assert np.mean(st.tree_proba(probe).argmax(1) == 2) > 0.9
    assert np.mean(docs["without"].tree_proba(probe).argmax(1) == 2) < 0.5
    # the share is still scored on the real rows only: the same beats in both tables
    assert st.info["beats"] == docs["without"].info["beats"] + 6 * 400
