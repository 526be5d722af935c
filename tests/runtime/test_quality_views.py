"""`judge_window` on a window that is a view into its context (as the stream cuts them) reads
the window's extremes from the context's half-blocks: the verdict must be the one the plain
computation gives on a copy of the same samples, whatever the signal (flat leads, a lead at
the rail, gaps, non-finite samples, a window off the half-block grid, an odd block)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.runtime.quality import QualityConfig, judge_window
from edge_ecg.runtime.ring_buffer import FLAG_GAP, FLAG_NONFINITE


def _verdict(q):
    return (q.reasons, q.used.tolist(), q.off.tolist(), q.saturated.tolist(), q.n_samples,
            q.missing, q.invalid, q.filled, q.longest_gap, q.masked)


def _signal(rng, t, n_leads, fs):
    k = np.arange(t) / fs
    x = np.stack([np.sin(2 * np.pi * (1.1 + 0.1 * j) * k) * (0.5 + 0.1 * j)
                  for j in range(n_leads)], axis=1)
    x += rng.normal(0, 0.01, x.shape)
    return x.astype(np.float32)


CASES = ["clean", "flat_lead", "all_flat", "clipped", "clipped_low", "gap", "nonfinite",
         "quantised", "constant_lead"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fs,w0", [(500.0, 500), (500.0, 0), (500.0, 137), (360.0, 360),
                                   (257.0, 257), (128.0, 64)])
def test_view_verdict_equals_the_copy_verdict(case, fs, w0):
    rng = np.random.default_rng(hash((case, fs, w0)) % 2**32)
    n_leads, t = 12, int(10 * fs) + (3 if fs == 257.0 else 0)
    ctx = _signal(rng, w0 + t + int(fs), n_leads, fs)
    flags = np.zeros(ctx.shape[0], np.uint8)
    a = w0 + int(2 * fs)
    if case == "flat_lead":
        ctx[a:a + int(1.5 * fs), 3] = ctx[a, 3]
    elif case == "all_flat":
        ctx[:] = 0.001
    elif case == "clipped":
        ctx[:, 5] = np.minimum(ctx[:, 5], 0.4)
    elif case == "clipped_low":
        ctx[:, 7] = np.maximum(ctx[:, 7], -0.3)
    elif case == "gap":
        flags[a:a + 20] = FLAG_GAP
    elif case == "nonfinite":
        flags[a + 7] = FLAG_NONFINITE
    elif case == "quantised":                  # many samples at the same extreme value
        ctx = np.round(ctx * 20) / 20
    elif case == "constant_lead":
        ctx[:, 0] = 0.25
    view = ctx[w0:w0 + t]
    assert view.base is not None
    cfg = QualityConfig()
    got = judge_window(view, flags[w0:w0 + t], fs, 12, 0.01, cfg,
                       context=(ctx, flags, w0))
    ref = judge_window(view.copy(), flags[w0:w0 + t].copy(), fs, 12, 0.01, cfg,
                       context=(ctx.copy(), flags.copy(), w0))
    assert _verdict(got) == _verdict(ref)
    alone = judge_window(view.copy(), flags[w0:w0 + t].copy(), fs, 12, 0.01, cfg)
    assert _verdict(judge_window(view, flags[w0:w0 + t], fs, 12, 0.01, cfg)) == _verdict(alone)
    if case in ("clipped", "clipped_low"):
        assert any(got.saturated)
    if case == "flat_lead":
        assert got.off[3]
