"""The delineator's batch helpers (beats of a chunk delineated together) give exactly what
one beat at a time gives: medians over the leads, P baselines, ragged wave windows."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.signal import delineate as dl


@pytest.mark.parametrize("q", [0.5, 0.25, 0.8])
def test_combine_equals_the_rounded_quantile_beat_by_beat(q):
    rng = np.random.default_rng(1)
    v = rng.integers(0, 400, size=(300, 5, 3))
    v[rng.random(v.shape) < 0.4] = -1                # leads that found no boundary
    got = dl._combine(v, q)
    for b in range(v.shape[0]):
        for j in range(v.shape[2]):
            found = v[b, :, j][v[b, :, j] >= 0]
            want = round(dl._quantile(found, q)) if found.size else -1
            assert got[b, j] == want, (b, j)


def test_ragged_lines_equal_line_row_by_row():
    rng = np.random.default_rng(2)
    b0, b1 = rng.normal(size=50), rng.normal(size=50)
    b1[::5] = b0[::5]                                # numpy's zero-step case
    num = rng.integers(3, 90, size=50)
    m = np.minimum(num - 1, rng.integers(1, 90, size=50))
    y = dl._ragged_lines(b0, b1, num, m)
    for i in range(50):
        np.testing.assert_array_equal(y[i, : m[i]], dl._line(b0[i], b1[i], num[i], m[i]))


def test_waves_with_a_window_per_row_equal_the_one_lead_reference():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.standard_normal((12, 400)), axis=1) * 0.01
    s = dl._zero_phase(x, 15.0, 500.0)
    d = dl._gradient(s) * 500.0
    lo = rng.integers(40, 200, size=12)
    hi = lo + rng.integers(20, 150, size=12)
    left = lo - rng.integers(0, 40, size=12)
    right = np.minimum(hi + rng.integers(0, 80, size=12), 399)
    base = rng.standard_normal((12, int((hi - lo).max()))) * 0.01
    on, pk, off, dev, mag = dl._waves(s, d, lo, hi, base, 30, 12, left, right)
    for i in range(12):
        w = hi[i] - lo[i]
        want = dl._wave(s[i], d[i], int(lo[i]), int(hi[i]), base[i, :w], 30, 12, int(left[i]),
                        int(right[i]))
        assert (on[i], pk[i], off[i], dev[i]) == want, i
        np.testing.assert_array_equal(mag[i, :w], np.abs(s[i, lo[i]:hi[i]] - base[i, :w]))
        assert not mag[i, w:].any()


def test_a_batch_equals_its_beats_one_at_a_time():
    """`delineate_window` per beat (a batch of one) == the beats of a record in one batch."""
    rng = np.random.default_rng(4)
    fs, n = 250.0, 350
    t = np.arange(n) / fs
    segs = []
    for k in range(8):                                # P, QRS and T bumps, noise, a flat lead
        qrs = np.exp(-((t - 0.6) / 0.012) ** 2) * (1.0 + 0.1 * k)
        pw = 0.15 * np.exp(-((t - 0.45) / 0.03) ** 2)
        tw = 0.3 * np.exp(-((t - 0.9 - 0.01 * k) / 0.05) ** 2)
        lead = qrs + pw + tw + rng.normal(0, 0.01, n)
        segs.append(np.stack([lead, -0.5 * lead + rng.normal(0, 0.01, n), np.full(n, 0.2)]))
    segs = np.stack(segs)
    segs[3, 1, 100] = np.nan
    t_end = rng.integers(200, 330, size=8)
    p_start = [None, 20, 5, None, 60, 90, 0, None]
    batch = dl._Batch(segs, 150, fs, t_end, dl.DEFAULT_DELINEATION)
    batch.p_waves(p_start)
    for k in range(8):
        per, usable, comb = dl.delineate_window(segs[k], 150, fs, int(t_end[k]), p_start[k])
        np.testing.assert_array_equal(batch.out[k], per)
        np.testing.assert_array_equal(batch.usable[k], usable)
        np.testing.assert_array_equal(batch.comb[k], comb)
    assert (batch.comb[:, dl._B["qrs_on"]] >= 0).all() and (batch.comb[:, dl._B["t_off"]] >= 0).any()
