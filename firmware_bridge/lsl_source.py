"""`LslSource`: ECG from a Lab Streaming Layer stream, through a pylsl inlet.

`lsl:NAME_OR_TYPE?timeout=10&channels=0,1&leads=II,V1&unit=uV&uv_per_count=1&tolerance_ms=4`

The stream is resolved by name, then by type (e.g. `lsl:ECG`). Rate from its nominal rate (an
irregular stream is refused); leads and units from its `desc/channels/channel` `label` and
`unit` (microvolts assumed where it names none; `unit=` overrides); values are quantised to
integer counts at `uv_per_count` microvolts (gain 1000/uv_per_count counts/mV).

Clock. LSL stamps each sample on the sender's clock. The sample index is derived from those
stamps, sample by sample against the previous accepted one (a slow drift between the sender's
clock and its nominal rate never accumulates into a false gap):
  - a stamp more than `tolerance_ms` (and 1.5 samples) after the expected one: the samples in
    between were lost: an index jump, counted in `missing_samples` and `gaps`;
  - the same stamp again: a duplicate (an inlet recovering a broken connection re-sends), dropped
    and counted in `duplicates`;
  - a stamp before the previous one, by less than `backjump_s`: a late, out-of-order sample,
    dropped and counted in `late_samples` (its slot has already been passed on);
  - a stamp earlier by more than `backjump_s` (the sender restarted its clock), or later by
    more than `max_gap_s`: a clock jump, counted in `clock_jumps`; the index just goes on.
LSL's time correction (`inlet.time_correction()`, refreshed every 5 s) maps the sender's
stamps onto this machine's LSL clock for `Chunk.device_time_us`; classification uses the raw
stamps so that a change of the correction estimate never looks like lost samples.
pylsl is imported in `open()` (the `lsl` extra).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from collections import deque

import numpy as np

from edge_ecg.errors import SourceError
from edge_ecg.signal.chunk import Chunk
from edge_ecg.signal.leads import canonical_lead, lead_of_label
from edge_ecg.signal.source import Source

_UV_PER_UNIT = {"microvolts": 1.0, "microvolt": 1.0, "uv": 1.0, "µv": 1.0, "μv": 1.0,
                "millivolts": 1000.0, "millivolt": 1000.0, "mv": 1000.0,
                "volts": 1e6, "volt": 1e6, "v": 1e6}
log = logging.getLogger(__name__)

TIME_CORRECTION_EVERY_S = 5.0


class LslSource(Source):
    """Chunks from an LSL stream named (or typed) `target`."""

    def __init__(self, target: str, options: dict[str, str] | None = None) -> None:
        self.target = target
        self.options = dict(options or {})
        self.name = f"lsl:{target}"
        try:
            self.resolve_s = float(self.options.get("timeout", "10"))
            self.tolerance_ms = float(self.options.get("tolerance_ms", "4"))
            self.backjump_s = float(self.options.get("backjump_s", "1"))
            self.max_gap_s = float(self.options.get("max_gap_s", "60"))
            self._uv = float(self.options.get("uv_per_count", "1"))
        except ValueError as exc:
            raise SourceError(f"{self.name}: options must be numbers ({exc})") from None
        self._inlet: Any = None       # a pylsl.StreamInlet once open (pylsl imported lazily)
        self._chunks: deque[Chunk] = deque()
        self._next = 0
        self._last_ts: float | None = None
        self._offset = 0.0
        self._tc_at = 0.0
        self._counters = {"chunks": 0, "samples": 0, "missing_samples": 0, "gaps": 0,
                          "duplicates": 0, "late_samples": 0, "clock_jumps": 0,
                          "clock_offset_us": 0}

    # --- setup ---------------------------------------------------------------------------
    def open(self) -> None:
        try:
            import pylsl
        except Exception as exc:   # noqa: BLE001 - ImportError, or liblsl missing (RuntimeError)
            raise SourceError(f"lsl: sources need pylsl with liblsl ({exc}): pip install "
                              "'edge-ecg[lsl]'") from None
        self._pylsl = pylsl
        found = []
        for prop in ("name", "type"):
            found = pylsl.resolve_byprop(prop, self.target, 1, self.resolve_s / 2)
            if found:
                break
        if not found:
            raise SourceError(f"{self.name}: no LSL stream named or typed {self.target!r} found "
                              f"within {self.resolve_s:g} s; is the sender running on this "
                              "network (or machine)?")
        info = found[0]
        self.fs_hz = float(info.nominal_srate())
        if not self.fs_hz > 0:
            raise SourceError(f"{self.name}: the stream has an irregular rate; an ECG stream "
                              "needs a nominal sampling rate")
        inlet = pylsl.StreamInlet(info, max_buflen=60, recover=True)
        try:
            inlet.open_stream(timeout=self.resolve_s)
            full = inlet.info(timeout=self.resolve_s)
        except Exception as exc:   # noqa: BLE001 - pylsl raises TimeoutError/LostError
            raise SourceError(f"{self.name}: cannot open the stream ({exc})") from None
        labels, units = self._channel_desc(full, info.channel_count())
        self._cols, self.leads, scale = self._select(labels, units)
        self._scale = scale / self._uv                   # stream value -> counts
        self.gain = np.full(len(self._cols), 1000.0 / self._uv)
        self.baseline = np.zeros(len(self._cols))
        self._inlet = inlet
        self._refresh_offset(force=True)

    @staticmethod
    def _channel_desc(info, n: int) -> tuple[list[str], list[str]]:
        labels, units = [], []
        ch = info.desc().child("channels").child("channel")
        for _ in range(n):
            if ch.empty():
                break
            labels.append(ch.child_value("label"))
            units.append(ch.child_value("unit"))
            ch = ch.next_sibling()
        labels += [""] * (n - len(labels))
        units += [""] * (n - len(units))
        return labels, units

    def _select(self, labels: list[str], units: list[str]):
        want = self.options.get("channels")
        if want:
            cols = []
            for w in (x.strip() for x in want.split(",")):
                if w in labels:
                    cols.append(labels.index(w))
                elif w.isdigit() and int(w) < len(labels):
                    cols.append(int(w))
                else:
                    raise SourceError(f"{self.name}: no channel {w!r}; the stream has {labels}")
        else:
            cols = [i for i, lab in enumerate(labels) if lead_of_label(lab)]
            if not cols and len(labels) == 1:
                cols = [0]
            if not cols:
                raise SourceError(f"{self.name}: no channel label names an ECG lead ({labels}); "
                                  "pick them with ?channels=0,1&leads=II,V1")
        given = self.options.get("leads")
        if given:
            leads = tuple(x.strip() for x in given.split(","))
        else:
            leads = tuple(lead_of_label(labels[c]) or ("II" if len(cols) == 1 else labels[c])
                          for c in cols)
            if len(cols) == 1 and lead_of_label(labels[cols[0]]) is None:
                log.warning("%s: channel %r names no ECG lead; taking it as lead II (pass "
                            "?leads= to say which lead it is)", self.name, labels[cols[0]])
        if len(leads) != len(cols) or any(canonical_lead(x) is None for x in leads):
            raise SourceError(f"{self.name}: leads {list(leads)} for {len(cols)} channels: name "
                              "one standard lead per channel (?leads=II,V1)")
        unit = self.options.get("unit")
        scales = []
        for c in cols:
            u = (unit or units[c] or "microvolts").strip().lower()
            if u not in _UV_PER_UNIT:
                raise SourceError(f"{self.name}: channel {labels[c] or c} is in {u!r}; an ECG "
                                  "must be in microvolts, millivolts or volts (?unit=uV)")
            scales.append(_UV_PER_UNIT[u])
        return cols, leads, np.asarray(scales)

    def _refresh_offset(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._tc_at < TIME_CORRECTION_EVERY_S:
            return
        self._tc_at = now
        try:
            self._offset = float(self._inlet.time_correction(timeout=2.0))
            self._counters["clock_offset_us"] = int(round(self._offset * 1e6))
        except Exception as exc:   # noqa: BLE001 - keep the last estimate; retried in 5 s
            log.debug("%s: LSL time correction failed, the last estimate kept: %r", self.name,
                      exc)

    # --- Source --------------------------------------------------------------------------
    def read(self, timeout_s: float = 0.1) -> Chunk | None:
        if self._inlet is None:
            raise SourceError(f"{self.name}: read() before open()")
        deadline = time.monotonic() + timeout_s
        while not self._chunks:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                x, ts = self._inlet.pull_chunk(timeout=left, max_samples=4096)
            except Exception as exc:   # noqa: BLE001 - pylsl LostError: the sender is gone
                raise SourceError(f"{self.name}: stream lost ({exc})") from None
            if ts:
                self._refresh_offset()
                self._accept(np.asarray(x, dtype=np.float64)[:, self._cols],
                             np.asarray(ts, dtype=np.float64))
        return self._chunks.popleft()

    def _accept(self, x: np.ndarray, ts: np.ndarray) -> None:
        """Classify a pulled block by its stamps; queue contiguous runs as Chunks."""
        fs = self.fs_hz
        tol = max(1.5, self.tolerance_ms * 1e-3 * fs)
        prev = ts[0] - 1.0 / fs if self._last_ts is None else self._last_ts
        dt = np.diff(np.concatenate([[prev], ts]))
        err = dt * fs - 1.0
        counts = np.round(x * self._scale).astype(np.int32)
        if np.all(dt > 0) and np.all(err <= tol):          # the usual case: one run
            self._push(counts, ts[0], 0)
            self._last_ts = float(ts[-1])
            return
        run: list[int] = []
        run_lost = 0
        last = prev
        for i in range(ts.size):                           # rare: sample by sample
            d = ts[i] - last
            if abs(d) < 1e-7:
                self._counters["duplicates"] += 1
                continue
            if d < 0 and d > -self.backjump_s:
                self._counters["late_samples"] += 1
                continue
            lost = 0
            if d < 0 or d * fs - 1.0 > self.max_gap_s * fs:
                self._counters["clock_jumps"] += 1
            elif d * fs - 1.0 > tol:
                lost = int(round(d * fs - 1.0))
            if lost and run:
                self._push(counts[run], ts[run[0]], run_lost)
                run, run_lost = [], 0
            if lost:
                run_lost = lost
            run.append(i)
            last = ts[i]
        if run:
            self._push(counts[run], ts[run[0]], run_lost)
        self._last_ts = float(last)

    def _push(self, counts: np.ndarray, t0: float, lost: int) -> None:
        if lost:
            self._counters["missing_samples"] += lost
            self._counters["gaps"] += 1
            self._next += lost
        self._chunks.append(Chunk(index=self._next, seq=self._counters["chunks"],
                                  device_time_us=int(round((t0 + self._offset) * 1e6)),
                                  samples=counts, gain=self.gain, baseline=self.baseline,
                                  leads=self.leads, fs_hz=self.fs_hz))
        self._counters["chunks"] += 1
        self._counters["samples"] += counts.shape[0]
        self._next += counts.shape[0]

    def close(self) -> None:
        inlet, self._inlet = self._inlet, None
        if inlet is not None:
            try:
                inlet.close_stream()
            except Exception as exc:   # noqa: BLE001
                log.debug("%s: close_stream on close: %r", self.name, exc)

    def stats(self) -> dict[str, int]:
        return dict(self._counters)


__all__ = ["TIME_CORRECTION_EVERY_S", "LslSource"]
