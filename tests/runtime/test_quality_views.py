"""`judge_window` on a window that is a view into its context (as the stream cuts them) reads
the window's extremes from the context's half-blocks, and with the half-block extremes the
stream keeps (`HalfBlockExtremes`) judges without copying the samples: the verdict must be
the one the plain computation gives on a copy of the same samples, whatever the signal (flat
leads, short flat stretches, a lead at the rail, gaps, non-finite samples, a window off the
half-block grid, an odd block), and the kept extremes those of the samples."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.runtime.quality import (HalfBlockExtremes, QualityConfig, _half_extremes,
                                      flat_block_len, judge_window)
from edge_ecg.runtime.ring_buffer import FLAG_GAP, FLAG_NONFINITE, RingBuffer


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
         "quantised", "constant_lead", "short_flats", "flat_and_clipped", "flat_at_edge"]


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
    elif case == "short_flats":                # flat half-blocks, no flat block: not off
        for j, c0 in ((2, a), (4, a + int(3 * fs)), (4, a + int(3.9 * fs))):
            ctx[c0:c0 + int(0.6 * fs), j] = ctx[c0, j]
    elif case == "flat_and_clipped":
        ctx[a:a + int(1.5 * fs), 1] = ctx[a, 1]
        ctx[:, 6] = np.minimum(ctx[:, 6], 0.2)
    elif case == "flat_at_edge":               # off across the window's start, in the context
        ctx[max(w0 - int(0.8 * fs), 0):w0 + int(0.5 * fs), 2] = 0.1
    view = ctx[w0:w0 + t]
    assert view.base is not None
    cfg = QualityConfig()
    got = judge_window(view, flags[w0:w0 + t], fs, 12, 0.01, cfg,
                       context=(ctx, flags, w0))
    ref = judge_window(view.copy(), flags[w0:w0 + t].copy(), fs, 12, 0.01, cfg,
                       context=(ctx.copy(), flags.copy(), w0))
    assert _verdict(got) == _verdict(ref)
    block = flat_block_len(fs, cfg)
    halves = _half_extremes(np.ascontiguousarray(ctx.T), block)
    kept = judge_window(view, flags[w0:w0 + t], fs, 12, 0.01, cfg,
                        rails_mv=(np.full(12, -0.35, np.float32), np.full(12, 5.0, np.float32))
                        if case == "clipped_low" else None,
                        context=(ctx, flags, w0), halves=halves)
    plain = judge_window(view.copy(), flags[w0:w0 + t].copy(), fs, 12, 0.01, cfg,
                         rails_mv=(np.full(12, -0.35, np.float32), np.full(12, 5.0, np.float32))
                         if case == "clipped_low" else None,
                         context=(ctx.copy(), flags.copy(), w0))
    assert _verdict(kept) == _verdict(plain)
    alone = judge_window(view.copy(), flags[w0:w0 + t].copy(), fs, 12, 0.01, cfg)
    assert _verdict(judge_window(view, flags[w0:w0 + t], fs, 12, 0.01, cfg)) == _verdict(alone)
    if case in ("clipped", "clipped_low"):
        assert any(got.saturated)
    if case == "flat_lead":
        assert got.off[3]


def test_random_flat_stretches_with_kept_extremes():
    """Random flat stretches (lengths around a block, anywhere, several leads), with the
    extremes a stream keeps: the verdict of the plain computation, window after window."""
    rng = np.random.default_rng(7)
    cfg = QualityConfig()
    seen_off = seen_flat_half = 0
    for trial in range(150):
        fs = float(rng.choice([500.0, 360.0, 250.0, 128.0]))
        block = flat_block_len(fs, cfg)
        half = block // 2
        t = int(10 * fs) + int(rng.integers(0, half)) * int(rng.integers(0, 2))
        w0 = int(rng.choice([0, 1, 2])) * 2 * half
        ctx = _signal(rng, w0 + t + block, 12, fs)
        for _ in range(int(rng.integers(0, 4))):
            j = int(rng.integers(0, 12))
            n = int(rng.integers(half // 2, 3 * block))
            c0 = int(rng.integers(0, ctx.shape[0] - n))
            ctx[c0:c0 + n, j] = ctx[c0, j] + rng.normal(0, 0.002, n).astype(np.float32)
        if rng.random() < 0.2:
            j = int(rng.integers(0, 12))
            ctx[:, j] = np.minimum(ctx[:, j], np.quantile(ctx[:, j], 0.995))
        flags = np.zeros(ctx.shape[0], np.uint8)
        halves = _half_extremes(np.ascontiguousarray(ctx.T), block)
        seen_flat_half += bool(((halves[0] - halves[1]) < cfg.flat_mv).any())
        view = ctx[w0:w0 + t]
        kept = judge_window(view, flags[w0:w0 + t], fs, 12, 0.01, cfg,
                            context=(ctx, flags, w0), halves=halves)
        plain = judge_window(view.copy(), flags[w0:w0 + t].copy(), fs, 12, 0.01, cfg,
                             context=(ctx.copy(), flags.copy(), w0))
        assert _verdict(kept) == _verdict(plain), trial
        seen_off += bool(plain.off.any())
    assert seen_off >= 10 and seen_flat_half >= 50      # both paths were taken


def test_kept_extremes_are_the_samples_extremes():
    """`HalfBlockExtremes` fed a ring buffer chunk by chunk (wrapping, a gap) gives, for any
    span on its grid that the buffer holds, `_half_extremes` of the samples read back."""
    rng = np.random.default_rng(3)
    fs, n_leads = 360.0, 3
    block = flat_block_len(fs, QualityConfig())
    raw = RingBuffer(4000, n_leads, fill="linear")
    hb = HalfBlockExtremes(block, n_leads, raw.capacity)
    pos = 0
    for step in range(60):
        n = int(rng.integers(1, 700))
        if step == 30:
            pos += 450                                      # a gap, filled and marked
        raw.write(pos, rng.normal(size=(n, n_leads)).astype(np.float32))
        pos += n
        hb.update(raw)
        half = hb.half
        for _ in range(5):
            first = -(-raw.start // half) * half                # the grid, held
            if first >= raw.end:
                continue
            c0 = int(rng.integers(first, raw.end)) // half * half
            c1 = int(rng.integers(c0, raw.end + 1))
            got = hb.extremes(c0, c1)
            if c1 - c0 < 2 * half:
                assert got is None
                continue
            x, _ = raw.read(c0, c1)
            ref = _half_extremes(np.ascontiguousarray(x.T), block)
            assert got is not None and got[2] == ref[2]
            np.testing.assert_array_equal(got[0], ref[0])
            np.testing.assert_array_equal(got[1], ref[1])
    assert hb.extremes(raw.start + 1 if raw.start % hb.half == 0 else raw.start,
                       raw.end) is None                    # off the grid
