"""The per-window input preparation's rewritten steps give numpy's own bytes (issue 27): the
median's mean of the two middle values, the RR context of the beat slots and the RR
intervals. Bytes, not values: a -0.0 for a 0.0 would already be a different input."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.signal.contract import beat_rr_context
from edge_ecg.signal.normalize import median_last_axis
from edge_ecg.signal.period import rr_intervals_ms


def _plain_beat_rr_context(r, pre, post, n, max_beats, fs_hz):
    """The index-array form `beat_rr_context` replaced (its reference)."""
    out = np.zeros((max_beats, 3), np.float32)
    r = np.asarray(r, dtype=np.int64)
    whole = (r - pre >= 0) & (r + post <= n)
    first = int(np.argmax(whole)) if whole.any() else 0
    k = min(int(whole.sum()), max_beats)
    if k == 0 or r.size < 2:
        return out
    rr = np.diff(r).astype(np.float64) * (1000.0 / fs_hz)
    idx = np.arange(first, first + k)
    out[:k, 0] = np.where(idx >= 1, rr[np.maximum(idx - 1, 0)], 0.0)
    out[:k, 1] = np.where(idx + 1 < r.size, rr[np.minimum(idx, rr.size - 1)], 0.0)
    out[:k, 2] = rr.mean()
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_last_axis_gives_np_median_bytes(dtype):
    rng = np.random.default_rng(3)
    cases = [rng.normal(size=(12, 2500)), rng.normal(size=(3, 2499)),
             rng.integers(-2, 3, size=(6, 40)) * 0.5,             # ties everywhere
             np.zeros((2, 10)), -np.zeros((2, 10)),                # signed zeros
             np.array([[-0.0, 0.0, -0.0, 0.0], [0.0, -0.0, 1.0, -1.0]]),
             rng.normal(size=(4, 2)), rng.normal(size=(2, 3, 8)),
             np.full((2, 6), np.finfo(dtype).max)]                 # the sum overflows, as numpy's
    for x in cases:
        x = np.asarray(x, dtype=dtype)
        with np.errstate(over="ignore"):
            want = np.median(x, axis=-1, keepdims=True)
            got = median_last_axis(x)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes(), (x, got, want)


def test_beat_rr_context_equals_the_index_array_form():
    rng = np.random.default_rng(5)
    for trial in range(3000):
        n = int(rng.integers(50, 3000))
        m = int(rng.integers(0, 40))
        r = rng.integers(-50, n + 50, size=m)
        if trial % 3:
            r = np.sort(r)
        pre, post = int(rng.integers(0, 120)), int(rng.integers(1, 200))
        mb = int(rng.integers(1, 40))
        fs = float(rng.choice([128.0, 250.0, 360.0, 500.0]))
        want = _plain_beat_rr_context(r, pre, post, n, mb, fs)
        got = beat_rr_context(r, pre, post, n, mb, fs, out=np.full((mb, 3), 7.0, np.float32))
        assert got.tobytes() == want.tobytes(), (r, pre, post, n, mb)


def test_rr_intervals_ms_equals_np_diff():
    rng = np.random.default_rng(7)
    for m in (0, 1, 2, 13):
        r = np.cumsum(rng.integers(1, 900, m))
        for fs in (128.0, 250.0, 360.0):
            want = np.diff(r.astype(np.float64)) * (1000.0 / fs)
            assert rr_intervals_ms(r, fs).tobytes() == want.tobytes()
