"""Shared pieces of the reliability suite and the soak/fuzz benchmarks.

- `bundle_for_tests(tmp)`: the bundled default bundle when it exists, else the runtime
  helper's fixture bundle (a small real ONNX graph written by `build_fixture_bundle` in
  tests/runtime/conftest.py, imported by path so it is the same code, not a copy).
- `FiniteSerial`: wraps a `SerialSource` reading a finite `VirtualMonitor` stream and ends it
  with `EOFError` once the monitor has sent its last frame and the link is quiet, so the real
  `Pipeline` (reader thread, queue, summary) runs to completion over a pseudo-terminal.
- `Recorder`: a sink that keeps every event; `record_feeds(pipeline)` records the sample spans
  the processor was actually fed (the oracle for "lost": never the runtime's own report).
- `lost_indices` / `window_overlaps`: the checks the fault tests share.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from edge_ecg.signal.source import Source

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BUNDLE = REPO / "edge_ecg" / "assets" / "default_bundle"
RUNTIME_CONFTEST = REPO / "tests" / "runtime" / "conftest.py"
LEADS8 = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def build_fixture_bundle(out: Path) -> Path:
    """The RUNTIME helper's fixture bundle builder (tests/runtime/conftest.py), by path."""
    spec = importlib.util.spec_from_file_location("_runtime_fixture_bundle", RUNTIME_CONFTEST)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_fixture_bundle(Path(out))


def bundle_for_tests(tmp: Path) -> Path:
    """The default bundle if exported, else a freshly built fixture bundle under `tmp`."""
    if (DEFAULT_BUNDLE / "manifest.json").is_file():
        return DEFAULT_BUNDLE
    return build_fixture_bundle(Path(tmp) / "fixture_bundle")


def ecg_mv(seconds: float, seed: int = 0, leads=LEADS8, condition="sinus_rhythm",
           fs_hz: float = 500.0) -> np.ndarray:
    """A synthetic ECG (T, L) float64 mV for the given leads (edge_ecg.data.synth)."""
    from edge_ecg.data.synth import synthesize

    rec = synthesize(condition, seconds=seconds, fs_hz=fs_hz, seed=seed, leads=tuple(leads))
    return np.asarray(rec.signal, dtype=np.float64)


class FiniteSerial(Source):
    """A `SerialSource` on a finite monitor stream that ends (EOFError) once the monitor has
    finished and nothing arrived for `quiet_s`; records every chunk it hands out."""

    def __init__(self, serial, monitor, quiet_s: float = 0.4, wall_limit_s: float = 60.0):
        self.serial = serial
        self.monitor = monitor
        self.quiet_s = quiet_s
        self.wall_limit_s = wall_limit_s
        self.chunks: list = []
        self.live = True
        self._quiet_since = None
        self._deadline = None

    def open(self) -> None:
        self._deadline = time.monotonic() + self.wall_limit_s
        self.serial.open()

    def read(self, timeout_s: float = 0.1):
        c = self.serial.read(timeout_s)
        if c is not None:
            self.chunks.append(c)
            self._quiet_since = None
            return c
        if self.monitor.finished.is_set() or time.monotonic() > self._deadline:
            self._quiet_since = self._quiet_since or time.monotonic()
            if time.monotonic() - self._quiet_since > self.quiet_s:
                raise EOFError("monitor finished")
        return None

    def close(self) -> None:
        self.serial.close()

    def stats(self) -> dict[str, int]:
        return self.serial.stats()


class Recorder:
    """A sink that keeps the events (the JSONL sink's interface)."""

    def __init__(self) -> None:
        self.events: list = []
        self.closed = False

    def emit(self, event) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True

    def of(self, kind: str) -> list:
        return [e for e in self.events if e.to_json()["type"] == kind]


def record_feeds(pipeline) -> list:
    """Record `(index, samples)` of every chunk the pipeline's processor is fed."""
    fed: list = []
    proc = pipeline.processor
    inner = proc.feed

    def feed(chunk, dropped_before=False):
        fed.append((int(chunk.index), np.asarray(chunk.samples)))
        return inner(chunk, dropped_before=dropped_before)

    proc.feed = feed
    return fed


def bad_mask(n_total: int, fed: list, origin: int = 0) -> np.ndarray:
    """True at every index in [0, n_total) that never reached the processor or reached it
    non-finite (relative to the stream's first index `origin`)."""
    bad = np.ones(n_total, dtype=bool)
    for index, samples in fed:
        a = index - origin
        s = np.asarray(samples, dtype=np.float64)
        ok = np.isfinite(s).all(axis=1)
        lo, hi = max(a, 0), min(a + len(s), n_total)
        if hi > lo:
            bad[lo:hi] = ~ok[lo - a:hi - a]
    return bad


def window_overlaps(bad: np.ndarray, start: int, end: int) -> bool:
    lo, hi = max(start, 0), min(end, bad.size)
    return bool(hi > lo and bad[lo:hi].any())
