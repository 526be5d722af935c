"""Wave delineation: streaming == offline on random chunkings, intervals on synthetic beats
whose boundaries are known exactly, bad input marked, QTc formulas."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from edge_ecg.data.synth import synthesize
from edge_ecg.errors import SignalError
from edge_ecg.signal.delineate import (
    BOUNDARIES,
    DEFAULT_DELINEATION,
    delineate,
    delineate_flush,
    delineate_initial,
    delineate_record,
)
from edge_ecg.signal.intervals import qtc_bazett_ms, qtc_fridericia_ms, window_intervals
from edge_ecg.signal.qrs import qrs_detect, qrs_flush, qrs_initial


def _lobe(n_up: int, n_down: int) -> np.ndarray:
    """A wave with compact support: sin^2 rise over n_up samples, cos^2 fall over n_down."""
    up = np.sin(0.5 * np.pi * np.arange(n_up) / n_up) ** 2
    down = np.cos(0.5 * np.pi * np.arange(n_down + 1) / n_down) ** 2
    return np.concatenate([up, down])


def synthetic_beats(pr_s: float, qrs_s: float, qt_s: float, rr_s: float, n_beats: int = 14,
                    fs: float = 500.0, noise_mv: float = 0.01, seed: int = 0):
    """Beats built from compact-support waves, so every boundary is known to the sample:
    P (100 ms) starts pr_s before the QRS; the QRS is q, R, s lobes filling qrs_s; the T wave
    ends qt_s after the QRS onset. Returns (signal (T, 2), truth rows (qrs_on, p_on, qrs_off,
    t_off))."""
    def ms(s):
        return round(s * fs)
    n = ms(rr_s * (n_beats + 1))
    x = np.zeros(n)
    truth = []
    for k in range(n_beats):
        on = ms(0.6 + k * rr_s)
        p_on = on - ms(pr_s)
        p = _lobe(ms(0.04), ms(0.06)) * 0.15
        x[p_on: p_on + p.size] += p
        a = on
        for frac, amp in ((0.2, -0.1), (0.45, 1.2), (0.35, -0.3)):
            m = ms(frac * qrs_s)
            x[a: a + m + 1] += np.sin(np.pi * np.arange(m + 1) / m) ** 2 * amp
            a += m
        t_end = on + ms(qt_s)
        t = _lobe(ms(0.12), ms(0.08)) * 0.35
        x[t_end - t.size + 1: t_end + 1] += t
        truth.append((on, p_on, a, t_end))
    x = x + np.random.default_rng(seed).normal(0, noise_mv, n)
    return np.stack([x, 0.7 * x], axis=1), np.array(truth)


@pytest.mark.parametrize("pr_s,qrs_s,qt_s,rr_s", [(0.16, 0.09, 0.40, 0.85),
                                                  (0.20, 0.12, 0.36, 0.70),
                                                  (0.13, 0.08, 0.44, 1.10)])
def test_intervals_on_synthetic_beats_within_10_ms(pr_s, qrs_s, qt_s, rr_s):
    x, truth = synthetic_beats(pr_s, qrs_s, qt_s, rr_s)
    waves = [w for w in delineate_record(x, 500.0) if w.valid]
    assert len(waves) >= len(truth) - 2          # the last beat is within POST_S of the end
    for w in waves:
        k = int(np.argmin(np.abs(truth[:, 0] - w["qrs_on"])))
        for name, true in zip(("qrs_on", "p_on", "qrs_off", "t_off"), truth[k]):
            assert abs(w[name] - true) * 2.0 <= 10.0, (name, w[name], true)
        # one beat's interval sums two boundary errors (noise): 15 ms per beat ...
        assert abs(w.pr_ms - pr_s * 1000) <= 15.0
        assert abs(w.qrs_ms - qrs_s * 1000) <= 15.0
        assert abs(w.qt_ms - qt_s * 1000) <= 15.0
    med = window_intervals(waves)
    # ... and 10 ms for the window's medians, what a monitor shows
    assert abs(med["pr_ms"] - pr_s * 1000) <= 10.0
    assert abs(med["qrs_ms"] - qrs_s * 1000) <= 10.0
    assert abs(med["qt_ms"] - qt_s * 1000) <= 10.0
    assert abs(med["hr_bpm"] - 60.0 / rr_s) < 1.0
    assert abs(med["qtc_bazett_ms"] - med["qt_ms"] / np.sqrt(rr_s)) < 2.0


def _stream(x: np.ndarray, fs: float, cuts: np.ndarray):
    qst, dst = qrs_initial(fs), delineate_initial(fs)
    out = []
    for a, b in pairwise(cuts):
        beats, qst = qrs_detect(x[a:b], qst)
        got, dst = delineate(x[a:b], beats, dst)
        out += got
    beats, qst = qrs_flush(qst)
    got, dst = delineate(x[:0], beats, dst)
    return out + got + delineate_flush(dst)[0]


def _same(a, b) -> None:
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert (u.r, u.decided_at, u.valid, u.points, u.rr_ms) == \
            (v.r, v.decided_at, v.valid, v.points, v.rr_ms)
        np.testing.assert_array_equal(u.per_lead, v.per_lead)


def test_streaming_equals_offline_on_random_chunkings():
    rec = synthesize("sinus_arrhythmia", seconds=20.0, seed=3, snr_db=20.0)
    x = rec.signal.astype(np.float64)
    offline = delineate_record(x, rec.fs_hz)
    assert sum(w.valid for w in offline) >= 15
    rng = np.random.default_rng(0)
    for _ in range(3):
        cuts = np.unique(np.concatenate([[0, x.shape[0]],
                                         rng.integers(0, x.shape[0], rng.integers(5, 400))]))
        _same(_stream(x, rec.fs_hz, cuts), offline)
    _same(_stream(x, rec.fs_hz, np.arange(0, x.shape[0] + 1, 1)[::7].tolist()
                  + [x.shape[0]]), offline)


def test_delay_is_bounded_and_boundaries_ordered():
    rec = synthesize("sinus_rhythm", seconds=12.0, seed=1)
    waves = delineate_record(rec.signal, rec.fs_hz)
    post = round(DEFAULT_DELINEATION.post_s * rec.fs_hz)
    for w in waves:
        if not w.valid:
            continue
        if w.r > 2.0 * rec.fs_hz:    # after the detector's 2-s learning period
            # POST_S after R, whatever the detector's delay (sooner at the record's end)
            assert w.decided_at - w.r <= post
            assert w.decided_at - w.r == post or w.decided_at == rec.signal.shape[0]
        order = [w[b] for b in ("p_on", "p_peak", "p_off", "qrs_on", "qrs_off", "t_on",
                                "t_peak", "t_off") if w[b] is not None]
        assert order == sorted(order)


def test_flat_lead_is_marked_and_the_others_still_delineate():
    x, _ = synthetic_beats(0.16, 0.09, 0.40, 0.85)
    x = np.concatenate([x, np.zeros((x.shape[0], 1))], axis=1)   # a lead that is off
    waves = [w for w in delineate_record(x, 500.0) if w.valid]
    assert len(waves) >= 10
    assert all(np.all(w.per_lead[2] == -1) for w in waves)
    assert all(w["qrs_on"] is not None for w in waves)


def test_nan_gives_no_boundary_for_the_beats_it_touches():
    x, truth = synthetic_beats(0.16, 0.09, 0.40, 0.85)
    a, b = truth[5, 0] - 50, truth[5, 0] + 50
    x[a:b] = np.nan          # both leads lose a tenth of a second around one QRS
    waves = delineate_record(x, 500.0)
    for w in waves:
        lo, hi = w.r - round(0.6 * 500), w.r + round(0.8 * 500)
        if lo < b and hi > a:          # its window holds NaN in every lead
            assert not w.valid and all(v is None for v in w.points.values())
    assert sum(w.valid for w in waves) >= 6


def test_bad_input_raises_a_clear_error():
    with pytest.raises(SignalError, match="sampling rate"):
        delineate_initial(50.0)
    st = delineate_initial(500.0)
    _, st = delineate(np.zeros((10, 2)), [], st)
    with pytest.raises(SignalError, match="2 leads"):
        delineate(np.zeros((10, 3)), [], st)


def test_qtc_formulas():
    assert qtc_bazett_ms(400.0, 1000.0) == pytest.approx(400.0)
    assert qtc_bazett_ms(360.0, 640.0) == pytest.approx(450.0)
    assert qtc_fridericia_ms(360.0, 729.0) == pytest.approx(400.0)
    assert qtc_bazett_ms(None, 800.0) is None
    assert qtc_fridericia_ms(400.0, 100.0) is None      # not a cardiac cycle
    assert len(BOUNDARIES) == 9
