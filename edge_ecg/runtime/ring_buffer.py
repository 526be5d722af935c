"""A preallocated ring buffer on the runtime's clock: absolute int64 sample indices.

Every sample has an absolute index (the source's `Chunk.index` clock). A jump forward in the
index is a gap: the missing samples are filled (so carried filter states stay finite and
bounded) and marked `FLAG_GAP`, never bridged silently. The fill is `fill="hold"` (the last
valid value) or `fill="linear"` (a straight line from the last valid value to the first sample
after the gap; the stream pipeline's choice: a held value steps at the gap's end, and a
band-pass turns a step into a QRS-like spike a detector may take for a beat). The gap is
written when the chunk after it arrives, so the line needs no look-ahead and any chunking fills
it the same way. Samples that arrive NaN or infinite are held and marked invalid the same way.

Sliding-window semantics and what "overflow" means here: the buffer keeps the last `capacity`
samples so that windows can be cut from history that has already been consumed. A *reader
cursor* marks how far a consumer (the beat tracker) has read. Overwriting samples the reader has
already consumed is the normal sliding of the window. Overwriting samples the reader has NOT yet
consumed is an overflow: those samples are lost to the consumer; they are counted in
`overflow_samples` and the reader sees them as an invalid (gap) span, never as silently
missing time. Samples that arrive with an index before the write position (duplicates,
a source replaying) are dropped and counted in `late_samples`.
"""

from __future__ import annotations

import numpy as np

from edge_ecg.errors import SignalError

# The longest gap a write fills. The fill itself is bounded by the capacity, but everything
# written since the reader's cursor, gap included, comes back from `read_new` in one array:
# an unbounded jump of the index (a corrupt or forged chunk: 1e12 samples ahead) would be
# an allocation of terabytes. 2**24 samples is 9.3 h at 500 Hz (~800 MB at 12 leads);
# callers that take indices from a network bound them far tighter (edge_ecg.ward.sequence).
MAX_GAP_SAMPLES = 1 << 24

# Per-sample flags (uint8 bit set); 0 = a measured, finite sample.
FLAG_GAP = np.uint8(1)       # missing: index jump, overflow, or not held
FLAG_NONFINITE = np.uint8(2)  # arrived NaN or infinite
FLAG_BREAK = np.uint8(4)      # with FLAG_GAP: a gap of unknown length (a device reboot)


