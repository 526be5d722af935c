"""Streaming wave delineation: onset, peak and offset of P, QRS and T for each detected beat.

Anchored on the QRS detector's R peaks (`edge_ecg.signal.qrs`). Each beat is delineated from a
fixed window of input samples, `[R - pre_s, R + post_s]`, once the stream has reached its end:
a pure function of those samples (plus the previous beat's T offset and whether the next beat
was already decided by then), so any chunking gives the same boundaries as one call on the
whole record, and the decision delay is bounded: `post_s` after R (plus one chunk when streamed).

Per lead, inside the window (zero-phase low-pass: forward-backward Butterworth, so no group
delay shifts a boundary):

- QRS (`qrs_lowpass_hz` low-pass): the slope peaks of the complex are the local maxima of
  |slope| above `qrs_sig` of the largest near R, chained outward from R while less than
  `qrs_gap_s` apart with no flat run (`qrs_flat_s`) between them; smaller slope peaks (a q
  wave, a terminal s, above `qrs_small`) extend the chain the same way. Onset is where |slope|
  falls below `xi_qrs_on` of the first slope peak going back, or a nearer local minimum of
  |slope| under `xi_qrs_min` of it; offset likewise after the last (the threshold and
  local-minimum rules of Martinez JP et al., IEEE TBME 51:570, 2004, on the derivative
  instead of a wavelet scale).
- T and P (`pt_lowpass_hz` low-pass): the peak is the largest deviation from the isoelectric
  level (PR segment for T; a line across the search window for P) in a search window bounded
  by the QRS and the neighbouring beats (T: at most `t_end_max_s` = a + b RR after R); onset
  and offset by the trapezium-area method (Vazquez-Seisdedos CR et al., BioMed Eng OnLine
  10:75, 2011; Zhang Q et al., IEEE TBME 53:2363, 2006): from the steepest point of a limb,
  the point that maximises the area of the trapezium spanned with a fixed reference point
  further out. A P wave counts when its deviation exceeds `p_min_mv` and `p_snr` times the
  window's high-frequency noise, and stands alone in its window (nothing else over `p_alone`
  of it: flutter and fibrillatory waves come in trains).

Across leads ("combined"): QRS onset/offset are quantiles (`qrs_on_q`, `qrs_off_q`: medians)
over the leads that found them, and the P and T search windows of every lead are then bounded
by that combined QRS; a P wave is present when at least `p_lead_frac` of the usable leads see
one and its PR is within `p_pr_tol_s` of the previous beat's P candidate (sinus P waves keep
their PR; this uses only earlier beats, so it streams); each combined boundary is the median
over the leads that found it. A single lead is the same code with one row.

Bad input: a lead with a non-finite sample in the beat's window, or flat in it (peak-to-peak
below `flat_mv`), gives no boundaries for that beat (marked -1 per lead); a beat no lead can
delineate is reported with `valid=False` and no boundaries, never a guessed one.

Constants: the names in backticks are fields of `DelineationConfig` (defaults:
`DEFAULT_DELINEATION`), passed to `delineate_initial` (the stream's state carries them),
`delineate_window` or `delineate_record`; nothing reads module globals, so a stream and an
offline run with the same config give the same boundaries.

Parameters marked "LUDB" were chosen on the odd-numbered LUDB records in ../shared/data (12
leads combined, scored against the consensus of the leads' marks; T window and QRS chaining
also on lead II alone) and checked on the even-numbered ones, which were never used to choose
(bench/delineate.py --half odd|even reports both). Figures: bench/delineate.py.
"""

from __future__ import annotations

import math
import numbers
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from edge_ecg.errors import SignalError
from edge_ecg.signal import design
from edge_ecg.signal.filters import sos_step

if TYPE_CHECKING:
    from edge_ecg.signal.qrs import QRSConfig

BOUNDARIES = ("p_on", "p_peak", "p_off", "qrs_on", "qrs_peak", "qrs_off", "t_on", "t_peak",
              "t_off")
_B = {name: i for i, name in enumerate(BOUNDARIES)}

