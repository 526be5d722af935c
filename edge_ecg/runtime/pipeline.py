"""The stream pipeline: source -> ring buffer -> beat tracker -> quality -> predictor -> sinks.

`StreamProcessor` is the synchronous core (a chunk in, events out) that tests drive directly;
`Pipeline` runs it live: a reader thread acquires chunks into a bounded queue (a live device's
chunks are dropped and counted when the consumer falls behind, so inference never blocks
acquisition), the calling thread processes them, SIGINT/SIGTERM stop it cleanly with the sinks
flushed, and a summary closes the run. `run_offline` is the training chain on a whole signal
(`make_windows` + the same backend), for parity with the stream.

Clocks: the source's absolute sample index is the clock of every event. Inside, the model clock
counts samples at the bundle's rate from the first sample of the stream; windows start at
multiples of the hop on it, as `make_windows` cuts them from a record.
"""

from __future__ import annotations

import math
import queue
import signal as signal_mod
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from edge_ecg.errors import SourceError
from edge_ecg.runtime.beat_classes import BeatClasses, window_ectopy
from edge_ecg.runtime.beat_tracker import BeatTracker, delineation_columns
from edge_ecg.runtime.events import BeatEvent, GapEvent, PredictionEvent, StatusEvent, WithheldEvent
from edge_ecg.runtime.predictor import Predictor, split_rows
from edge_ecg.runtime.quality import QualityConfig, flat_block_len, judge_window, noise_ratio
from edge_ecg.runtime.recent import DEFAULT_CAPACITY, RecentValues
from edge_ecg.runtime.ring_buffer import FLAG_BREAK, FLAG_GAP, RingBuffer
from edge_ecg.signal.chunk import Chunk
from edge_ecg.signal.contract import SignalContract
from edge_ecg.signal.intervals import window_intervals
from edge_ecg.signal.leads import canonical_lead

STAGES = ("read", "buffer", "beats", "features", "inference", "output")
# A window is final once a beat at least this far past its end is decided: later beats can
# only lie after that one (the detector's refractory period minus its R search window,
# edge_ecg.signal.qrs), so the window's beats are exactly those the offline pass finds.
SETTLE_MARGIN_S = 0.2
# ... or once the detector is this far past the end without such a beat (asystole, lead off):
# a prediction is never held back longer. Longer than the search-back horizon at 60 bpm.
SETTLE_MAX_S = 2.5
HISTORY_S = 8.0          # ring buffers hold the window plus this much
# A beat whose R lies in a gap farther than this from any measured sample has no measured QRS
# at all (half the 120-ms upper limit of a normal QRS): the detector found it on the fill, and
# it is dropped (counted in `Summary.beats_in_gaps`), never reported or given to the model.
BEAT_GAP_S = 0.06
_FORMAT_BITS = (16, 24, 32)   # ADC sample widths (firmware_bridge int16/int24, then int32)


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


def _burden_line(b: dict) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in b["counts"].items())
    burden = ", ".join(f"{k} {v:.1%}" for k, v in b["burden"].items() if v is not None)
    return (f"beat classes: {counts} ({b['unclassified']} unclassified); ectopy burden "
            f"{burden or 'n/a'}")


@dataclass
class Summary:
    samples: int = 0
    seconds: float = 0.0
    beats: int = 0
    predictions: int = 0
    withheld: int = 0
    withheld_reasons: dict = field(default_factory=dict)
    # predictions made on a degraded window (issue 17): any filled sample or any masked lead;
    # `degraded_kinds` splits them ("filled", "leads_masked"; a window may count in both)
    degraded_predictions: int = 0
    degraded_kinds: dict = field(default_factory=dict)
    beats_in_gaps: int = 0      # beats the detector found on a gap's fill, dropped
    # with a `beat` task: beats per AAMI class, the unclassified, ectopy burden (share of the
    # classified beats per ectopic class); None without one
    beat_classes: dict | None = None
    gaps: int = 0
    gap_samples: int = 0
    invalid_samples: int = 0
    late_samples: int = 0
    overflow_samples: int = 0
    dropped_chunks: int = 0
    dropped_samples: int = 0
    crc_errors: int = 0
    source: dict = field(default_factory=dict)
    latency_ms_p50: float = float("nan")
    latency_ms_p99: float = float("nan")
    inference_ms_p50: float = float("nan")
    inference_ms_p99: float = float("nan")
    wall_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        return [
            f"samples {self.samples} ({self.seconds:.1f} s of signal in {self.wall_s:.1f} s)",
            f"beats {self.beats}, predictions {self.predictions} ({self.degraded_predictions} "
            f"on degraded windows {self.degraded_kinds or ''}".rstrip() + f"), withheld "
            f"{self.withheld} {self.withheld_reasons or ''}".rstrip(),
            *([_burden_line(self.beat_classes)] if self.beat_classes else []),
            (f"gaps {self.gaps} ({self.gap_samples} samples), invalid samples "
             f"{self.invalid_samples}, dropped chunks {self.dropped_chunks}, "
             f"CRC errors {self.crc_errors}"),
            (f"sample-to-prediction latency p50 {self.latency_ms_p50:.2f} ms, p99 "
             f"{self.latency_ms_p99:.2f} ms; inference p50 {self.inference_ms_p50:.2f} ms"),
        ]


