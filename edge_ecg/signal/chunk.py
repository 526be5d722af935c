"""`Chunk`: the unit every source yields and the runtime consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """A block of consecutive samples from one device.

    `index` is the absolute sample index of the first sample as the source knows it (from the
    unwrapped frame sequence number times samples per frame, or the replay position). A jump
    in `index` between chunks is a gap: the ring buffer fills and marks it, never bridges it.
    """

    index: int                 # absolute index of samples[0], int64 clock of the runtime
    seq: int                   # unwrapped sequence number of the (first) frame, for reports
    device_time_us: int        # device timestamp of the first sample, microseconds
    samples: np.ndarray        # (n_samples, n_leads) integer ADC counts
    gain: np.ndarray           # (n_leads,) counts per mV
    baseline: np.ndarray       # (n_leads,) counts at 0 mV
    leads: tuple[str, ...]     # lead names, as in edge_ecg.signal.leads
    fs_hz: float
    # True: the signal before this chunk is not continuous with it and the span lost is
    # unknown (a device reboot: its sequence restarted). The gap the index jump books is a
    # lower bound, so no window across it is predicted on, whatever its length.
    discontinuity: bool = False

    def __post_init__(self) -> None:
        if self.samples.ndim != 2 or self.samples.shape[1] != len(self.leads):
            raise ValueError(
                f"Chunk samples must be (n_samples, {len(self.leads)}), got {self.samples.shape}"
            )

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def end(self) -> int:
        """Absolute index one past the last sample."""
        return self.index + self.n_samples

    def to_mv(self) -> np.ndarray:
        """Physical units: (n_samples, n_leads) float32 millivolts."""
        return ((self.samples.astype(np.float32) - self.baseline.astype(np.float32))
                / self.gain.astype(np.float32))


__all__ = ["Chunk"]
