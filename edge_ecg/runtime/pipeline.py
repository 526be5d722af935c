"""The live run: source -> reader thread -> bounded queue -> `StreamProcessor` -> sinks.

`Pipeline` runs the synchronous core live: a reader thread acquires chunks into a bounded queue
(a live device's chunks are dropped and counted when the consumer falls behind, so inference
never blocks acquisition), the calling thread processes them, SIGINT/SIGTERM stop it cleanly
with the sinks flushed, and a summary closes the run.

The pieces live one concept per module: `stream_processor` (the synchronous core, chunks in,
events out), `stage_timer`, `summary`, `settling` (when a window is final), `adc_rails`, and
`offline` (`run_offline`, the training chain on a whole signal). Each is imported from its own
module; this one exports `Pipeline` only.
"""

from __future__ import annotations

import logging
import queue
import signal as signal_mod
import threading
import time
from collections import deque
from dataclasses import replace

import numpy as np

from edge_ecg.runtime.events import PredictionEvent, StatusEvent
from edge_ecg.runtime.quality import QualityConfig
from edge_ecg.runtime.recent import RecentValues, percentile
from edge_ecg.runtime.stage_timer import StageTimer
from edge_ecg.runtime.stream_processor import StreamProcessor
from edge_ecg.runtime.summary import Summary
from edge_ecg.signal import filters

__all__ = ["Pipeline"]

log = logging.getLogger(__name__)

_EOF = object()


