"""The window verdict's shortcuts (issue 27) give the full computation's answer: a window and
context with nothing filled skip the per-kind counts and the clean-half-block test, and the
noise ratio's means are `np.mean`'s floats."""

from __future__ import annotations

import numpy as np

from edge_ecg.runtime.quality import (QualityConfig, _halves, _lead_verdicts, _mean,
                                      _quick_verdict, flat_block_len, judge_window)
from edge_ecg.runtime.ring_buffer import FLAG_GAP


def test_mean_is_np_mean():
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        a = (rng.normal(size=(5000, 2)) ** 2).astype(dtype)
        for v in (a[:, 0], a[:, 1], a[:7, 1], a[:1, 0]):
            assert repr(_mean(v)) == repr(float(np.mean(v)))
    assert _mean(np.array([1, 2, 2])) == float(np.mean(np.array([1, 2, 2])))   # ints: np.mean


def test_all_measured_windows_judge_as_the_full_computation():
    """Flat leads, rails and clean or filled contexts: the quick verdict (taken when nothing
    around the window is filled) and the verdict with a filled context both equal the
    full per-lead computation (`_lead_verdicts`)."""
    rng = np.random.default_rng(2)
    fs, cfg = 250.0, QualityConfig()
    block = flat_block_len(fs, cfg)
    quick = 0
    for trial in range(60):
        ctx = rng.normal(0, 0.5, (3000, 4)).astype(np.float32)
        if trial % 3 == 0:
            ctx[:, int(rng.integers(4))] = 0.25                  # a flat lead: off
        if trial % 4 == 1:
            ctx[1000:1200, 1] = 0.0                              # flat for a while
        flags = np.zeros(3000, np.uint8)
        if trial % 5 == 2:
            flags[100:130] = FLAG_GAP                            # filled before the window
        w0, t = 500, 2500 - 500
        raw, rf = ctx[w0:w0 + t], flags[w0:w0 + t]
        halves = _halves(np.ascontiguousarray(ctx.T), block)
        q = judge_window(raw, rf, fs, 12, 0.1, cfg, None, context=(ctx, flags, w0),
                         halves=halves)
        off, sat = _lead_verdicts(raw, rf == 0, fs, cfg, None, (ctx, flags, w0))
        quick += _quick_verdict(raw, rf == 0, fs, cfg, None, (ctx, flags, w0), halves) is not None
        assert q.off.tolist() == off.tolist() and q.saturated.tolist() == sat.tolist()
        assert (q.missing, q.invalid, q.filled, q.longest_gap) == (0, 0, 0, 0)
    assert quick > 30                      # the shortcut was taken, with and without fills
