"""The live beat tracker: resample -> contract filter -> streaming QRS detection, state carried.

Each call takes the next raw chunk (mV, source rate) and returns the filtered samples at the
bundle's rate, their noise-band and in-band power, and the beats decided in it. It runs the
same functions as the offline training chain (`edge_ecg.data.windows.make_windows`):
`resample_offline` -> `filter_offline(contract.filter)` -> `detect_beats`, in their streaming
form (`resample_apply`, `filter_apply`, `qrs_detect`), so any chunking gives the same filtered
samples and the same beats as one pass over the whole record. Nothing is re-filtered per window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_ecg.runtime.quality import NOISE_HIGHPASS
from edge_ecg.signal.contract import SignalContract
from edge_ecg.signal.delineate import delineate, delineate_flush, delineate_initial
from edge_ecg.signal.filters import FilterState, filter_apply, filter_initial, make_filter
from edge_ecg.signal.qrs import Beat, qrs_detect, qrs_initial


@dataclass(frozen=True)
class TrackerOutput:
    start: int                 # model-clock index of y[0]
    y: np.ndarray              # (n, L) float32 filtered mV at the contract rate
    hf_power: np.ndarray       # (n,) lead-mean power above the noise cut-off
    band_power: np.ndarray     # (n,) lead-mean power of the filtered signal
    beats: list[Beat]          # beats decided in this chunk (model clock)
    waves: list = field(default_factory=list)   # BeatWaves delineated in this chunk (model clock)


# Leads the runtime delineates, in order of preference: II (the monitoring lead, P waves
# clearest), then V2 and V5 (QRS onset and T end seen from the front and the side). Three
# leads combined keep the intervals a monitor shows while delineating all twelve costs about
# a third of the runtime's time per second of signal (measured, bench/runtime.py: 12 leads
# 163x real time in all, below the 200x target). `edge-ecg delineate` still uses every lead.
DELINEATE_LEADS = ("II", "V2", "V5", "I", "V1", "V6", "V3", "V4", "aVF", "III", "aVL", "aVR")
MAX_DELINEATE_LEADS = 3


def delineation_columns(lead_names, limit: int = MAX_DELINEATE_LEADS) -> tuple[int, ...]:
    """Source columns to delineate: the preferred leads present (standard names), up to
    `limit`; leads with other names fill the rest in their order."""
    names = list(lead_names)
    cols = [names.index(n) for n in DELINEATE_LEADS if n in names]
    cols += [k for k in range(len(names)) if k not in cols]
    return tuple(sorted(cols[:limit]))


class BeatTracker:
    """Carried state of the resampler, the contract filter, the noise filter and the detector."""

    def __init__(self, contract: SignalContract, fs_in_hz: float, n_leads: int,
                 delineate_cols: tuple[int, ...] | None = None) -> None:
        self.contract = contract
        # the source columns delineated (all when None); see `delineation_columns`
        self._delin = None if delineate_cols is None else np.asarray(delineate_cols, np.intp)
        self.fs_in_hz = float(fs_in_hz)
        self.fs_hz = float(contract.fs_hz)
        self.n_leads = int(n_leads)
        self._sos = make_filter(contract.filter, self.fs_hz)
        self._noise_sos = make_filter(NOISE_HIGHPASS, self.fs_hz)
        self._filt: FilterState | None = None
        self._noise: FilterState | None = None
        self._qrs = qrs_initial(self.fs_hz)
        # P/QRS/T per beat on the filtered signal, the delineator's post_s after each R (DelineationConfig)
        self._waves = delineate_initial(self.fs_hz)
        self._resample = None
        self._skip = 0          # resampler outputs still to drop (its fixed delay)
        self._last_in = None    # last raw sample, for the end-of-stream flush
        self.n_in = 0
        if abs(self.fs_in_hz - self.fs_hz) > 1e-9:
            from edge_ecg.signal.resample import resample_initial

            self._resample = resample_initial(self.fs_in_hz, self.fs_hz, self.n_leads)
            # stream output k is offline output k - delay: dropping the first `delay` outputs
            # puts the model clock on the offline one (model sample m <-> source m * fs_in/fs)
            self._skip = self._resample.delay_out
        self.produced = 0       # model-clock index of the next output sample

    def push(self, x_mv: np.ndarray) -> TrackerOutput:
        """Process the next raw chunk `(n_in, L)` mV (gaps already held; see RingBuffer)."""
        x = np.asarray(x_mv, dtype=np.float32)
        if x.shape[0]:
            self.n_in += x.shape[0]
            self._last_in = x[-1:].copy()
        if self._resample is not None:
            from edge_ecg.signal.resample import resample_apply

            x, self._resample = resample_apply(x, self._resample)
            if self._skip:
                drop = min(self._skip, x.shape[0])
                x, self._skip = x[drop:], self._skip - drop
        return self._process(x)

    def flush(self) -> TrackerOutput:
        """End of stream: the resampler's last outputs, with the signal held at its last
        sample after the end, exactly as `resample_offline` pads it; beats still waiting for
        delineation come out without boundaries (their samples never came)."""
        out = self._flush()
        rest, self._waves = delineate_flush(self._waves)
        out.waves.extend(rest)
        return out

    def _flush(self) -> TrackerOutput:
        empty = np.zeros((0, self.n_leads), np.float32)
        if self._resample is None or self._last_in is None:
            return self._process(empty)
        from math import ceil

        from edge_ecg.signal.resample import resample_apply

        up, down = self._resample.up, self._resample.down
        n_target = ceil(self.n_in * up / down)
        n_flush = ceil((self._resample.delay_out + 1) * down / up) + 1
        y, self._resample = resample_apply(np.repeat(self._last_in, n_flush, axis=0),
                                           self._resample)
        drop = min(self._skip, y.shape[0])
        y, self._skip = y[drop:], self._skip - drop
        return self._process(y[: max(n_target - self.produced, 0)])

    def _process(self, x: np.ndarray) -> TrackerOutput:
        start = self.produced
        n = x.shape[0]
        if n == 0:
            z = np.zeros(0, np.float32)
            return TrackerOutput(start, np.zeros((0, self.n_leads), np.float32), z, z, [])
        if self._filt is None or self._noise is None:   # steady state at the first sample
            # (as filter_offline does)
            self._filt = filter_initial(self._sos, self.n_leads, x0=x[0])
            self._noise = filter_initial(self._noise_sos, self.n_leads, x0=x[0])
        y, self._filt = filter_apply(self._sos, x, self._filt)
        hf, self._noise = filter_apply(self._noise_sos, x, self._noise)
        beats, self._qrs = qrs_detect(y, self._qrs)
        waves, self._waves = delineate(y if self._delin is None else y[:, self._delin], beats,
                                       self._waves)
        self.produced += n
        return TrackerOutput(start, y, np.einsum("tl,tl->t", hf, hf) / self.n_leads,
                             np.einsum("tl,tl->t", y, y) / self.n_leads, beats, waves)

    @property
    def detector_index(self) -> int:
        """Model-clock index of the next sample the detector will see."""
        return int(self._qrs.next_index)


__all__ = ["DELINEATE_LEADS", "MAX_DELINEATE_LEADS", "BeatTracker", "TrackerOutput",
           "delineation_columns"]
