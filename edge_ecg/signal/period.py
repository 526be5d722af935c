"""RR series and period features: the rhythm path's input.

Features follow the standard short-term HRV set (Task Force of the ESC/NASPE 1996): mean and
median RR, SDNN, RMSSD, pNN50, plus the coefficient of variation and the fraction of successive
differences over 12.5 % (irregularity that separates AF from sinus arrhythmia).
"""

from __future__ import annotations

import numpy as np

PERIOD_FEATURES: tuple[str, ...] = (
    "mean_rr_s", "median_rr_s", "sdnn_s", "rmssd_s", "pnn50", "cv_rr",
    "irregular_frac", "beats_per_s", "dominant_cycle_s",
)


def rr_intervals_ms(r_peaks: np.ndarray, fs_hz: float) -> np.ndarray:
    """Successive RR intervals in milliseconds (length n_peaks - 1)."""
    r = np.asarray(r_peaks, dtype=np.float64)
    return np.diff(r) * (1000.0 / fs_hz)


def rr_series(r_peaks: np.ndarray, fs_hz: float, max_beats: int) -> tuple[np.ndarray, np.ndarray]:
    """RR intervals padded to `max_beats`: `(rr_ms float32 (max_beats,), mask bool)`."""
    rr = rr_intervals_ms(r_peaks, fs_hz)[:max_beats]
    out = np.zeros(max_beats, dtype=np.float32)
    mask = np.zeros(max_beats, dtype=bool)
    out[: rr.size] = rr
    mask[: rr.size] = True
    return out, mask


def period_features(r_peaks: np.ndarray, fs_hz: float, window_s: float) -> np.ndarray:
    """The `PERIOD_FEATURES` vector (float32), all zero where fewer than two beats exist.

    The dominant cycle length is the median RR: robust to an ectopic beat or a missed
    detection, unlike the mean.
    """
    rr = rr_intervals_ms(r_peaks, fs_hz) / 1000.0
    feats = np.zeros(len(PERIOD_FEATURES), dtype=np.float32)
    feats[7] = len(r_peaks) / window_s
    if rr.size < 1:
        return feats
    mean_rr, median_rr = float(rr.mean()), float(np.median(rr))
    feats[0], feats[1] = mean_rr, median_rr
    feats[2] = float(rr.std())
    feats[5] = feats[2] / max(mean_rr, 1e-6)
    if rr.size >= 2:
        d = np.diff(rr)
        feats[3] = float(np.sqrt(np.mean(d ** 2)))
        feats[4] = float(np.mean(np.abs(d) > 0.05))
        feats[6] = float(np.mean(np.abs(d) > 0.125 * rr[:-1]))
    feats[8] = median_rr
    return feats


def dominant_cycle_samples(r_peaks: np.ndarray, fs_hz: float, default_s: float = 0.8) -> int:
    """Median RR in samples (the fold length of the period-fold scout); `default_s` without beats."""
    rr = np.diff(np.asarray(r_peaks, dtype=np.float64))
    return int(round(np.median(rr))) if rr.size else int(round(default_s * fs_hz))
