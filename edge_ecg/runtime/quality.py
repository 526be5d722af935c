"""Signal quality: when a window's prediction must be withheld, and why.

A prediction is withheld, never guessed, when its window holds a gap, a non-finite sample, a
flat lead (electrode off), a lead stuck at the ADC rail (saturation), too much high-frequency
noise, or a beat count no heart makes. Reasons come from the fixed vocabulary `REASONS`, so a
consumer can switch on them.

Thresholds and where they come from:
- lead off: peak-to-peak below 20 uV over 1 s (a sliding block anywhere over the window, the
  stream around it included; front ends resolve ~1-5 uV; IEC 60601-2-27 allows 30 uV p-p
  noise) while another lead shows a QRS-sized deflection (>= 0.3 mV) in the same block, the
  window holding >= 0.4 s of such blocks (`flat_min_s`), or every lead flat over the whole
  window. Requiring a live lead keeps a
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
    # the part of a flat run a window must hold to be withheld for it: a run's edges are
    # uncertain by an isoelectric stretch within flat_mv (TP segment; up to 0.32 s measured
    # on the synthetic 8-lead record of tests/reliability at ~70 bpm), so less is ambiguous
    flat_min_s: float = 0.4
    alive_mv: float = 0.3            # a QRS deflection in another lead (QRS 0.5-2 mV)
    rail_run_s: float = 0.020
    min_bpm: float = 20.0
    max_bpm: float = 250.0
    max_noise_ratio: float = 0.3


def assess_window(raw_mv: np.ndarray, raw_flags: np.ndarray, fs_hz: float, n_beats: int,
                  noise_ratio: float, cfg: QualityConfig = QualityConfig(),
                  rails_mv: tuple[np.ndarray, np.ndarray] | None = None,
                  context: tuple[np.ndarray, np.ndarray, int] | None = None) -> tuple[str, ...]:
    """The reasons to withhold a window (empty when it is usable).

    `raw_mv` `(T, L)` and `raw_flags` `(T,)` are the window's samples on the source clock,
    before filtering (flat lines and rails are only visible there); `n_beats` the beats the
    tracker found in it; `noise_ratio` its high-band over in-band power. `context`
    `(ctx_mv (T', L), ctx_flags (T',), offset)` is the window with up to `flat_block_s` of
    stream on either side (the window starts at `offset` in it): a flat run that only partly
    lies in the window is measured over its whole length there.
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
    if context is None:
        xc, okc, w0 = xl, ok, 0
    else:
        xc = np.ascontiguousarray(np.asarray(context[0], dtype=np.float32).T)
        okc, w0 = np.asarray(context[1], dtype=np.uint8) == 0, int(context[2])
    if _lead_off(xl, ok, fs_hz, cfg, xc, okc, w0):
        reasons.append("lead_off")
    if _saturated(xl, ok, fs_hz, cfg, rails_mv):
        reasons.append("saturation")
    if np.isfinite(noise_ratio) and noise_ratio > cfg.max_noise_ratio:
        reasons.append("noise")
    minutes = raw_mv.shape[0] / fs_hz / 60.0
    if not (cfg.min_bpm * minutes <= n_beats <= cfg.max_bpm * minutes):
        reasons.append("beat_count")
    return tuple(reasons)


def flat_block_len(fs_hz: float, cfg: QualityConfig) -> int:
    """Samples in a lead-off block (`flat_block_s` at `fs_hz`)."""
    return max(int(round(cfg.flat_block_s * fs_hz)), 2)


