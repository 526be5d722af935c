"""Ventricular fibrillation / flutter from the signal itself, also where no QRS is found.

A pure function with explicit carried state, as `qrs_detect`: `state = vf_initial(fs_hz)`,
`segments, state = vf_detect(x, invalid, state)`. Offline is one call on the whole record, so
any chunking gives the same segments (tests/signal/test_vf.py checks random chunkings).

Every `HOP_S` on the stream's own sample clock, the last `SEGMENT_S` of the signal, band-passed
1-30 Hz (the pre-processing of the VF detectors compared by Amann et al., BioMed Eng OnLine
4:60, 2005: drift and mains out, VF's 3-9 Hz kept), is described by three literature features:

- TCSC, threshold-crossing sample count (Arafat, Chowdhury & Hasan, Signal Image Video Process
  5:1-10, 2011): the segment's ends tapered (0.25 s cosine), scaled by its largest |x|, the
  percentage of samples above 0.2. VF spends most of its time far from the baseline; a QRS
  rhythm crosses only during the QRS.
- VF-filter leakage (Kuo & Dillman, Computers in Cardiology 1978; as Amann 2005 defines it):
  the half period N from the mean |x| and |dx|, then the leakage of the signal through a
  filter that cancels a sine of that period, `sum|x_i + x_{i-N}| / sum(|x_i| + |x_{i-N}|)`.
  A sine-like VF leaks little; a spiky QRS rhythm leaks much.
- Spectral concentration (after Barro et al., J Biomed Eng 11:320, 1989): the dominant
  frequency F in 1-10 Hz and the share of the 1-30 Hz spectral amplitude within 0.7F-1.4F.
  VF and flutter put most of it in one band of 3-9 Hz; a QRS rhythm spreads it over harmonics.

A segment is VF when at least `vote` of the three agree and it is large enough to be a rhythm, not ADC noise on a flat line (fine VF
under that amplitude is left to the asystole alarm, which a monitor raises for no beats).
The thresholds (`VfThresholds`) were fixed by cross-validation over records (bench/alarms.py
`--choose-vf`, see its docstring: 3 folds over the 24 non-paced MIT-BIH, 39 SVDB and 18 CUDB
records here; the three folds chose 50/0.6/0.35, 45/0.6/0.30 and 50/0.6/0.35, and pooled
held out they found 22 of 22 CUDB VF episodes with 0.52 false VF alarms per hour on MIT-BIH
and SVDB); the defaults are the choice on all of them.

A segment holding any invalid sample (a gap's fill, a NaN in the file, leads off) gets no
decision (`vf` None): a fill is not a rhythm, and a monitor then reports the technical state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from edge_ecg.errors import SignalError
from edge_ecg.signal.filters import FilterState, filter_apply, filter_initial, make_filter

SEGMENT_S = 4.0          # the analysis segment (monitors and AEDs decide on 3-8 s)
HOP_S = 1.0              # one decision a second, as Amann 2005 stepped its analysis
BAND = "bandpass_1_30"
TAPER_S = 0.25           # Arafat 2011: cosine taper of the segment's first and last 0.25 s
TCSC_LEVEL = 0.2         # Arafat 2011: crossing level, a fraction of the segment's max |x|
PEAK_SEARCH_HZ = (1.0, 10.0)
SPECTRUM_HZ = (1.0, 30.0)


@dataclass(frozen=True)
class VfThresholds:
    """Decision thresholds (see the module docstring for how they were fixed)."""

    tcsc_pct: float = 50.0       # VF when TCSC > this
    leakage: float = 0.6         # VF when leakage < this
    concentration: float = 0.35  # VF when the 0.7F-1.4F amplitude share > this
    vote: int = 2                # of the three
    min_mean_abs_mv: float = 0.05   # below: too small to call (fine VF -> asystole alarm)


@dataclass(frozen=True)
class VfSegment:
    """One analysed segment `[start, end)` (the stream's sample clock, from its first sample)."""

    start: int
    end: int
    vf: bool | None              # None: the segment held invalid samples, no decision
    tcsc_pct: float = float("nan")
    leakage: float = float("nan")
    concentration: float = float("nan")
    dominant_hz: float = float("nan")
    mean_abs_mv: float = float("nan")


@dataclass(frozen=True)
class VfState:
    fs_hz: float
    seg: int                     # samples per segment
    hop: int
    thresholds: VfThresholds
    sos: np.ndarray
    filt: FilterState | None = None
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0))       # filtered, last < seg
    tail_bad: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    n: int = 0                   # samples seen
    next_end: int = 0            # end of the next segment
    last_good: float = 0.0       # last valid input sample: what an invalid one is held at


