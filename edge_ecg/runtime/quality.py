"""Signal quality: when a window's prediction must be withheld, and why.

A prediction is withheld, never guessed, when its window holds a gap, a non-finite sample, a
flat lead (electrode off), a lead stuck at the ADC rail (saturation), too much high-frequency
noise, or a beat count no heart makes. Reasons come from the fixed vocabulary `REASONS`, so a
consumer can switch on them.

Thresholds and where they come from:
- lead off: peak-to-peak below 20 uV over a whole 1-s block (front ends resolve ~1-5 uV; IEC
  60601-2-27 allows 30 uV p-p noise) while another lead shows a QRS-sized deflection (>= 0.3 mV)
  in the same block, or every lead flat over the whole window. Requiring a live lead keeps a
  pause (every lead quiet) from reading as an electrode off.
- saturation: the lead sits at its window extreme for >= 20 ms in a row (a clipped R wave; a real
  R peak at 360-1000 Hz is never flat for 20 ms), or touches the ADC rail when the source knows it.
- beat count: fewer than 20 or more than 250 beats per minute over the window: outside any
  rhythm the model is trained on, and the classic sign of a detector on noise or on a flat line.
- noise: power above 45 Hz (EMG, electrode motion, mains harmonics) over the power in the
  contract's band, mean over leads; above 0.3 (SNR ~5 dB) QRS detection degrades markedly
  (Friesen et al., IEEE TBME 37:85, 1990, detectors under EMG noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_ecg.runtime.ring_buffer import FLAG_GAP, FLAG_NONFINITE

REASONS: tuple[str, ...] = ("gap", "nan", "lead_off", "saturation", "noise", "beat_count")

NOISE_HIGHPASS = "highpass_45"   # the noise band's filter (edge_ecg.signal.filters name)


@dataclass(frozen=True)
class QualityConfig:
    flat_mv: float = 0.02
    flat_block_s: float = 1.0
    alive_mv: float = 0.3            # a QRS deflection in another lead (QRS 0.5-2 mV)
    rail_run_s: float = 0.020
    min_bpm: float = 20.0
    max_bpm: float = 250.0
    max_noise_ratio: float = 0.3


def assess_window(raw_mv: np.ndarray, raw_flags: np.ndarray, fs_hz: float, n_beats: int,
                  noise_ratio: float, cfg: QualityConfig = QualityConfig(),
                  rails_mv: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[str, ...]:
    """The reasons to withhold a window (empty when it is usable).

    `raw_mv` `(T, L)` and `raw_flags` `(T,)` are the window's samples on the source clock,
    before filtering (flat lines and rails are only visible there); `n_beats` the beats the
    tracker found in it; `noise_ratio` its high-band over in-band power.
    """
    reasons: list[str] = []
    flags = np.asarray(raw_flags, dtype=np.uint8)
    if np.any(flags & FLAG_GAP):
        reasons.append("gap")
    if np.any(flags & FLAG_NONFINITE):
        reasons.append("nan")
    ok = flags == 0
    # lead-major copy: reductions along the contiguous time axis are ~10x faster than along
    # axis 0 of a (T, 12) array (measured)
    xl = np.ascontiguousarray(np.asarray(raw_mv, dtype=np.float32).T)
    if _lead_off(xl, ok, fs_hz, cfg):
        reasons.append("lead_off")
    if _saturated(xl, ok, fs_hz, cfg, rails_mv):
        reasons.append("saturation")
    if np.isfinite(noise_ratio) and noise_ratio > cfg.max_noise_ratio:
        reasons.append("noise")
    minutes = raw_mv.shape[0] / fs_hz / 60.0
    if not (cfg.min_bpm * minutes <= n_beats <= cfg.max_bpm * minutes):
        reasons.append("beat_count")
    return tuple(reasons)


def _lead_off(x: np.ndarray, ok: np.ndarray, fs_hz: float, cfg: QualityConfig) -> bool:
    """True when a lead is flat over a whole block of clean samples while another lead shows
    a QRS-sized deflection in that block, or when every lead is flat over the whole window.

    `x` is lead-major `(L, T)`. The second lead's activity tells an electrode that is off
    from a pause (asystole, a sinus pause, a lead perpendicular to the heart's axis), where
    every lead is quiet.
    """
    block = max(int(round(cfg.flat_block_s * fs_hz)), 2)
    n = (x.shape[1] // block) * block
    if n == 0:
        return False
    xb = x[:, :n].reshape(x.shape[0], -1, block)               # (L, blocks, block)
    clean = ok[:n].reshape(-1, block).all(axis=1)              # (blocks,)
    ptp = xb.max(axis=2) - xb.min(axis=2)                      # (L, blocks)
    flat = (ptp < cfg.flat_mv) & clean[None, :]
    alive = (ptp >= cfg.alive_mv).any(axis=0, keepdims=True)   # some lead beats in the block
    if np.any(flat & alive):
        return True
    return bool(clean.all() and flat.all(axis=1).any() and not (ptp >= cfg.flat_mv).any())


def _saturated(x: np.ndarray, ok: np.ndarray, fs_hz: float, cfg: QualityConfig,
               rails_mv: tuple[np.ndarray, np.ndarray] | None) -> bool:
    """A lead at its window extreme for `rail_run_s` in a row, or at a known rail; `x` (L, T)."""
    if x.shape[1] == 0:
        return False
    xo = x if ok.all() else x[:, ok]
    if xo.shape[1] == 0:
        return False
    if rails_mv is not None:
        lo, hi = rails_mv
        if np.any((xo <= lo[:, None]) | (xo >= hi[:, None])):
            return True
    run = max(int(round(cfg.rail_run_s * fs_hz)), 2)
    if x.shape[1] < run:
        return False
    hi_v, lo_v = xo.max(axis=1), xo.min(axis=1)
    live = (hi_v - lo_v) >= cfg.flat_mv                         # a flat lead is lead-off instead
    at_hi, at_lo = x == hi_v[:, None], x == lo_v[:, None]
    # fast reject: a run needs `run` samples at one extreme (a sharp peak has 1-3)
    cand = live & ((at_hi.sum(axis=1) >= run) | (at_lo.sum(axis=1) >= run))
    if not cand.any():
        return False
    at_extreme = ((at_hi | at_lo) & ok[None, :])[cand]
    # a run of `run` consecutive samples at the extreme: windowed sum of the indicator
    c = np.cumsum(np.hstack([np.zeros((at_extreme.shape[0], 1), np.int64), at_extreme]), axis=1)
    return bool(np.any(c[:, run:] - c[:, :-run] >= run))


def noise_ratio(hf_power: np.ndarray, band_power: np.ndarray) -> float:
    """Mean high-band over mean in-band power over a window (per-sample powers, lead-mean)."""
    band = float(np.mean(band_power))
    return float(np.mean(hf_power)) / band if band > 1e-12 else float("nan")  # flat: lead_off
