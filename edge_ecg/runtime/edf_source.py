"""`edf:PATH`: an EDF/EDF+/BDF/BDF+ file replayed as a device would send it.

`edf:PATH?speed=realtime|max|N&channels=LABEL,..&leads=II,..&chunk_s=S`

- Signals: by default every signal whose label names a standard ECG lead ("ECG II", "II",
  "EKG V1", "MLII"); `channels=` picks signals by label or number, `leads=` names them. The
  chosen signals must share one sampling rate. Counts are the file's digital values; gain and
  baseline come from its physical and digital ranges (mV, uV or V, converted to counts/mV).
- Clock: the absolute index of a sample is its time from the file start times fs. In EDF+D
  (discontinuous) files a record that starts later than the previous one ended opens a gap
  (an index jump). Spans an edge-ecg recording marked as fill (`recording.FILL_TEXT`: samples
  the session never received) are skipped the same way, so a replay sees the session's gaps.
- Annotations: every EDF+ annotation becomes an `AnnotationEvent` (type "annotation"),
  released by `take_events(upto)` once the pipeline has processed the samples up to its onset;
  the pipeline emits them after that chunk's own events. An edge-ecg recording's annotations
  are the events of the recorded session, JSON in `text`.
- Pace as `record:` (`ReplaySource`): real time (a live device: chunks dropped and counted
  when the consumer falls behind) or as fast as the consumer takes them (`speed=max`).
The file is memory-mapped and read chunk by chunk; a day-long recording is never loaded whole.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge_ecg.data.edf import EdfError, EdfReader
from edge_ecg.errors import SourceError
from edge_ecg.runtime.recording import FILL_TEXT
from edge_ecg.runtime.replay import MAX_SPEED_CHUNK_S, REALTIME_CHUNK_S, pace, speed_factor
from edge_ecg.signal.chunk import Chunk
from edge_ecg.signal.leads import canonical_lead, lead_of_label
from edge_ecg.signal.source import Source

# physical dimension -> physical units per mV
_UNITS_PER_MV = {"mv": 1.0, "uv": 1000.0, "µv": 1000.0, "μv": 1000.0, "v": 1e-3, "nv": 1e6}


@dataclass(frozen=True)
class AnnotationEvent:
    """An annotation from a replayed file, at its onset on the source clock."""

    index: int
    time_s: float
    duration_s: float
    text: str

    def to_json(self) -> dict:
        return {"type": "annotation", "index": int(self.index), "time_s": round(self.time_s, 4),
                "duration_s": round(self.duration_s, 4), "text": self.text}


class EdfSource(Source):
    """Replay of an EDF/BDF file's ECG signals with its annotations as events."""

    def __init__(self, path: str, options: dict[str, str] | None = None) -> None:
        options = options or {}
        self.path = path
        self.name = f"edf:{path}"
        self.speed = speed_factor(options, self.name)
        self.live = self.speed is not None
        self.options = options
        self._chunk_s = float(options["chunk_s"]) if "chunk_s" in options else (
            REALTIME_CHUNK_S if self.speed is not None else MAX_SPEED_CHUNK_S)
        self.reader: EdfReader | None = None
        self._lock = threading.Lock()
        self._counters = {"chunks": 0, "samples": 0, "skipped_fill_samples": 0,
                          "discontinuities": 0, "annotations": 0}

    # --- setup ---------------------------------------------------------------------------
    def _select(self, r: EdfReader) -> list[int]:
        sigs = r.signals
        labels = [s.label for s in sigs]
        want = self.options.get("channels")
        if want:
            chosen = []
            for w in (x.strip() for x in want.split(",")):
                if w in labels:
                    chosen.append(labels.index(w))
                elif w.isdigit() and int(w) < len(sigs):
                    chosen.append(int(w))
                else:
                    raise SourceError(f"{self.name}: no signal {w!r}; the file has {labels}")
        else:
            chosen = [i for i, s in enumerate(sigs)
                      if not s.is_annotation and lead_of_label(s.label) is not None]
        if not chosen or any(sigs[i].is_annotation for i in chosen):
            raise SourceError(f"{self.name}: no ECG lead among the signals {labels}; pick them "
                              "with ?channels=LABEL,..&leads=II,.. (standard lead names)")
        if len({sigs[i].spr for i in chosen}) != 1:
            raise SourceError(f"{self.name}: signals {[labels[i] for i in chosen]} have "
                              "different sampling rates; pick signals of one rate with "
                              "?channels=")
        return chosen

    def _leads(self, r: EdfReader, chosen: list[int]) -> tuple[str, ...]:
        names = self.options.get("leads")
        if names:
            leads = tuple(x.strip() for x in names.split(","))
            if len(leads) != len(chosen):
                raise SourceError(f"{self.name}: leads= names {len(leads)} leads for "
                                  f"{len(chosen)} signals")
        else:
            leads = tuple(lead_of_label(r.signals[i].label) or r.signals[i].label
                          for i in chosen)
        bad = [x for x in leads if canonical_lead(x) is None]
        if bad:
            raise SourceError(f"{self.name}: {bad} are not standard ECG leads; name them with "
                              "?leads=I,II,V1,...")
        if len(set(leads)) != len(leads):
            raise SourceError(f"{self.name}: duplicate leads {list(leads)}")
        return leads

    def open(self) -> None:
        try:
            r = EdfReader(self.path)
        except FileNotFoundError:
            raise EdfError(f"{self.path}: no such EDF/BDF file") from None
        chosen = self._select(r)
        leads = self._leads(r, chosen)
        gain, base = [], []
        for i in chosen:
            s = r.signals[i]
            per_mv = _UNITS_PER_MV.get(s.dimension.strip().lower())
            if per_mv is None:
                raise SourceError(f"{self.name}: signal {s.label!r} is in {s.dimension!r}; "
                                  "an ECG must be in mV, uV or V")
            g = np.float32(s.gain * per_mv)          # counts per mV
            b = np.float32(s.baseline)
            if abs(b - np.round(b)) < 1e-4:          # 8-character ranges: undo the last digit
                b = np.round(b)
            gain.append(g)
            base.append(b)
        self.reader, self._chosen, self.leads = r, chosen, leads
        self.gain = np.asarray(gain, np.float32)
        self.baseline = np.asarray(base, np.float32)
        spr = r.signals[chosen[0]].spr
        self.fs_hz = spr / r.header.record_s
        self.chunk = max(1, int(round(self._chunk_s * self.fs_hz)))
        onsets, anns = r.record_annotations()
        self._segments = self._plan(r, onsets, anns, spr)
        anns.sort(key=lambda a: a.onset_s)
        self._pending_ann = deque(
            AnnotationEvent(int(round(a.onset_s * self.fs_hz)), a.onset_s, a.duration_s, a.text)
            for a in anns if a.text != FILL_TEXT)
        self._seg = 0
        self._pos = self._segments[0][0] if self._segments else 0
        self._first_index = self._segments[0][2] if self._segments else 0
        self._t0 = time.perf_counter()

    def _plan(self, r: EdfReader, onsets: list, anns: list,
              spr: int) -> list[tuple[int, int, int]]:
        """Runs of file samples to emit: (pos0, pos1, index of pos0); fills and EDF+D gaps cut."""
        fs = self.fs_hz
        n = r.n_records * spr
        # record start index: EDF+D from its time-keeping TAL, else contiguous
        starts = np.arange(r.n_records, dtype=np.int64) * spr
        if r.header.plus == "D":
            for k, t in enumerate(onsets):
                if t is not None:
                    starts[k] = int(round(t * fs))
        runs: list[tuple[int, int, int]] = []
        k = 0
        while k < len(starts):               # merge contiguous records into runs
            j = k
            while j + 1 < len(starts) and starts[j + 1] == starts[j] + spr:
                j += 1
            runs.append((k * spr, (j + 1) * spr, int(starts[k])))
            if j + 1 < len(starts):
                self._counters["discontinuities"] += 1
            k = j + 1
        fills = sorted((int(round(a.onset_s * fs)), int(round((a.onset_s + a.duration_s) * fs)))
                       for a in anns if a.text == FILL_TEXT)
        for f0, f1 in fills:                 # cut [f0, f1) out (index clock)
            out = []
            for p0, p1, i0 in runs:
                i1 = i0 + (p1 - p0)
                if f1 <= i0 or f0 >= i1:
                    out.append((p0, p1, i0))
                    continue
                if f0 > i0:
                    out.append((p0, p0 + f0 - i0, i0))
                if f1 < i1:
                    out.append((p0 + f1 - i0, p1, f1))
                self._counters["skipped_fill_samples"] += min(f1, i1) - max(f0, i0)
            runs = out
        return [r for r in runs if r[1] > r[0] and r[0] < n]

    # --- Source --------------------------------------------------------------------------
    def read(self, timeout_s: float = 0.1) -> Chunk | None:
        if self.reader is None:
            raise SourceError(f"{self.name}: read() before open()")
        if self._seg >= len(self._segments):
            raise EOFError(f"{self.name}: end of replay")
        p0, p1, i0 = self._segments[self._seg]
        pos = self._pos
        end = min(pos + self.chunk, p1)
        index = i0 + (pos - p0)
        n = end - pos
        if self.speed is not None and not pace(
                self._t0 + (index + n - self._first_index) / (self.fs_hz * self.speed), timeout_s):
            return None
        samples = self._samples(self.reader, pos, end)
        self._pos = end
        if end >= p1:
            self._seg += 1
            if self._seg < len(self._segments):
                self._pos = self._segments[self._seg][0]
        self._counters["chunks"] += 1
        self._counters["samples"] += n
        return Chunk(index=index, seq=self._counters["chunks"] - 1,
                     device_time_us=int(round(index * 1e6 / self.fs_hz)), samples=samples,
                     gain=self.gain, baseline=self.baseline, leads=self.leads, fs_hz=self.fs_hz)

    def _samples(self, r: EdfReader, pos: int, end: int) -> np.ndarray:
        spr = r.signals[self._chosen[0]].spr
        r0, r1 = pos // spr, -(-end // spr)
        cols = [r.digital(i, r0, r1)[pos - r0 * spr:end - r0 * spr]
                for i in self._chosen]
        return np.stack(cols, axis=1)

    def take_events(self, upto: int | None = None) -> list[AnnotationEvent]:
        """Annotations whose onset the replay has passed (index < `upto`; None: all left)."""
        out = []
        with self._lock:          # the consumer thread calls this while another reads
            while self._pending_ann and (upto is None or self._pending_ann[0].index < upto):
                out.append(self._pending_ann.popleft())
        self._counters["annotations"] += len(out)
        return out

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()

    def stats(self) -> dict[str, int]:
        return dict(self._counters)


def edf_source(path: str, options: dict[str, str] | None = None) -> EdfSource:
    return EdfSource(path, options)


__all__ = ["AnnotationEvent", "EdfSource", "edf_source"]
