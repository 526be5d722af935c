"""ECG intervals from delineated beats: PR, QRS, QT, heart-corrected QT, and window medians.

QTc by Bazett (QT / RR^(1/2); Bazett HC, Heart 7:353, 1920) and Fridericia (QT / RR^(1/3);
Fridericia LS, Acta Med Scand 53:469, 1920), RR in seconds, QT and QTc in ms. Bazett
over-corrects at high rates, Fridericia less so; monitors show both (AHA/ACCF/HRS 2009
recommendations, Rautaharju PM et al., Circulation 119:e241).
"""

from __future__ import annotations

import math

RR_RANGE_MS = (250.0, 3000.0)   # 20-240 bpm: outside it an RR is not a cycle to correct by


def _rr_ok(rr_ms) -> bool:
    return rr_ms is not None and math.isfinite(rr_ms) and RR_RANGE_MS[0] <= rr_ms <= RR_RANGE_MS[1]


def qtc_bazett_ms(qt_ms: float | None, rr_ms: float | None) -> float | None:
    """QT / sqrt(RR in s); None when either is missing or the RR is not physiological."""
    if qt_ms is None or rr_ms is None or not _rr_ok(rr_ms):
        return None
    return float(qt_ms / math.sqrt(rr_ms / 1000.0))


def qtc_fridericia_ms(qt_ms: float | None, rr_ms: float | None) -> float | None:
    """QT / cbrt(RR in s); None when either is missing or the RR is not physiological."""
    if qt_ms is None or rr_ms is None or not _rr_ok(rr_ms):
        return None
    return float(qt_ms / (rr_ms / 1000.0) ** (1.0 / 3.0))


def _median(values) -> float | None:
    """np.median of the finite values, None for none: the middle one, or the mean of the two
    middle ones as numpy takes it (`(a + b) / 2` in float64), by sorting a short list in
    Python (a window holds ~10 beats: ~10x cheaper than np.median's array round trip)."""
    v = sorted(float(x) for x in values if x is not None and math.isfinite(x))
    n = len(v)
    if not n:
        return None
    m = n // 2
    return v[m] if n % 2 else (v[m - 1] + v[m]) / 2.0


def window_intervals(waves) -> dict:
    """Medians over a window's delineated beats (`BeatWaves`): HR (bpm, from the median RR),
    PR, QRS, QT (ms), and QTc by Bazett and Fridericia from the median QT and median RR (the
    way a 12-lead report corrects the representative beat). None where no beat gives one."""
    waves = [w for w in waves if w.valid]
    rr = _median(w.rr_ms for w in waves if _rr_ok(w.rr_ms))
    qt = _median(w.qt_ms for w in waves)
    return {
        "hr_bpm": None if rr is None else 60000.0 / rr,
        "pr_ms": _median(w.pr_ms for w in waves),
        "qrs_ms": _median(w.qrs_ms for w in waves),
        "qt_ms": qt,
        "qtc_bazett_ms": qtc_bazett_ms(qt, rr),
        "qtc_fridericia_ms": qtc_fridericia_ms(qt, rr),
        "n_delineated": len(waves),
    }


__all__ = ["RR_RANGE_MS", "qtc_bazett_ms", "qtc_fridericia_ms", "window_intervals"]
