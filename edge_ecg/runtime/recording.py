"""`Recorder`: a stream session to an EDF+ (or BDF+) file: the raw counts and every event.

Used as a sink (`emit(event)`, `close()`) that also takes the chunks (`write_chunk(chunk)`),
both from the pipeline's consumer thread, so the file holds exactly what the runtime processed.

- Signal: the chunks' integer counts, unchanged, as the EDF digital values (the format's full
  range: 16 bit in .edf, 24 bit in .bdf); each lead's physical range (mV, or uV where that is
  exact) is set from the chunk's gain and baseline so that a reader recovers them exactly
  wherever 8 characters allow (`edge_ecg.data.edf.physical_range`; `inexact_scale` counts the
  leads where they do not). Labels "ECG <lead>" as EDF+ recommends.
- Events: each as one annotation whose text is the event's JSON line, at onset (index -
  first index) / fs. The annotation area of a data record has a fixed size; annotations that
  do not fit wait for the next record (EDF+ onsets are absolute, so a TAL may sit in a later
  record than its onset), and `close()` appends filler records until all are written.
- Gaps: EDF+C is continuous, so samples a source never delivered (an index jump, a chunk
  dropped because the consumer fell behind, the padding of the last record) are written as
  0 mV and covered by a `FILL_TEXT` annotation with their duration; the `edf:` source skips
  them, so a replay sees the same gaps as the session did.
- Crash safety: each record is written, flushed, then counted in the header (EdfWriter): a
  process killed at any point leaves a file that pyedflib and `edf:` read up to the last
  complete record.
"""

from __future__ import annotations

import json
from collections import deque

import numpy as np

from edge_ecg.data.edf import EdfWriter, encode_tal, record_duration
from edge_ecg.errors import SourceError
from edge_ecg.signal.chunk import Chunk

FILL_TEXT = "edge-ecg:fill"          # samples the source never delivered (written as 0 mV)
# Room for events per second of signal: a prediction is ~1.1 kB of JSON (measured, MIT-BIH
# 100), ~170 bytes more with what its window was made of (issue 17; measured 1.27 kB on the
# virtual monitor's 8 leads; 12 leads with some masked add ~100 more), a beat ~150 bytes; at a
# 1 s hop and 80 bpm that is ~1.5 kB/s. Twice as much leaves room for bursts;
# `annotation_bytes_for(hop_s)` sizes it for another hop.
ANNOTATION_BYTES_PER_S = 4096


def annotation_bytes_for(hop_s: float, beats_per_s: float = 3.0) -> int:
    """Annotation room per second for predictions every `hop_s` s and beats up to 180 bpm."""
    return max(ANNOTATION_BYTES_PER_S, int(2 * (1400 / hop_s + 150 * beats_per_s)))


