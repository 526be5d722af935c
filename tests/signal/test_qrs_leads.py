"""The batched QRS search (`delineate._qrs_leads`, issue 27) gives `_qrs_lead`'s integers row by
row: its masks built once for all rows, its scans in Python over the rows' floats."""

from __future__ import annotations

import numpy as np

from edge_ecg.signal import delineate as dl
from edge_ecg.signal.delineate import DelineationConfig


def _slopes(rng, n_rows: int, n: int, r: int, fs: float) -> np.ndarray:
    """|slope| rows shaped like a QRS's: a few peaks around R of random size and spacing over
    a low floor, some rows flat, zero or with exact ties and plateaus."""
    t = np.arange(n)
    a = np.abs(rng.normal(0.0, 0.02, (n_rows, n)))
    for i in range(n_rows):
        for _ in range(int(rng.integers(1, 6))):
            c = r + int(rng.normal(0, 0.04 * fs))
            a[i] += rng.uniform(0.1, 3.0) * np.exp(-0.5 * ((t - c) / rng.uniform(1, 6)) ** 2)
    a[0] = 0.0                                   # no slope at all: None
    a[1] = np.round(a[1], 1)                     # ties and plateaus
    a[2, : r - 10] = 0.0                         # flat before the QRS
    return a


def test_qrs_leads_equals_qrs_lead_row_by_row():
    rng = np.random.default_rng(11)
    n_checked = n_none = 0
    for fs in (128.0, 250.0, 360.0, 500.0):
        for cfg in (DelineationConfig(), DelineationConfig(xi_qrs_min=0.0),
                    DelineationConfig(qrs_sig=0.5, qrs_small=0.02, qrs_gap_s=0.08)):
            r = round(cfg.pre_s * fs)
            n = r + round(cfg.post_s * fs)
            a = _slopes(rng, 40, n, r, fs)
            got = dl._qrs_leads(a, r, fs, cfg)
            want = [dl._qrs_lead(a[i], r, fs, cfg) for i in range(a.shape[0])]
            assert got == want
            n_checked += len(want)
            n_none += sum(w is None for w in want)
    assert n_checked == 480 and 0 < n_none < n_checked


def test_the_list_scans_slice_as_numpy_does():
    rng = np.random.default_rng(2)
    for _ in range(3000):
        a = np.round(rng.uniform(0, 1, int(rng.integers(3, 40))), 1)
        lo, hi = (int(v) for v in rng.integers(-45, 45, 2))
        thr = float(rng.uniform(0, 1))
        al = a.tolist()
        if hi > lo and len(a[lo:hi]):      # `_qrs_lead` scans non-empty spans
            assert dl._py_below(al, lo, hi, thr, last_one=True) == dl._last_below(a, lo, hi, thr)
            assert dl._py_below(al, lo, hi, thr, last_one=False) == dl._first_below(a, lo, hi,
                                                                                    thr)
        w = a[lo:hi]
        m = np.flatnonzero((w[1:-1] <= w[:-2]) & (w[1:-1] <= w[2:]) & (w[1:-1] < thr)) + 1
        assert dl._py_local_min(al, lo, hi, thr, last_one=True) == (
            lo + int(m[-1]) if m.size else lo)
        assert dl._py_local_min(al, lo, hi, thr, last_one=False) == (
            lo + int(m[0]) if m.size else hi - 1)
