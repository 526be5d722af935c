"""Replays: a WFDB record or a synthetic monitor as a stream of `Chunk`s.

A WFDB record replays its ADC counts with gain and baseline (exactly what a device would
send); the synthetic monitor quantises edge_ecg.data.synth's millivolts to integer counts.
Replays run in real time (paced by the wall clock) or as fast as the consumer takes them
(`speed=max`). A replay is not a live device: its chunks may wait for the consumer
(`live = False`), where a live device's chunks are dropped and counted when the consumer falls
behind.

Invalid samples of a record (NaN in millivolts: the format's invalid code, where the recorder
lost the signal; CUDB has them) are not sent: the chunk before a run ends at it and the next
starts after it, so the runtime sees the index jump a live source's lost frames make, and fills,
marks and reports the run as a gap (`GapEvent`) on the record's own sample clock. A record that
begins invalid starts its stream at its first valid sample (the clock is still the record's).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edge_ecg.errors import SourceError
from edge_ecg.signal.chunk import Chunk
from edge_ecg.signal.source import Source

SYNTH_GAIN = 1000.0          # counts per mV: 1 uV resolution, as 24-bit ECG front ends give
REALTIME_CHUNK_S = 0.04      # 25 chunks/s: a typical frame rate of serial ECG devices
MAX_SPEED_CHUNK_S = 16.0     # as fast as possible: big chunks, windows batched 16 at a time (the
                             # per-kernel overhead of a small model is paid once per batch)


def speed_factor(options: dict[str, str], where: str, default: str = "realtime") -> float | None:
    """Wall-clock speed factor from `speed=realtime|max|N`; None = as fast as possible."""
    s = options.get("speed", default)
    if s == "max":
        return None
    if s == "realtime":
        return 1.0
    try:
        v = float(s)
    except ValueError:
        raise SourceError(f"{where}: speed={s!r} must be realtime, max or a number") from None
    if not np.isfinite(v) or v <= 0:
        raise SourceError(f"{where}: speed must be positive, got {s!r}")
    return v


def pace(due: float, timeout_s: float) -> bool:
    """Wait until `due` (time.perf_counter) for a replay in (scaled) real time: True once it
    has come; False after waiting `timeout_s` when it is further off (the caller's read()
    returns None, as a device that sent nothing in time)."""
    wait = due - time.perf_counter()
    if wait > timeout_s:
        time.sleep(timeout_s)
        return False
    if wait > 0:
        time.sleep(wait)
    return True

class ReplaySource(Source):
    """Integer ADC samples replayed as chunks, paced at `speed` x real time (None: max)."""

    def __init__(self, adc: np.ndarray, gain: np.ndarray, baseline: np.ndarray, fs_hz: float,
                 leads: tuple[str, ...], speed: float | None = 1.0, chunk_s: float | None = None,
                 name: str = "replay", invalid: np.ndarray | None = None) -> None:
        adc = np.asarray(adc)
        if adc.ndim != 2 or adc.shape[1] != len(leads) or adc.shape[0] == 0:
            raise SourceError(f"{name}: samples must be (T, {len(leads)}) with T > 0, got {adc.shape}")
        self.adc = adc
        # (start, end) runs of invalid samples, never sent (see the module docstring)
        if invalid is not None and np.shape(invalid) != (adc.shape[0],):
            raise SourceError(f"{name}: invalid mask must be ({adc.shape[0]},), "
                              f"got {np.shape(invalid)}")
        self.invalid_runs = _runs(invalid)
        self.invalid_samples = sum(b - a for a, b in self.invalid_runs)
        self.gain = np.asarray(gain, dtype=np.float32)
        self.baseline = np.asarray(baseline, dtype=np.float32)
        self.fs_hz = float(fs_hz)
        self.leads = tuple(leads)
        self.speed = speed
        chunk_s = chunk_s or (REALTIME_CHUNK_S if speed is not None else MAX_SPEED_CHUNK_S)
        self.chunk = max(1, int(round(chunk_s * self.fs_hz)))
        self.name = name
        self.live = speed is not None      # paced replays behave as devices; max speed waits
        self._pos = 0
        self._t0 = 0.0                     # wall time of open()
        self._open = False
        self.chunks_sent = 0
        self.truth: Any = None             # synth: the generator's record (segments, labels)

    @property
    def n_samples(self) -> int:
        return int(self.adc.shape[0])

    def open(self) -> None:
        self._open = True
        self._pos = 0
        self._t0 = time.perf_counter()

    def read(self, timeout_s: float = 0.1) -> Chunk | None:
        if not self._open:
            raise SourceError(f"{self.name}: read() before open()")
        self._pos, stop = self._valid_span(self._pos)
        if self._pos >= self.n_samples:
            raise EOFError(f"{self.name}: end of replay")
        end = min(self._pos + self.chunk, stop)
        # the chunk is "sent" when its last sample has been acquired in (scaled) real time
        if self.speed is not None and not pace(self._t0 + end / (self.fs_hz * self.speed),
                                               timeout_s):
            return None
        c = Chunk(index=self._pos, seq=self.chunks_sent, device_time_us=int(self._pos * 1e6 / self.fs_hz),
                  samples=self.adc[self._pos:end], gain=self.gain, baseline=self.baseline,
                  leads=self.leads, fs_hz=self.fs_hz)
        self._pos = end
        self.chunks_sent += 1
        return c

    def _valid_span(self, pos: int) -> tuple[int, int]:
        """`(start, stop)`: `pos` moved past an invalid run it lies in, and the index where the
        next invalid run (or the record) ends the valid span from there."""
        for a, b in self.invalid_runs:
            if pos < a:
                return pos, a
            if pos < b:
                pos = b
        return pos, self.n_samples

    def close(self) -> None:
        self._open = False

    def stats(self) -> dict[str, int]:
        return {"chunks": self.chunks_sent, "samples": int(self._pos),
                "invalid_samples": self.invalid_samples}


def _runs(invalid: np.ndarray | None) -> list[tuple[int, int]]:
    if invalid is None:
        return []
    m = np.asarray(invalid, dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], m.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def record_source(path: str, options: dict[str, str] | None = None) -> ReplaySource:
    """A WFDB record replayed from its ADC counts (`record:PATH?speed=realtime|max|N
    &leads=II,V1`): `leads` names the standard lead of each channel, in order (needed where
    two or more channels name none, e.g. SVDB's ECG1, ECG2; a lone unnamed channel is II)."""
    # the plain formats without wfdb (its import is a quarter of a second of start-up, and
    # pandas), counts only (a replay sends counts); FLAC and the rest through wfdb
    # (edge_ecg.data.wfdb_reader)
    from edge_ecg.data.wfdb_reader import read_adc
    from edge_ecg.errors import SignalError
    from edge_ecg.signal.leads import assign_leads, parse_lead_assignment

    options = options or {}
    where = f"record:{path}"
    rec = read_adc(path)
    try:
        leads = assign_leads(rec.leads, parse_lead_assignment(options.get("leads"), where),
                             where=where)
    except SignalError as exc:
        raise SourceError(str(exc)) from None
    chunk_s = float(options["chunk_s"]) if "chunk_s" in options else None
    return ReplaySource(rec.adc, rec.gain, rec.baseline, rec.fs_hz, leads,
                        speed=speed_factor(options, where), chunk_s=chunk_s, name=where,
                        invalid=rec.invalid)


def quantise(signal_mv: np.ndarray, gain: float = SYNTH_GAIN) -> np.ndarray:
    """mV to int32 counts at `gain` counts/mV, baseline 0 (what an ADC would report)."""
    return np.round(np.asarray(signal_mv, dtype=np.float64) * gain).astype(np.int32)


def synth_source(condition: str, options: dict[str, str] | None = None):
    """A synthetic monitor (`synth:CONDITION?seconds=N&seed=N&speed=..`); CONDITION may be a
    schedule `sinus_rhythm+atrial_fibrillation` (equal parts of `seconds`)."""
    from edge_ecg.data import synth

    options = options or {}
    where = f"synth:{condition}"
    try:
        seconds = float(options.get("seconds", "60"))
        seed = int(options.get("seed", "0"))
        fs_hz = float(options.get("fs", "500"))
    except ValueError as exc:
        raise SourceError(f"{where}: seconds, seed and fs must be numbers ({exc})") from None
    parts = condition.split("+")
    unknown = [c for c in parts if c not in synth.CONDITIONS]
    if unknown:
        raise SourceError(f"{where}: unknown condition(s) {unknown}; known: "
                          + ", ".join(synth.CONDITIONS))
    if len(parts) == 1:
        rec = synth.synthesize(parts[0], seconds=seconds, fs_hz=fs_hz, seed=seed)
    else:
        rec = synth.synthesize_schedule([(c, seconds / len(parts)) for c in parts],
                                        fs_hz=fs_hz, seed=seed)
    chunk_s = float(options["chunk_s"]) if "chunk_s" in options else None
    src = ReplaySource(quantise(rec.signal), np.full(len(rec.leads), SYNTH_GAIN, np.float32),
                       np.zeros(len(rec.leads), np.float32), rec.fs_hz, tuple(rec.leads),
                       speed=speed_factor(options, where), chunk_s=chunk_s, name=where)
    src.truth = rec   # the generator's record: segments and labels, for reports
    return src


def replay_events(src: Source, proc):
    """Every chunk of an opened-and-closed-here source through a stream processor (anything
    with `feed(chunk)` and `finish()`), as fast as the source gives them: yields the events of
    each chunk, then those of the end of the stream. The loop the offline tools share."""
    src.open()
    try:
        while True:
            try:
                chunk = src.read()
            except EOFError:
                break
            if chunk is not None:
                yield proc.feed(chunk)
        yield proc.finish()
    finally:
        src.close()


__all__ = ["MAX_SPEED_CHUNK_S", "REALTIME_CHUNK_S", "SYNTH_GAIN", "ReplaySource", "pace",
           "quantise", "record_source", "replay_events", "speed_factor", "synth_source"]
