"""Per-stage wall times of the stream: `StageTimer` and the stage names `STAGES`.

`read` is the source's `read()` (for a serial device that is where frames are decoded; for a
replay it is slicing the record into chunks), then the runtime's own stages in order.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from edge_ecg.runtime.recent import DEFAULT_CAPACITY, RecentValues

STAGES = ("read", "buffer", "beats", "features", "inference", "output")


class StageTimer:
    """Per-stage wall times (seconds), for the profiler: `times()[stage] -> np.ndarray`.

    Each stage keeps its most recent `capacity` times (a `RecentValues` ring, constant memory
    on a run of days): `times()` is the recent window, `counts()` how many were ever timed.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._t: dict[str, RecentValues] = {s: RecentValues(capacity) for s in STAGES}

    def add(self, stage: str, seconds: float) -> None:
        r = self._t.get(stage)
        if r is None:
            r = self._t[stage] = RecentValues(self.capacity)
        r.add(seconds)

    @contextmanager
    def time(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0)

    def times(self) -> dict[str, np.ndarray]:
        """Per stage, its most recent times (up to `capacity`), oldest first, in seconds."""
        return {k: v.values() for k, v in self._t.items()}

    def counts(self) -> dict[str, int]:
        """Per stage, how many times were ever added (kept or not)."""
        return {k: v.total for k, v in self._t.items()}


__all__ = ["STAGES", "StageTimer"]
