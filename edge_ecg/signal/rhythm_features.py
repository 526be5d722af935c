"""Recording-level rhythm features from a beat history: RR irregularity and beat morphology.

What AF monitors and the CinC 2017 winners computed over a recording's whole RR series, beside
what a network sees in one window (Clifford et al. 2017; Datta et al. 2017; Lake & Moorman
2011 for the coefficient of sample entropy on RR). numpy only: the same function serves the
fitting script (edge_ecg.model.stacking), `edge-ecg evaluate` and the stream
(edge_ecg.runtime.rhythm_history).

Every feature is finite for every input, the empty history included (a recording with fewer
than 3 beats gets the neutral values below), so a stacker never meets a NaN.
"""

from __future__ import annotations

import numpy as np

from edge_ecg.signal.normalize import median_last_axis

RR_FEATURES = (
    "log_n_rr",        # log(1 + number of RR intervals): how much history the rest rests on
    "hr_bpm",          # 60000 / median RR
    "cv_rr",           # SDNN / mean RR
    "nrmssd",          # RMSSD / mean RR (normalised RMSSD, an AF screen's first test)
    "pnn50",           # share of successive differences > 50 ms
    "irregular_frac",  # share of successive differences > 15 % of the median RR
    "tpr",             # turning points / their expectation for a random series, 2(n-2)/3
    "sampen",          # sample entropy of RR, m=1, r=30 ms (COSEn's tolerance), smoothed
    "sd1_norm",        # Poincare SD1 / mean RR (beat-to-beat dispersion)
    "sd1_sd2",         # Poincare SD1 / SD2 (AF: a round cloud, near 1; sinus: elongated)
    "mad_norm",        # median |RR - median| / median: irregularity robust to a few ectopics
    "outlier_frac",    # share of RR more than 20 % off the median (ectopics, pauses)
    "min_rr_norm",     # shortest RR / median (premature beats)
    "max_rr_norm",     # longest RR / median (pauses, blocked beats)
    "rr_ac1",          # lag-1 autocorrelation of RR: bigeminy near -1, AF near 0, sinus > 0
    "rr_ac2",          # lag-2: bigeminy near +1, trigeminy negative
)
MORPH_FEATURES = (
    "p_wave_frac",     # share of delineated beats with a P wave before the QRS (AF: none)
    "pr_sd_ms",        # spread of PR where present (wandering or dissociated P waves)
    "qrs_median_ms",   # median QRS width (bundle branch block, ventricular rhythms: other)
    "wide_qrs_frac",   # share of QRS >= 120 ms
    "class_n_frac",    # share of classified beats the per-beat head calls N
    "class_s_frac",    # ... S (supraventricular ectopics: other rhythm)
    "class_v_frac",    # ... V
)
# Neutral values where a history is too short to measure: a regular sinus-like series, so
# that missing evidence never looks like irregularity.
_NEUTRAL_QRS_MS = 90.0
_MIN_RR = 3
SAMPEN_R_MS = 30.0       # Lake & Moorman 2011 (COSEn): a fixed 30-ms tolerance on RR
IRREGULAR_FRAC = 0.15
OUTLIER_FRAC = 0.20
WIDE_QRS_MS = 120.0


def _median(v: np.ndarray) -> float:
    """`float(np.median(v))` of a non-empty 1-D array of finite floats, the same number
    (`median_last_axis`), without np.median's first call importing numpy.ma (12 ms of an
    `edge-ecg stream` process)."""
    return float(median_last_axis(v)[0])


