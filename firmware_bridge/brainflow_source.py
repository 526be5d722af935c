"""`BrainFlowSource`: ECG from any BrainFlow board (OpenBCI and dozens more) through BoardShim.

`brainflow:BOARD?param=value&..` where BOARD is a `BoardIds` name (`SYNTHETIC_BOARD`,
`cyton`, `PLAYBACK_FILE_BOARD`) or number, and params are `BrainFlowInputParams` fields
(`serial_port`, `mac_address`, `ip_address`, `ip_port`, `file`, `master_board`, `timeout`,
`serial_number`, `other_info`, ...), plus:
  `channels=ROW,..`  data rows to use (default: the board's first ECG channel)
  `leads=II,..`      their lead names (default `II` for one channel: BrainFlow names no leads)
  `uv_per_count=1`   quantisation of BrainFlow's microvolts into the integer counts of a Chunk
  `buffer=450000`    BoardShim ring buffer, samples

Sample rate, ECG rows, the package counter and timestamp rows come from the board's descriptor
(for the playback board: its `master_board`'s); BrainFlow reports ExG rows in microvolts.

BrainFlow overwrites its ring buffer silently when it is not read in time, and a radio link
drops packages: both show in the board's package counter (`package_num_channel`, 0..255). A
counter jump becomes an index jump (a gap the ring buffer marks) and is counted in
`lost_samples`; a jump longer than the counter wraps is sized from the timestamps. The playback
board ends (EOFError) after the file's last row.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import deque

import numpy as np

from edge_ecg.errors import SourceError
from edge_ecg.signal.chunk import Chunk
from edge_ecg.signal.leads import canonical_lead
from edge_ecg.signal.source import Source

log = logging.getLogger(__name__)

COUNTER_MOD = 256          # BrainFlow's package counters wrap at 256 on the boards that have one
# A playback whose sample index has passed the file's rows, with rows overwritten unread (they
# never come): this long without a new row is its end (the board sends every few ms)
PLAYBACK_IDLE_S = 1.0
_OWN = ("channels", "leads", "uv_per_count", "buffer", "speed")
_INT_PARAMS = ("ip_port", "ip_port_aux", "ip_port_anc", "ip_protocol", "timeout", "master_board")


def board_id(name: str) -> int:
    """A BoardIds value from a name (`SYNTHETIC_BOARD`, `synthetic`, `cyton`) or number."""
    from brainflow.board_shim import BoardIds

    s = name.strip()
    if s.lstrip("-").isdigit():
        return int(s)
    for key in (s.upper(), s.upper() + "_BOARD"):
        if key in BoardIds.__members__:
            return BoardIds[key].value
    raise SourceError(f"brainflow:{name}: unknown board; use a BoardIds name such as "
                      "SYNTHETIC_BOARD, CYTON_BOARD, PLAYBACK_FILE_BOARD, or its number")


class BrainFlowSource(Source):
    """Chunks from a BrainFlow board's ECG rows, loss counted from its package counter."""

    def __init__(self, board: str, options: dict[str, str] | None = None) -> None:
        self.board = board
        self.options = dict(options or {})
        self.name = f"brainflow:{board}"
        self._shim = None
        self._chunks: deque[Chunk] = deque()
        self._next = 0                        # absolute index of the next sample
        self._last_counter: int | None = None
        self._last_ts: float | None = None
        self._total: int | None = None        # playback rows, for EOF
        self._rows_at = time.monotonic()      # when rows last came
        self._counters = {"chunks": 0, "samples": 0, "lost_samples": 0, "gaps": 0,
                          "buffer_full": 0}

    # --- setup ---------------------------------------------------------------------------
    def open(self) -> None:
        try:
            from brainflow.board_shim import (
                BoardIds,
                BoardShim,
                BrainFlowError,
                BrainFlowInputParams,
            )
        except ImportError:
            raise SourceError("brainflow: sources need BrainFlow: pip install "
                              "'edge-ecg[brainflow]'") from None
        with warnings.catch_warnings():   # its first call loads the library via pkg_resources,
            warnings.simplefilter("ignore", UserWarning)       # deprecated: a warning per run
            BoardShim.disable_board_logger()
        bid = board_id(self.board)
        params = BrainFlowInputParams()
        for k, v in self.options.items():
            if k in _OWN:
                continue
            if not hasattr(params, k):
                raise SourceError(f"{self.name}: unknown parameter {k!r}; BrainFlowInputParams "
                                  f"has {sorted(p for p in vars(params) if not p.startswith('_'))}")
            setattr(params, k, board_id(v) if k == "master_board" else
                    int(v) if k in _INT_PARAMS else v)
        descr_id = bid
        if bid == BoardIds.PLAYBACK_FILE_BOARD.value:
            if not params.file or params.master_board == BoardIds.NO_BOARD.value:
                raise SourceError(f"{self.name}: the playback board needs ?file=PATH&"
                                  "master_board=BOARD (the board that recorded the file)")
            descr_id = params.master_board
            try:
                with open(params.file, "rb") as f:
                    self._total = sum(1 for line in f if line.strip())
            except OSError as exc:
                raise SourceError(f"{self.name}: cannot read {params.file}: {exc}") from None
        try:
            d = BoardShim.get_board_descr(descr_id)
        except BrainFlowError as exc:
            raise SourceError(f"{self.name}: no descriptor for board {descr_id}: {exc}") from None
        self.fs_hz = float(d["sampling_rate"])
        self._rows = self._channels(d)
        self.leads = self._lead_names(len(self._rows))
        self._counter_row = d.get("package_num_channel")
        self._ts_row = d.get("timestamp_channel")
        try:
            uv = float(self.options.get("uv_per_count", "1"))
            self._buffer = int(self.options.get("buffer", "450000"))
        except ValueError:
            raise SourceError(f"{self.name}: uv_per_count and buffer must be numbers") from None
        if not uv > 0:
            raise SourceError(f"{self.name}: uv_per_count must be positive")
        self._uv = uv
        self.gain = np.full(len(self._rows), 1000.0 / uv)      # counts per mV
        self.baseline = np.zeros(len(self._rows))
        shim = BoardShim(bid, params)
        try:
            shim.prepare_session()
            shim.start_stream(self._buffer)
        except BrainFlowError as exc:
            try:
                shim.release_session()
            except BrainFlowError:
                pass
            raise SourceError(f"{self.name}: BrainFlow could not start the board ({exc}); "
                              "check the port/address parameters and that the board is on"
                              ) from None
        self._shim = shim

    def _channels(self, d: dict) -> list[int]:
        want = self.options.get("channels")
        n_rows = int(d["num_rows"])
        if want:
            try:
                rows = [int(x) for x in want.split(",")]
            except ValueError:
                raise SourceError(f"{self.name}: channels= takes data row numbers") from None
            bad = [r for r in rows if not 0 <= r < n_rows]
            if bad:
                raise SourceError(f"{self.name}: rows {bad} outside 0..{n_rows - 1}")
            return rows
        ecg = d.get("ecg_channels") or []
        if not ecg:
            raise SourceError(f"{self.name}: the board describes no ECG channels; name the data "
                              "rows to use with ?channels=ROW,..&leads=II,..")
        return [int(ecg[0])]

    def _lead_names(self, n: int) -> tuple[str, ...]:
        given = self.options.get("leads")
        leads = tuple(x.strip() for x in given.split(",")) if given else (("II",) if n == 1
                                                                           else ())
        if not given and n == 1:
            log.warning("%s: BrainFlow names no lead; taking the channel as lead II (pass "
                        "?leads= to say which lead it is)", self.name)
        if len(leads) != n:
            raise SourceError(f"{self.name}: {n} channels need {n} lead names (?leads=I,II,..)")
        bad = [x for x in leads if canonical_lead(x) is None]
        if bad:
            raise SourceError(f"{self.name}: {bad} are not standard ECG lead names")
        return leads

    # --- Source --------------------------------------------------------------------------
    def read(self, timeout_s: float = 0.1) -> Chunk | None:
        if self._shim is None:
            raise SourceError(f"{self.name}: read() before open()")
        deadline = time.monotonic() + timeout_s
        while not self._chunks:
            if self._total is not None and self._played_out(self._total):
                raise EOFError(f"{self.name}: end of the playback file")
            n = self._shim.get_board_data_count()
            if n:
                self._rows_at = time.monotonic()
                if n >= self._buffer:
                    self._counters["buffer_full"] += 1     # BrainFlow overwrote: see the counter
                self._split(self._shim.get_board_data(n))
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(0.02, left))       # ~25 chunks/s, as serial devices send
        return self._chunks.popleft()

    def _played_out(self, total: int) -> bool:
        """Every row of the playback file read. The sample index alone cannot say so: rows
        missing from the file are an index jump, so it passes the row count while the last
        rows are still coming. Where BrainFlow overwrote rows not read in time (they never
        come), the index past the file's rows and nothing new for PLAYBACK_IDLE_S."""
        if self._counters["samples"] >= total:
            return True
        return (self._next >= total
                and time.monotonic() - self._rows_at >= PLAYBACK_IDLE_S)

    def _split(self, data: np.ndarray) -> None:
        """Rows of one BrainFlow read -> contiguous Chunks, index jumps where samples were lost."""
        n = data.shape[1]
        if n == 0:
            return
        ts = data[self._ts_row] if self._ts_row is not None else None
        missing = np.zeros(n, dtype=np.int64)      # samples lost before each sample
        if self._counter_row is not None:
            c = data[self._counter_row].astype(np.int64)
            prev = np.concatenate([[self._last_counter if self._last_counter is not None
                                    else c[0] - 1], c[:-1]])
            step = (c - prev) % COUNTER_MOD
            missing = np.where(step == 0, 0, step - 1)
            if (ts is not None and self._last_ts is not None and missing[0] > 0
                    and ts[0] > self._last_ts):
                # a loss longer than the counter's period: size it from the clock
                est = (ts[0] - self._last_ts) * self.fs_hz - 1
                wraps = max(0, int(round((est - missing[0]) / COUNTER_MOD)))
                missing[0] += wraps * COUNTER_MOD
            self._last_counter = int(c[-1])
        if ts is not None:
            self._last_ts = float(ts[-1])
        x = np.round(data[self._rows].T / self._uv).astype(np.int32)     # uV -> counts
        cuts = np.flatnonzero(missing)
        bounds = sorted({0, n, *cuts.tolist()})
        for a, b in zip(bounds[:-1], bounds[1:]):
            lost = int(missing[a])
            if lost:
                self._counters["lost_samples"] += lost
                self._counters["gaps"] += 1
                self._next += lost
            t_us = int(ts[a] * 1e6) if ts is not None else int(self._next * 1e6 / self.fs_hz)
            self._chunks.append(Chunk(index=self._next, seq=self._counters["chunks"],
                                      device_time_us=t_us, samples=x[a:b], gain=self.gain,
                                      baseline=self.baseline, leads=self.leads,
                                      fs_hz=self.fs_hz))
            self._counters["chunks"] += 1
            self._counters["samples"] += b - a
            self._next += b - a

    def close(self) -> None:
        shim, self._shim = self._shim, None
        if shim is None:
            return
        try:
            shim.stop_stream()
        except Exception as exc:   # noqa: BLE001 - the board may already be gone
            log.debug("%s: stop_stream on close: %r", self.name, exc)
        try:
            shim.release_session()
        except Exception as exc:   # noqa: BLE001
            log.debug("%s: release_session on close: %r", self.name, exc)

    def stats(self) -> dict[str, int]:
        return dict(self._counters)


__all__ = ["COUNTER_MOD", "BrainFlowSource", "board_id"]
