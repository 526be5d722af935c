"""The patient context (edge_ecg/signal/patient_context.py): one implementation for the stream
and for training, so the rows must agree exactly however the beats arrive; and the rows must say
what a monitor says of a PVC (premature, followed by a pause, a different and wider QRS).

Real signal: the packaged MIT-BIH 223 excerpt (sinus rhythm with PVCs, a VT run, bigeminy), so
this runs without ../shared/data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_ecg.data.records import read_record
from edge_ecg.data.windows import condition_signal, make_windows
from edge_ecg.signal.contract import SignalContract
from edge_ecg.signal.patient_context import (
    CONTEXT_COLUMNS,
    LEARN_BEATS,
    N_CONTEXT,
    N_RAW,
    RAW_COLUMNS,
    PatientContext,
    beat_context,
    context_rows,
)
from edge_ecg.signal.qrs import detect_beats

REPO = Path(__file__).resolve().parents[2]
EXCERPT = REPO / "edge_ecg" / "assets" / "demo" / "mitdb_223_excerpt"
C = {k: i for i, k in enumerate(CONTEXT_COLUMNS)}
R = {k: i for i, k in enumerate(RAW_COLUMNS)}


@pytest.fixture(scope="module")
def excerpt():
    """The first 60 s of the excerpt, filtered at the bundled contract rate (250 Hz)."""
    rec = read_record(EXCERPT)
    contract = SignalContract(fs_hz=250.0)
    n = int(60 * rec.fs_hz)
    x = rec.signal[:n].astype(np.float64)
    y = condition_signal(x, rec.fs_hz, contract)
    return {"rec": rec, "x": x, "y": y, "r": detect_beats(y, contract.fs_hz),
            "contract": contract}


def test_beat_by_beat_in_random_chunks_equals_the_offline_rows(excerpt):
    """A stream sees the filtered signal in chunks and observes each beat once its samples are
    whole: the rows are those of `context_rows` over the whole record, bit for bit."""
    y, r, c = excerpt["y"], excerpt["r"], excerpt["contract"]
    pre, post = c.beat_pre, c.beat_len - c.beat_pre
    offline = context_rows(y, r, c.fs_hz, pre, post)
    assert offline.shape == (r.size, N_RAW) and r.size > 60
    for seed in (0, 1, 2):
        rng = np.random.default_rng(seed)
        ctx = PatientContext(c.fs_hz, y.shape[1], pre, post)
        rows, done, end = [], 0, 0
        while done < r.size:
            end = min(end + int(rng.integers(1, 700)), y.shape[0])
            seen = y[:end]                       # what has arrived so far
            while done < r.size and (r[done] + post <= end or end == y.shape[0]):
                b = int(r[done])
                whole = b - pre >= 0 and b + post <= end
                rows.append(ctx.observe(b, seen[b - pre:b + post].T if whole else None))
                done += 1
        np.testing.assert_array_equal(np.asarray(rows, np.float32), offline)
    # the rows carry numbers, not zeros: context is learned and most beats join a template
    assert offline[:, R["known"]].all()
    # (a first beat too close to the start has no samples to learn from: RR only)
    first = int(r[0] - pre < 0)
    learn = offline[:, R["learned"]]
    assert learn[first + LEARN_BEATS:].all() and not learn[:first + LEARN_BEATS].any()
    assert (offline[1:, R["pre_rr_ms"]] > 0).mean() > 0.95


def test_make_windows_carries_the_context_rows(excerpt):
    """Training windows (`make_windows`) hold the same `beat_ctx` as `beat_context` of the
    whole record's rows, slot by slot: the model learns on what the stream gives it."""
    rec, c = excerpt["rec"], excerpt["contract"]
    starts, items, slots = make_windows(excerpt["x"], rec.fs_hz, rec.leads, c, hop_s=5.0,
                                        with_beats=True)
    y, r = excerpt["y"], excerpt["r"]
    rows = context_rows(y, r, c.fs_hz, c.beat_pre, c.beat_len - c.beat_pre)
    assert len(items) >= 8
    for s, it, sl in zip(starts, items, slots):
        nb = len(sl)
        assert it.beat_ctx.shape == (c.max_beats, N_CONTEXT)
        k = np.searchsorted(r, np.asarray(sl) + s)
        want = np.zeros((c.max_beats, N_CONTEXT), np.float32)
        beat_context(rows[k], it.beat_rr[:nb, 1], want)
        np.testing.assert_allclose(it.beat_ctx, want, rtol=0, atol=1e-6)
        assert it.beat_ctx[:nb, C["known"]].all() and not it.beat_ctx[nb:].any()


# -- behaviour on a synthetic rhythm with PVCs -------------------------------------------------
FS = 250.0


def _g(d: np.ndarray, centre_s: float, width_s: float) -> np.ndarray:
    return np.exp(-0.5 * ((d - centre_s) / width_s) ** 2)


