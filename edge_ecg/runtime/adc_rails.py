"""The ADC rails of a stream in mV, guessed from its integer counts: what lets the quality
check withhold a window with a saturated (clipped) sample when the source does not say its
sample format.

A `Chunk` carries int32 counts whatever the wire format. The format is taken as the narrowest
two's-complement width (16, 24, 32 bit: the formats of firmware_bridge.protocol.SampleFormat,
then int32) that holds every count seen so far: a stream whose counts ever leave the int16
range is int24. The cost of not knowing the wire format: an int24 stream that has never left
the int16 range has a sample exactly at +/-32767/-32768 counts withheld as saturation
(conservative, never a prediction over a clipped sample). Float samples (a replay of physical
values) have no rails.
"""

from __future__ import annotations

import numpy as np

from edge_ecg.signal.chunk import Chunk

FORMAT_BITS = (16, 24, 32)   # ADC sample widths (firmware_bridge int16/int24, then int32)


class AdcRails:
    """The running guess: `update(chunk)` -> `(lo_mv, hi_mv)` per lead, or None (no counts yet).

    Its only state is the range of counts seen and the last rails computed (recomputed only
    when the width, gain or baseline changes)."""

    def __init__(self) -> None:
        self.count_lo, self.count_hi = 0, 0
        self.key: tuple | None = None
        self.rails_mv: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray] | None:
        smp = chunk.samples
        if smp.size == 0 or smp.dtype.kind not in "iu":
            return self.rails_mv
        lo, hi = int(smp.min()), int(smp.max())
        self.count_lo, self.count_hi = min(self.count_lo, lo), max(self.count_hi, hi)
        for bits in FORMAT_BITS:
            if -(1 << (bits - 1)) <= self.count_lo and self.count_hi <= (1 << (bits - 1)) - 1:
                break
        gain = np.asarray(chunk.gain, dtype=np.float32)
        base = np.asarray(chunk.baseline, dtype=np.float32)
        key = (bits, gain.tobytes(), base.tobytes())
        if key == self.key:
            return self.rails_mv
        self.key = key
        # as Chunk.to_mv computes it (float32), so a sample at the rail compares equal
        lo_mv = (np.float32(-(1 << (bits - 1))) - base) / gain
        hi_mv = (np.float32((1 << (bits - 1)) - 1) - base) / gain
        self.rails_mv = (np.minimum(lo_mv, hi_mv), np.maximum(lo_mv, hi_mv))  # gain < 0 swaps
        return self.rails_mv


__all__ = ["FORMAT_BITS", "AdcRails"]
