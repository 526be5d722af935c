"""`StreamProcessor`: chunks in, events out, the runtime's synchronous core (no threads, no
I/O): ring buffer -> beat tracker -> quality -> predictor. Tests drive it directly; `Pipeline`
(edge_ecg.runtime.pipeline) runs it live, the ward (edge_ecg.ward) one per bed.

Clocks: the source's absolute sample index is the clock of every event. Inside, the model clock
counts samples at the bundle's rate from the first sample of the stream; windows start at
multiples of the hop on it, as `make_windows` cuts them from a record.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from edge_ecg.errors import SourceError
from edge_ecg.runtime.adc_rails import AdcRails
from edge_ecg.runtime.alarms import StreamAlarms
from edge_ecg.runtime.beat_stack import FEATURES as STACK_FEATURES
from edge_ecg.runtime.beat_stack import stack_features
from edge_ecg.runtime.beat_classes import BeatClasses, window_ectopy
from edge_ecg.runtime.beat_tracker import BeatTracker, delineation_columns
from edge_ecg.runtime.events import (BeatEvent, GapEvent, PredictionEvent, StatusEvent,
                                     WithheldEvent)
from edge_ecg.runtime.patient_adaptation import PatientAdaptation
from edge_ecg.runtime.run_continuation import RunContinuation
from edge_ecg.runtime.svt_episode import SvtEpisode
from edge_ecg.runtime.predictor import Predictor, split_rows
from edge_ecg.runtime.quality import (HalfBlockExtremes, QualityConfig, flat_block_len,
                                      judge_window, noise_ratio)
from edge_ecg.runtime.recent import percentile
from edge_ecg.runtime.ring_buffer import FLAG_BREAK, FLAG_GAP, RingBuffer
from edge_ecg.runtime.settling import SETTLE_MAX_S, beats_settled, tail_decided
from edge_ecg.runtime.stage_timer import StageTimer
from edge_ecg.runtime.summary import Summary
from edge_ecg.signal.chunk import Chunk
from edge_ecg.signal.contract import SignalContract
from edge_ecg.signal.intervals import window_intervals
from edge_ecg.signal.leads import canonical_lead
from edge_ecg.signal.patient_context import N_RAW, PatientContext

HISTORY_S = 8.0          # ring buffers hold the window plus this much
# A beat whose R lies in a gap farther than this from any measured sample has no measured QRS
# at all (half the 120-ms upper limit of a normal QRS): the detector found it on the fill, and
# it is dropped (counted in `Summary.beats_in_gaps`), never reported or given to the model.
BEAT_GAP_S = 0.06


class StreamProcessor:
    """Chunks in, events out: the runtime's synchronous core (no threads, no I/O)."""

    def __init__(self, backend, hop_s: float | None = None, quality: QualityConfig | None = None,
                 smooth: int = 1, timer: StageTimer | None = None, keep_outputs: bool = False,
                 rails_mv: tuple[np.ndarray, np.ndarray] | None = None,
                 alarm_limits=None) -> None:
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
        self.rails_mv = rails_mv             # given: fixed; None: guessed from the counts
        self._adc_rails = AdcRails() if rails_mv is None else None
        self.outputs: list[tuple[int, dict[str, np.ndarray]]] = []   # (model start, raw row)
        # every beat, model clock (tests, reports): kept only with keep_outputs, as outputs
        self.beats_model: list[int] = []
        self._started = False
        self.summary = Summary()
        self._last_pred_end: int | None = None
        self._end_gap_samples = 0
        # the monitor's alarms from the events and one lead's samples (runtime/alarms.py);
        # (`alarm_limits`: an `AlarmLimits`, None its defaults); None turns them off
        self.alarms: StreamAlarms | None = StreamAlarms(alarm_limits)

    # --- setup on the first chunk --------------------------------------------------------
    def _start(self, chunk: Chunk) -> None:
        c = self.contract
        self.fs_in = float(chunk.fs_hz)
        self.leads = tuple(chunk.leads)
        # the standard names (MLII -> II) in what predictions report: a recording replays
        # with the names its writer normalised, and a consumer matches one vocabulary
        self.lead_names = tuple(canonical_lead(n) or n for n in self.leads)
        self._maps_lead = np.array([canonical_lead(n) is not None for n in self.leads])
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
        # the raw samples' half-block extremes, kept as they arrive: what judge_window
        # reads a window's verdict from without copying its samples (quality.py)
        self._raw_halves = HalfBlockExtremes(self._block_in, len(self.leads), n_in)
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
        # the patient's context (running RR, dominant-beat templates), for a bundle whose
        # model reads it: every beat observed once, in order, when its samples are whole
        self.context = (PatientContext(c.fs_hz, len(self.leads), c.beat_pre,
                                       c.beat_len - c.beat_pre)
                        if "beat_ctx" in self.backend.manifest.inputs else None)
        self._ctx_rows: dict[int, np.ndarray] = {}      # model-clock R -> its context row
        self._ctx_last = -1                            # the last beat observed, model clock
        # the patient's own beats veto V calls after a learning period, where the bundle's
        # beat stack asks for it (patient_adaptation.py)
        stack = getattr(self.backend, "stack", None)
        cfg = getattr(stack, "adaptation", None)
        self.adaptation = (PatientAdaptation(cfg, c.fs_hz, len(STACK_FEATURES),
                                             beat_task.get("labels", []))
                           if cfg is not None and self.context is not None
                           and beat_task is not None else None)
        # a called ventricular run goes on while its beats keep their shape
        # (run_continuation.py), where the beat stack asks for it
        cont = getattr(stack, "continuation", None)
        self.continuation = (RunContinuation(cont, c.fs_hz, STACK_FEATURES,
                                             beat_task.get("labels", []))
                             if cont is not None and self.context is not None
                             and beat_task is not None else None)
        # a supraventricular tachycardia that starts abruptly is called S while it lasts
        # (svt_episode.py), where the beat stack asks for it
        svt = getattr(stack, "svt", None)
        self.svt = (SvtEpisode(svt, c.fs_hz, beat_task.get("labels", []))
                    if svt is not None and self.context is not None
                    and beat_task is not None else None)
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
        # The raw buffer is sized from the first chunk. A later chunk larger than a quarter
        # of it (a replay's run after a gap, a burst after a stall) goes in as parts: written
        # whole, its start would be overwritten before the detector read it, and seconds of
        # signal would come back as an overflow gap (measured: 4 s of beats lost on a CinC
        # record fed a 30-s run after a 20-ms gap). Parts give the same events as any chunking.
        part = max(self.raw.capacity // 4, 1)
        if chunk.n_samples > part:
            events: list = []
            for a in range(0, chunk.n_samples, part):
                events += self.feed(replace(chunk, index=chunk.index + a,
                                            samples=chunk.samples[a:a + part],
                                            discontinuity=chunk.discontinuity and a == 0),
                                    dropped_before=dropped_before and a == 0)
            return events
        events = []
        t = self.timer
        with t.time("buffer"):
            if self._adc_rails is not None:
                self.rails_mv = self._adc_rails.update(chunk)
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
            _, xn, xflags = self.raw.read_new()
            self._raw_halves.update(self.raw)
            self.summary.samples += chunk.n_samples - (self.raw.late_samples - late0)
        with t.time("beats"):
            events.extend(self._track(self.tracker.push(xn)))
        events.extend(self._windows(final=False))
        if self.alarms is not None:
            events += self.alarms.feed(events, xn, xflags, origin=self.origin,
                                       fs_hz=self.fs_in, leads=self.lead_names)
        return events

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
        # a beat's event goes out once it is delineated (the delineator's post_s after R),
        # with its intervals
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
        if self.alarms is not None:
            events += self.alarms.feed(events)
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

    def _decided(self, end: int) -> bool:
        """Whether the window ending at model-clock sample `end` is final: its beats settled
        and every lead's state at its end known (edge_ecg.runtime.settling)."""
        return (beats_settled(self._beats, self.tracker.detector_index, end, self.contract.fs_hz)
                and tail_decided(self.raw, math.ceil(self.to_source(end)), self._block_in,
                                 self.quality.flat_mv))

    def _windows(self, final: bool) -> list:
        """Events of every window now final (all that can be cut with `final`): each judged,
        withheld or batched, then the batch run and described in one call."""
        c = self.contract
        ready = []
        while self.next_end <= self.tracker.produced and (
                final or self._decided(self.next_end)):
            ready.append(self.next_end)
            self.next_end += self.hop
        if not ready:
            return []
        self.predictor.clear_pending()   # rows left by a call that raised half-way: not ours
        with self.timer.time("features"):
            events, kept, ivs = self._cut(ready)
            self._prune(ready[-1] - c.window_len - int(SETTLE_MAX_S * c.fs_hz))
        if kept:
            self._predict(kept, ivs, events)
        flat: list = []
        for e in events:
            if isinstance(e, list):
                flat.extend(e)
            elif e is not None:
                flat.append(e)
        return flat

    def _judge(self, start: int, end: int, n_beats: int):
        """The quality verdict (`quality.judge_window`) on the window [start, end), model
        clock, from its raw samples with the lead-off context around it."""
        s0 = math.floor(self.to_source(start))
        s1 = min(math.ceil(self.to_source(end)), self.raw.end)
        b = self._block_in
        c0, c1 = max(s0 - b, self.raw.start), min(s1 + b, self.raw.end)
        # views, no copies: nothing is written to the buffers until `_windows` returns
        ctx, ctx_flags = self.raw.view(c0, c1)          # the window and around it
        raw, flags = ctx[s0 - c0:s1 - c0], ctx_flags[s0 - c0:s1 - c0]
        pw, _ = self.power.view(start, end)
        # (absent from a ward snapshot taken before it was kept: judged from the samples)
        hb = getattr(self, "_raw_halves", None)
        return judge_window(raw, flags, self.fs_in, n_beats, noise_ratio(pw[:, 0], pw[:, 1]),
                            self.quality, self.rails_mv, context=(ctx, ctx_flags, s0 - c0),
                            halves=None if hb is None else hb.extremes(c0, c1))

    def _cut(self, ready: list[int]) -> tuple[list, list, dict[int, dict]]:
        """Each ready window judged: withheld (its event, and its beats' classes refused) or
        added to the predictor's batch. Returns `(events, kept, ivs)`: events with a `None`
        placeholder per kept window, kept windows `(start, end, beats, claimed, pos, q)`,
        interval medians by placeholder position."""
        c = self.contract
        events: list = []
        kept = []
        ivs: dict[int, dict] = {}
        pred = self.predictor
        b_all = self._beats
        if self._beats_sorted:
            lo_hi = np.searchsorted(b_all, [(e - c.window_len, e) for e in ready]).tolist()
        for i, end in enumerate(ready):
            start = end - c.window_len
            if self._beats_sorted:
                beats = b_all[lo_hi[i][0]:lo_hi[i][1]] - start
            else:
                beats = b_all[(b_all >= start) & (b_all < end)] - start
            q = self._judge(start, end, int(beats.size))
            reasons = q.reasons
            if not reasons and q.masked and not (q.used & self._maps_lead).any():
                # the leads left on are channels the model has no lead for (a "-" in a
                # lead assignment): nothing to analyse, as with every lead off
                reasons = ("lead_off",)
            if self.context is not None:
                self._observe_context(end, q)
            si, ss = self._src_index(end), self._src_index(start)
            bc = self.beat_classes
            claimed = bc.claim(beats + start, start, end) if bc is not None else []
            if reasons:
                if claimed and bc is not None:
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
            # what was filled, not measured: the model's validity mask marks it, and the model
            # reads none of it
            seg_filled = self._seg_filled(start) if q.filled else None
            rows = self._context_of(beats + start) if self.context is not None else None
            if q.masked:             # leads off: the model's lead_mask drops them
                pred.add_leads(y[:, q.used], beats, tuple(
                    ld for ld, u in zip(self.leads, q.used.tolist()) if u), seg_filled, rows)
            else:
                pred.add(y, beats, seg_filled, rows)       # straight into the batch
            # window medians over its beats delineated by the window's end (those in its
            # last post_s, DelineationConfig, are not yet: n_delineated says how many); by
            # decided_at, not
            # arrival, so any chunking gives the same figures
            ivs[len(events)] = window_intervals(
                [w for w in self._waves if start <= w.r < end and w.decided_at <= end])
            kept.append((start, end, beats, claimed, len(events), q))
            events.append(None)   # placeholder, keeps event order by window
        return events, kept, ivs

    def _observe_context(self, end: int, q) -> None:
        """Beats whose samples are whole by `end` (model clock) and not yet observed, into
        the patient context, in order; a change of the leads analysed starts learning again."""
        ctx = self.context
        if ctx is None:
            return
        ctx.set_leads("".join("1" if u else "0" for u in q.used.tolist()))
        post = self.contract.beat_len - self.contract.beat_pre
        b = self._beats
        new = b[(b > self._ctx_last) & (b + post <= end)]
        if not self._beats_sorted:
            new = np.sort(new)
        pre = self.contract.beat_pre
        for r in new.tolist():
            beat = None
            if r - pre >= max(self.filt.start, 0):
                beat = self.filt.view(r - pre, r + post)[0].T
            self._ctx_rows[r] = ctx.observe(r, beat)
            self._ctx_last = r

    def relearn(self) -> None:
        """Forget the patient's beat templates (a monitor's 'relearn' key): the next beats
        are a learning period again."""
        if self._started and self.context is not None:
            self.context.relearn()

    def relearned(self, index: int, fs_hz: float) -> StatusEvent:
        """Relearn before sample `index` (the next one fed) and the `status` event that says
        so: the one form the bedside stream (Pipeline) and the ward's worker emit."""
        self.relearn()
        ctx = self.context if self._started else None
        note = ("no beat yet: nothing to forget" if not self._started else
                "this bundle reads no patient context: nothing to relearn" if ctx is None else
                "beat templates forgotten; the next beats are learned as the patient's own "
                "again")
        return StatusEvent(index=int(index), time_s=int(index) / fs_hz, state="relearn",
                           info={"learning_beats": int(ctx.learn_left) if ctx is not None else 0,
                                 "note": note})

    def _context_of(self, beats: np.ndarray) -> np.ndarray:
        """Context rows `(len(beats), N_RAW)` of a window's beats (model clock); zero for a
        beat not observed (its samples not whole by the window's end)."""
        out = np.zeros((beats.size, N_RAW), np.float32)
        for i, r in enumerate(beats.tolist()):
            row = self._ctx_rows.get(r)
            if row is not None:
                out[i] = row
        return out

    def _seg_filled(self, start: int) -> np.ndarray:
        """Per validity segment of the window from model-clock `start`, whether any source
        sample under it was filled (a gap's fill, a non-finite sample): `(n_valid_seg,)` bool.
        A segment covers the source samples from the floor of its first model sample's source
        position to the ceiling of its end's, so a fill is never missed by rounding."""
        c = self.contract
        ends = start + np.minimum(np.arange(c.n_valid_seg + 1) * c.valid_seg, c.window_len)
        src = ends * (self.fs_in / c.fs_hz)
        lo, hi = np.floor(src[:-1]).astype(np.int64), np.ceil(src[1:]).astype(np.int64)
        s0, s1 = max(int(lo[0]), self.raw.start), min(int(hi[-1]), self.raw.end)
        _, flags = self.raw.view(s0, s1)
        filled_before = np.concatenate([[0], np.cumsum(flags != 0)])
        n = flags.shape[0]
        return filled_before[np.clip(hi - s0, 0, n)] - filled_before[np.clip(lo - s0, 0, n)] > 0

    def _prune(self, keep_from: int) -> None:
        """Forget beats and delineations before model-clock `keep_from` (no later window
        can hold them)."""
        b_all = self._beats
        self._beats = (b_all[np.searchsorted(b_all, keep_from):] if self._beats_sorted
                       else b_all[b_all >= keep_from])
        self._waves = [w for w in self._waves if w.r >= keep_from]
        if self._ctx_rows:
            self._ctx_rows = {r: v for r, v in self._ctx_rows.items() if r >= keep_from}
        if self._gap_beats:
            self._gap_beats = {r for r in self._gap_beats if r >= keep_from}
        if self.beat_classes is not None:
            self.beat_classes.prune(keep_from)

    def _claimed_slots(self, slots: np.ndarray, claimed: list[int], known: np.ndarray,
                       n_probs: int) -> list[tuple[int, int]]:
        """(beat, slot) of the beats this window classifies that have a slot with a known
        context, in order: what the patient adaptation and the run continuation read."""
        n = min(slots.size, n_probs)
        slot_of = {int(r): k for k, r in enumerate(slots[:n].tolist())}
        return [(int(r), k) for r in claimed
                if (k := slot_of.get(int(r))) is not None and known[k]]

    def _adapted(self, adapt: PatientAdaptation, slots: np.ndarray, claimed: list[int],
                 feats: np.ndarray, known: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """One window's per-slot probabilities with the patient's veto: the beats it
        classifies teach the learning period first (in order, each once), then every known
        slot past the learning period is adjusted."""
        # the context exists wherever the adaptation does (made together in _start)
        epoch = self.context.epoch if self.context is not None else 0
        for r, k in self._claimed_slots(slots, claimed, known, probs.shape[0]):
            adapt.observe(epoch, r, feats[k], probs[k])
        n = min(slots.size, probs.shape[0])
        m = known[:n]
        if adapt.coef is None or not m.any():
            return probs
        out = np.array(probs, copy=True)
        out[:n][m] = adapt.adjust(slots[:n][m], feats[:n][m], probs[:n][m])
        return out

    def _sequenced(self, cont: RunContinuation | None, svt: SvtEpisode | None,
                   slots: np.ndarray, claimed: list[int], feats: np.ndarray,
                   known: np.ndarray, probs: np.ndarray
                   ) -> tuple[np.ndarray, dict[int, str], dict[int, str]]:
        """One window's per-slot probabilities with the rules that read the beats in order
        applied (each beat the window classifies, in order, once): runs continued
        (run_continuation.py), then tachycardia episodes (svt_episode.py); and the beats
        each rule changed, with the class they had before it."""
        epoch = self.context.epoch if self.context is not None else 0
        out, moved, svt_moved = probs, {}, {}
        labels = self.beat_classes.labels if self.beat_classes is not None else []
        pre = STACK_FEATURES.index("pre_rr_ms")
        for r, k in self._claimed_slots(slots, claimed, known, probs.shape[0]):
            row = out[k]
            p = cont.apply(epoch, r, feats[k], row) if cont is not None else row
            if p is not row:                         # (apply returns its input unchanged)
                moved[r] = labels[int(np.argmax(row))]
            if svt is not None:
                q = svt.apply(epoch, r, float(feats[k][pre]), p)
                if q is not p:
                    svt_moved[r] = labels[int(np.argmax(p))]
                    p = q
            if p is not row:
                if out is probs:
                    out = np.array(probs, copy=True)
                out[k] = p
        return out, moved, svt_moved

    def _predict(self, kept: list, ivs: dict[int, dict], events: list) -> None:
        """Run the batch of `kept` windows and put each one's prediction (after its beats'
        classes, with a `beat` task) in its placeholder in `events`."""
        pred = self.predictor
        adapt = getattr(self, "adaptation", None)     # (a snapshot from before it: none)
        cont = getattr(self, "continuation", None)
        svt = getattr(self, "svt", None)               # (a snapshot from before it: none)
        if adapt is not None or cont is not None or svt is not None:
            # the stack's features of every slot, as the stack read them (the batch is
            # cleared by the run)
            arrs = pred.pending_inputs()
            feats = stack_features(arrs["beat_rr"], arrs["beat_ctx"])
            known = arrs["beat_ctx"][..., 0] > 0
        with self.timer.time("inference"):
            out, dt = pred.run_pending()
        with self.timer.time("output"):
            n = len(kept)
            rows = split_rows(out, n) if (pred.smooth > 1 or self.keep_outputs) else []
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
                if bc is not None and bt is not None and beat_probs is not None:
                    # the window's beats in time order, classified; and the due ones' events
                    slots = bc.slots(beats + start, start, end)
                    probs = beat_probs[j]
                    if adapt is not None:
                        probs = self._adapted(adapt, slots, claimed, feats[j], known[j], probs)
                    moved = svt_moved = None
                    if cont is not None or svt is not None:
                        probs, moved, svt_moved = self._sequenced(
                            cont, svt, slots, claimed, feats[j], known[j], probs)
                    outputs[bt["name"]] = {
                        **window_ectopy(bc.labels_of(probs, slots.size)),
                        **({"trained_on": bt["trained_on"]} if bt.get("trained_on") else {})}
                    done = bc.assign(claimed, beats + start, start, end, probs,
                                     continued=moved, svt=svt_moved)
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
                s.inference_ms_p50, s.inference_ms_p99 = percentile(lat, 50), percentile(lat, 99)
        return s


__all__ = ["BEAT_GAP_S", "HISTORY_S", "StreamProcessor"]
