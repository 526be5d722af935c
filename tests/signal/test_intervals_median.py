"""Window interval medians (edge_ecg.signal.intervals) are numpy's medians, exactly: the short
sort in Python that replaced np.median gives the same float for any mix of values, None, NaN
and infinities, odd and even counts."""

from __future__ import annotations

import math
import random

import numpy as np

from edge_ecg.signal.intervals import _median, window_intervals


def test_median_is_numpys_bit_for_bit():
    rng = random.Random(0)
    for _ in range(5000):
        vals = [rng.choice([None, math.nan, math.inf, -math.inf, rng.uniform(-1e3, 1e3),
                            rng.randint(0, 400) * 2.0, rng.randint(0, 400) * 1000.0 / 360.0,
                            rng.randint(0, 9)])
                for _ in range(rng.randint(0, 30))]
        finite = [float(x) for x in vals if x is not None and math.isfinite(x)]
        ref = float(np.median(finite)) if finite else None
        got = _median(vals)
        assert got == ref and (got is None or type(got) is float), (vals, ref, got)


class _W:
    def __init__(self, rr, pr, qrs, qt, valid=True):
        self.rr_ms, self.pr_ms, self.qrs_ms, self.qt_ms, self.valid = rr, pr, qrs, qt, valid


def test_window_intervals_from_the_medians():
    waves = [_W(800.0, 160.0, 90.0, 400.0), _W(820.0, None, 96.0, 410.0),
             _W(5000.0, 150.0, 100.0, None), _W(700.0, 170.0, 80.0, 390.0, valid=False)]
    iv = window_intervals(waves)
    assert iv["hr_bpm"] == 60000.0 / 810.0            # RR outside 250-3000 ms left out
    assert iv["pr_ms"] == 155.0 and iv["qrs_ms"] == 96.0 and iv["qt_ms"] == 405.0
    assert iv["n_delineated"] == 3
    assert iv["qtc_bazett_ms"] == 405.0 / math.sqrt(0.81)
    assert window_intervals([])["hr_bpm"] is None