class RingBuffer:
    """Fixed-capacity time-major `(capacity, n_leads)` float32 store with per-sample flags."""

    def __init__(self, capacity: int, n_leads: int, start_index: int = 0,
                 fill: str = "hold") -> None:
        if capacity <= 0 or n_leads <= 0:
            raise ValueError(f"capacity and n_leads must be positive, got {capacity}, {n_leads}")
        if fill not in ("hold", "linear"):
            raise ValueError(f"fill must be 'hold' or 'linear', got {fill!r}")
        self.fill = fill
        self.capacity = int(capacity)
        self.n_leads = int(n_leads)
        self._data = np.zeros((self.capacity, self.n_leads), dtype=np.float32)
        self._flags = np.zeros(self.capacity, dtype=np.uint8)
        # absolute indices as Python ints (exact at any length, and ~10x cheaper than numpy
        # int64 scalars in the per-read arithmetic)
        self._end = int(start_index)       # absolute index one past the last written sample
        self._first = int(start_index)     # absolute index of the first sample ever written
        self._read = int(start_index)      # reader cursor: next index the consumer reads
        self._lost_upto = int(start_index)  # unread samples below this are counted lost
        self._last = np.zeros(self.n_leads, dtype=np.float32)   # last valid value, for holds
        self.gap_samples = 0          # samples filled because the index jumped
        self.invalid_samples = 0      # samples that arrived NaN/inf (held and marked)
        self.overflow_samples = 0     # unread samples overwritten before the reader got them
        self.late_samples = 0         # samples dropped because their index was already written

    # --- clock -----------------------------------------------------------------------------
    @property
    def end(self) -> int:
        """Absolute index one past the newest sample."""
        return self._end

    @property
    def start(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(self._first, self._end - self.capacity)

    @property
    def read_index(self) -> int:
        return int(self._read)

    # --- writing -------------------------------------------------------------------------
    def write(self, index: int, x: np.ndarray, flags: np.ndarray | None = None,
              gap_flags: int = 0) -> tuple[int, int]:
        """Append samples `x` `(n, n_leads)` whose first sample has absolute `index`.

        Returns `(gap_start, gap_len)`: the span filled as a gap before these samples
        (`gap_len == 0` when contiguous). Samples with index < `end` are dropped (late).
        `flags` `(n,)` uint8 carries flags from upstream (e.g. a gap seen before resampling);
        `gap_flags` are set on the gap's fill besides `FLAG_GAP` (`FLAG_BREAK`).
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_leads:
            raise ValueError(f"expected (n, {self.n_leads}) samples, got {x.shape}")
        index = int(index)
        flags = (np.zeros(x.shape[0], dtype=np.uint8) if flags is None
                 else np.asarray(flags, dtype=np.uint8).copy())
        if index < self._end:                       # overlap with what is already written
            skip = min(int(self._end - index), x.shape[0])
            self.late_samples += skip
            x, flags, index = x[skip:], flags[skip:], index + skip
        gap_start, gap_len = int(self._end), index - int(self._end)
        if gap_len > MAX_GAP_SAMPLES:
            raise SignalError(f"the sample index jumps {gap_len} samples ahead (index {index}, "
                              f"buffer at {self._end}): more than {MAX_GAP_SAMPLES} is not a "
                              "gap but a broken clock; restart the stream at the new index")
        if gap_len > 0:
            self.gap_samples += gap_len
            n_fill = min(gap_len, self.capacity)
            if self.fill == "linear" and x.shape[0]:
                # from the last valid value (the first sample's, before any) to the next one
                nxt = np.where(np.isfinite(x[0]), x[0], self._last).astype(np.float32)
                last = self._last if self._end > self._first else nxt
                k = np.arange(gap_len - n_fill + 1, gap_len + 1, dtype=np.float32)[:, None]
                fill = last + (nxt - last) * (k / np.float32(gap_len + 1))
            else:
                fill = np.broadcast_to(self._last, (n_fill, self.n_leads))
            marks = np.full(n_fill, FLAG_GAP | np.uint8(gap_flags), np.uint8)
            self._put(index - n_fill, fill, marks, skipped=gap_len - n_fill)
        if x.shape[0]:
            finite = np.isfinite(x)
            bad = ~finite.all(axis=1)
            if bad.any():
                self.invalid_samples += int(bad.sum())
                flags[bad] |= FLAG_NONFINITE
                x = _hold_nonfinite(x, finite, self._last)
            self._put(index, x, flags)
            self._last = x[-1].copy()
        return gap_start, max(gap_len, 0)

    def _put(self, index: int, x: np.ndarray, flags: np.ndarray, skipped: int = 0) -> None:
        """Store `x` at `index` (`skipped` samples past `end` never fit); count unread overwrites."""
        n = x.shape[0]
        new_end = index + n
        # Unread samples lost: those below new_end - capacity that the reader has not consumed
        # (including `skipped` samples that never entered the buffer at all).
        oldest_kept = new_end - self.capacity
        lost_from = max(self._read, self._lost_upto)
        if oldest_kept > lost_from:
            self.overflow_samples += int(oldest_kept - lost_from)
            self._lost_upto = int(oldest_kept)
        if n > self.capacity:                       # only the newest `capacity` samples fit
            x, flags, index = x[-self.capacity:], flags[-self.capacity:], new_end - self.capacity
            n = self.capacity
        a = index % self.capacity
        k = min(n, self.capacity - a)
        self._data[a:a + k] = x[:k]
        self._flags[a:a + k] = flags[:k]
        if k < n:                                    # wraps around
            self._data[:n - k] = x[k:]
            self._flags[:n - k] = flags[k:]
        self._end = int(new_end)

    # --- reading -------------------------------------------------------------------------
    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Copy of samples `[start, stop)` and their flags; samples no longer (or not yet)
        held come back as zeros flagged `FLAG_GAP`."""
        start, stop = int(start), int(stop)
        n = max(stop - start, 0)
        out = np.zeros((n, self.n_leads), dtype=np.float32)
        flags = np.full(n, FLAG_GAP, dtype=np.uint8)
        lo, hi = max(start, self.start), min(stop, self.end)
        if hi > lo:
            a, b = lo % self.capacity, (hi - 1) % self.capacity + 1
            if a < b:                                # contiguous in memory: plain slices
                out[lo - start: hi - start] = self._data[a:b]
                flags[lo - start: hi - start] = self._flags[a:b]
            else:                                    # wraps: two slices
                k = self.capacity - a
                out[lo - start: lo - start + k] = self._data[a:]
                out[lo - start + k: hi - start] = self._data[:b]
                flags[lo - start: lo - start + k] = self._flags[a:]
                flags[lo - start + k: hi - start] = self._flags[:b]
            out[: lo - start] = out[lo - start]      # hold, so a lost span stays bounded
        return out, flags

    def view(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """`read(start, stop)` without the copy where it can: read-only views of the stored
        samples and flags when `[start, stop)` is wholly held and does not wrap, else a copy.

        A view is valid until the next `write` (which may overwrite it); the stream pipeline
        cuts and judges its windows between two writes. Saves a window-sized allocation and
        copy per read (three per window in the pipeline).
        """
        start, stop = int(start), int(stop)
        if self.start <= start <= stop <= self.end:
            a = start % self.capacity
            b = a + (stop - start)
            if b <= self.capacity:
                data, flags = self._data[a:b], self._flags[a:b]
                data.flags.writeable = False
                flags.flags.writeable = False
                return data, flags
        return self.read(start, stop)

    def read_new(self) -> tuple[int, np.ndarray, np.ndarray]:
        """Everything written since the last `read_new`: `(start_index, x, flags)`.

        After an overflow the samples lost to this reader come back flagged `FLAG_GAP` (held
        at the oldest value still stored) and are counted in `overflow_samples`.
        """
        start = int(self._read)
        x, flags = self.read(start, self.end)
        self._read = self._end
        return start, x, flags

    @property
    def unread(self) -> int:
        return int(self._end - self._read)

    def stats(self) -> dict[str, int]:
        return {"gap_samples": self.gap_samples, "invalid_samples": self.invalid_samples,
                "overflow_samples": self.overflow_samples, "late_samples": self.late_samples}


def _hold_nonfinite(x: np.ndarray, finite: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Replace non-finite entries per lead by the previous finite value (vectorised ffill)."""
    n, n_leads = x.shape
    idx = np.where(finite, np.arange(n)[:, None], -1)
    np.maximum.accumulate(idx, axis=0, out=idx)
    prev = np.vstack([last[None, :], x.astype(np.float32)])
    filled = prev[idx + 1, np.arange(n_leads)[None, :]]
    return np.where(finite, x, filled).astype(np.float32)


__all__ = ["FLAG_BREAK", "FLAG_GAP", "FLAG_NONFINITE", "MAX_GAP_SAMPLES", "RingBuffer"]