def _lead_off(x: np.ndarray, ok: np.ndarray, fs_hz: float, cfg: QualityConfig,
              xc: np.ndarray | None = None, okc: np.ndarray | None = None,
              w0: int = 0) -> bool:
    """True when a lead is flat over blocks of `flat_block_s` clean samples anywhere (sliding
    blocks) while another lead shows a QRS-sized deflection in the same block, and the window
    holds `flat_min_s` of such blocks, or when every lead is flat over the whole window.

    `x` `(L, T)` / `ok` `(T,)` is the window; `xc` / `okc` the same with context on either
    side, the window starting at `w0` in it. The second lead's activity tells an electrode
    that is off from a pause (asystole, a sinus pause, a lead perpendicular to the heart's
    axis), where every lead is quiet. Sliding max/min (`sliding_ptp`) run only for leads
    that hold a flat half-block: any flat run of a block's length covers a whole half-block
    of the aligned half-block grid.
    """
    if xc is None:
        xc, okc, w0 = x, ok, 0
    block = flat_block_len(fs_hz, cfg)
    n_leads, t = xc.shape
    if t >= block:
        half = block // 2
        nh = (t // half) * half
        xh = xc[:, :nh].reshape(n_leads, -1, half)
        hclean = okc[:nh].reshape(-1, half).all(axis=1)
        hflat = ((xh.max(axis=2) - xh.min(axis=2)) < cfg.flat_mv) & hclean[None, :]
        if hflat.any():
            lo, hi = max(w0 - block + 1, 0), min(w0 + x.shape[1], t - block + 1)  # blocks
            if hi > lo:                                     # [p, p+block) overlapping the window

                def ptp_of(rows):                           # (len(rows), hi - lo)
                    return sliding_ptp(xc[rows, lo:hi + block - 1], block)

                cand = np.flatnonzero(hflat.any(axis=1))    # leads holding a flat half-block
                c = np.concatenate([[0], np.cumsum(okc, dtype=np.int64)])
                clean = (c[lo + block:hi + block] - c[lo:hi]) == block
                off = np.zeros((n_leads, hi - lo), dtype=bool)
                off[cand] = (ptp_of(cand) < cfg.flat_mv) & clean[None, :]
                if off.any():                               # then: another lead alive there
                    alive = (ptp_of(slice(None)) >= cfg.alive_mv).any(axis=0)
                    off &= alive[None, :]
                if off.any():
                    # samples of the window inside some off block: count of off blocks
                    # starting in [i - block + 1, i], from a cumulative sum over positions
                    cs = np.concatenate([np.zeros((n_leads, 1), np.int64),
                                         np.cumsum(off, axis=1)], axis=1)
                    i = np.arange(w0, w0 + x.shape[1])
                    j1 = np.clip(i, lo - 1, hi - 1) - lo + 1
                    j0 = np.clip(i - block + 1, lo, hi) - lo
                    held = ((cs[:, j1] - cs[:, j0]) > 0).sum(axis=1)
                    if np.any(held >= int(round(cfg.flat_min_s * fs_hz))):
                        return True
    # every lead flat over the whole window, on the window's own block grid
    n = (x.shape[1] // block) * block
    if n == 0:
        return False
    xb = x[:, :n].reshape(x.shape[0], -1, block)               # (L, blocks, block)
    clean_b = ok[:n].reshape(-1, block).all(axis=1)            # (blocks,)
    ptp_b = xb.max(axis=2) - xb.min(axis=2)                    # (L, blocks)
    return bool(clean_b.all() and (ptp_b < cfg.flat_mv).all())


def _running(x: np.ndarray, width: int, op: np.ufunc) -> np.ndarray:
    """`out[:, p] = op.reduce(x[:, p:p + width], axis=1)` for every start `p`, `x` `(R, T)`,
    `op` np.maximum or np.minimum, by doubling: after step j, `m[:, i]` is the extreme of
    `x[:, i:i + 2**j]`; two overlapping power-of-two spans then cover any width (the sparse-
    table trick of range-minimum queries, Bender & Farach-Colton, LATIN 2000). O(T log width)
    but every step is one SIMD ufunc call over the array: measured ~7x faster than the O(T)
    van Herk / Gil-Werman loop of scipy.ndimage on 12 x 6000 float32, width 500, and ~2x
    faster than a numpy van Herk / Gil-Werman (whose `op.accumulate` per block is serial)."""
    t = x.shape[1]
    k, m = 1, x
    while 2 * k <= width:
        m = op(m[:, :-k], m[:, k:])
        k *= 2
    n = t - width + 1
    return op(m[:, :n], m[:, width - k:width - k + n])


def sliding_ptp(x: np.ndarray, width: int) -> np.ndarray:
    """Peak-to-peak over every window of `width` samples: `(R, T)` -> `(R, T - width + 1)`.
    Max and min are exact, so these are the values scipy.ndimage's maximum_filter1d /
    minimum_filter1d give, without importing scipy.ndimage (+25 MB resident, measured; the
    runtime must fit 150 MB, issue #6)."""
    return _running(x, width, np.maximum) - _running(x, width, np.minimum)


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