class Recorder:
    """Raw chunks and events of one session into `path` (.edf: 16 bit, .bdf: 24 bit)."""

    def __init__(self, path: str, annotation_bytes_per_s: int = ANNOTATION_BYTES_PER_S,
                 fsync: bool = False) -> None:
        if not str(path).lower().endswith((".edf", ".bdf")):
            raise SourceError(f"--record {path}: name the file .edf (16-bit samples) or .bdf "
                              "(24-bit, for devices whose counts exceed +/-32767)")
        self.path = str(path)
        self.annotation_bytes_per_s = annotation_bytes_per_s
        self.fsync = fsync
        self.writer: EdfWriter | None = None
        self._origin = 0
        self._next = 0                      # absolute index of the next sample to store
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        self._pending: deque[tuple[int, float, str]] = deque()   # (index, duration_s, text)
        self._early: list[tuple[int, float, str]] = []          # events before the first chunk
        self._fill_value = np.zeros(0, np.int64)    # the baseline per lead, once open
        self._layout: tuple | None = None
        self.late_samples = 0
        self.fill_samples = 0
        self.truncated_annotations = 0

    # --- chunks --------------------------------------------------------------------------
    def write_chunk(self, chunk: Chunk) -> None:
        if self.writer is None:
            self._open(chunk)
        layout = (tuple(chunk.leads), float(chunk.fs_hz),
                  np.asarray(chunk.gain, np.float32).tobytes(),
                  np.asarray(chunk.baseline, np.float32).tobytes())
        if layout != self._layout:
            raise SourceError(f"recording {self.path}: the source changed leads, rate, gain or "
                              "baseline mid-stream; an EDF file cannot hold that. Restart the "
                              "stream to start a new recording")
        x = np.asarray(chunk.samples)
        if chunk.index < self._next:                # overlap: already stored
            skip = min(self._next - chunk.index, x.shape[0])
            self.late_samples += skip
            x = x[skip:]
            if x.shape[0] == 0:
                return
            index = self._next
        else:
            index = int(chunk.index)
        if index > self._next:
            self._fill(index - self._next)
        self._append(x)

    def _open(self, chunk: Chunk) -> None:
        labels = [f"ECG {lead}" for lead in chunk.leads]
        room = int(self.annotation_bytes_per_s * record_duration(float(chunk.fs_hz)))
        gain = np.asarray(chunk.gain, np.float32)
        base = np.asarray(chunk.baseline, np.float32)
        self.writer = EdfWriter(self.path, labels, float(chunk.fs_hz), gain, base,
                                annotation_bytes=max(room, 1024), fsync=self.fsync)
        self._layout = (tuple(chunk.leads), float(chunk.fs_hz), gain.tobytes(), base.tobytes())
        self._fs = float(chunk.fs_hz)
        self._origin = self._next = int(chunk.index)
        self._fill_value = np.round(base).astype(np.int64)
        for item in self._early:
            self._pending.append((max(item[0], self._origin),) + item[1:])
        self._early.clear()

    def _fill(self, n: int) -> None:
        self._pending.append((self._next, n / self._fs, FILL_TEXT))
        self.fill_samples += n
        self._append(np.broadcast_to(self._fill_value, (n, self._fill_value.size)))

    def _append(self, x: np.ndarray) -> None:
        self._buf.append(np.asarray(x, dtype=np.int64))
        self._buffered += x.shape[0]
        self._next += x.shape[0]
        w = self.writer
        assert w is not None                # _open ran at the first chunk
        spr = w.spr
        if self._buffered < spr:
            return
        data = np.concatenate(self._buf) if len(self._buf) > 1 else self._buf[0]
        n_rec = data.shape[0] // spr
        for r in range(n_rec):
            w.write_record(data[r * spr:(r + 1) * spr], self._tals(w))
        rest = data[n_rec * spr:]
        self._buf = [rest] if rest.shape[0] else []
        self._buffered = rest.shape[0]

    def _tals(self, w: EdfWriter) -> bytes:
        """As many pending annotations as fit one record's annotation area, oldest first."""
        room = w.annotation_bytes - len(w.time_keeping())
        out = bytearray()
        while self._pending:
            index, dur, text = self._pending[0]
            tal = encode_tal((index - self._origin) / self._fs, text, dur or None)
            if len(tal) > room and not out:          # alone it cannot fit any record: cut it
                self.truncated_annotations += 1
                while len(tal) > room:
                    text = text[:len(text) - (len(tal) - room) - 1]
                    tal = encode_tal((index - self._origin) / self._fs, text, dur or None)
            if len(out) + len(tal) > room:
                break
            out += tal
            self._pending.popleft()
        return bytes(out)

    # --- events (sink interface) ---------------------------------------------------------
    def emit(self, event) -> None:
        text = json.dumps(event.to_json(), separators=(",", ":"))
        item = (int(event.index), 0.0, text)
        if self.writer is None:
            self._early.append(item)
        else:
            self._pending.append(item)

    def close(self) -> None:
        """Pad the last record (marked as fill) and write every pending annotation."""
        w = self.writer
        if w is None:
            return
        if self._buffered:
            self._fill(w.spr - self._buffered)
        while self._pending:
            self._fill(w.spr)
        w.close()

    def stats(self) -> dict[str, int]:
        w = self.writer
        return {"records": w.n_records if w else 0, "fill_samples": self.fill_samples,
                "late_samples": self.late_samples,
                "clipped_samples": w.clipped_samples if w else 0,
                "inexact_scale": w.inexact_scale if w else 0,
                "truncated_annotations": self.truncated_annotations}


__all__ = ["ANNOTATION_BYTES_PER_S", "FILL_TEXT", "Recorder", "annotation_bytes_for"]