class Pipeline:
    """A live run: reader thread -> bounded queue -> `StreamProcessor` -> sinks."""

    def __init__(self, source, backend, sinks: list, hop_s: float | None = None, smooth: int = 1,
                 quality: QualityConfig | None = None, queue_chunks: int = 512,
                 status_every_s: float = 0.0, info: dict | None = None,
                 alarm_limits=None) -> None:
        self.source = source
        self.backend = backend
        self.sinks = list(sinks)
        self.timer = StageTimer()
        self.processor = StreamProcessor(backend, hop_s=hop_s, quality=quality, smooth=smooth,
                                         timer=self.timer, alarm_limits=alarm_limits)
        self.live = bool(getattr(source, "live", True))
        self._queue: queue.Queue = queue.Queue(maxsize=queue_chunks)
        self._stop = threading.Event()
        self._relearn = threading.Event()      # set by `relearn()` (SIGUSR1), any thread
        self._reader: threading.Thread | None = None
        self._reader_error: BaseException | None = None
        self.dropped_chunks = 0
        self.dropped_samples = 0
        # (index, end) of chunks dropped and not yet reported; appended by the reader thread,
        # popped by the consumer (deque append/popleft are thread-safe)
        self._dropped: deque[tuple[int, int]] = deque()
        self.latency_s = RecentValues()        # sample-to-prediction, recent predictions
        self.status_every_s = status_every_s
        self.info = dict(info or {})
        # which sosfilt kernel filters (signal.filters): "compiled", or the "public" fallback
        # (~30 us a call slower, +76 MB): a scipy that lost the compiled kernel shows here
        self.info.setdefault("filter_kernel", filters.KERNEL)
        self.info.setdefault("filter_kernel_note", filters.KERNEL_NOTE)
        self.summary: Summary | None = None
        # sinks that also store the raw chunks (a `recording.Recorder`), fed in this thread
        self._chunk_sinks = [s for s in self.sinks if hasattr(s, "write_chunk")]
        # a source with events of its own (an `edf:` replay's annotations)
        self._source_events = getattr(source, "take_events", None)

    def stage_times(self) -> dict[str, np.ndarray]:
        """Per-stage wall times in seconds (read, buffer, beats, features, inference, output)."""
        return self.timer.times()

    def stop(self) -> None:
        """Ask the run to end (thread-safe; what the signal handlers call)."""
        self._stop.set()

    # --- acquisition ---------------------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    chunk = self.source.read(timeout_s=0.05)
                except EOFError:
                    self._put(_EOF)
                    return
                t1 = time.perf_counter()
                if chunk is None:
                    continue
                self.timer.add("read", t1 - t0)
                self._put((chunk, t1))
        except BaseException as exc:   # reported by the consumer, not lost in the thread
            self._reader_error = exc
            self._put(_EOF)

    def _put(self, item) -> None:
        if item is _EOF or not self.live:
            while not self._stop.is_set():   # a replay waits for the consumer
                try:
                    self._queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:                   # a live device never waits: drop and count
            # the range first: a chunk queued after this drop finds it when it is dequeued
            self._dropped.append((item[0].index, item[0].end))
            self.dropped_chunks += 1
            self.dropped_samples += item[0].n_samples
            if self.dropped_chunks == 1:     # the rest counted in the summary, each a gap
                log.warning("processing fell behind the source: chunks dropped (the first at "
                            "sample %d)", item[0].index)

    # --- output --------------------------------------------------------------------------
    def _emit(self, events: list, arrival: float | None) -> None:
        if not events:
            return
        t0 = time.perf_counter()
        for ev in events:
            for s in self.sinks:
                s.emit(ev)
        t1 = time.perf_counter()
        self.timer.add("output", t1 - t0)
        if arrival is not None:
            n_pred = sum(isinstance(e, PredictionEvent) for e in events)
            for _ in range(n_pred):
                self.latency_s.add(t1 - arrival)

    # --- the run -------------------------------------------------------------------------
    def relearn(self) -> None:
        """A monitor's relearn key: the patient's beat templates are forgotten before the
        next chunk and learned again from the beats that follow (after a lead was moved, or
        when the rhythm changed for good); a `status` event with state "relearn" says when.
        Safe from any thread and from a signal handler (`kill -USR1` on `edge-ecg stream`)."""
        self._relearn.set()

    def run(self, max_seconds: float | None = None, handle_signals: bool = True) -> Summary:
        """Stream until the source ends, `max_seconds` of signal (the source's clock from its
        first sample, gaps included), or SIGINT/SIGTERM; SIGUSR1 relearns (`relearn`)."""
        old = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal_mod.SIGINT, signal_mod.SIGTERM):
                old[sig] = signal_mod.signal(sig, lambda *_: self.stop())
            if hasattr(signal_mod, "SIGUSR1"):        # not on Windows
                old[signal_mod.SIGUSR1] = signal_mod.signal(signal_mod.SIGUSR1,
                                                            lambda *_: self.relearn())
        wall0 = time.perf_counter()
        proc = self.processor
        try:
            self.backend.warmup()
            self.source.open()
            self._reader = threading.Thread(target=self._read_loop, name="edge-ecg-reader",
                                            daemon=True)
            self._reader.start()
            self._emit([StatusEvent(index=0, time_s=0.0, state="start", info=self.info)], None)
            last_status = time.perf_counter()
            while not self._stop.is_set():
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _EOF:
                    break
                chunk, arrival = item
                if max_seconds is not None:
                    # the limit is exact whatever the chunk size: the last chunk is cut short.
                    # Seconds of the stream's clock, gaps included: counting only the samples
                    # that arrived, a lossy link would never reach the limit
                    pos = chunk.index - (proc.origin if proc._started else chunk.index)
                    left = int(round(max_seconds * chunk.fs_hz)) - pos
                    if left <= 0:
                        break
                    if chunk.n_samples > left:
                        chunk = replace(chunk, samples=chunk.samples[:left])
                if not self.live:    # a replay waits in the queue by design: time from here
                    arrival = time.perf_counter()
                # chunks dropped before this one was queued lie before it: the gap it opens
                dropped = False
                while self._dropped and self._dropped[0][1] <= chunk.index:
                    self._dropped.popleft()
                    dropped = True
                for s in self._chunk_sinks:
                    s.write_chunk(chunk)
                if self._relearn.is_set() and proc._started:
                    self._relearn.clear()
                    self._emit([proc.relearned(chunk.index, chunk.fs_hz)], None)
                self._emit(proc.feed(chunk, dropped_before=dropped), arrival)
                if self._source_events is not None:
                    self._emit(self._source_events(chunk.end), None)
                if max_seconds is not None and proc.raw.end >= max_seconds * proc.fs_in:
                    break
                if self.status_every_s and time.perf_counter() - last_status >= self.status_every_s:
                    last_status = time.perf_counter()
                    idx = chunk.end
                    self._emit([StatusEvent(index=idx, time_s=idx / chunk.fs_hz, state="running",
                                            info=self._counters())], None)
            if self._reader_error is None:     # end, limit or SIGINT: the last windows too
                self._emit(proc.finish(), None)
                if self._source_events is not None and proc._started:   # up to the last sample
                    self._emit(self._source_events(proc.origin + proc.raw.end + 1), None)
            if self._dropped and proc._started:  # dropped after the last chunk fed: a gap too
                end = max(e for _, e in self._dropped)
                self._dropped.clear()
                self._emit(proc.end_gap(end, cause="dropped"), None)
        finally:
            self._stop.set()
            if self._reader is not None:
                self._reader.join(timeout=2.0)
            try:
                self.source.close()
            finally:
                for sig, h in old.items():
                    signal_mod.signal(sig, h)
        self.summary = self._summary(time.perf_counter() - wall0)
        idx = proc.raw.end + proc.origin if proc._started else 0
        fs = proc.fs_in if proc._started else 1.0
        self._emit([StatusEvent(index=idx, time_s=idx / fs, state="stop",
                                info=self.summary.to_dict())], None)
        for s in self.sinks:
            s.close()
        if self._reader_error is not None:
            raise self._reader_error
        return self.summary

    def _counters(self) -> dict:
        s = self.processor.summary
        return {"samples": s.samples, "beats": s.beats, "predictions": s.predictions,
                "degraded_predictions": s.degraded_predictions, "withheld": s.withheld,
                "gaps": s.gaps, "dropped_chunks": self.dropped_chunks,
                **{k: v for k, v in self.source.stats().items()}}

    def _summary(self, wall_s: float) -> Summary:
        s = self.processor.close_summary()
        s.dropped_chunks, s.dropped_samples = self.dropped_chunks, self.dropped_samples
        s.source = dict(self.source.stats())
        s.crc_errors = int(s.source.get("crc_errors", 0))
        s.wall_s = wall_s
        lat = self.latency_s.values() * 1000.0
        if lat.size:
            s.latency_ms_p50 = percentile(lat, 50)
            s.latency_ms_p99 = percentile(lat, 99)
        return s