@dataclass(frozen=True)
class DelineationConfig:
    """The delineator's constants, passed in explicitly (as wfdb's `XQRS.Conf`): build a variant
    with `dataclasses.replace(DEFAULT_DELINEATION, p_snr=4.0)` and hand it to
    `delineate_initial` (the state carries it) or `delineate_window`; nothing reads module
    globals. Frozen: a running stream's constants cannot change under it. Defaults: the values
    chosen on LUDB (module docstring)."""

    fs_range_hz: tuple[float, float] = (100.0, 2000.0)  # rates the design is checked at
    pre_s: float = 0.60         # window before R: P up to ~0.45 s before R (PR <= 0.34 s) +
    #                             filter margin
    post_s: float = 0.80        # window after R: T offset up to t_end_max_s + filter margin =
    #                             the delay
    margin_s: float = 0.10      # filter edge margin kept out of every search window
    qrs_lowpass_hz: float = 60.0  # LUDB: keeps the QRS corners sharp (40 Hz widened them ~8 ms)
    pt_lowpass_hz: float = 15.0   # P and T carry little above 15 Hz
    qrs_core_s: float = 0.05    # largest |slope| within 50 ms of R sets the scale
    qrs_search_s: tuple[float, float] = (0.15, 0.20)  # slope peaks searched from 150 ms before
    #                                                   to 200 ms after R
    qrs_sig: float = 0.20       # LUDB: a slope peak belongs to the QRS above 20 % of the largest
    qrs_small: float = 0.10     # LUDB: smaller slope peaks (q, terminal s) above 10 % join it
    qrs_gap_s: float = 0.04     # LUDB: ... and within 40 ms of its neighbour in the chain
    qrs_flat: float = 0.03      # LUDB: |slope| under 3 % of the largest is flat ...
    qrs_flat_s: float = 0.012   # ... and a flat run of 12 ms between slope peaks splits them
    xi_qrs_min: float = 0.2     # LUDB: a local minimum of |slope| under 20 % of the peak ends
    #                             the QRS (0: no local-minimum rule)
    xi_qrs_on: float = 0.04     # LUDB: onset where |slope| < 4 % of the first slope peak
    xi_qrs_off: float = 0.08    # LUDB: offset where |slope| < 8 % of the last slope peak
    t_start_s: float = 0.06     # T search starts 60 ms after the QRS offset (ST segment)
    t_end_max_s: tuple[float, float, float] = (0.10, 0.40, 0.70)  # LUDB: T offset at most
    #                                                a + b * RR after R, never past c
    t_limb_s: float = 0.16      # steepest point of a T limb within 160 ms of the peak
    t_ref_s: float = 0.08       # LUDB: trapezium reference point 80 ms beyond the steepest point
    p_search_s: float = 0.32    # P searched in the 320 ms before the QRS onset ...
    p_guard_s: float = 0.02     # ... up to 20 ms before it
    p_limb_s: float = 0.05      # LUDB: steepest point of a P limb within 50 ms of its peak
    p_ref_s: float = 0.03       # LUDB: trapezium reference 30 ms beyond it
    p_min_mv: float = 0.01      # LUDB: smaller deviations (10 uV) are not taken as a P wave
    p_snr: float = 3.0          # LUDB: P deviation over 3x the window's high-frequency noise
    p_alone: float = 0.7        # LUDB: see the P search (a train of waves is not a P)
    p_pr_tol_s: float = 0.04    # LUDB: PR may change by 40 ms from one beat's P to the next
    p_lead_frac: float = 0.3    # LUDB: P present when at least 30 % of the usable leads see one
    qrs_on_q: float = 0.5       # LUDB: combined QRS onset = this quantile of the leads' onsets
    qrs_off_q: float = 0.5      # LUDB: ... offset
    flat_mv: float = 0.01       # a lead with < 10 uV peak-to-peak in the window is flat
    next_guard_s: float = 0.10  # T must end 100 ms before the next beat's R when it is known
    default_rr_s: float = 0.8   # RR assumed for the T window before two beats are known
    start_min_s: float = 0.25   # a beat within 250 ms of the stream's start is not delineated
    #                             (its QRS onset and PR segment may precede the first sample)
    hold_s: float = 3.0         # input kept this long: the detector decides a beat at most ~2 s
    #                             after its R (learning period, search back); a beat decided
    #                             later than hold_s after R finds its samples gone: invalid

    def __post_init__(self) -> None:
        """Reject values the delineator cannot run with, naming the field: a bad value fails
        here, not as a negative index that silently reads the wrong samples."""
        defaults = {f.name: f.default for f in fields(self)}

        def need(name: str, what: str) -> ValueError:
            return ValueError(f"DelineationConfig.{name} = {getattr(self, name)!r}: {what} "
                              f"(the default is {defaults[name]!r})")

        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(f.default, tuple):
                if not (isinstance(v, (tuple, list)) and len(v) == len(f.default)
                        and all(_real(x) and x >= 0 for x in v)):
                    raise need(f.name, f"needs {len(f.default)} finite numbers >= 0")
                object.__setattr__(self, f.name, tuple(v))   # hashable, as a frozen field
            elif not _real(v):
                raise need(f.name, "needs a finite number")
            elif f.name in _POSITIVE and not v > 0:
                raise need(f.name, "needs a value > 0")
            elif not v >= 0:
                raise need(f.name, "needs a value >= 0")
        lo, hi = self.fs_range_hz
        if not 0 < lo <= hi:
            raise need("fs_range_hz", "needs 0 < low <= high")
        for name in ("qrs_on_q", "qrs_off_q"):
            if not getattr(self, name) <= 1:
                raise need(name, "needs a quantile in [0, 1]")
        # the QRS onset/offset search runs 50 ms beyond qrs_search_s (_qrs_lead): it must stay
        # inside the beat's window, or it would index from the window's other end
        if not self.pre_s > self.qrs_search_s[0] + 0.05:
            raise need("pre_s", f"needs more than qrs_search_s[0] + 0.05 = "
                       f"{self.qrs_search_s[0] + 0.05:g} s")
        if not self.post_s > self.qrs_search_s[1] + 0.05:
            raise need("post_s", f"needs more than qrs_search_s[1] + 0.05 = "
                       f"{self.qrs_search_s[1] + 0.05:g} s")
        if not self.t_end_max_s[2] > 0:
            raise need("t_end_max_s", "needs a cap c > 0 (T offset never past c after R)")


# fields that must be > 0 (windows, cut-offs); the rest must be >= 0
_POSITIVE = frozenset(("pre_s", "post_s", "qrs_lowpass_hz", "pt_lowpass_hz", "qrs_core_s",
                       "qrs_gap_s", "qrs_flat_s", "t_limb_s", "t_ref_s", "p_search_s",
                       "p_limb_s", "p_ref_s", "default_rr_s", "hold_s"))


def _real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


DEFAULT_DELINEATION = DelineationConfig()


@dataclass(frozen=True)
class BeatWaves:
    """One beat's boundaries (absolute sample indices; None where absent) and intervals.

    `per_lead` is `(n_leads, len(BOUNDARIES))` int64, -1 where that lead gave no boundary.
    `rr_ms` is the interval from the previous beat's R (None for the first beat)."""

    r: int
    decided_at: int
    fs_hz: float
    valid: bool
    points: dict
    per_lead: np.ndarray
    rr_ms: float | None = None

    def __getitem__(self, name: str) -> int | None:
        return self.points.get(name)

    def _ms(self, a: str, b: str) -> float | None:
        pa, pb = self.points.get(a), self.points.get(b)
        if pa is None or pb is None:
            return None
        return (pb - pa) * 1000.0 / self.fs_hz

    @property
    def pr_ms(self) -> float | None:
        """PR interval: P onset to QRS onset."""
        return self._ms("p_on", "qrs_on")

    @property
    def qrs_ms(self) -> float | None:
        return self._ms("qrs_on", "qrs_off")

    @property
    def qt_ms(self) -> float | None:
        """QT interval: QRS onset to T offset."""
        return self._ms("qrs_on", "t_off")

    @property
    def delay_ms(self) -> float:
        return (self.decided_at - self.r) * 1000.0 / self.fs_hz

    def intervals(self) -> dict:
        """PR, QRS, QT and the beat's QTc (Bazett, Fridericia; from its preceding RR), ms."""
        from edge_ecg.signal.intervals import qtc_bazett_ms, qtc_fridericia_ms

        qt = self.qt_ms
        return {"pr_ms": self.pr_ms, "qrs_ms": self.qrs_ms, "qt_ms": qt, "rr_ms": self.rr_ms,
                "qtc_bazett_ms": qtc_bazett_ms(qt, self.rr_ms),
                "qtc_fridericia_ms": qtc_fridericia_ms(qt, self.rr_ms)}


@dataclass
class DelineationState:
    """What the delineator carries between chunks (plain data; replaced, never mutated)."""

    fs_hz: float
    config: DelineationConfig       # the constants, fixed for the stream's life
    next_index: int                 # absolute index of the next sample to arrive
    pre: int
    post: int
    n_leads: int | None = None      # None until the first chunk (the arrays empty)
    # (L, n) input samples ending at next_index
    hist: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    start_index: int = 0            # index of the stream's first sample
    first: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (L,) its first sample
    pending: tuple = ()             # (r, decided_at) of beats not delineated yet, ascending
    prev_r: int | None = None       # R of the last beat delineated
    prev_t_off: int | None = None   # its T offset (bounds the next P search)
    prev_rr: int | None = None      # last RR, samples
    prev_pr: int | None = None      # PR of the last beat's P candidate, samples


def delineate_initial(fs_hz: float, start_index: int = 0,
                      config: DelineationConfig = DEFAULT_DELINEATION) -> DelineationState:
    """A delineator at rest for a stream at `fs_hz` whose next sample has index `start_index`,
    with the constants of `config` for the stream's whole life (the state carries them)."""
    if not isinstance(config, DelineationConfig):
        raise TypeError(f"delineate_initial: config must be a DelineationConfig, got "
                        f"{type(config).__name__} (build one with "
                        "dataclasses.replace(DEFAULT_DELINEATION, ...))")
    lo, hi = config.fs_range_hz
    if not np.isfinite(fs_hz) or fs_hz < lo or fs_hz > hi:
        raise SignalError(f"delineation needs a sampling rate in [{lo:g}, {hi:g}] Hz, "
                          f"got {fs_hz}")
    fs = float(fs_hz)
    return DelineationState(fs_hz=fs, config=config, next_index=int(start_index),
                            pre=round(config.pre_s * fs), post=round(config.post_s * fs))