class StreamProcessor:
    """Chunks in, events out: the runtime's synchronous core (no threads, no I/O)."""

    def __init__(self, backend, hop_s: float | None = None, quality: QualityConfig | None = None,
                 smooth: int = 1, timer: StageTimer | None = None, keep_outputs: bool = False,
                 rails_mv: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.backend = backend
        self.contract = SignalContract.from_dict(backend.manifest.signal)
        c = self.contract
        self.hop = int(round((hop_s or c.hop_s) * c.fs_hz))
        if self.hop <= 0:
            raise SourceError(f"hop must be positive, got {hop_s}")
        self.quality = quality or QualityConfig()
        self.smooth = smooth
        self.timer = timer or StageTimer()
        self.keep_outputs = keep_outputs
        self.rails_mv = rails_mv             # given: fixed; None: derived from the counts
        self._auto_rails = rails_mv is None
        self._count_lo, self._count_hi = 0, 0
        self._rails_key: tuple | None = None
        self.outputs: list[tuple[int, dict[str, np.ndarray]]] = []   # (model start, raw row)
        # every beat, model clock (tests, reports): kept only with keep_outputs, as outputs
        self.beats_model: list[int] = []
        self._started = False
        self.summary = Summary()
        self._last_pred_end: int | None = None
        self._end_gap_samples = 0

    # --- setup on the first chunk --------------------------------------------------------
    def _start(self, chunk: Chunk) -> None:
        c = self.contract
        self.fs_in = float(chunk.fs_hz)
        self.leads = tuple(chunk.leads)
        # the standard names (MLII -> II) in what predictions report: a recording replays
        # with the names its writer normalised, and a consumer matches one vocabulary
        self.lead_names = tuple(canonical_lead(n) or n for n in self.leads)
        self.origin = int(chunk.index)
        n_in = int(np.ceil((c.window_s + HISTORY_S) * self.fs_in)) + 4 * chunk.n_samples
        n_m = int(np.ceil((c.window_s + HISTORY_S) * c.fs_hz)) + 4 * int(
            np.ceil(chunk.n_samples * c.fs_hz / self.fs_in))
        self.raw = RingBuffer(n_in, len(self.leads), start_index=0, fill="linear")
        self.filt = RingBuffer(n_m, len(self.leads), start_index=0)
        self.power = RingBuffer(n_m, 2, start_index=0)
        self.tracker = BeatTracker(c, self.fs_in, len(self.leads),
                                   delineation_columns(self.lead_names))
        self._block_in = flat_block_len(self.fs_in, self.quality)   # lead-off context
        self.predictor = Predictor(self.backend, c, self.leads, smooth=self.smooth)
        beat_task = next((t for t in self.backend.manifest.tasks if t["kind"] == "beat"), None)
        # with a per-beat task, beat events wait for their class (beat_classes.py)
        self.beat_classes = None if beat_task is None else BeatClasses(
            beat_task.get("labels", []), c.beat_pre, c.beat_len - c.beat_pre, c.fs_hz,
            c.max_beats, c.window_len)
        self._beat_task = beat_task
        self._beats = np.zeros(0, dtype=np.int64)     # recent beats, model clock
        self._beat_delay: dict[int, float] = {}       # detection delay of beats not delineated
        self._waves: list = []                         # recent delineated beats, model clock
        self._beats_sorted = True
        self._gap_beats: set[int] = set()             # beats dropped as found on a gap's fill
        self._gap_reach = max(int(math.ceil(BEAT_GAP_S * self.fs_in)), 1)
        self.next_end = c.window_len                   # end of the next window, model clock
        self._started = True

    # --- clocks --------------------------------------------------------------------------
    def to_source(self, m: float) -> float:
        """Source-clock position (relative to the stream origin) of model-clock sample `m`."""
        return m * self.fs_in / self.contract.fs_hz

    def _src_index(self, m: float) -> int:
        return self.origin + int(round(self.to_source(m)))

    def _time(self, index: int) -> float:
        return index / self.fs_in

    # --- processing ----------------------------------------------------------------------
    def feed(self, chunk: Chunk, dropped_before: bool = False) -> list:
        """Process one chunk; returns the events it produced, in order."""
        if not self._started:
            self._start(chunk)
        if tuple(chunk.leads) != self.leads or float(chunk.fs_hz) != self.fs_in:
            raise SourceError(f"the source changed leads or rate mid-stream ({chunk.leads}, "
                              f"{chunk.fs_hz} Hz after {self.leads}, {self.fs_in} Hz)")
        events: list = []
        t = self.timer
        with t.time("buffer"):
            if self._auto_rails:
                self._update_rails(chunk)
            x = chunk.to_mv()
            late0 = self.raw.late_samples
            gap_start, gap_len = self.raw.write(chunk.index - self.origin, x,
                                                gap_flags=FLAG_BREAK if chunk.discontinuity else 0)
            if gap_len:
                idx = self.origin + gap_start
                events.append(GapEvent(index=idx, time_s=self._time(idx), length=gap_len,
                                       cause="dropped" if dropped_before else (
                                           "reset" if chunk.discontinuity else "sequence")))
                self.summary.gaps += 1
            _, xn, _ = self.raw.read_new()
            self.summary.samples += chunk.n_samples - (self.raw.late_samples - late0)
        with t.time("beats"):
            events.extend(self._track(self.tracker.push(xn)))
        events.extend(self._windows(final=False))
        return events

    def _update_rails(self, chunk: Chunk) -> None:
        """The ADC rails in mV, from the integer counts' sample format and the chunk's
        gain/baseline (a `Chunk` carries int32 counts whatever the wire format).

        The format is the narrowest two's-complement width (16, 24, 32 bit: the formats of
        firmware_bridge.protocol.SampleFormat, then int32) that holds every count seen so far:
        a stream whose counts ever leave the int16 range is int24. The cost of not knowing the
        wire format: an int24 stream that has never left the int16 range has a sample exactly
        at +/-32767/-32768 counts withheld as saturation (conservative, never a prediction
        over a clipped sample). Float samples (a replay of physical values) have no rails.
        """
        smp = chunk.samples
        if smp.size == 0 or smp.dtype.kind not in "iu":
            return
        lo, hi = int(smp.min()), int(smp.max())
        self._count_lo, self._count_hi = min(self._count_lo, lo), max(self._count_hi, hi)
        for bits in _FORMAT_BITS:
            if -(1 << (bits - 1)) <= self._count_lo and self._count_hi <= (1 << (bits - 1)) - 1:
                break
        gain = np.asarray(chunk.gain, dtype=np.float32)
        base = np.asarray(chunk.baseline, dtype=np.float32)
        key = (bits, gain.tobytes(), base.tobytes())
        if key == self._rails_key:
            return
        self._rails_key = key
        # as Chunk.to_mv computes it (float32), so a sample at the rail compares equal
        lo_mv = (np.float32(-(1 << (bits - 1))) - base) / gain
        hi_mv = (np.float32((1 << (bits - 1)) - 1) - base) / gain
        self.rails_mv = (np.minimum(lo_mv, hi_mv), np.maximum(lo_mv, hi_mv))  # gain < 0 swaps

    def _in_gap(self, r: int) -> bool:
        """Whether model-clock beat `r` lies in a gap, farther than `BEAT_GAP_S` from any
        measured sample. A gap is written whole with the chunk after it, so once R's own
        sample is held the gap's extent is known: any chunking decides the same."""
        s = int(round(self.to_source(r)))
        if not (self.raw.start <= s < self.raw.end):
            return False
        k = self._gap_reach
        lo, hi = max(s - k, self.raw.start), min(s + k + 1, self.raw.end)
        _, flags = self.raw.view(lo, hi)
        if not flags[s - lo] & FLAG_GAP:
            return False
        # every sample within k of R filled, and the reach not cut by the buffer's edges
        return lo == s - k and hi == s + k + 1 and bool(np.all(flags & FLAG_GAP))

    def _track(self, out) -> list:
        """Store the tracker's filtered samples and powers; beat events for its beats."""
        events = []
        self.filt.write(out.start, out.y)
        self.power.write(out.start, np.stack([out.hf_power, out.band_power], axis=1))
        if out.beats and self.raw.gap_samples:
            kept = []
            for b in out.beats:
                if self._in_gap(b.index):
                    self._gap_beats.add(b.index)
                    self.summary.beats_in_gaps += 1
                else:
                    kept.append(b)
            out = replace(out, beats=kept)
        if out.beats:
            idx = np.array([b.index for b in out.beats], dtype=np.int64)
            # the detector decides beats in increasing index order (edge_ecg.signal.qrs);
            # checked, as windows look their beats up by bisection
            if self._beats_sorted and (np.any(np.diff(idx) <= 0) or (
                    self._beats.size and idx[0] <= self._beats[-1])):
                self._beats_sorted = False
            self._beats = np.concatenate([self._beats, idx])
            if self.keep_outputs:
                self.beats_model.extend(idx.tolist())
            for b in out.beats:
                self._beat_delay[b.index] = b.delay_ms
            self.summary.beats += len(out.beats)
        # a beat's event goes out once it is delineated (POST_S after R), with its intervals
        for w in out.waves:
            if self._gap_beats and w.r in self._gap_beats:
                self._gap_beats.discard(w.r)
                continue
            si = self._src_index(w.r)
            iv = w.intervals()
            waves = {"pr_ms": iv["pr_ms"], "qrs_ms": iv["qrs_ms"], "qt_ms": iv["qt_ms"],
                     "rr_ms": iv["rr_ms"], "waves_delay_ms": w.delay_ms}
            ev = BeatEvent(index=si, time_s=self._time(si),
                           delay_ms=self._beat_delay.pop(w.r, w.delay_ms), waves=waves)
            if self.beat_classes is None:
                events.append(ev)
            else:
                events.extend(self.beat_classes.on_beat_event(w.r, ev))
            if w.valid:
                self._waves.append(w)
        return events

    def finish(self) -> list:
        """End of stream: flush the resampler (edge-padded, as offline), then every window
        that can still be cut, with the beats decided so far."""
        if not self._started:
            return []
        events = self._track(self.tracker.flush())
        events += self._windows(final=True)
        if self.beat_classes is not None:
            events += self.beat_classes.flush()
        return events

    def end_gap(self, end_index: int, cause: str) -> list:
        """Samples up to source index `end_index` that never arrived after the last chunk
        fed (dropped at the end of a run): reported as one gap event and in `gap_samples`."""
        if not self._started:
            return []
        start = self.origin + self.raw.end
        n = int(end_index) - start
        if n <= 0:
            return []
        self.summary.gaps += 1
        self._end_gap_samples += n
        return [GapEvent(index=start, time_s=self._time(start), length=n, cause=cause)]

    def _settled(self, end: int) -> bool:
        fs = self.contract.fs_hz
        if self._beats.size and self._beats[-1] >= end + SETTLE_MARGIN_S * fs:
            return True
        return self.tracker.detector_index >= end + SETTLE_MAX_S * fs

    def _tail_decided(self, end: int) -> bool:
        """Whether every lead's state at the window's end is known: a lead flat from the
        window's last sample to the newest one may be the start of a lead-off run, so the
        window waits (at most `flat_block_s` of source) until that run is long enough to
        judge or ends. A lead that shows activity there decides at once."""
        s1 = math.ceil(self.to_source(end))
        if self.raw.end >= s1 + self._block_in:
            return True
        tail, flags = self.raw.view(max(s1 - 1, self.raw.start), self.raw.end)
        if tail.shape[0] == 0 or np.any(flags):
            return True          # a gap or a NaN there: the window is withheld for that anyway
        return not bool(np.any(tail.max(axis=0) - tail.min(axis=0) < self.quality.flat_mv))

    def _windows(self, final: bool) -> list:
        c = self.contract
        ready = []
        while self.next_end <= self.tracker.produced and (
                final or (self._settled(self.next_end) and self._tail_decided(self.next_end))):
            ready.append(self.next_end)
            self.next_end += self.hop
        if not ready:
            return []
        events: list = []
        kept = []
        ivs: dict[int, dict] = {}
        pred = self.predictor
        pred.clear_pending()      # rows left by a call that raised half-way are not this batch's
        with self.timer.time("features"):
            keep_from = ready[-1] - c.window_len - int(SETTLE_MAX_S * c.fs_hz)
            b_all = self._beats
            if self._beats_sorted:
                lo_hi = np.searchsorted(b_all, [(e - c.window_len, e) for e in ready]).tolist()
            for i, end in enumerate(ready):
                start = end - c.window_len
                if self._beats_sorted:
                    beats = b_all[lo_hi[i][0]:lo_hi[i][1]] - start
                else:
                    beats = b_all[(b_all >= start) & (b_all < end)] - start
                s0 = math.floor(self.to_source(start))
                s1 = min(math.ceil(self.to_source(end)), self.raw.end)
                b = self._block_in
                c0, c1 = max(s0 - b, self.raw.start), min(s1 + b, self.raw.end)
                # views, no copies: nothing is written to the buffers until this call returns
                ctx, ctx_flags = self.raw.view(c0, c1)          # the window and around it
                raw, flags = ctx[s0 - c0:s1 - c0], ctx_flags[s0 - c0:s1 - c0]
                pw, _ = self.power.view(start, end)
                q = judge_window(raw, flags, self.fs_in, int(beats.size),
                                 noise_ratio(pw[:, 0], pw[:, 1]), self.quality,
                                 self.rails_mv, context=(ctx, ctx_flags, s0 - c0))
                reasons = q.reasons
                si, ss = self._src_index(end), self._src_index(start)
                bc = self.beat_classes
                claimed = bc.claim(beats + start, start, end) if bc is not None else []
                if reasons:
                    if claimed:
                        events.extend(bc.assign(claimed, beats + start, start, end, None,
                                                "window withheld: " + ", ".join(reasons)))
                    events.append(WithheldEvent(index=si, time_s=self._time(si), start=ss,
                                                reasons=reasons,
                                                quality=q.describe(self.lead_names)))
                    self.summary.withheld += 1
                    for r in reasons:
                        self.summary.withheld_reasons[r] = self.summary.withheld_reasons.get(r, 0) + 1
                    self._last_pred_end = None
                    continue
                y, _ = self.filt.view(start, end)
                if q.masked:             # leads off: the model's lead_mask drops them
                    pred.add_leads(y[:, q.used], beats, tuple(
                        ld for ld, u in zip(self.leads, q.used.tolist()) if u))
                else:
                    pred.add(y, beats)                         # straight into the batch
                # window medians over its beats delineated by the window's end (those in its
                # last POST_S are not yet: n_delineated says how many); by decided_at, not
                # arrival, so any chunking gives the same figures
                ivs[len(events)] = window_intervals(
                    [w for w in self._waves if start <= w.r < end and w.decided_at <= end])
                kept.append((start, end, beats, claimed, len(events), q))
                events.append(None)   # placeholder, keeps event order by window
            self._beats = (b_all[np.searchsorted(b_all, keep_from):] if self._beats_sorted
                           else b_all[b_all >= keep_from])
            self._waves = [w for w in self._waves if w.r >= keep_from]
            if self._gap_beats:
                self._gap_beats = {r for r in self._gap_beats if r >= keep_from}
            if self.beat_classes is not None:
                self.beat_classes.prune(keep_from)
        if kept:
            with self.timer.time("inference"):
                out, dt = pred.run_pending()
            with self.timer.time("output"):
                n = len(kept)
                rows = split_rows(out, n) if (pred.smooth > 1 or self.keep_outputs) else None
                # unsmoothed (the default): every row described in one pass over the batch
                described = pred.describe_batch(out, n) if pred.smooth == 1 else None
                bc, bt = self.beat_classes, self._beat_task
                beat_probs = out.get(bt["output"]) if bt is not None else None
                for j, (start, end, beats, claimed, pos, q) in enumerate(kept):
                    nb = int(beats.size)
                    contiguous = self._last_pred_end == end - self.hop
                    self._last_pred_end = end
                    if self.keep_outputs:
                        self.outputs.append((start, rows[j]))
                    if described is None:
                        outputs, experts = pred.describe(pred.smoothed(rows[j], end, contiguous))
                    else:
                        outputs, experts = described[j]
                    si = self._src_index(end)
                    iv = ivs[pos]
                    done = []
                    if bc is not None and beat_probs is not None:
                        # the window's beats in time order, classified; and the due ones' events
                        n_slots = bc.slots(beats + start, start, end).size
                        outputs[bt["name"]] = {
                            **window_ectopy(bc.labels_of(beat_probs[j], n_slots)),
                            **({"trained_on": bt["trained_on"]} if bt.get("trained_on") else {})}
                        done = bc.assign(claimed, beats + start, start, end, beat_probs[j])
                    events[pos] = [*done, PredictionEvent(index=si, time_s=self._time(si),
                                                  start=self._src_index(start), outputs=outputs,
                                                  experts=experts,
                                                  latency_ms=dt * 1000.0 / len(kept), n_beats=nb,
                                                  intervals=iv, quality=q.describe(self.lead_names))]
                    self.summary.predictions += 1
                    if q.degraded:
                        sm = self.summary
                        sm.degraded_predictions += 1
                        for kind, on in (("filled", q.filled), ("leads_masked", q.masked)):
                            if on:
                                sm.degraded_kinds[kind] = sm.degraded_kinds.get(kind, 0) + 1
        flat: list = []
        for e in events:
            if isinstance(e, list):
                flat.extend(e)
            elif e is not None:
                flat.append(e)
        return flat

    def close_summary(self) -> Summary:
        s = self.summary
        if self._started:
            s.seconds = s.samples / self.fs_in
            rs = self.raw.stats()
            s.gap_samples, s.invalid_samples, s.late_samples, s.overflow_samples = (
                rs["gap_samples"], rs["invalid_samples"], rs["late_samples"],
                rs["overflow_samples"])
            s.gap_samples += self._end_gap_samples
            if self.beat_classes is not None:
                s.beat_classes = self.beat_classes.burden()
            lat = self.predictor.latency_s.values() * 1000.0
            if lat.size:
                s.inference_ms_p50, s.inference_ms_p99 = (float(np.percentile(lat, 50)),
                                                          float(np.percentile(lat, 99)))
        return s


_EOF = object()


class Pipeline:
    """A live run: reader thread -> bounded queue -> `StreamProcessor` -> sinks."""

    def __init__(self, source, backend, sinks: list, hop_s: float | None = None, smooth: int = 1,
                 quality: QualityConfig | None = None, queue_chunks: int = 512,
                 status_every_s: float = 0.0, info: dict | None = None) -> None:
        self.source = source
        self.backend = backend
        self.sinks = list(sinks)
        self.timer = StageTimer()
        self.processor = StreamProcessor(backend, hop_s=hop_s, quality=quality, smooth=smooth,
                                         timer=self.timer)
        self.live = bool(getattr(source, "live", True))
        self._queue: queue.Queue = queue.Queue(maxsize=queue_chunks)
        self._stop = threading.Event()
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
    def run(self, max_seconds: float | None = None, handle_signals: bool = True) -> Summary:
        """Stream until the source ends, `max_seconds` of signal (the source's clock from its
        first sample, gaps included), or SIGINT/SIGTERM."""
        old = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal_mod.SIGINT, signal_mod.SIGTERM):
                old[sig] = signal_mod.signal(sig, lambda *_: self.stop())
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
            s.latency_ms_p50 = float(np.percentile(lat, 50))
            s.latency_ms_p99 = float(np.percentile(lat, 99))
        return s


def run_offline(signal: np.ndarray, fs_hz: float, leads, bundle, hop_s: float | None = None,
                batch: int = 16) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The training chain on a whole signal: `make_windows` -> the backend, batched.

    `bundle` is a bundle directory or an open `Backend`. Returns `(starts (N,) model clock,
    outputs {name: (N, ...)})`, for parity with `StreamProcessor(keep_outputs=True)`.
    """
    from edge_ecg.data.windows import make_windows
    from edge_ecg.runtime.backends import Backend, open_backend
    from edge_ecg.signal.contract import stack_inputs

    backend = bundle if isinstance(bundle, Backend) else open_backend(Path(bundle))
    contract = SignalContract.from_dict(backend.manifest.signal)
    starts, items = make_windows(np.asarray(signal), fs_hz, tuple(leads), contract, hop_s=hop_s)
    outs: dict[str, list] = {}
    for i in range(0, len(items), batch):
        o = backend.run(stack_inputs(items[i:i + batch]))
        for k, v in o.items():
            outs.setdefault(k, []).append(np.asarray(v))
    return np.asarray(starts, dtype=np.int64), {k: np.concatenate(v) for k, v in outs.items()}
