"""`RhythmHistory`: a recording's rhythm decided over its whole beat history, not one window.

It reads the runtime's own events (beats with their intervals and classes, predictions,
withheld windows, gaps), so `edge-ecg stream`, `edge-ecg evaluate` and the fitting script
(`edge-ecg stack`) compute the same features from the same code:

- the network: the mean and the max over the recording of each rhythm class's window
  probability, from non-overlapping windows (a 1-s-hop stream and a 10-s-hop replay of the same
  record then read the same windows), how many windows, and the share withheld for quality;
- the RR series and the delineated beats' morphology (edge_ecg.signal.rhythm_features).

A `RecordingStack` (rhythm_stack.json in the bundle) turns them into the recording's class
probabilities. On a long stream the history is bounded (`MAX_RR`, `MAX_WINDOWS`): the decision
covers the last ~10 minutes, the whole of a CinC recording (9-61 s).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from edge_ecg.runtime.events import (
    BeatEvent,
    GapEvent,
    PredictionEvent,
    WithheldEvent,
    _clean,
)
from edge_ecg.runtime.recording_stack import (RHYTHM_STACK, RecordingStack, TreeRecordingStack,
                                             load_stack)
from edge_ecg.signal.rhythm_features import (
    MORPH_FEATURES,
    RR_FEATURES,
    morphology_features,
    rr_features,
)

MAX_RR = 1024          # ~10 min at 100 bpm; sample entropy is O(n^2) in it (8 MB at 1024)
MAX_WINDOWS = 60       # non-overlapping 10-s windows: 10 min
TASK = "arrhythmia"


def feature_names(classes) -> tuple[str, ...]:
    """The stack's feature columns for a task with `classes`, in order."""
    net = tuple(f"p_mean_{c}" for c in classes) + tuple(f"p_max_{c}" for c in classes)
    return net + ("log_n_windows", "withheld_frac") + RR_FEATURES + MORPH_FEATURES


@dataclass(frozen=True)
class RhythmEvent:
    """The rhythm of the history so far (source clock `index`): the stack's call and class
    probabilities, with what it rests on."""

    index: int
    time_s: float
    label: str
    probs: dict
    evidence: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return _clean({"type": "rhythm", "index": int(self.index),
                       "time_s": round(self.time_s, 4), "label": self.label,
                       "probs": {k: round(float(v), 4) for k, v in self.probs.items()},
                       "evidence": self.evidence})


class RhythmHistory:
    """Events in (`feed`), recording-level features out (`features`)."""

    def __init__(self, classes, task: str = TASK, beat_labels=("N", "S", "V"),
                 max_rr: int = MAX_RR, max_windows: int = MAX_WINDOWS) -> None:
        self.classes = tuple(classes)
        self.task = task
        self.beat_labels = tuple(beat_labels)
        # beat times and gap starts (s): RR comes from the SORTED beat times, as beat events
        # leave in the order their classes are decided, not always in time order (measured:
        # a 10-s hop emits some beats a window late, and consecutive events gave a 9-s "RR")
        self.beat_t: deque[float] = deque(maxlen=max_rr + 1)
        self.gap_t: deque[float] = deque(maxlen=max_rr)
        self.pr_ms: deque[float] = deque(maxlen=max_rr)
        self.qrs_ms: deque[float] = deque(maxlen=max_rr)
        self.beat_cls: deque[str | None] = deque(maxlen=max_rr)
        self.probs: deque[np.ndarray] = deque(maxlen=max_windows)
        self._next_start: int | None = None    # a window starting here or later is new
        self.n_predictions = 0
        self.n_withheld = 0
        self.last_index = 0
        self.last_time_s = 0.0

    def feed(self, events) -> bool:
        """Take the events in order; True when a new non-overlapping window was taken."""
        took = False
        for e in events:
            if isinstance(e, BeatEvent):
                self.beat_t.append(float(e.time_s))
                w = e.waves or {}
                pr, qrs = w.get("pr_ms"), w.get("qrs_ms")
                self.pr_ms.append(np.nan if pr is None else float(pr))
                self.qrs_ms.append(np.nan if qrs is None else float(qrs))
                # the beat stack's own call: a run the continuation carried on counts as
                # the stack called it (measured: the continued runs' V in these shares
                # cross-validated worse on CinC's training folds, 0.823 -> 0.817), and so
                # does a tachycardia episode's S (the rhythm stack was fitted without it)
                self.beat_cls.append(e.svt_from or e.run_continued_from or e.beat_class)
            elif isinstance(e, GapEvent):
                self.gap_t.append(float(e.time_s))       # no RR across samples never seen
            elif isinstance(e, WithheldEvent):
                self.n_withheld += 1
            elif isinstance(e, PredictionEvent):
                self.n_predictions += 1
                out = e.outputs.get(self.task) or {}
                probs = out.get("probs")
                if probs and (self._next_start is None or e.start >= self._next_start):
                    self.probs.append(np.array([float(probs.get(c, 0.0)) for c in self.classes]))
                    self._next_start = int(e.index)
                    took = True
            else:
                continue
            self.last_index, self.last_time_s = int(e.index), float(e.time_s)
        return took

    def rr_ms(self) -> np.ndarray:
        """RR intervals (ms) of the sorted beat times, none spanning a gap's start."""
        t = np.sort(np.fromiter(self.beat_t, float))   # np.unique's numbers (times are
        if t.size > 1:                                   # finite), without its first call's
            t = t[np.concatenate(([True], t[1:] != t[:-1]))]   # import of numpy.ma (12 ms)
        if t.size < 2:
            return np.zeros(0)
        keep = np.ones(t.size - 1, dtype=bool)
        if self.gap_t:
            # interval i spans (t[i], t[i+1]); a gap starting inside it breaks it
            i = np.searchsorted(t, np.fromiter(self.gap_t, float), side="right") - 1
            keep[i[(i >= 0) & (i < t.size - 1)]] = False
        return np.diff(t)[keep] * 1000.0

    def features(self) -> np.ndarray:
        """The row of `feature_names(classes)`, finite whatever the history."""
        k = len(self.classes)
        if self.probs:
            p = np.stack(self.probs)
            mean, top = p.mean(axis=0), p.max(axis=0)
        else:                                   # no window (too short, all withheld)
            mean = top = np.full(k, 1.0 / k)
        judged = self.n_predictions + self.n_withheld
        cls = list(self.beat_cls)
        counts = [sum(c == lab for c in cls) for lab in self.beat_labels]
        classified = sum(c is not None for c in cls)
        return np.concatenate([
            mean, top, [np.log1p(len(self.probs)), self.n_withheld / judged if judged else 0.0],
            rr_features(self.rr_ms()),
            morphology_features(np.fromiter(self.pr_ms, float),
                                np.fromiter(self.qrs_ms, float), (*counts, classified)),
        ])

    def evidence(self, row: np.ndarray) -> dict:
        names = feature_names(self.classes)
        keep = ("cv_rr", "nrmssd", "irregular_frac", "sampen", "p_wave_frac", "hr_bpm")
        return {"windows": len(self.probs), "rr_intervals": max(len(self.beat_t) - 1, 0),
                **{n: round(float(row[names.index(n)]), 4) for n in keep}}


