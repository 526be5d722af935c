"""`RecentValues`: a fixed-size ring of the most recent float values, for percentiles.

A bedside monitor runs for days; per-chunk timings and per-window latencies kept in growing
lists would grow the runtime's memory with the stream length (~10 MB per hour at 40-ms
frames). The ring keeps the last `capacity` values in one preallocated float64 array, so the
retained state is constant; percentiles over it describe the recent run (100 000 values = 28 h
of 1-s windows, 67 min of 40-ms chunks), which is what a summary or a profile reports.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_CAPACITY = 100_000


class RecentValues:
    """The last `capacity` values added (oldest dropped first), and how many were ever added."""

    __slots__ = ("_buf", "_n")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self._buf = np.zeros(int(capacity), dtype=np.float64)   # zero pages: RSS grows on use
        self._n = 0

    @property
    def capacity(self) -> int:
        return int(self._buf.shape[0])

    @property
    def total(self) -> int:
        """Values ever added (kept or since overwritten)."""
        return self._n

    def add(self, value: float) -> None:
        self._buf[self._n % self._buf.shape[0]] = value
        self._n += 1

    def extend(self, values) -> None:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        skipped = max(v.size - self.capacity, 0)      # overwritten at once: counted, not kept
        self._n += skipped
        for x in v[skipped:]:
            self.add(float(x))

    def values(self) -> np.ndarray:
        """A copy of the kept values, oldest first."""
        cap = self._buf.shape[0]
        if self._n <= cap:
            return self._buf[:self._n].copy()
        i = self._n % cap
        return np.concatenate([self._buf[i:], self._buf[:i]])

    def __len__(self) -> int:
        return min(self._n, self._buf.shape[0])

    def __array__(self, dtype=None, copy=None):
        v = self.values()
        return v if dtype is None else v.astype(dtype)


def percentile(values: np.ndarray, q: float) -> float:
    """`float(np.percentile(values, q))` (linear method) of a non-empty 1-D array of finite
    floats, the same number: numpy's virtual index `(n - 1) * (q / 100)` and its two-sided
    interpolation (`_lerp`: from below under gamma 0.5, from above at or over it). Why not
    numpy's: its first call imports numpy.ma (`np.unique` checks for masked arrays), 12 ms of
    an `edge-ecg stream` process spent only on its closing summary."""
    v = np.sort(np.asarray(values, dtype=np.float64).ravel()).tolist()
    n = len(v)
    vi = (n - 1) * (float(q) / 100)
    if vi >= n - 1:
        return v[-1]
    lo = math.floor(vi)
    a, b = v[lo], v[lo + 1]
    gamma = vi - lo
    d = b - a
    return b - d * (1 - gamma) if gamma >= 0.5 else a + d * gamma


__all__ = ["DEFAULT_CAPACITY", "RecentValues", "percentile"]
