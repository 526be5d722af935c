"""When a window is final: its beats all decided and every lead's state at its end known.

A window is cut only once later samples cannot change it, so the stream's windows, beats and
quality verdicts equal those of the offline pass over the whole record, on any chunking.
"""

from __future__ import annotations

import numpy as np

from edge_ecg.runtime.ring_buffer import RingBuffer

# A window is final once a beat at least this far past its end is decided: later beats can
# only lie after that one (the detector's refractory period minus its R search window,
# edge_ecg.signal.qrs), so the window's beats are exactly those the offline pass finds.
SETTLE_MARGIN_S = 0.2
# ... or once the detector is this far past the end without such a beat (asystole, lead off):
# a prediction is never held back longer. Longer than the search-back horizon at 60 bpm.
SETTLE_MAX_S = 2.5


def beats_settled(beats: np.ndarray, detector_index: int, end: int, fs_hz: float) -> bool:
    """Whether the beats of a window ending at model-clock sample `end` are all decided:
    `beats` are the decided beats (model clock, detection order), `detector_index` how far
    the detector has looked."""
    if beats.size and beats[-1] >= end + SETTLE_MARGIN_S * fs_hz:
        return True
    return detector_index >= end + SETTLE_MAX_S * fs_hz


def tail_decided(raw: RingBuffer, s1: int, block_in: int, flat_mv: float) -> bool:
    """Whether every lead's state at the window's end (source sample `s1`) is known: a lead
    flat from the window's last sample to the newest one may be the start of a lead-off run,
    so the window waits (at most `block_in` source samples, the quality check's `flat_block_s`)
    until that run is long enough to judge or ends. A lead that shows activity there decides
    at once."""
    if raw.end >= s1 + block_in:
        return True
    tail, flags = raw.view(max(s1 - 1, raw.start), raw.end)
    if tail.shape[0] == 0 or np.any(flags):
        return True          # a gap or a NaN there: the window is withheld for that anyway
    return not bool(np.any(tail.max(axis=0) - tail.min(axis=0) < flat_mv))


__all__ = ["SETTLE_MARGIN_S", "SETTLE_MAX_S", "beats_settled", "tail_decided"]