def sample_entropy(x: np.ndarray, r: float, m: int = 1) -> float:
    """-ln((A + 1) / (B + 1)): B pairs of length-m templates within `r` (Chebyshev), A of
    length m+1. The +1 keeps short series finite (the unsmoothed form is undefined where no
    length-(m+1) pair matches, common in 30 beats); O(n^2) memory, so callers bound n."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n <= m + 1:
        return 0.0
    k = n - m                          # templates of length m and m+1 start at 0..n-m-1
    d = np.zeros((k, k), dtype=np.float64)       # (Richman & Moorman 2000)
    for j in range(m):
        seg = x[j:j + k]
        d = np.maximum(d, np.abs(seg[:, None] - seg[None, :]))
    # pairs i < j, self-matches excluded: d is symmetric (|a - b| and |b - a| are the same
    # float) with a zero diagonal, so the upper triangle's count is (all - diagonal) / 2,
    # without gathering it (the same integers; r >= 0 holds the diagonal in)
    diag = k if r >= 0 else 0
    b = (int(np.count_nonzero(d <= r)) - diag) // 2
    last = x[m:m + k]
    d1 = np.maximum(d, np.abs(last[:, None] - last[None, :]))
    a = (int(np.count_nonzero(d1 <= r)) - diag) // 2
    return float(-np.log((a + 1.0) / (b + 1.0)))


def rr_features(rr_ms: np.ndarray) -> np.ndarray:
    """`RR_FEATURES` of an RR series (ms, in order; intervals across a gap left out)."""
    rr = np.asarray(rr_ms, dtype=np.float64)
    rr = rr[np.isfinite(rr) & (rr > 0)]
    n = rr.size
    if n < _MIN_RR:
        hr = 60000.0 / _median(rr) if n else 75.0
        return np.array([np.log1p(n), hr, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 0, 1.0, 1.0, 0, 0],
                        dtype=np.float64)
    mean, med = float(rr.mean()), _median(rr)
    d = np.diff(rr)
    sdnn = float(rr.std())
    rmssd = float(np.sqrt(np.mean(d ** 2)))
    # turning points: a local peak or trough among three successive RR
    tp = int(np.count_nonzero((d[:-1] * d[1:]) < 0))
    tpr = tp / (2.0 * (n - 2) / 3.0)
    sd1 = float(np.std(d) / np.sqrt(2.0))
    sd2 = float(np.sqrt(max(2.0 * sdnn ** 2 - sd1 ** 2, 0.0)))
    dev = np.abs(rr - med)
    x = rr - mean
    power = float(x @ x)
    # a spread under a millionth of the mean RR is rounding, not rhythm: its correlation
    # would be a ratio of rounding errors (+-1, "bigeminy"), so it reads as none
    flat = power <= n * (1e-6 * mean) ** 2
    ac = [0.0 if flat or n <= k else float(x[:-k] @ x[k:]) / power for k in (1, 2)]
    return np.array([
        np.log1p(n), 60000.0 / med, sdnn / mean, rmssd / mean,
        float(np.mean(np.abs(d) > 50.0)), float(np.mean(np.abs(d) > IRREGULAR_FRAC * med)),
        tpr, sample_entropy(rr, SAMPEN_R_MS), sd1 / mean, sd1 / sd2 if sd2 > 0 else 1.0,
        _median(dev) / med, float(np.mean(dev > OUTLIER_FRAC * med)),
        float(rr.min()) / med, float(rr.max()) / med, ac[0], ac[1],
    ], dtype=np.float64)


def morphology_features(pr_ms: np.ndarray, qrs_ms: np.ndarray,
                        class_counts: tuple[int, int, int, int]) -> np.ndarray:
    """`MORPH_FEATURES` from the delineated beats' PR and QRS (ms, NaN where the wave was not
    found; one entry per delineated beat) and `class_counts` = (N, S, V, classified beats)."""
    pr = np.asarray(pr_ms, dtype=np.float64)
    qrs = np.asarray(qrs_ms, dtype=np.float64)
    n_del = pr.size
    has_p = pr[np.isfinite(pr)]
    q = qrs[np.isfinite(qrs)]
    n_c, s_c, v_c, total = (int(v) for v in class_counts)
    return np.array([
        has_p.size / n_del if n_del else 1.0,
        float(has_p.std()) if has_p.size >= 2 else 0.0,
        _median(q) if q.size else _NEUTRAL_QRS_MS,
        float(np.mean(q >= WIDE_QRS_MS)) if q.size else 0.0,
        n_c / total if total else 1.0,
        s_c / total if total else 0.0,
        v_c / total if total else 0.0,
    ], dtype=np.float64)


__all__ = ["MORPH_FEATURES", "RR_FEATURES", "morphology_features", "rr_features",
           "sample_entropy"]