class RhythmDecider:
    """A `RhythmHistory` and the bundle's stack: `feed(events)` returns a `RhythmEvent` each
    time a new window enters the history, and `finish()` the last one."""

    def __init__(self, stack: RecordingStack | TreeRecordingStack,
                 beat_labels=("N", "S", "V")) -> None:
        self.stack = stack
        self.history = RhythmHistory(stack.classes, stack.task, beat_labels)

    @classmethod
    def from_bundle(cls, bundle, manifest) -> RhythmDecider | None:
        """None where the bundle has no rhythm stack or no task of its classes."""
        task = next((t for t in manifest.tasks if t["name"] == TASK), None)
        if task is None or RHYTHM_STACK not in manifest.files:
            return None
        stack = load_stack(bundle, manifest, RHYTHM_STACK, feature_names(task["labels"]))
        return None if stack is None else cls(stack)

    def decide(self) -> RhythmEvent:
        h = self.history
        row = h.features()
        p = self.stack.predict_proba(row)
        return RhythmEvent(index=h.last_index, time_s=h.last_time_s,
                           label=self.stack.classes[int(np.argmax(p))],
                           probs=dict(zip(self.stack.classes, p.tolist())),
                           evidence=h.evidence(row))

    def feed(self, events) -> list[RhythmEvent]:
        return [self.decide()] if self.history.feed(events) else []


class RhythmSink:
    """Wraps the stream's sinks: every event passes through, and a `rhythm` event follows each
    prediction that adds a window to the history (`edge-ecg stream`)."""

    def __init__(self, sinks: list, decider: RhythmDecider) -> None:
        self.sinks = sinks
        self.decider = decider

    def emit(self, event) -> None:
        for s in self.sinks:
            s.emit(event)
        for r in self.decider.feed([event]):
            for s in self.sinks:
                s.emit(r)

    def close(self) -> None:
        for s in self.sinks:
            s.close()

    def write_chunk(self, chunk) -> None:   # a wrapped recorder still gets the samples
        for s in self.sinks:
            if hasattr(s, "write_chunk"):
                s.write_chunk(chunk)


def stream_record_history(backend, signal_adc: np.ndarray, gain, baseline, fs_hz: float,
                          leads, classes, hop_s: float | None = None,
                          chunk_s: float = 5.0) -> RhythmHistory:
    """A record's counts replayed through the runtime (`StreamProcessor`: its detector,
    quality checks, windows, beat classes) into a `RhythmHistory`. `hop_s` defaults to one
    window: the history reads non-overlapping windows anyway, so a longer hop only saves the
    overlapping windows' inference."""
    from edge_ecg.runtime.replay import ReplaySource, replay_events
    from edge_ecg.runtime.stream_processor import StreamProcessor

    window_s = float(backend.manifest.signal.get("window_s", 10.0))
    src = ReplaySource(signal_adc, gain, baseline, fs_hz, tuple(leads), speed=None,
                       chunk_s=chunk_s, name="record")
    proc = StreamProcessor(backend, hop_s=hop_s or window_s)
    proc.alarms = None                    # not needed for the rhythm; saves their cost
    hist = RhythmHistory(classes)
    for part in replay_events(src, proc):
        hist.feed(part)
    return hist


__all__ = ["RhythmDecider", "RhythmEvent", "RhythmHistory", "RhythmSink", "feature_names",
           "stream_record_history"]