@lru_cache(maxsize=16)
def _sos(cut_hz: float, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    sos = np.ascontiguousarray(design.butter(2, min(cut_hz, 0.45 * fs_hz), "lowpass", fs_hz))
    return sos, design.sosfilt_zi(sos)


def _zero_phase(x: np.ndarray, cut_hz: float, fs: float) -> np.ndarray:
    """Forward-backward low-pass of `(L, n)` float64, each pass started in steady state."""
    sos, zi = _sos(cut_hz, fs)
    y = np.array(x, dtype=np.float64, order="C")
    z = np.ascontiguousarray(zi[None, :, :] * y[:, :1, None])
    sos_step(sos, y, z)
    y = np.ascontiguousarray(y[:, ::-1])
    z = np.ascontiguousarray(zi[None, :, :] * y[:, :1, None])
    sos_step(sos, y, z)
    return y[:, ::-1]


def _gradient(y: np.ndarray) -> np.ndarray:
    """`np.gradient(y, axis=1)` for `(L, n >= 2)`, the same floats (central differences
    halved inside, one-sided at the ends) without its argument handling: 14 us a call of
    the 25 us a beat spent in it (measured, 3 leads x 700 samples)."""
    out = np.empty_like(y)
    np.subtract(y[:, 2:], y[:, :-2], out=out[:, 1:-1])
    out[:, 1:-1] /= 2.0
    out[:, 0] = y[:, 1] - y[:, 0]
    out[:, -1] = y[:, -1] - y[:, -2]
    return out


def _median(a: np.ndarray) -> float:
    """`np.median` of a short 1-D float64 array without NaN, the same float (the middle of
    the sorted values, or the mean of the two middle ones): np.median's generic path costs
    ~15 us a call and a beat makes 4 per lead (cProfile: 18 % of delineation)."""
    v = np.sort(a)
    m = v.size // 2
    return float(v[m]) if v.size % 2 else float((v[m - 1] + v[m]) / 2.0)


def _medians(a: np.ndarray) -> np.ndarray:
    """`_median` of each row of `(L, m)`, the same floats."""
    v = np.sort(a, axis=1)
    m = v.shape[1] // 2
    return v[:, m].copy() if v.shape[1] % 2 else (v[:, m - 1] + v[:, m]) / 2.0


def _quantile(v: np.ndarray, q: float) -> float:
    """`np.quantile(v, q)` (linear method) of a short 1-D int64 array, the same float. The
    median (every q the module uses today) in a few operations: numpy's lerp gives
    b - (b - a) * 0.5 between the middle pair, which is exact in float64 for sample indices;
    other q go to numpy."""
    if q != 0.5:
        return float(np.quantile(v, q))
    w = np.sort(v)
    m = w.size // 2
    if w.size % 2:
        return float(w[m])
    a, b = float(w[m - 1]), float(w[m])
    return b - (b - a) * 0.5


def _line(b0: float, b1: float, num: int, m: int) -> np.ndarray:
    """`np.linspace(b0, b1, num)[:m]`, the same floats (numpy's arange * step + start, and
    its special case of a zero step) for a tenth of its ~10 us."""
    y = np.arange(m, dtype=np.float64)
    step = (b1 - b0) / (num - 1)
    if step == 0:
        y /= num - 1
        y *= b1 - b0
    else:
        y *= step
    y += b0
    if m >= num:
        y[num - 1] = b1
    return y


def _last_below(a: np.ndarray, lo: int, hi: int, thr: float) -> int:
    """Largest index in [lo, hi) with a < thr; lo when none."""
    idx = (a[lo:hi] < thr).nonzero()[0]
    return lo + int(idx[-1]) if idx.size else lo


def _first_below(a: np.ndarray, lo: int, hi: int, thr: float) -> int:
    """Smallest index in [lo, hi) with a < thr; hi - 1 when none."""
    idx = (a[lo:hi] < thr).nonzero()[0]
    return lo + int(idx[0]) if idx.size else hi - 1


def _joined(p: int, q: int, low_l: list, lo: int, gap: int, flat_n: int) -> bool:
    """Slope peaks p < q belong to one complex: close (<= `gap` samples), and no run of
    `flat_n` or more flat samples (`low_l`, the |slope| under qrs_flat from sample `lo` on)
    between them (a q-wave nadir is a brief zero of the slope; a PR or ST segment a long one)."""
    if q - p > gap:
        return False
    run = longest = 0
    for lw in low_l[p - lo: q + 1 - lo]:
        run = run + 1 if lw else 0
        longest = max(longest, run)
    return longest < flat_n


def _chain_small(small: list, first: int, last: int, thr_on: float, thr_off: float, a,
                 joined) -> tuple[int, int, float, float]:
    """The complex's first and last slope peaks extended by the small ones (`small`, sample
    indices) chained on to them, each lowering its side's onset/offset threshold to half its
    own slope (`a`)."""
    for q in [q for q in small if q < first][::-1]:
        if not joined(q, first):
            break
        first = q
        thr_on = min(thr_on, 0.5 * a[first])
    for q in [q for q in small if q > last]:
        if not joined(last, q):
            break
        last = q
        thr_off = min(thr_off, 0.5 * a[last])
    return first, last, thr_on, thr_off


def _qrs_lead(a: np.ndarray, r: int, fs: float, cfg: DelineationConfig
              ) -> tuple[int, int, int] | None:
    """(onset, first slope peak, offset) of one lead's QRS from |slope| `a`."""
    core = round(cfg.qrs_core_s * fs)
    lo, hi = r - round(cfg.qrs_search_s[0] * fs), r + round(cfg.qrs_search_s[1] * fs)
    c = a[r - core: r + core + 1]
    dmax = float(c.max())
    if dmax <= 0:
        return None
    seg = a[lo:hi]
    mid = seg[1:-1]
    locmax = (mid >= seg[:-2]) & (mid > seg[2:])
    pk = (locmax & (mid >= cfg.qrs_sig * dmax)).nonzero()[0] + (1 + lo)
    if pk.size == 0:
        return None
    k = int(np.abs(pk - (r - core + int(c.argmax()))).argmin())
    gap = round(cfg.qrs_gap_s * fs)
    flat_n = round(cfg.qrs_flat_s * fs)
    # |slope| under qrs_flat of the largest, as a list over [lo, hi): `joined` walks at most
    # qrs_gap_s of it in Python (1-2 us) where numpy paid ~10 us a call in overheads
    low_l = (seg < cfg.qrs_flat * dmax).tolist()

    def joined(p: int, q: int) -> bool:
        return _joined(p, q, low_l, lo, gap, flat_n)

    i = k
    while i > 0 and joined(int(pk[i - 1]), int(pk[i])):
        i -= 1
    j = k
    while j < pk.size - 1 and joined(int(pk[j]), int(pk[j + 1])):
        j += 1
    first, last = int(pk[i]), int(pk[j])
    thr_on, thr_off = cfg.xi_qrs_on * a[first], cfg.xi_qrs_off * a[last]
    # small initial/terminal deflections (a q wave, a terminal s): slope peaks above
    # qrs_small of the largest, chained on within qrs_gap_s, extend the complex; the threshold
    # stays relative to the main slope peak, but below half the small one
    small = ((locmax & (mid >= cfg.qrs_small * dmax)).nonzero()[0] + (1 + lo)).tolist()
    first, last, thr_on, thr_off = _chain_small(small, first, last, thr_on, thr_off, a, joined)
    on = _last_below(a, lo - round(0.05 * fs), first, thr_on)
    off = _first_below(a, last, hi + round(0.05 * fs), thr_off)
    xi_min = cfg.xi_qrs_min
    if xi_min > 0:
        # or, nearer, a local minimum of |slope| well below the slope peak (the slope of a
        # P or T wave running into the QRS never falls below the threshold; Martinez 2004)
        w = a[on:first + 1]
        m = np.flatnonzero((w[1:-1] <= w[:-2]) & (w[1:-1] <= w[2:])
                           & (w[1:-1] < xi_min * a[first])) + 1
        if m.size:
            on = on + int(m[-1])
        w = a[last:off + 1]
        m = np.flatnonzero((w[1:-1] <= w[:-2]) & (w[1:-1] <= w[2:])
                           & (w[1:-1] < xi_min * a[last])) + 1
        if m.size:
            off = last + int(m[0])
    return on, first, off


def _rows_of(rows: np.ndarray, cols: np.ndarray, n_rows: int, offset: int) -> list[list[int]]:
    """`nonzero()` of a 2-D mask as one list of column indices (+ `offset`) per row."""
    cuts = np.searchsorted(rows, np.arange(n_rows + 1)).tolist()
    c = (cols + offset).tolist()
    return [c[cuts[i]:cuts[i + 1]] for i in range(n_rows)]


def _qrs_leads(a: np.ndarray, r: int, fs: float, cfg: DelineationConfig
               ) -> list[tuple[int, int, int] | None]:
    """`_qrs_lead` of every row of `a` `(R, n)` float64, the same integers: the masks it
    builds per row (slope peaks, small peaks, flat samples) built once for all rows, and its
    short scans (the walk below the onset and offset thresholds, the local minima) in Python
    over each row's floats (a batch's rows pay one set of numpy calls, not ~20 each: cProfile
    put `_qrs_lead` at half of delineation). Comparisons and products are the same float64
    operations on the same numbers; the scans keep numpy's slicing (`_py_below`)."""
    n_rows = a.shape[0]
    core = round(cfg.qrs_core_s * fs)
    lo, hi = r - round(cfg.qrs_search_s[0] * fs), r + round(cfg.qrs_search_s[1] * fs)
    c = a[:, r - core: r + core + 1]
    dmax = c.max(axis=1)                                       # (R,) float64
    ref = (r - core + c.argmax(axis=1)).tolist()
    seg = a[:, lo:hi]
    mid = seg[:, 1:-1]
    locmax = (mid >= seg[:, :-2]) & (mid > seg[:, 2:])
    ri, ci = (locmax & (mid >= cfg.qrs_sig * dmax[:, None])).nonzero()
    pks = _rows_of(ri, ci, n_rows, 1 + lo)
    ri, ci = (locmax & (mid >= cfg.qrs_small * dmax[:, None])).nonzero()
    smalls = _rows_of(ri, ci, n_rows, 1 + lo)
    lows = (seg < cfg.qrs_flat * dmax[:, None]).tolist()
    rows = a.tolist()
    gap = round(cfg.qrs_gap_s * fs)
    flat_n = round(cfg.qrs_flat_s * fs)
    ext = round(0.05 * fs)
    xi_min = cfg.xi_qrs_min
    out: list[tuple[int, int, int] | None] = []
    for i, d in enumerate(dmax.tolist()):
        pk = pks[i]
        if d <= 0 or not pk:
            out.append(None)
            continue
        low_l, ai = lows[i], rows[i]

        def joined(p: int, q: int) -> bool:
            return _joined(p, q, low_l, lo, gap, flat_n)

        rf = ref[i]
        k = min(range(len(pk)), key=lambda j: abs(pk[j] - rf))   # argmin: the first nearest
        j0 = k
        while j0 > 0 and joined(pk[j0 - 1], pk[j0]):
            j0 -= 1
        j1 = k
        while j1 < len(pk) - 1 and joined(pk[j1], pk[j1 + 1]):
            j1 += 1
        first, last = pk[j0], pk[j1]
        thr_on, thr_off = cfg.xi_qrs_on * ai[first], cfg.xi_qrs_off * ai[last]
        first, last, thr_on, thr_off = _chain_small(smalls[i], first, last, thr_on, thr_off,
                                                    ai, joined)
        on = _py_below(ai, lo - ext, first, thr_on, last_one=True)
        off = _py_below(ai, last, hi + ext, thr_off, last_one=False)
        if xi_min > 0:
            on = _py_local_min(ai, on, first + 1, xi_min * ai[first], last_one=True)
            off = _py_local_min(ai, last, off + 1, xi_min * ai[last], last_one=False)
        out.append((on, first, off))
    return out


def _py_below(a: list, lo: int, hi: int, thr: float, last_one: bool) -> int:
    """`_last_below` (`last_one`) or `_first_below` of a row held as a list: the same index,
    `a[lo:hi]` sliced as numpy slices it."""
    start, stop, _ = slice(lo, hi).indices(len(a))
    span = range(stop - 1, start - 1, -1) if last_one else range(start, stop)
    for p in span:
        if a[p] < thr:
            return lo + (p - start)
    return lo if last_one else hi - 1


def _py_local_min(a: list, lo: int, hi: int, thr: float, last_one: bool) -> int:
    """`_qrs_lead`'s local-minimum refinement as a list scan over `w = a[lo:hi]`: `lo + j` for
    the last (`last_one`, the onset) or first (the offset) interior `j` where `w[j]` is a
    local minimum under `thr`; where there is none, the bound unchanged (`lo`, the onset;
    `hi - 1`, the offset)."""
    w = a[slice(lo, hi)]
    js = range(len(w) - 2, 0, -1) if last_one else range(1, len(w) - 1)
    for j in js:
        v = w[j]
        if v <= w[j - 1] and v <= w[j + 1] and v < thr:
            return lo + j
    return lo if last_one else hi - 1


def _trapezium(s: np.ndarray, tm: int, tr: int, sign: float) -> int:
    """Trapezium-area boundary between the steepest point `tm` and reference `tr` (either
    side): the point t maximising sign * (s[tm] - s[t]) * |2 tr - t - tm|."""
    if tr == tm:
        return tm
    step = 1 if tr > tm else -1
    t = np.arange(tm, tr + step, step)
    area = sign * (s[tm] - s[t]) * np.abs(2 * tr - t - tm)
    return int(t[int(np.argmax(area))])


def _wave(s: np.ndarray, d: np.ndarray, lo: int, hi: int, base: np.ndarray, limb: int,
          ref: int, left_lim: int, right_lim: int) -> tuple[int, int, int, float]:
    """(onset, peak, offset, deviation) of the largest deviation of `s` from `base` (same
    length as [lo, hi)) in [lo, hi), with trapezium boundaries inside [left_lim, right_lim].
    The one-lead form of `_waves` (kept as its reference: tests compare them)."""
    dev = s[lo:hi] - base
    k = int(np.argmax(np.abs(dev)))
    pk = lo + k
    sign = 1.0 if dev[k] >= 0 else -1.0
    # falling limb after the peak: steepest descent towards the baseline (sign-adjusted)
    a1 = min(pk + limb, right_lim)
    tm = pk + int(np.argmax(-sign * d[pk:a1 + 1])) if a1 > pk else pk
    off = _trapezium(s, tm, min(tm + ref, right_lim), sign)
    a0 = max(pk - limb, left_lim)
    tm0 = a0 + int(np.argmax(sign * d[a0:pk + 1])) if pk > a0 else pk
    on = _trapezium(s, tm0, max(tm0 - ref, left_lim), sign)
    return on, pk, off, float(dev[k])


def _first_argmax(v: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per row, the first index of the largest `v` where `ok` (a ragged argmax: rows padded
    to one width, the padding never chosen)."""
    return np.where(ok, v, -np.inf).argmax(axis=1)


def _waves(s: np.ndarray, d: np.ndarray, lo, hi, base: np.ndarray, limb: int,
           ref: int, left_lim, right_lim
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`_wave` for every row of `s`, `d` `(L, n)` at once, the same integers and floats
    (element-wise the same operations; every argmax over the same values in the same order).
    `lo`, `hi`, `left_lim`, `right_lim`: one for all rows, or one per row (`(L,)`: rows of
    several beats, each with its own window). `base`: `(L, 1)` or `(L, max(hi - lo))`.
    Returns `(on, pk, off, dev, |s - base|)`, the last `(L, max(hi - lo))` on each row's
    `[lo, hi)` and 0 beyond its `hi`.
    Why: the per-lead loop paid ~15 numpy calls a lead a wave; this pays them once a batch
    of beats (measured 3 leads: T and P 0.35 -> 0.12 ms a beat one beat at a time)."""
    n_rows, n = s.shape
    rr = np.arange(n_rows)[:, None]
    lo = np.asarray(lo, dtype=np.int64)
    if lo.ndim == 0:
        lo = np.full(n_rows, lo)
    width = np.asarray(hi, dtype=np.int64) - lo
    w_max = int(width.max()) if n_rows else 0
    col = np.arange(w_max)[None, :]
    inside = col < width[:, None]
    ragged = not bool(inside.all())
    dev = s[rr, np.minimum(lo[:, None] + col, n - 1)] - base
    mag = np.abs(dev)
    # the padding beyond a row's hi (ragged rows) is never the largest: |dev| >= 0 > -1
    k = (np.where(inside, mag, -1.0) if ragged else mag).argmax(axis=1)
    pk = lo + k
    devk = dev[rr[:, 0], k]
    sign = np.where(devk >= 0, 1.0, -1.0)[:, None]
    span = np.arange(max(limb, ref) + 1)
    # falling limb after the peak: steepest descent towards the baseline (sign-adjusted)
    a1 = np.minimum(pk + limb, right_lim)
    idx = pk[:, None] + span[: limb + 1]
    j = _first_argmax(-sign * d[rr, np.minimum(idx, n - 1)], idx <= a1[:, None])
    tm = np.where(a1 > pk, pk + j, pk)
    off = _trapeziums(s, tm, np.minimum(tm + ref, right_lim), sign, span[: ref + 1], 1)
    a0 = np.maximum(pk - limb, left_lim)
    idx = a0[:, None] + span[: limb + 1]
    j = _first_argmax(sign * d[rr, np.maximum(idx, 0)], idx <= pk[:, None])
    tm0 = np.where(pk > a0, a0 + j, pk)
    on = _trapeziums(s, tm0, np.maximum(tm0 - ref, left_lim), sign, span[: ref + 1], -1)
    return on, pk, off, devk, (np.where(inside, mag, 0.0) if ragged else mag)


def _trapeziums(s: np.ndarray, tm: np.ndarray, tr: np.ndarray, sign: np.ndarray,
                span: np.ndarray, step: int) -> np.ndarray:
    """`_trapezium` per row, `tr` on the `step` side of `tm` (at most len(span) - 1 away)."""
    n_rows, n = s.shape
    rr = np.arange(n_rows)[:, None]
    t = tm[:, None] + step * span
    ok = step * (tr[:, None] - t) >= 0
    tc = np.minimum(np.maximum(t, 0), n - 1)
    area = sign * (s[rr[:, 0], tm][:, None] - s[rr, tc]) * np.abs(2 * tr[:, None] - tc
                                                                   - tm[:, None])
    return t[rr[:, 0], _first_argmax(area, ok)]


def delineate_window(seg: np.ndarray, r: int, fs: float, t_end: int, p_start: int | None,
                     config: DelineationConfig = DEFAULT_DELINEATION
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Delineate one beat in `seg` `(L, n)` (mV) whose R is at `r`, with `config`'s constants.

    `t_end`: the T offset may not lie beyond it; `p_start`: nor the P onset before it (the
    previous beat's T offset; None = only the window bounds it).
    Returns `(per_lead (L, 9) int64 with -1 = absent, usable (L,) bool, combined (9,) int64)`.
    """
    b = _Batch(np.asarray(seg, dtype=np.float64)[None], r, fs, np.array([t_end]), config)
    b.p_waves([p_start])
    return b.out[0], b.usable[0], b.comb[0]


_QON, _QPK, _QOFF = _B["qrs_on"], _B["qrs_peak"], _B["qrs_off"]
_TON, _TPK, _TOFF = _B["t_on"], _B["t_peak"], _B["t_off"]
_PON, _PPK, _POFF = _B["p_on"], _B["p_peak"], _B["p_off"]
# boolean column masks in BOUNDARIES order (a beat's row of combined boundaries): assigning
# through `rows[:, None] & mask` fills the selected beats' columns in row-major order
_IS_QRS_ON_OFF = np.isin(np.arange(len(BOUNDARIES)), [_QON, _QOFF])
_IS_T = np.isin(np.arange(len(BOUNDARIES)), [_TON, _TPK, _TOFF])
_IS_P = np.isin(np.arange(len(BOUNDARIES)), [_PON, _PPK, _POFF])


def _windows(s: np.ndarray, rows: np.ndarray, start: np.ndarray, width: int) -> np.ndarray:
    """`s[rows[i], start[i]: start[i] + width]` stacked `(len(rows), width)`: one gather.
    Starts inside `[0, n - width]` (what the delineator's windows guarantee; checked)."""
    if start.size and (int(start.min()) < 0 or int(start.max()) + width > s.shape[1]):
        raise SignalError("delineation window outside the beat's samples")   # pragma: no cover
    return s[rows[:, None], start[:, None] + np.arange(width)]


_NONE = np.iinfo(np.int64).max


def _combine(v: np.ndarray, q: float) -> np.ndarray:
    """Per beat and column of `(B, L, k)` int64 (-1 = absent), `round(_quantile(found, q))`
    over the leads that found it; -1 where none did. The median in one pass over the batch
    (the same floats as `_quantile`: the middle value, or b - (b - a) * 0.5, rounded half to
    even as `round` does); other q beat by beat through `_quantile`. Returns `(B, k)`."""
    found = v >= 0
    c = found.sum(axis=1)                                            # (B, k)
    if q != 0.5:
        return np.array([[round(_quantile(v[b, found[b, :, j], j], q)) if c[b, j] else -1
                          for j in range(v.shape[2])] for b in range(v.shape[0])],
                        dtype=np.int64).reshape(c.shape)
    w = np.sort(np.where(found, v, _NONE), axis=1)
    m = c // 2
    bb, kk = np.arange(v.shape[0])[:, None], np.arange(v.shape[2])[None, :]
    hi = w[bb, np.minimum(m, v.shape[1] - 1), kk].astype(np.float64)
    lo = w[bb, np.maximum(m - 1, 0), kk].astype(np.float64)
    val = np.where(c % 2 == 1, hi, hi - (hi - lo) * 0.5)
    return np.where(c > 0, np.rint(np.where(c > 0, val, 0.0)), -1).astype(np.int64)


class _Batch:
    """Beats delineated together: `segs` `(B, L, n)` (mV), each beat's R at `r` in its window,
    T offsets bounded by `t_end` `(B,)`. The constructor finds each lead's QRS and T and the
    combined QRS and T of every beat; `p_waves(p_start)` the P waves (each beat's P search
    starts after the previous beat's T offset, which this batch may have just found). Row by
    row the same operations as one beat at a time (filters, gradients, windows and medians
    over the same samples; argmax over the same values): the same integers. Why: a beat alone
    paid ~100 numpy calls of overhead (~0.5 ms of the stream's per-beat cost); a batch pays
    them once for the beats a chunk completes."""

    def __init__(self, segs: np.ndarray, r: int, fs: float, t_end: np.ndarray,
                 cfg: DelineationConfig) -> None:
        self.r, self.fs, self.cfg = r, fs, cfg
        n_beats, n_leads, n = segs.shape
        self.n = n
        self.out = out = np.full((n_beats, n_leads, len(BOUNDARIES)), -1, dtype=np.int64)
        self.comb = comb = np.full((n_beats, len(BOUNDARIES)), -1, dtype=np.int64)
        finite = np.all(np.isfinite(segs), axis=2)
        segs = np.where(finite[..., None], segs, 0.0)
        self.usable = usable = finite & (segs.max(axis=2) - segs.min(axis=2) >= cfg.flat_mv)
        self.has = np.zeros(n_beats, dtype=bool)
        bi, li = np.nonzero(usable)          # rows: usable leads, beat by beat
        self.bi, self.li = bi, li
        if not bi.size:
            return
        x = segs[bi, li]
        self.s40 = s40 = _zero_phase(x, cfg.qrs_lowpass_hz, fs)
        self.s15 = s15 = _zero_phase(x, cfg.pt_lowpass_hz, fs)
        a40 = np.abs(_gradient(s40)) * fs
        self.d15 = _gradient(s15) * fs
        # 1. QRS per lead, then combined
        core = round(cfg.qrs_core_s * fs)
        w = int(0.02 * fs)
        # the rows' QRS at once (`_qrs_leads`); each one's peak as `_median` and `np.argmax`
        # take it, on the row's floats in Python (a few dozen samples: cheaper than the calls)
        qs = _qrs_leads(a40, r, fs, cfg)
        s40_rows = s40.tolist() if any(q is not None for q in qs) else []
        bl_, li_ = bi.tolist(), li.tolist()
        for i, q in enumerate(qs):
            if q is None:
                continue
            q_on, _, q_off = q
            o = out[bl_[i], li_[i]]
            o[_QON], o[_QOFF] = q_on, q_off
            row = s40_rows[i]
            v = sorted(row[max(q_on - w, 0): q_on + 1])
            m = len(v) // 2
            bl = v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2.0
            dev = [abs(y - bl) for y in row[r - core: r + core + 1]]
            o[_QPK] = r - core + max(range(len(dev)), key=dev.__getitem__)
        self.has = has = np.asarray((out[:, :, _QON] >= 0).any(axis=1), dtype=bool)
        if not has.any():
            return
        q_out = out[has]
        if cfg.qrs_on_q == cfg.qrs_off_q:
            comb[has[:, None] & _IS_QRS_ON_OFF] = _combine(q_out[:, :, [_QON, _QOFF]],
                                                             cfg.qrs_on_q).ravel()
        else:
            comb[has, _QON] = _combine(q_out[:, :, [_QON]], cfg.qrs_on_q)[:, 0]
            comb[has, _QOFF] = _combine(q_out[:, :, [_QOFF]], cfg.qrs_off_q)[:, 0]
        comb[has, _QPK] = r
        self.qon, self.qoff = qon, qoff = comb[:, _QON], comb[:, _QOFF]
        # 2. T per lead: between the QRS offset and t_end
        margin = round(cfg.margin_s * fs)
        t_lo = qoff + round(cfg.t_start_s * fs)
        t_hi = np.minimum(np.asarray(t_end, dtype=np.int64), n - margin)
        sel = np.flatnonzero((has & (t_hi - t_lo > int(0.08 * fs)))[bi])
        if sel.size:
            b = bi[sel]
            w = round(0.02 * fs)
            base = _medians(_windows(s15, sel, qon[b] - w, w + 1))[:, None]
            on, pk, off, _, _ = _waves(s15[sel], self.d15[sel], t_lo[b],
                                       t_hi[b] - round(0.04 * fs), base,
                                       round(cfg.t_limb_s * fs), round(cfg.t_ref_s * fs),
                                       qoff[b], t_hi[b])
            out[b, li[sel], _TON], out[b, li[sel], _TPK], out[b, li[sel], _TOFF] = on, pk, off
        # combined T: the median over the leads that found each boundary
        t_cols = [_TON, _TPK, _TOFF]
        comb[has[:, None] & _IS_T] = _combine(out[has][:, :, t_cols], 0.5).ravel()

    def p_waves(self, p_start: list[int | None]) -> None:
        """3. P per lead, before the combined QRS onset and after `p_start` (per beat, window
        samples; None: only the window bounds it); 4. combined where at least p_lead_frac of
        the usable leads found one."""
        if not self.has.any():
            return
        cfg, fs, out, bi, li = self.cfg, self.fs, self.out, self.bi, self.li
        qon = self.qon
        margin = round(cfg.margin_s * fs)
        p_hi = qon - round(cfg.p_guard_s * fs)
        p_lo = np.maximum(qon - round(cfg.p_search_s * fs), margin + round(cfg.p_limb_s * fs))
        after = np.array([-1 if p is None else p for p in p_start], dtype=np.int64)
        given = np.array([p is not None for p in p_start])
        p_lo = np.where(given, np.maximum(p_lo, after), p_lo)
        do = self.has & (p_hi - p_lo > int(0.06 * fs))
        sel = np.flatnonzero(do[bi])
        if sel.size:
            s15, s40 = self.s15, self.s40
            b = bi[sel]
            limb, ref = round(cfg.p_limb_s * fs), round(cfg.p_ref_s * fs)
            w = round(0.02 * fs)
            b0 = _medians(_windows(s15, sel, p_lo[b], w + 1))
            b1 = _medians(_windows(s15, sel, qon[b] - 2 * w, 2 * w - w // 2 + 1))
            lo, hi, q = p_lo[b], p_hi[b], qon[b]
            base = _ragged_lines(b0, b1, q - lo + 1, hi - lo)
            on, pk, off, dev, rest = _waves(s15[sel], self.d15[sel], lo, hi, base, limb, ref,
                                            np.maximum(lo - limb, margin), q)
            # the window's high-frequency noise, beat by beat: np.mean over each beat's own
            # (leads, samples) block, as one beat alone (a padded batch would sum in
            # another order)
            noise = np.empty(sel.size)
            cuts = (np.flatnonzero(b[1:] != b[:-1]) + 1).tolist()
            for k0, k1 in zip([0, *cuts], [*cuts, sel.size]):
                rows = sel[k0:k1]
                a, z = int(lo[k0]), int(q[k0])
                hf = s40[rows[0]:rows[-1] + 1, a:z] - s15[rows[0]:rows[-1] + 1, a:z]
                noise[k0:k1] = np.sqrt(np.mean(hf * hf, axis=1))
            mag = np.abs(dev)
            ok = (mag >= cfg.p_min_mv) & (mag >= cfg.p_snr * noise) & (lo < pk) & (pk < hi - 1)
            # a P wave stands alone between flat TP and PR segments; fibrillatory or flutter
            # waves come in trains of similar size: the largest deviation outside this
            # wave must stay under p_alone of it
            col = np.arange(rest.shape[1])[None, :]
            inside = (col >= np.maximum(on - lo, 0)[:, None]) & \
                (col < np.maximum(off - lo + 1, 0)[:, None])
            ok &= np.where(inside, 0.0, rest).max(axis=1) <= cfg.p_alone * mag
            bk, lk = b[ok], li[sel][ok]
            out[bk, lk, _PON], out[bk, lk, _PPK], out[bk, lk, _POFF] = on[ok], pk[ok], off[ok]
        # 4. combined P: only when at least p_lead_frac of the usable leads found one
        has = self.has
        seen = has & (np.count_nonzero(out[:, :, _PPK] >= 0, axis=1)
                      >= cfg.p_lead_frac * self.usable.sum(axis=1))
        if seen.any():
            p_cols = [_PON, _PPK, _POFF]
            self.comb[seen[:, None] & _IS_P] = _combine(out[seen][:, :, p_cols], 0.5).ravel()


def _ragged_lines(b0: np.ndarray, b1: np.ndarray, num: np.ndarray, m: np.ndarray) -> np.ndarray:
    """`_line(b0[i], b1[i], num[i], m[i])` per row, padded to `max(m)` columns: the same
    floats (arange * step + start; numpy's zero-step case; the end value at num - 1)."""
    y = np.broadcast_to(np.arange(int(m.max()), dtype=np.float64), (b0.size, int(m.max())))
    den = (num - 1).astype(np.float64)[:, None]
    span = (b1 - b0)[:, None]
    step = span / den
    y = np.where(step == 0, (y / den) * span, y * step) + b0[:, None]
    end = np.flatnonzero(m >= num)
    if end.size:                                                    # pragma: no cover
        y[end, num[end] - 1] = b1[end]
    return y


def _segment(st: DelineationState, r: int, end: int | None) -> np.ndarray:
    """The beat's window `[r - pre, r + post)` of the history `(L, pre + post)`: NaN where it
    cannot be delineated; `end`: the stream ended there (flush)."""
    fs, cfg = st.fs_hz, st.config
    h0 = st.next_index - st.hist.shape[1]
    a, b = r - st.pre, r + st.post
    n_leads = st.hist.shape[0]
    if r - st.start_index < round(cfg.start_min_s * fs):   # no isoelectric level before it
        return np.full((n_leads, b - a), np.nan)
    if end is not None and (end - r < round(cfg.start_min_s * fs) or a < h0):
        return np.full((n_leads, b - a), np.nan)   # the QRS may run past the end
    if end is not None:        # the stream ended before R + post_s: hold its last sample
        seg = np.empty((n_leads, b - a))
        seg[:, : end - a] = st.hist[:, a - h0: end - h0]
        seg[:, end - a:] = st.hist[:, end - h0 - 1: end - h0]
        return seg
    if a < st.start_index:     # the stream began less than pre_s before this R: hold its first
        seg = np.empty((n_leads, b - a))   # sample before it (P then searched after it only)
        seg[:, st.start_index - a:] = st.hist[:, st.start_index - h0: b - h0]
        seg[:, : st.start_index - a] = st.first[:, None]
        return seg
    if a < h0:     # decided more than hold_s after its R: its samples are gone
        return np.full((n_leads, b - a), np.nan)
    return st.hist[:, a - h0: b - h0]


# How `_run_beats` makes its batch: `_Batch`, or what a caller running many streams side by
# side sets in its context (the ward's ticks: every bed's beats of a tick delineated as one
# batch, edge_ecg.ward.batching). Same arguments, and an object with `_Batch`'s `comb`, `out`,
# `usable` and `p_waves`; rows never depend on the others (see `_Batch`), so the boundaries
# are the same integers, and ~100 numpy calls a batch are paid once per tick, not per bed.
BATCH_MAKER: ContextVar = ContextVar("edge_ecg_delineation_batch", default=None)


def _run_beats(st: DelineationState, due: list[tuple[int, int, int | None]],
               end: int | None = None) -> list[BeatWaves]:
    """Delineate the beats `(r, decided_at, next_r)` in order from the history, as one batch
    (`_Batch`); `end`: the stream ended there (flush). The state moves on as beat by beat."""
    if not due:
        return []
    fs, cfg = st.fs_hz, st.config
    t0, t1, t2 = cfg.t_end_max_s
    margin = round(cfg.margin_s * fs)
    # each beat's T bound from the RR before it (its predecessor in this order) and the next R
    t_end, rr_ms = [], []
    prev_r, prev_rr = st.prev_r, st.prev_rr
    for r, _, next_r in due:
        a = r - st.pre
        rr = prev_rr if prev_rr is not None else round(cfg.default_rr_s * fs)
        te = r + round(min(t0 + t1 * rr / fs, t2) * fs)
        if next_r is not None:
            te = min(te, next_r - round(cfg.next_guard_s * fs))
        if end is not None and te + margin > end:
            te = a             # the T wave's search window is not complete: no T
        t_end.append(te - a)
        rr_ms.append((r - prev_r) * 1000.0 / fs if prev_r is not None else None)
        if prev_r is not None:
            prev_rr = r - prev_r
        prev_r = r
    batch = (BATCH_MAKER.get() or _Batch)(np.stack([_segment(st, r, end) for r, _, _ in due]),
                                          st.pre, fs, np.array(t_end, dtype=np.int64), cfg)
    # each beat's P search starts after the previous beat's T offset (its QRS offset without
    # a T), found above for the beats of this batch
    comb = batch.comb.tolist()
    p_start: list[int | None] = []
    prev_t_off = st.prev_t_off
    for (r, _, _), c in zip(due, comb):
        a = r - st.pre
        ps = prev_t_off
        if a < st.start_index:
            ps = max(ps if ps is not None else a, st.start_index + margin)
        p_start.append(None if ps is None else ps - a)
        if c[_TOFF] >= 0:
            prev_t_off = c[_TOFF] + a
        elif c[_QOFF] >= 0:
            prev_t_off = c[_QOFF] + a
    batch.p_waves(p_start)
    a_all = np.array([r - st.pre for r, _, _ in due], dtype=np.int64)
    per_all = np.where(batch.out >= 0, batch.out + a_all[:, None, None], -1)
    any_usable = batch.usable.any(axis=1).tolist()
    out = []
    for k, ((r, decided_at, _), c) in enumerate(zip(due, batch.comb.tolist())):
        a = r - st.pre
        pts = {name: (c[i] + a if c[i] >= 0 else None) for i, name in enumerate(BOUNDARIES)}
        valid = bool(any_usable[k] and pts["qrs_on"] is not None)
        # sinus P waves keep their PR from beat to beat; fibrillatory waves do not. A P whose
        # PR differs from the previous beat's P candidate by more than p_pr_tol_s is dropped
        # (the candidate is still remembered, so a real change of PR costs one beat)
        pr = None if pts["p_on"] is None or pts["qrs_on"] is None else \
            pts["qrs_on"] - pts["p_on"]
        if pr is not None and st.prev_pr is not None and \
                abs(pr - st.prev_pr) > round(cfg.p_pr_tol_s * fs):
            for name in ("p_on", "p_peak", "p_off"):
                pts[name] = None
        st.prev_pr = pr
        if st.prev_r is not None:
            st.prev_rr = r - st.prev_r
        st.prev_r = r
        if pts["t_off"] is not None:
            st.prev_t_off = pts["t_off"]
        elif pts["qrs_off"] is not None:
            st.prev_t_off = pts["qrs_off"]
        out.append(BeatWaves(r=int(r), decided_at=int(decided_at), fs_hz=fs, valid=valid,
                             points=pts, per_lead=per_all[k], rr_ms=rr_ms[k]))
    return out


def delineate(x: np.ndarray, beats, state: DelineationState
              ) -> tuple[list[BeatWaves], DelineationState]:
    """Take the next chunk `x` `(T,)` or `(T, L)` (mV) and the beats the detector decided in
    it (`qrs.Beat`s, or `(r, decided_at)` pairs); returns the beats delineated now.

    A beat is delineated once the stream holds `post_s` after its R; the next beat bounds its
    T search only if that beat was decided by then, so the result does not depend on chunking.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise SignalError(f"delineation takes (T,) or (T, n_leads) samples, got {x.shape}")
    st = DelineationState(**state.__dict__)
    if st.n_leads is None:
        if x.shape[0] == 0:
            return [], st
        st.n_leads = x.shape[1]
        st.hist = np.zeros((st.n_leads, 0))
        st.first = x[0].copy()
        st.start_index = st.next_index
    elif x.shape[1] != st.n_leads:
        raise SignalError(f"delineation state is for {st.n_leads} leads, chunk has {x.shape[1]}")
    new = tuple((int(b[0]), int(b[1])) if isinstance(b, (tuple, list)) else
                (int(b.index), int(b.decided_at)) for b in beats)
    st.pending = tuple(sorted(st.pending + new))
    if x.shape[0]:
        st.hist = np.concatenate([st.hist, x.T], axis=1)
        st.next_index += x.shape[0]
    due = []
    while st.pending and st.pending[0][0] + st.post <= st.next_index:
        r, dec = st.pending[0]
        at = r + st.post
        later = [p for p in st.pending[1:] if p[1] <= at]
        next_r = min(p[0] for p in later) if later else None
        st.pending = st.pending[1:]
        due.append((r, max(dec, at), next_r))
    out = _run_beats(st, due)
    # keep what the pending beats (and the next beats to come) may still read
    keep_from = st.next_index - st.pre - round(st.config.hold_s * st.fs_hz)
    if st.pending:
        keep_from = min(keep_from, st.pending[0][0] - st.pre)
    h0 = st.next_index - st.hist.shape[1]
    if keep_from > h0:
        st.hist = st.hist[:, keep_from - h0:]
    return out, st


def delineate_record(x: np.ndarray, fs_hz: float, beats=None,
                     config: DelineationConfig = DEFAULT_DELINEATION,
                     qrs_config: QRSConfig | None = None) -> list[BeatWaves]:
    """Delineate a whole record `(T, L)` in one call: what a stream fed the same samples
    (and the same `config`) reports. `beats`: R peaks with decision samples (`qrs.Beat`s or
    pairs); default: the QRS detector (`qrs_config`, default `DEFAULT_QRS`) on all leads,
    flushed at the end. Beats within `post_s` of the end are delineated with the signal
    held at its last sample (`delineate_flush`)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if beats is None:
        from edge_ecg.signal.qrs import DEFAULT_QRS, qrs_detect, qrs_flush, qrs_initial

        clean = np.where(np.isfinite(x), x, 0.0)
        qst = qrs_initial(fs_hz, config=DEFAULT_QRS if qrs_config is None else qrs_config)
        beats, qst = qrs_detect(clean, qst)
        beats = beats + qrs_flush(qst)[0]
    out, st = delineate(x, beats, delineate_initial(fs_hz, config=config))
    return out + delineate_flush(st)[0]


def delineate_flush(state: DelineationState) -> tuple[list[BeatWaves], DelineationState]:
    """End of a finite stream: delineate the beats still waiting from the samples there are
    (held at the last one beyond the end, as a zero-phase filter pads). A beat within
    `start_min_s` of the end gets no boundaries (`valid=False`); one whose T search window
    runs past the end gets its P and QRS but no T, never a T cut short by the end."""
    st = DelineationState(**state.__dict__)
    if not st.pending or st.n_leads is None:
        return [], st
    end = st.next_index
    pend, st.pending = st.pending, ()
    due = [(r, max(dec, end), pend[k + 1][0] if k + 1 < len(pend) else None)
           for k, (r, dec) in enumerate(pend)]
    return _run_beats(st, due, end=end), st


__all__ = ["BOUNDARIES", "DEFAULT_DELINEATION", "BeatWaves", "DelineationConfig",
           "DelineationState", "delineate", "delineate_flush", "delineate_initial",
           "delineate_record", "delineate_window"]