def _rhythm(n_beats: int = 60, rr_s: float = 0.8, pvc_every: int = 10, seed: int = 0):
    """Sinus beats every `rr_s` (+/-2 %) with a P wave 160 ms before each; every `pvc_every`-th
    beat a PVC: 55 % of the RR early, 3x wider, 1.5x taller and inverted, no P wave, then a
    full compensatory pause (pre + post = 2 RR). Returns (signal (T, 1), R peaks, is_pvc)."""
    rng = np.random.default_rng(seed)
    r, pvc, t = [], [], 1.0
    for i in range(n_beats):
        is_pvc = i > 0 and i % pvc_every == 0
        if is_pvc:
            t_pvc = r[-1] / FS + 0.55 * rr_s
            r.append(round(t_pvc * FS))
            t = r[-2] / FS + 2 * rr_s               # the next sinus beat on the sinus clock
        else:
            r.append(round(t * FS))
            t += rr_s * (1 + rng.uniform(-0.02, 0.02))
        pvc.append(is_pvc)
    n = r[-1] + int(FS)
    y = rng.normal(0, 0.005, n)
    tt = np.arange(n) / FS
    for ri, v in zip(r, pvc):
        d = tt - ri / FS
        near = np.abs(d) < 0.4
        dn = d[near]
        if v:       # wide, tall and inverted, its T wave opposite
            y[near] += -1.5 * _g(dn, 0.0, 0.030) + 0.4 * _g(dn, 0.28, 0.06)
        else:       # P, narrow R with a small S, T
            y[near] += (0.15 * _g(dn, -0.16, 0.02) + _g(dn, 0.0, 0.010)
                        - 0.25 * _g(dn, 0.03, 0.008) + 0.3 * _g(dn, 0.25, 0.05))
    return y[:, None], np.array(r), np.array(pvc)


def _ctx(y, r):
    c = SignalContract(fs_hz=FS)
    pre, post = c.beat_pre, c.beat_len - c.beat_pre
    rows = context_rows(y, r, FS, pre, post)
    post_rr = np.concatenate([np.diff(r) * 1000.0 / FS, [0.0]])
    out = np.zeros((r.size, N_CONTEXT), np.float32)
    beat_context(rows, post_rr, out)
    return rows, out


def test_a_pvc_is_premature_paused_different_and_wide():
    y, r, pvc = _rhythm()
    _, ctx = _ctx(y, r)
    learned = ctx[:, C["learned"]] > 0
    normal = ~pvc & learned
    normal[-1] = False                            # its post RR is unknown
    v = np.flatnonzero(pvc & learned)
    assert v.size >= 4
    for i in v:
        assert ctx[i, C["pre_local"]] < 0.85, i
        assert ctx[i, C["post_local"]] > 1.1, i
        assert ctx[i, C["width_ratio"]] > 1.2, i
        assert ctx[i, C["in_dominant"]] == 0, i
    # the normal beats: on time (but the one after a pause), the dominant shape and width
    on_time = normal.copy()
    on_time[np.flatnonzero(pvc) + 1] = False
    assert np.all(np.abs(ctx[on_time, C["pre_local"]] - 1) < 0.1)
    assert np.all(ctx[normal, C["width_ratio"]] < 1.1)
    assert ctx[normal, C["qrs_corr"]].min() > 0.95
    assert ctx[v, C["qrs_corr"]].max() < ctx[normal, C["qrs_corr"]].min() - 0.5
    assert np.all(ctx[normal, C["in_dominant"]] == 1)
    # no P wave before the PVC where the dominant beat has one
    assert ctx[v, C["p_corr"]].max() < 0.7 < ctx[normal, C["p_corr"]].min()
    # the beat after a PVC comes after the pause: late against the local RR, not premature
    assert np.all(ctx[v + 1, C["pre_local"]] > 1.1)


def test_relearn_starts_a_learning_period_and_keeps_the_rr_averages():
    y, r, _ = _rhythm(n_beats=40, pvc_every=1000)
    c = SignalContract(fs_hz=FS)
    pre, post = c.beat_pre, c.beat_len - c.beat_pre
    ctx = PatientContext(FS, 1, pre, post)
    rows = [ctx.observe(int(b), y[b - pre:b + post].T) for b in r[:20]]
    assert rows[-1][R["learned"]] == 1
    local_before = rows[-1][R["local_rr_ms"]]
    ctx.relearn()
    after = [ctx.observe(int(b), y[b - pre:b + post].T) for b in r[20:]]
    learned = np.array([a[R["learned"]] for a in after])
    assert learned[:LEARN_BEATS].sum() == 0 and learned[LEARN_BEATS:].all()
    # the RR averages are the patient's rhythm, not the templates': they survive a relearn
    assert after[0][R["local_rr_ms"]] == pytest.approx(local_before, rel=0.05)
    # a gap longer than RELEARN_GAP_S starts learning again by itself
    late = ctx.observe(int(r[-1] + 12 * FS), y[r[-1] - pre:r[-1] + post].T)
    assert late[R["learned"]] == 0 and late[R["pre_rr_ms"]] == 0
