"""Latency figures: percentile summaries and the MLPerf-style single-stream measurement."""

from __future__ import annotations

import time

import numpy as np

PERCENTILES = (50, 90, 99)
# MLPerf's single-stream scenario (LoadGen) issues one query when the previous completes and
# reports the 90th-percentile latency, over at least 1024 queries and a minimum duration; we
# issue up to this many within a time limit and say how many.
MLPERF_MIN_QUERIES = 1024


def latency_summary(samples_s) -> dict:
    """p50/p90/p99, mean, max (ms) and count of a list of durations in seconds.

    Percentiles use numpy's default linear interpolation, so p50 <= p90 <= p99 always holds.
    """
    a = np.asarray(list(samples_s), dtype=np.float64) * 1000.0
    if a.size == 0:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": None,
                "max_ms": None, "total_s": 0.0}
    p = np.percentile(a, PERCENTILES)
    return {"n": int(a.size), "p50_ms": float(p[0]), "p90_ms": float(p[1]),
            "p99_ms": float(p[2]), "mean_ms": float(a.mean()), "max_ms": float(a.max()),
            "total_s": float(a.sum() / 1000.0)}


class RecordingBackend:
    """Wraps a runtime `Backend`, keeping the last batches it ran for the single-stream figure.

    Everything else (manifest, output names, ...) is the wrapped backend's, so the runtime's
    `StreamProcessor` cannot tell the difference.
    """

    def __init__(self, backend, keep: int = 32) -> None:
        self._backend = backend
        self._keep = keep
        self.batches: list[dict[str, np.ndarray]] = []

    def run(self, inputs):
        if len(self.batches) >= self._keep:
            self.batches.pop(0)
        self.batches.append(inputs)
        return self._backend.run(inputs)

    def __getattr__(self, name):
        return getattr(self._backend, name)


def single_stream(backend, batches: list[dict[str, np.ndarray]], queries: int = MLPERF_MIN_QUERIES,
                  max_s: float = 5.0) -> dict:
    """MLPerf-style single-stream: one batch-1 query issued as soon as the previous completes.

    Queries cycle through the real windows of the run (`batches`); inference only, as MLPerf
    times the system under test without the preprocessing. Stops at `queries` or `max_s`.
    """
    rows = []
    for b in batches:
        n = next(iter(b.values())).shape[0]
        rows += [{k: v[i:i + 1] for k, v in b.items()} for i in range(n)]
    if not rows:
        return {**headline(latency_summary([])), "queries": 0, "note": "no window was predicted"}
    times = []
    t_end = time.perf_counter() + max_s
    for i in range(queries):
        t0 = time.perf_counter()
        backend.run(rows[i % len(rows)])
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 > t_end:
            break
    s = latency_summary(times)
    note = ("90th-percentile latency of batch-1 queries issued back to back (MLPerf single-stream "
            f"metric), inference only, over the run's {len(rows)} real windows; "
            f"{len(times)} queries")
    if len(times) < MLPERF_MIN_QUERIES:
        note += (f" (MLPerf asks for >= {MLPERF_MIN_QUERIES} queries and a minimum duration: "
                 "a short run)")
    return {**headline(s), "queries": len(times), "note": note}


def headline(s: dict) -> dict:
    return {k: s[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms")}