def vf_initial(fs_hz: float, thresholds: VfThresholds | None = None) -> VfState:
    if not np.isfinite(fs_hz) or fs_hz < 2 * SPECTRUM_HZ[1] + 1:
        raise SignalError(f"VF detection needs a rate above {2 * SPECTRUM_HZ[1] + 1:g} Hz, "
                          f"got {fs_hz}")
    seg = int(round(SEGMENT_S * fs_hz))
    return VfState(fs_hz=float(fs_hz), seg=seg, hop=int(round(HOP_S * fs_hz)),
                   thresholds=thresholds or VfThresholds(), sos=make_filter(BAND, fs_hz),
                   next_end=seg)


@lru_cache(maxsize=8)
def _segment_constants(n: int, fs_hz: float) -> tuple[np.ndarray, ...]:
    """What `segment_features` computes from the segment's length and rate only, once: the
    TCSC taper, the Hamming window, the spectrum's frequencies and its band and peak-search
    masks (the same arrays, read-only; ~40 us a segment of the stream's VF cost)."""
    k = min(int(round(TAPER_S * fs_hz)), n // 2)
    w = np.ones(n)
    if k > 0:
        ramp = 0.5 * (1.0 - np.cos(np.pi * np.arange(k) / k))
        w[:k], w[n - k:] = ramp, ramp[::-1]
    f = np.fft.rfftfreq(n, 1.0 / fs_hz)
    out = (w, np.hamming(n), f, (f >= SPECTRUM_HZ[0]) & (f <= SPECTRUM_HZ[1]),
           (f >= PEAK_SEARCH_HZ[0]) & (f <= PEAK_SEARCH_HZ[1]))
    for a in out:
        a.flags.writeable = False
    return out


def _leakage(x: np.ndarray, abs_sum: float, slope_sum: float) -> float:
    """The VF-filter leakage of a centred segment `x`, from the sums of |x[1:]| and |dx|:
    its half period, then the share of |x| that x shifted by it does not cancel."""
    if not slope_sum > 0:
        return 1.0
    half = int(np.floor(np.pi * abs_sum / slope_sum + 0.5))
    half = min(max(half, 1), x.size - 1)
    num = np.abs(x[half:] + x[:-half]).sum()
    den = (np.abs(x[half:]) + np.abs(x[:-half])).sum()
    return float(num / den) if den > 0 else 1.0


def segment_features(y: np.ndarray, fs_hz: float) -> dict[str, float]:
    """The three features (and the dominant frequency and mean |x|) of one filtered segment."""
    x = np.asarray(y, dtype=np.float64)
    x = x - x.mean()
    n = x.size
    mean_abs = float(np.mean(np.abs(x)))
    w, hamming, f, band, search = _segment_constants(n, float(fs_hz))
    # TCSC: taper both ends, scale by the largest |x|, share of samples above the level
    xt = x * w
    peak = float(np.max(np.abs(xt))) if n else 0.0
    tcsc = 100.0 * float(np.mean(np.abs(xt) > TCSC_LEVEL * peak)) if peak > 0 else 0.0
    # VF-filter leakage (Kuo & Dillman): half period from mean |x| over mean |dx|
    leak = _leakage(x, np.abs(x[1:]).sum(), np.abs(np.diff(x)).sum())
    # spectral concentration around the dominant frequency (Hamming-windowed amplitude)
    amp = np.abs(np.fft.rfft(x * hamming))
    total = amp[band].sum()
    if total > 0:
        fd = float(f[search][np.argmax(amp[search])])
        near = band & (f >= 0.7 * fd) & (f <= 1.4 * fd)
        conc = float(amp[near].sum() / total)
    else:
        fd, conc = 0.0, 0.0
    return {"tcsc_pct": tcsc, "leakage": leak, "concentration": conc, "dominant_hz": fd,
            "mean_abs_mv": mean_abs}


def segment_features_rows(y: np.ndarray, fs_hz: float) -> list[dict[str, float]]:
    """`segment_features` of each row of `y` `(S, n)`: the same floats, row by row. The
    steps that read a row whole (mean, |x|, taper, peak, slopes, spectrum) run once over the
    rows, each a per-row reduction over the row's contiguous samples as in the 1-D form (the
    same pairwise sums; numpy's FFT of each row, checked equal to the 1-D one in
    tests/signal/test_vf_rows.py); the steps sized by each row's own half-period and
    dominant frequency, and the sum over the spectrum's short band, stay per row. A 16-s chunk completes 16 segments: ~25 numpy calls
    each became ~10."""
    x = np.asarray(y, dtype=np.float64)
    n_seg, n = x.shape
    if n_seg == 0:
        return []
    x = x - x.mean(axis=1, keepdims=True)
    mean_abs = np.abs(x).mean(axis=1).tolist()
    w, hamming, f, band, search = _segment_constants(n, float(fs_hz))
    xt = np.abs(x * w)
    peak = (xt.max(axis=1) if n else np.zeros(n_seg)).tolist()
    dx = np.abs(x[:, 1:] - x[:, :-1]).sum(axis=1).tolist()             # np.diff per row
    s1 = np.abs(x[:, 1:]).sum(axis=1).tolist()
    amp = np.abs(np.fft.rfft(x * hamming, axis=1))
    # (the band sums per row: over a short row numpy may reduce across rows, summing in
    # another order than the 1-D form's pairwise sum)
    total = [float(a[band].sum()) for a in amp]
    f_search = f[search]
    dom = np.argmax(amp[:, search], axis=1).tolist() if f_search.size else [0] * n_seg
    out = []
    for i in range(n_seg):
        xi, pk = x[i], peak[i]
        tcsc = 100.0 * float(np.mean(xt[i] > TCSC_LEVEL * pk)) if pk > 0 else 0.0
        leak = _leakage(xi, s1[i], dx[i])
        if total[i] > 0:
            fd = float(f_search[dom[i]])
            near = band & (f >= 0.7 * fd) & (f <= 1.4 * fd)
            conc = float(amp[i][near].sum() / total[i])
        else:
            fd, conc = 0.0, 0.0
        out.append({"tcsc_pct": tcsc, "leakage": leak, "concentration": conc,
                    "dominant_hz": fd, "mean_abs_mv": mean_abs[i]})
    return out


def decide(feat: dict[str, float], th: VfThresholds) -> bool:
    """VF/flutter or not, from one segment's features."""
    votes = ((feat["tcsc_pct"] > th.tcsc_pct) + (feat["leakage"] < th.leakage)
             + (feat["concentration"] > th.concentration))
    return bool(votes >= th.vote and feat["mean_abs_mv"] >= th.min_mean_abs_mv)


def vf_detect(x: np.ndarray, invalid: np.ndarray | None,
              state: VfState) -> tuple[list[VfSegment], VfState]:
    """Feed the next samples of one lead `x` (T,) mV and which are invalid (T,) bool (None:
    all valid; NaN/inf are invalid too). Returns the segments completed, and the next state."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    bad = ~np.isfinite(x)
    if invalid is not None:
        invalid = np.asarray(invalid, dtype=bool).reshape(-1)
        if invalid.size != x.size:
            raise SignalError(f"invalid mask has {invalid.size} samples for {x.size}")
        bad |= invalid
    if x.size == 0:
        return [], state
    last_good = state.last_good
    if bad.any():
        # hold the last valid value through invalid samples (the filter state stays finite);
        # the segments they fall in get no decision anyway
        x = x.copy()
        idx = np.where(~bad, np.arange(x.size), -1)
        np.maximum.accumulate(idx, out=idx)
        x = np.where(idx >= 0, x[np.maximum(idx, 0)], last_good)
    if (~bad).any():
        last_good = float(x[np.flatnonzero(~bad)[-1]])
    filt = state.filt
    if filt is None:            # steady state for the first sample, as filter_offline does
        filt = filter_initial(state.sos, 1, x0=x[:1])
    y, filt = filter_apply(state.sos, x[:, None], filt)
    buf = np.concatenate([state.tail, y[:, 0].astype(np.float64)])
    buf_bad = np.concatenate([state.tail_bad, bad])
    n = state.n + x.size
    buf_start = n - buf.size     # stream index of buf[0]
    out = []
    end = state.next_end
    th = state.thresholds
    ends, good = [], []
    while end <= n:
        a = end - state.seg - buf_start
        ends.append(end)
        good.append(not buf_bad[a:a + state.seg].any())
        end += state.hop
    # the measured segments' features in one pass over their rows (segment_features_rows)
    rows = [e - state.seg - buf_start for e, g in zip(ends, good) if g]
    feats = iter(segment_features_rows(np.stack([buf[a:a + state.seg] for a in rows]),
                                       state.fs_hz) if rows else [])
    for e, g in zip(ends, good):
        if not g:
            out.append(VfSegment(start=e - state.seg, end=e, vf=None))
        else:
            feat = next(feats)
            out.append(VfSegment(start=e - state.seg, end=e, vf=decide(feat, th), **feat))
    # keep what the next segment needs: from its start on
    keep = min(max(end - state.seg - buf_start, 0), buf.size)
    tail, tail_bad = buf[keep:], buf_bad[keep:]
    return out, replace(state, filt=filt, tail=tail, tail_bad=tail_bad, n=n, next_end=end,
                        last_good=last_good)


__all__ = ["BAND", "HOP_S", "PEAK_SEARCH_HZ", "SEGMENT_S", "SPECTRUM_HZ", "TAPER_S", "TCSC_LEVEL",
           "VfSegment", "VfState", "VfThresholds", "decide", "segment_features",
           "segment_features_rows", "vf_detect",
           "vf_initial"]
