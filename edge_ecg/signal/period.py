"""RR series and period features: the rhythm path's input.

Features follow the standard short-term HRV set (Task Force of the ESC/NASPE 1996): mean and
median RR, SDNN, RMSSD, pNN50, plus the coefficient of variation and the fraction of successive
differences over 12.5 % (irregularity that separates AF from sinus arrhythmia).
"""

from __future__ import annotations

import math

import numpy as np

PERIOD_FEATURES: tuple[str, ...] = (
    "mean_rr_s", "median_rr_s", "sdnn_s", "rmssd_s", "pnn50", "cv_rr",
    "irregular_frac", "beats_per_s", "dominant_cycle_s",
)


def rr_intervals_ms(r_peaks: np.ndarray, fs_hz: float) -> np.ndarray:
    """Successive RR intervals in milliseconds (length n_peaks - 1)."""
    r = np.asarray(r_peaks, dtype=np.float64)
    if r.ndim != 1:
        return np.diff(r) * (1000.0 / fs_hz)
    return (r[1:] - r[:-1]) * (1000.0 / fs_hz)        # np.diff's own subtraction, no wrapper


def rr_series(r_peaks: np.ndarray, fs_hz: float, max_beats: int) -> tuple[np.ndarray, np.ndarray]:
    """RR intervals padded to `max_beats`: `(rr_ms float32 (max_beats,), mask bool)`."""
    return rr_series_from_ms(rr_intervals_ms(r_peaks, fs_hz), max_beats)


def rr_series_from_ms(rr_ms: np.ndarray, max_beats: int) -> tuple[np.ndarray, np.ndarray]:
    """`rr_series` from intervals already computed by `rr_intervals_ms`."""
    rr = rr_ms[:max_beats]
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
    return period_features_from_ms(rr_intervals_ms(r_peaks, fs_hz), len(r_peaks), window_s)


def period_features_from_ms(rr_ms: np.ndarray, n_peaks: int, window_s: float) -> np.ndarray:
    """`period_features` from intervals already computed by `rr_intervals_ms`.

    The arithmetic is numpy's own, step for step (`mean` = sum / n, `std` = sqrt of the mean
    squared deviation from that mean, `median` = the middle value or the mean of the two middle
    ones, the fractions = count / n), written out because numpy's Python-level wrappers cost
    ~10x the arithmetic on a few dozen intervals; the results are the same float64 numbers
    (tests/signal/test_contract_frozen.py compares them with the original expressions).
    """
    rr = rr_ms / 1000.0
    n = rr.size
    feats = np.zeros(len(PERIOD_FEATURES), dtype=np.float32)
    feats[7] = n_peaks / window_s
    if n < 1:
        return feats
    mean_rr = float(np.add.reduce(rr)) / n                     # rr.mean()
    srt = np.sort(rr)
    k = n // 2
    median_rr = float(srt[k]) if n % 2 else (float(srt[k - 1]) + float(srt[k])) / 2
    dev = rr - mean_rr
    feats[0], feats[1] = mean_rr, median_rr
    feats[2] = math.sqrt(float(np.add.reduce(dev * dev)) / n)  # rr.std()
    feats[5] = feats[2] / max(mean_rr, 1e-6)
    if n >= 2:
        d = rr[1:] - rr[:-1]                                    # np.diff(rr)
        feats[3] = math.sqrt(float(np.add.reduce(d * d)) / (n - 1))
        ad = np.abs(d)
        feats[4] = np.count_nonzero(ad > 0.05) / (n - 1)
        feats[6] = np.count_nonzero(ad > 0.125 * rr[:-1]) / (n - 1)
    feats[8] = median_rr
    return feats


def dominant_cycle_samples(r_peaks: np.ndarray, fs_hz: float, default_s: float = 0.8) -> int:
    """Median RR in samples (the fold length of the period-fold scout); `default_s` without beats."""
    rr = np.diff(np.asarray(r_peaks, dtype=np.float64))
    return int(round(np.median(rr))) if rr.size else int(round(default_s * fs_hz))


__all__ = ["PERIOD_FEATURES", "dominant_cycle_samples", "period_features",
           "period_features_from_ms", "rr_intervals_ms", "rr_series", "rr_series_from_ms"]
