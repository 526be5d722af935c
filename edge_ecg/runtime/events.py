"""What the runtime emits: frozen event records and the sinks that write them.

Each event serialises to one JSON object with `"type"` (beat, prediction, gap, withheld,
status, alarm), the absolute sample `index` on the source's clock and `time_s = index / fs_hz`.
Sinks: JSON Lines (stdout or a file, flushed per event so a consumer sees it at once) and an
optional Lab Streaming Layer outlet (pylsl imported only when asked for).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from edge_ecg.errors import SourceError

EVENT_TYPES = ("beat", "prediction", "gap", "withheld", "status", "alarm")


_PLAIN = (str, int, bool, type(None))


def _clean(v):
    """JSON-safe: numpy scalars to Python, non-finite floats to None."""
    t = type(v)
    if t is float:               # the common leaves first: a prediction holds ~50 of them
        return v if math.isfinite(v) else None
    if t in _PLAIN:
        return v
    if t is dict:
        return _clean_dict(v)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _clean_dict(d: dict) -> dict:
    """`_clean` of a plain dict, its plain leaves taken inline (a prediction's ~40 leaves
    each cost a call before): the same dict."""
    out = {}
    for k, x in d.items():
        t = type(x)
        if t is float:
            out[k] = x if math.isfinite(x) else None
        elif t in _PLAIN:
            out[k] = x
        elif t is dict:
            out[k] = _clean_dict(x)
        else:
            out[k] = _clean(x)
    return out


@dataclass(frozen=True)
class BeatEvent:
    """A detected R peak on the source clock; `delay_ms` from the peak to its decision (its
    detection; the event itself may come later, once delineated and classified).

    With delineation (`waves` given), the beat is emitted once delineated (`waves_delay_ms`
    after R, DelineationConfig.post_s in edge_ecg.signal.delineate) and carries its PR, QRS and QT (ms, None where
    a wave was not found) and the RR before it."""

    index: int
    time_s: float
    delay_ms: float
    waves: dict | None = None
    # AAMI class (N, S, V, F, Q) and its probability, with a bundle that has a `beat` task
    # (edge_ecg.runtime.beat_classes); None with the reason where the beat got no class
    beat_class: str | None = None
    beat_prob: float | None = None
    beat_class_reason: str | None = None
    # V given by the run continuation (run_continuation.py): the class the beat stack gave
    run_continued_from: str | None = None
    # S given by a supraventricular tachycardia episode (svt_episode.py): the stack's class
    svt_from: str | None = None

    def to_json(self) -> dict:
        d = {"type": "beat", "index": int(self.index), "time_s": round(self.time_s, 4),
             "delay_ms": round(self.delay_ms, 1)}
        if self.beat_class is not None or self.beat_class_reason is not None:
            # with a beat task every beat has the three: a class and its probability, or None
            # and the reason it has none
            d["beat_class"] = self.beat_class
            d["beat_class_prob"] = self.beat_prob
            d["beat_class_reason"] = self.beat_class_reason
            if self.run_continued_from is not None:
                d["run_continued_from"] = self.run_continued_from
            if self.svt_from is not None:
                d["svt_from"] = self.svt_from
        if self.waves is not None:
            d.update(_clean({k: (round(v, 1) if isinstance(v, float) else v)
                             for k, v in self.waves.items()}))
        return d


@dataclass(frozen=True)
class PredictionEvent:
    """Model outputs for the window `[start, index)` (source clock; `index` = window end).

    `outputs`: task -> {"value", "unit"} for regression, {"label", "prob", "probs"} for
    binary/multiclass. `experts`: path -> names of the experts with non-zero gate weight.
    """

    index: int
    time_s: float
    start: int
    outputs: dict
    experts: dict
    latency_ms: float
    n_beats: int
    intervals: dict | None = None   # window medians: hr_bpm, pr_ms, qrs_ms, qt_ms, qtc_*_ms
    # what the window was made of (quality.WindowQuality.describe): missing / invalid / filled
    # samples and their share, the longest filled run, the leads used and those masked
    quality: dict | None = None

    def to_json(self) -> dict:
        d = {"type": "prediction", "index": int(self.index),
             "time_s": round(self.time_s, 4), "start": int(self.start),
             "outputs": self.outputs, "experts": self.experts,
             "latency_ms": round(self.latency_ms, 3), "n_beats": self.n_beats}
        if self.quality is not None:
            d["quality"] = self.quality
        if self.intervals is not None:
            d["intervals"] = {k: (round(v, 1) if isinstance(v, float) else v)
                              for k, v in self.intervals.items()}
        return _clean(d)


@dataclass(frozen=True)
class GapEvent:
    """`length` samples missing before `index` (source clock): filled, marked, reported."""

    index: int
    time_s: float
    length: int
    cause: str = "sequence"   # sequence (index jump) | dropped (consumer fell behind) |
    #                           reset (a device reboot: the span lost is unknown, never bridged)

    def to_json(self) -> dict:
        return {"type": "gap", "index": int(self.index), "time_s": round(self.time_s, 4),
                "length": int(self.length), "cause": self.cause}


@dataclass(frozen=True)
class WithheldEvent:
    """A window whose prediction was withheld, with the reasons (see `quality.REASONS`) and,
    from the stream pipeline, what the window was made of (as `PredictionEvent.quality`)."""

    index: int
    time_s: float
    start: int
    reasons: tuple[str, ...]
    quality: dict | None = None

    def to_json(self) -> dict:
        d = {"type": "withheld", "index": int(self.index), "time_s": round(self.time_s, 4),
             "start": int(self.start), "reasons": list(self.reasons)}
        if self.quality is not None:
            d["quality"] = _clean(self.quality)
        return d


@dataclass(frozen=True)
class StatusEvent:
    """Lifecycle and counters: start, periodic, stop (with the summary)."""

    index: int
    time_s: float
    state: str
    info: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return _clean({"type": "status", "index": int(self.index),
                       "time_s": round(self.time_s, 4), "state": self.state, "info": self.info})


@dataclass(frozen=True)
class AlarmEvent:
    """An alarm's onset or end (edge_ecg.runtime.alarms), decided at `index` (source clock).

    `onset_index` is where the condition began (the first V beat of a run, the middle of the
    first VF segment), earlier than `index` by what it took to decide; `end_index` (on `end`
    only) where it stopped. `priority` is IEC 60601-1-8's high / medium / low; `evidence`
    names what it rests on: the beats (source indices), a rate, the window or segments."""

    index: int
    time_s: float
    code: str
    state: str                   # onset | end
    priority: str
    text: str
    onset_index: int
    fs_hz: float
    end_index: int | None = None
    evidence: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = {"type": "alarm", "index": int(self.index), "time_s": round(self.time_s, 4),
             "code": self.code, "state": self.state, "priority": self.priority,
             "text": self.text, "onset_index": int(self.onset_index),
             "onset_s": round(self.onset_index / self.fs_hz, 4)}
        if self.end_index is not None:
            d["end_index"] = int(self.end_index)
            d["end_s"] = round(self.end_index / self.fs_hz, 4)
        d["evidence"] = _clean(self.evidence)
        return d


Event = BeatEvent | PredictionEvent | GapEvent | WithheldEvent | StatusEvent | AlarmEvent


class JsonlSink:
    """One JSON object per line, flushed per event. `target` is '-' (stdout) or a path."""

    def __init__(self, target: str = "-") -> None:
        self.target = target
        if target == "-":
            self._f: IO[str] = sys.stdout
            self._own = False
        else:
            try:
                self._f = open(Path(target), "w", encoding="utf-8", buffering=1)
            except OSError as exc:
                raise SourceError(f"cannot open output {target}: {exc}") from exc
            self._own = True
        # what json.dumps(..., separators=(",", ":")) makes, without a new encoder per event
        self._encode = json.JSONEncoder(separators=(",", ":")).encode

    def emit(self, event: Event) -> None:
        self._f.write(self._encode(event.to_json()) + "\n")
        self._f.flush()

    def close(self) -> None:
        try:
            self._f.flush()
        finally:
            if self._own:
                self._f.close()


class LslSink:
    """Lab Streaming Layer outlet: each event as a JSON string marker (irregular rate)."""

    def __init__(self, name: str = "edge-ecg", source_id: str = "edge-ecg-runtime") -> None:
        try:
            import pylsl
        except Exception as exc:  # ImportError or liblsl missing
            raise SourceError(f"--lsl needs pylsl with liblsl ({exc}); pip install edge-ecg[lsl]") from exc
        info = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, "string", source_id)
        self._outlet = pylsl.StreamOutlet(info)

    def emit(self, event: Event) -> None:
        self._outlet.push_sample([json.dumps(event.to_json(), separators=(",", ":"))])

    def close(self) -> None:
        self._outlet = None


def open_output(spec: str):
    """A sink from `jsonl:-` (stdout) or `jsonl:FILE`."""
    kind, sep, target = spec.partition(":")
    if kind != "jsonl" or not sep or not target:
        raise SourceError(f"output {spec!r} not understood: use jsonl:- or jsonl:FILE")
    return JsonlSink(target)


__all__ = ["EVENT_TYPES", "AlarmEvent", "BeatEvent", "Event", "GapEvent", "JsonlSink", "LslSink",
           "PredictionEvent", "StatusEvent", "WithheldEvent", "open_output"]
