"""Bounded histories: `RecentValues` keeps the last `capacity` values, in order, in constant
memory; `StageTimer` built on it keeps `times()` as dict[str, np.ndarray seconds]."""

from __future__ import annotations

import numpy as np

from edge_ecg.runtime.recent import RecentValues, percentile
from edge_ecg.runtime.stage_timer import STAGES, StageTimer


def test_recent_values_keeps_the_last_capacity_values_in_order():
    r = RecentValues(5)
    assert r.values().size == 0 and len(r) == 0
    for v in range(3):
        r.add(v)
    np.testing.assert_array_equal(r.values(), [0, 1, 2])
    r.extend(range(3, 12))
    np.testing.assert_array_equal(r.values(), [7, 8, 9, 10, 11])
    assert r.total == 12 and len(r) == 5
    nbytes = r._buf.nbytes
    r.extend(np.arange(1000.0))
    assert r._buf.nbytes == nbytes                       # constant memory
    np.testing.assert_array_equal(r.values(), np.arange(995.0, 1000.0))
    assert float(np.percentile(np.asarray(r), 50)) == 997.0


def test_stage_timer_times_are_bounded_arrays_and_counts_all():
    t = StageTimer(capacity=4)
    for i in range(10):
        t.add("beats", i * 1e-3)
    t.add("custom", 0.5)
    times = t.times()
    assert set(STAGES) <= set(times) and "custom" in times
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in times.values())
    np.testing.assert_allclose(times["beats"], [6e-3, 7e-3, 8e-3, 9e-3])
    assert t.counts()["beats"] == 10 and times["read"].size == 0


def test_percentile_is_numpys_linear_percentile():
    """The summary's percentile (no numpy.ma import) gives np.percentile's very numbers."""
    rng = np.random.default_rng(3)
    for n in [*range(1, 30), 100, 1001]:
        for t in range(8):
            v = rng.standard_normal(n) * (1e-3, 1.0, 50.0, 1e4)[t % 4] + 100.0 * (t % 2)
            if t % 3 == 0:
                v = np.round(v, 1)
            for q in (0, 1, 25, 50, 90, 99, 99.9, 100, float(rng.uniform(0, 100))):
                got = percentile(v, q)
                assert type(got) is float and got == float(np.percentile(v, q)), (n, q)
