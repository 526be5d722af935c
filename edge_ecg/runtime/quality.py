"""Signal quality: when a window's prediction must be withheld, and why, and what it is made on.

A window degrades gracefully within stated limits (issue 17) and is withheld, never guessed,
beyond them:
- missing signal (samples that never arrived, or arrived non-finite; filled and marked by the
  ring buffer): predicted while at most `max_missing_frac` of the window is filled and no
  filled run is longer than `max_gap_s`; beyond that withheld for "gap" / "nan". A gap of
  unknown length (`FLAG_BREAK`: a device reboot restarted its sequence) always withholds.
- a flat lead (electrode off) or a lead stuck at the ADC rail (saturation): that lead is masked
  (the model's `lead_mask`) and the prediction uses the rest; withheld for "lead_off" /
  "saturation" only when fewer than `min_leads` source leads remain (or, with
  `mask_off_leads = False`, whenever a lead is off, the behaviour before issue 17).
- too much high-frequency noise, or a beat count no heart makes: withheld.
Reasons come from the fixed vocabulary `REASONS`, so a consumer can switch on them.
`judge_window` returns the whole verdict (`WindowQuality`): reasons, the leads used and masked,
and the filled sample counts a prediction reports.

Thresholds and where they come from:
- lead off: peak-to-peak below 20 uV over 1 s (a sliding block anywhere over the window, the
  stream around it included; front ends resolve ~1-5 uV; IEC 60601-2-27 allows 30 uV p-p
  noise) while another lead shows a QRS-sized deflection (>= 0.3 mV) in the same block, the
  window holding >= 0.4 s of such blocks (`flat_min_s`), or every lead flat over the whole
  window. Requiring a live lead keeps a
  pause (every lead quiet) from reading as an electrode off.
- saturation: the lead sits at its window extreme for >= 20 ms in a row (a clipped R wave; a real
  R peak at 250-1000 Hz is never flat for 20 ms), and for no fewer than 4 samples, or touches the
  ADC rail when the source knows it. The 4: at a Holter's 128 Hz, 20 ms is 3 samples, and a
  broad extreme quantized at 5 uV sits flat for 3. Measured on the 38 SVDB training-fold records
  (`python bench/saturation.py`: lead ECG1, 10-s windows every 5 s; a clip level is the
  record's extreme count reached >= 10 times, where its recorder clipped): with 3 samples, 177
  windows judged saturated, 71 of them at no clip level (each an unclassified stretch of
  beats); with 4, 52, 3 of them at no clip level. The price: 57 windows with 3-sample clips
  (23 ms flat tops, 49 of them in record 868) are predicted on. At 175 Hz and above 20 ms is already >= 4 samples: nothing changes there.
- beat count: fewer than 20 or more than 250 beats per minute over the window: outside any
  rhythm the model is trained on, and the classic sign of a detector on noise or on a flat line.
- missing signal: at most 10 % of the window filled (`max_missing_frac`; the issue's figure: at
  5 % random frame loss a 10-s window holds more than 10 % in well under 1 window in 10^6), and
  no filled run longer than 120 ms (`max_gap_s`): the upper limit of a normal QRS (AHA/ACCF/HRS
  2009: QRS >= 120 ms is a bundle-branch block), so a gap the window keeps never hides a whole
  QRS and the RR series it is given counts every beat that a complete signal would show.
- leads: one measured lead left is enough (`min_leads = 1`): the model is trained with the lead
  mask for 1-, 2- and 3-lead monitors.
- noise: power above 45 Hz (EMG, electrode motion, mains harmonics) over the power in the
  contract's band, mean over leads; above 0.3 (SNR ~5 dB) QRS detection degrades markedly
  (Friesen et al., IEEE TBME 37:85, 1990, detectors under EMG noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_ecg.runtime.ring_buffer import FLAG_BREAK, FLAG_GAP, FLAG_NONFINITE

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
    # ... and never fewer samples than this: at a Holter's 128 Hz, 20 ms is 3 samples, and a
    # broad extreme (an S trough, a wide R) quantized at 5 uV sits flat for 3 (docstring)
    rail_run_min_samples: int = 4
    min_bpm: float = 20.0
    max_bpm: float = 250.0
    max_noise_ratio: float = 0.3
    # issue 17: degrade within these limits, withhold beyond them (module docstring)
    max_missing_frac: float = 0.10   # filled samples (gap + non-finite) / window samples
    max_gap_s: float = 0.12          # longest filled run touching the window
    min_leads: int = 1               # measured source leads left after masking
    mask_off_leads: bool = True      # False: any lead off / saturated withholds the window

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_missing_frac <= 1.0 or self.max_gap_s < 0 or self.min_leads < 1:
            raise ValueError(f"QualityConfig: max_missing_frac in [0, 1], max_gap_s >= 0, "
                             f"min_leads >= 1; got {self.max_missing_frac}, {self.max_gap_s}, "
                             f"{self.min_leads}")


# The limits before issue 17: any gap, non-finite sample, lead off or saturation withholds.
STRICT = QualityConfig(max_missing_frac=0.0, max_gap_s=0.0, mask_off_leads=False)


@dataclass(frozen=True)
class WindowQuality:
    """The verdict on one window. `reasons` empty: predict on the leads where `used` is True.

    Sample counts are on the source clock over the window: `missing` never arrived (a gap),
    `invalid` arrived NaN/inf; both were filled by the ring buffer (`filled` = either).
    `off` / `saturated` `(L,)` are the leads judged off / at the rail (masked when allowed).
    """

    reasons: tuple[str, ...]
    used: np.ndarray
    off: np.ndarray
    saturated: np.ndarray
    n_samples: int
    missing: int = 0
    invalid: int = 0
    filled: int = 0
    longest_gap: int = 0                       # samples of the longest filled run touching it
    masked: tuple[int, ...] = field(default=())   # source columns masked (off or saturated)

    @property
    def filled_frac(self) -> float:
        return self.filled / self.n_samples if self.n_samples else 0.0

    @property
    def degraded(self) -> bool:
        return bool(self.filled or self.masked)

    def describe(self, leads: tuple[str, ...]) -> dict:
        """What a prediction or withheld event reports about its window (JSON-ready)."""
        return {"missing_samples": self.missing, "invalid_samples": self.invalid,
                "filled_samples": self.filled, "filled_frac": round(self.filled_frac, 4),
                "longest_gap_samples": self.longest_gap,
                "leads": [leads[i] for i in np.flatnonzero(self.used)],
                "leads_off": {leads[i]: ("saturation" if self.saturated[i] else "lead_off")
                              for i in self.masked}}


def judge_window(raw_mv: np.ndarray, raw_flags: np.ndarray, fs_hz: float, n_beats: int,
                 noise_ratio: float, cfg: QualityConfig = QualityConfig(),
                 rails_mv: tuple[np.ndarray, np.ndarray] | None = None,
                 context: tuple[np.ndarray, np.ndarray, int] | None = None,
                 halves: tuple[np.ndarray, np.ndarray, int] | None = None) -> WindowQuality:
    """The whole verdict on a window: reasons to withhold, leads to use, filled counts.

    Arguments as `assess_window`. Lead-off and saturation are judged per lead on the measured
    samples only (filled ones excluded), so a fill never reads as a flat lead. `halves`: the
    context's half-block extremes where the caller keeps them (`HalfBlockExtremes`), as
    `_half_extremes` of the context would give them; with them and a window that is a view
    into its context on their grid, a window with no flat half-block and no lead near a run
    at its extreme (nearly every window) is judged without copying its samples at all.
    """
    flags = np.asarray(raw_flags, dtype=np.uint8)
    t, n_leads = int(raw_mv.shape[0]), int(raw_mv.shape[1])
    reasons: list[str] = []
    # nearly every window is all measured: one count settles it (the per-kind counts and
    # the longest run are needed only where something was filled)
    filled = int(np.count_nonzero(flags))
    missing = invalid = longest = 0
    if filled:
        missing = int(np.count_nonzero(flags & FLAG_GAP))
        invalid = int(np.count_nonzero(flags & FLAG_NONFINITE))
        filled_any = flags != 0
        if context is None:
            longest = _longest_run(filled_any, 0, t)
        else:
            longest = _longest_run(np.asarray(context[1]) != 0, int(context[2]),
                                   int(context[2]) + t)
        # a gap of unknown length (a device reboot) is never bridged, however short it looks
        broken = bool(np.any(flags & FLAG_BREAK))
        if broken or filled > cfg.max_missing_frac * t or longest > cfg.max_gap_s * fs_hz:
            if missing:
                reasons.append("gap")
            if invalid:
                reasons.append("nan")
    ok = flags == 0
    quick = None
    if halves is not None and context is not None:
        quick = _quick_verdict(raw_mv, ok, fs_hz, cfg, rails_mv, context, halves)
    if quick is not None:
        off, sat = quick
    else:
        off, sat = _lead_verdicts(raw_mv, ok, fs_hz, cfg, rails_mv, context)
    masked_b = off | sat
    used = np.ones(n_leads, dtype=bool)
    if masked_b.any():
        if cfg.mask_off_leads:
            used = ~masked_b
            withhold = int(used.sum()) < cfg.min_leads
        else:
            withhold = True
        if withhold:
            if off.any():            # as before issue 17: each check its own reason (a lead
                reasons.append("lead_off")   # flat at the rail is both)
            if sat.any():
                reasons.append("saturation")
    if np.isfinite(noise_ratio) and noise_ratio > cfg.max_noise_ratio:
        reasons.append("noise")
    minutes = t / fs_hz / 60.0
    if not (cfg.min_bpm * minutes <= n_beats <= cfg.max_bpm * minutes):
        reasons.append("beat_count")
    masked = tuple(int(i) for i in np.flatnonzero(masked_b)) if cfg.mask_off_leads else ()
    return WindowQuality(reasons=tuple(reasons), used=used, off=off, saturated=sat,
                         n_samples=t, missing=missing, invalid=invalid, filled=filled,
                         longest_gap=longest, masked=masked)


def _lead_verdicts(raw_mv, ok: np.ndarray, fs_hz: float, cfg: QualityConfig, rails_mv,
                   context) -> tuple[np.ndarray, np.ndarray]:
    """`(off, saturated)` per lead, on lead-major copies of the window and its context."""
    t = int(raw_mv.shape[0])
    # lead-major copy: reductions along the contiguous time axis are ~10x faster than along
    # axis 0 of a (T, 12) array (measured). A window that is a view into its context (as the
    # stream cuts them) is read from the context's copy: one transposing copy, not two
    if context is None:
        xl = np.ascontiguousarray(np.asarray(raw_mv, dtype=np.float32).T)
        xc, okc, w0, inside = xl, ok, 0, True
    else:
        ctx = np.asarray(context[0], dtype=np.float32)
        xc = np.ascontiguousarray(ctx.T)
        okc, w0 = np.asarray(context[1], dtype=np.uint8) == 0, int(context[2])
        inside = _view_at(raw_mv, ctx, w0)
        xl = (xc[:, w0:w0 + t] if inside
              else np.ascontiguousarray(np.asarray(raw_mv, dtype=np.float32).T))
    # per-lead extremes of the context's half-blocks, shared by both checks (the window's
    # extremes and its blocks' from them, where the window lies on their grid)
    halves = _half_extremes(xc, flat_block_len(fs_hz, cfg))
    on_grid = halves if inside and halves is not None and w0 % halves[2] == 0 else None
    off = _off_leads(xl, ok, fs_hz, cfg, xc, okc, w0, halves=halves, window_halves=on_grid)
    sat = _saturated_leads(xl, ok, fs_hz, cfg, rails_mv,
                           halves=None if on_grid is None else (on_grid, w0))
    return off, sat


def _quick_verdict(raw_mv, ok: np.ndarray, fs_hz: float, cfg: QualityConfig, rails_mv,
                   context, halves) -> tuple[np.ndarray, np.ndarray] | None:
    """`_lead_verdicts` from the context's half-block extremes and the time-major samples,
    without lead-major copies: where every sample of the window is measured and no lead has
    `run` samples at its window extreme (else None: the full computation decides). Lead-off
    blocks are searched only around the measured flat half-blocks (`_off_near_flat`); with
    none, no lead can be off, nor every lead flat. The same verdict, never an approximation:
    each step is the plain computation's, on exact extremes and on the only positions where
    it can come out true."""
    ctx = np.asarray(context[0], dtype=np.float32)
    w0, t, n_leads = int(context[2]), int(raw_mv.shape[0]), int(raw_mv.shape[1])
    hmax, hmin, half = halves
    block = flat_block_len(fs_hz, cfg)
    j, k = w0 // half, t // half
    if (2 * half != block or w0 % half or k == 0 or not bool(ok.all()) or ctx.ndim != 2
            or ctx.shape[0] < block or hmax.shape[1] != ctx.shape[0] // half
            or not _view_at(raw_mv, ctx, w0)):
        return None
    cflags = np.asarray(context[1], dtype=np.uint8)
    if np.count_nonzero(cflags):           # something filled around the window
        okc = cflags == 0
        hclean = okc[:hmax.shape[1] * half].reshape(-1, half).all(axis=1)
        if not hclean[j:j + k].all():      # the context's flags disagree with the window's
            return None
        hflat = ((hmax - hmin) < cfg.flat_mv) & hclean[None, :]
    else:                                  # all measured: every half-block clean
        okc = np.ones(cflags.shape, dtype=bool)
        hflat = (hmax - hmin) < cfg.flat_mv
    off = np.zeros(n_leads, dtype=bool)
    if hflat.any():
        off = _off_near_flat(ctx, okc, w0, t, hflat, half, fs_hz, cfg)
        n = (t // block) * block           # every lead flat over the whole window
        if n:
            nb = n // block
            bmax = np.maximum(hmax[:, j:j + 2 * nb:2], hmax[:, j + 1:j + 2 * nb:2])
            bmin = np.minimum(hmin[:, j:j + 2 * nb:2], hmin[:, j + 1:j + 2 * nb:2])
            if ((bmax - bmin) < cfg.flat_mv).all():
                off[:] = True
    sat = np.zeros(n_leads, dtype=bool)
    r0 = k * half
    hmax, hmin = hmax[:, j:j + k], hmin[:, j:j + k]
    hi_v, lo_v = hmax.max(axis=1), hmin.min(axis=1)
    if r0 < t:
        hi_v = np.maximum(hi_v, raw_mv[r0:].max(axis=0))
        lo_v = np.minimum(lo_v, raw_mv[r0:].min(axis=0))
    if rails_mv is not None:                       # some sample at a rail: at its extreme
        lo, hi = rails_mv
        sat |= (lo_v <= lo) | (hi_v >= hi)
    run = rail_run_samples(fs_hz, cfg)
    if t < run:
        return off, sat
    live = (hi_v - lo_v) >= cfg.flat_mv
    x = raw_mv[:r0].reshape(k, half, n_leads)          # time-major half-blocks, a view
    n_at = _count_at_extremes(x, raw_mv[r0:], hmax, hmin, hi_v, lo_v)
    cand = live & ((n_at[:n_leads] >= run) | (n_at[n_leads:] >= run))
    return None if cand.any() else (off, sat)


def _off_near_flat(ctx: np.ndarray, okc: np.ndarray, w0: int, t: int, hflat: np.ndarray,
                   half: int, fs_hz: float, cfg: QualityConfig) -> np.ndarray:
    """The sliding part of `_off_leads` (its `result` before the whole-window check) on the
    time-major context `ctx` `(T', L)`, computing block ranges only where a block can be
    flat: a block of `2 * half` samples holds a whole half-block of the grid, so a flat,
    measured block at `p` holds a flat, measured half-block `m` with
    `m * half - half <= p <= m * half` (`hflat` `(L, T' // half)`). Every other position is
    not off, as the full computation finds; the alive check and the count of the window's
    samples in off blocks are the full computation's own, on the same `off` array."""
    n_leads, tc = ctx.shape[1], ctx.shape[0]
    block = 2 * half
    result = np.zeros(n_leads, dtype=bool)
    lo, hi = max(w0 - block + 1, 0), min(w0 + t, tc - block + 1)       # block starts
    if hi <= lo:
        return result
    c = np.concatenate([[0], np.cumsum(okc, dtype=np.int64)])
    clean = (c[lo + block:hi + block] - c[lo:hi]) == block
    off = np.zeros((n_leads, hi - lo), dtype=bool)
    for lead in np.flatnonzero(hflat.any(axis=1)).tolist():
        near = np.zeros(hi - lo + 1, dtype=np.int64)       # +1 / -1 at run edges
        for m in np.flatnonzero(hflat[lead]).tolist():
            a, b = max(m * half - half, lo), min(m * half, hi - 1)
            if a <= b:
                near[a - lo] += 1
                near[b - lo + 1] -= 1
        for a, b in _runs(np.cumsum(near[:-1]) > 0):
            col = np.ascontiguousarray(ctx[lo + a:lo + b + block - 1, lead])[None, :]
            off[lead, a:b] = (sliding_ptp(col, block)[0] < cfg.flat_mv) & clean[a:b]
    if not off.any():
        return result
    alive = np.zeros(hi - lo, dtype=bool)          # another lead alive where one is off
    for a, b in _runs(np.asarray(off.any(axis=0))):
        rows = np.ascontiguousarray(ctx[lo + a:lo + b + block - 1].T)
        alive[a:b] = (sliding_ptp(rows, block) >= cfg.alive_mv).any(axis=0)
    off &= alive[None, :]
    if off.any():
        # samples of the window inside some off block, as `_off_leads` counts them
        cs = np.concatenate([np.zeros((n_leads, 1), np.int64), np.cumsum(off, axis=1)], axis=1)
        i = np.arange(w0, w0 + t)
        j1 = np.clip(i, lo - 1, hi - 1) - lo + 1
        j0 = np.clip(i - block + 1, lo, hi) - lo
        held = ((cs[:, j1] - cs[:, j0]) > 0).sum(axis=1)
        result |= held >= int(round(cfg.flat_min_s * fs_hz))
    return result


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """`[a, b)` runs where the 1-D bool `mask` is True."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def _count_at_extremes(x: np.ndarray, rest: np.ndarray, hmax: np.ndarray, hmin: np.ndarray,
                       hi_v: np.ndarray, lo_v: np.ndarray) -> np.ndarray:
    """`_count_equal` of both extremes on time-major samples, `(2 L,)`: per lead the samples
    at its max, then at its min. `x` `(k, half, L)` the half-blocks (`hmax`, `hmin` `(L, k)`
    their extremes), `rest` `(r, L)` the samples after them."""
    n_leads = x.shape[2]
    v = np.concatenate([hi_v, lo_v])
    li, ji = np.nonzero(np.concatenate([hmax, hmin]) == v[:, None])
    blocks = x[ji, :, li % n_leads]                               # (hits, half)
    n = np.bincount(li, weights=np.count_nonzero(blocks == v[li, None], axis=1),
                    minlength=2 * n_leads)
    if rest.shape[0]:
        n[:n_leads] += np.count_nonzero(rest == hi_v[None, :], axis=0)
        n[n_leads:] += np.count_nonzero(rest == lo_v[None, :], axis=0)
    return n


class HalfBlockExtremes:
    """Per-lead max and min of a stream's raw samples over the half-blocks of the lead-off
    grid, `[k * half, (k + 1) * half)` on the raw buffer's clock: computed once, as the
    samples arrive, for what the buffer holds; `judge_window` would otherwise compute them
    again over every window's context (a context spans ~14 hops). Samples at an index never
    change once written (`RingBuffer`), so the extremes are those of any later read. Plain
    data (a ward bed's snapshot carries it)."""

    def __init__(self, block: int, n_leads: int, capacity: int) -> None:
        self.half = max(int(block) // 2, 1)
        n = int(capacity) // self.half + 2
        self.hmax = np.zeros((int(n_leads), n), dtype=np.float32)
        self.hmin = np.zeros((int(n_leads), n), dtype=np.float32)
        self.ids = np.full(n, -1, dtype=np.int64)       # the half-block each slot holds
        self.next = 0                                   # the first not computed yet

    def update(self, raw) -> None:
        """The half-blocks `raw` (a `RingBuffer`) completed since the last call."""
        half, n = self.half, self.ids.size
        k1 = raw.end // half
        k0 = max(self.next, -(-raw.start // half), k1 - n)
        if k1 > k0:
            x, _ = raw.view(k0 * half, k1 * half)
            xb = np.ascontiguousarray(x.T).reshape(x.shape[1], k1 - k0, half)
            slots = np.arange(k0, k1) % n
            self.hmax[:, slots] = xb.max(axis=2)
            self.hmin[:, slots] = xb.min(axis=2)
            self.ids[slots] = np.arange(k0, k1)
        self.next = max(self.next, k1)

    def extremes(self, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray, int] | None:
        """`_half_extremes` of the samples `[c0, c1)`, or None where `c0` is off the grid,
        the span is under a block or a half-block of it is not held."""
        half = self.half
        if c0 % half or c1 - c0 < 2 * half:
            return None
        k = np.arange(c0 // half, c0 // half + (c1 - c0) // half)
        slots = k % self.ids.size
        if not np.array_equal(self.ids[slots], k):
            return None
        return self.hmax[:, slots], self.hmin[:, slots], half


def _view_at(a, ctx: np.ndarray, w0: int) -> bool:
    """Whether `a` is `ctx[w0:w0 + len(a)]` itself (the same memory, shape and strides)."""
    if not isinstance(a, np.ndarray) or a.dtype != ctx.dtype or a.ndim != 2:
        return False
    if a.shape[1] != ctx.shape[1] or a.strides != ctx.strides or w0 + a.shape[0] > ctx.shape[0]:
        return False
    return (a.__array_interface__["data"][0]
            == ctx.__array_interface__["data"][0] + w0 * ctx.strides[0])


def _half_extremes(xc: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """`(hmax, hmin, half)`: per lead, the max and min of `xc` `(L, T)` over the half-blocks
    `[k * half, (k + 1) * half)` (`half = block // 2`); None when `T` is under a block."""
    return None if xc.shape[1] < block else _halves(xc, block)


def _halves(xc: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, int]:
    """`_half_extremes` of a context at least a block long."""
    half = block // 2
    xh = xc[:, :(xc.shape[1] // half) * half].reshape(xc.shape[0], -1, half)
    return xh.max(axis=2), xh.min(axis=2), half


def _longest_run(mask: np.ndarray, a: int, b: int) -> int:
    """Length of the longest run of True in `mask` that overlaps `[a, b)` (whole run counted,
    as far as `mask` reaches)."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    keep = (starts < b) & (ends > a)
    return int((ends[keep] - starts[keep]).max()) if keep.any() else 0


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
    return judge_window(raw_mv, raw_flags, fs_hz, n_beats, noise_ratio, cfg, rails_mv,
                        context).reasons


def flat_block_len(fs_hz: float, cfg: QualityConfig) -> int:
    """Samples in a lead-off block (`flat_block_s` at `fs_hz`)."""
    return max(int(round(cfg.flat_block_s * fs_hz)), 2)


def _lead_off(x: np.ndarray, ok: np.ndarray, fs_hz: float, cfg: QualityConfig,
              xc: np.ndarray | None = None, okc: np.ndarray | None = None,
              w0: int = 0) -> bool:
    """True when some lead is off (`_off_leads`)."""
    return bool(_off_leads(x, ok, fs_hz, cfg, xc, okc, w0).any())


def _off_leads(x: np.ndarray, ok: np.ndarray, fs_hz: float, cfg: QualityConfig,
               xc: np.ndarray | None = None, okc: np.ndarray | None = None,
               w0: int = 0, halves: tuple | None = None,
               window_halves: tuple | None = None) -> np.ndarray:
    """`(L,)` bool, per lead: off when the lead is flat over blocks of `flat_block_s` clean
    samples anywhere (sliding blocks) while another lead shows a QRS-sized deflection in the
    same block, and the window holds `flat_min_s` of such blocks; every lead when every lead
    is flat over the whole window.

    `x` `(L, T)` / `ok` `(T,)` is the window; `xc` / `okc` the same with context on either
    side, the window starting at `w0` in it. The second lead's activity tells an electrode
    that is off from a pause (asystole, a sinus pause, a lead perpendicular to the heart's
    axis), where every lead is quiet. Sliding max/min (`sliding_ptp`) run only for leads
    that hold a flat half-block: any flat run of a block's length covers a whole half-block
    of the aligned half-block grid. `halves`: `_half_extremes(xc, block)` where the caller
    has it; `window_halves` the same where the window `x` is `xc[:, w0:]` and `w0` lies on
    its half-block grid (the window's blocks' extremes are then read from it).
    """
    if xc is None or okc is None:
        xc, okc, w0 = x, ok, 0
    block = flat_block_len(fs_hz, cfg)
    n_leads, t = xc.shape
    result = np.zeros(n_leads, dtype=bool)
    if t >= block:
        hmax, hmin, half = halves if halves is not None else _halves(xc, block)
        nh = (t // half) * half
        hclean = np.asarray(okc[:nh].reshape(-1, half).all(axis=1))
        hflat = ((hmax - hmin) < cfg.flat_mv) & hclean[None, :]
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
                    result |= held >= int(round(cfg.flat_min_s * fs_hz))
    # every lead flat over the whole window, on the window's own block grid
    n = (x.shape[1] // block) * block
    if n == 0:
        return result
    if not ok[:n].reshape(-1, block).all(axis=1).all():        # a block not all measured
        return result
    if window_halves is not None and 2 * window_halves[2] == block:
        # a block is two half-blocks of the grid: its extremes are theirs
        hmax, hmin, half = window_halves
        j, nb = w0 // half, n // block
        bmax = np.maximum(hmax[:, j:j + 2 * nb:2], hmax[:, j + 1:j + 2 * nb:2])
        ptp_b = bmax - np.minimum(hmin[:, j:j + 2 * nb:2], hmin[:, j + 1:j + 2 * nb:2])
    else:
        xb = x[:, :n].reshape(x.shape[0], -1, block)           # (L, blocks, block)
        ptp_b = xb.max(axis=2) - xb.min(axis=2)                # (L, blocks)
    if (ptp_b < cfg.flat_mv).all():
        result[:] = True
    return result


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


def rail_run_samples(fs_hz: float, cfg: QualityConfig) -> int:
    """The samples in a row at a window extreme that make a lead saturated: `rail_run_s`, and
    at least `rail_run_min_samples` (module docstring)."""
    return max(int(round(cfg.rail_run_s * fs_hz)), cfg.rail_run_min_samples, 2)


def _saturated(x: np.ndarray, ok: np.ndarray, fs_hz: float, cfg: QualityConfig,
               rails_mv: tuple[np.ndarray, np.ndarray] | None) -> bool:
    """True when some lead is saturated (`_saturated_leads`)."""
    return bool(_saturated_leads(x, ok, fs_hz, cfg, rails_mv).any())


def _saturated_leads(x: np.ndarray, ok: np.ndarray, fs_hz: float, cfg: QualityConfig,
                     rails_mv: tuple[np.ndarray, np.ndarray] | None,
                     halves: tuple | None = None) -> np.ndarray:
    """`(L,)` bool, per lead: at its window extreme for `rail_run_s` in a row, or at a known
    rail; `x` (L, T). `halves`: `(_half_extremes(xc, block), w0)` where `x` is `xc[:, w0:]`
    and `w0` lies on the half-block grid: the window's extremes, and the half-blocks that
    can hold samples at them, are read from it (the same numbers, fewer passes)."""
    result = np.zeros(x.shape[0], dtype=bool)
    if x.shape[1] == 0:
        return result
    xo = x if ok.all() else x[:, ok]
    if xo.shape[1] == 0:
        return result
    if rails_mv is not None:
        lo, hi = rails_mv
        result |= np.any((xo <= lo[:, None]) | (xo >= hi[:, None]), axis=1)
    run = rail_run_samples(fs_hz, cfg)
    if x.shape[1] < run:
        return result
    t = x.shape[1]
    k = 0
    if halves is not None and xo is x:                          # every sample measured
        (hmax, hmin, half), w0 = halves
        j, k = w0 // half, t // half
    if k:
        hmax, hmin, r0 = hmax[:, j:j + k], hmin[:, j:j + k], k * half
        hi_v, lo_v = hmax.max(axis=1), hmin.min(axis=1)
        if r0 < t:
            hi_v = np.maximum(hi_v, x[:, r0:].max(axis=1))
            lo_v = np.minimum(lo_v, x[:, r0:].min(axis=1))
        live = (hi_v - lo_v) >= cfg.flat_mv
        # fast reject as below, counting only in the half-blocks that reach the extreme
        cand = live & ((_count_equal(x, hmax, hi_v, half) >= run)
                       | (_count_equal(x, hmin, lo_v, half) >= run))
        if not cand.any():
            return result
    hi_v, lo_v = xo.max(axis=1), xo.min(axis=1)
    live = (hi_v - lo_v) >= cfg.flat_mv                         # a flat lead is lead-off instead
    at_hi, at_lo = x == hi_v[:, None], x == lo_v[:, None]
    # fast reject: a run needs `run` samples at one extreme (a sharp peak has 1-3)
    cand = live & ((at_hi.sum(axis=1) >= run) | (at_lo.sum(axis=1) >= run))
    if not cand.any():
        return result
    at_extreme = ((at_hi | at_lo) & ok[None, :])[cand]
    # a run of `run` consecutive samples at the extreme: windowed sum of the indicator
    c = np.cumsum(np.hstack([np.zeros((at_extreme.shape[0], 1), np.int64), at_extreme]), axis=1)
    result[np.flatnonzero(cand)] |= np.any(c[:, run:] - c[:, :-run] >= run, axis=1)
    return result


def _count_equal(x: np.ndarray, hext: np.ndarray, v: np.ndarray, half: int) -> np.ndarray:
    """Per lead, the samples of `x` `(L, T)` equal to `v` `(L,)`, its extreme: searched only
    in the half-blocks whose extreme `hext` `(L, k)` is `v` (no other can hold one) and in the
    `T - k * half` samples after them."""
    n_leads, r0 = x.shape[0], hext.shape[1] * half
    li, ji = np.nonzero(hext == v[:, None])
    blocks = x[:, :r0].reshape(n_leads, -1, half)[li, ji]      # (hits, half)
    n = np.bincount(li, weights=np.count_nonzero(blocks == v[li, None], axis=1),
                    minlength=n_leads).astype(np.int64)
    if r0 < x.shape[1]:
        n += np.count_nonzero(x[:, r0:] == v[:, None], axis=1)
    return n


def noise_ratio(hf_power: np.ndarray, band_power: np.ndarray) -> float:
    """Mean high-band over mean in-band power over a window (per-sample powers, lead-mean)."""
    band = _mean(band_power)
    return _mean(hf_power) / band if band > 1e-12 else float("nan")  # flat: lead_off


def _mean(v) -> float:
    """`float(np.mean(v))` of a non-empty float array: its sum (`np.add.reduce`) over the
    count in the array's dtype, as `np.mean` computes it, without its wrappers."""
    v = np.asarray(v)
    if v.dtype.kind != "f" or v.size == 0:
        return float(np.mean(v))
    return float(np.add.reduce(v, axis=None) / v.size)


__all__ = ["NOISE_HIGHPASS", "REASONS", "STRICT", "QualityConfig", "WindowQuality", "assess_window",
           "flat_block_len", "judge_window", "noise_ratio", "sliding_ptp"]
