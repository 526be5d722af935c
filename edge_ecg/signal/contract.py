"""The signal contract: what the model eats, computed the same way in training and runtime.

A `SignalContract` travels in every checkpoint config and bundle manifest. `prepare_inputs`
turns one filtered window plus its R peaks into the model's inputs; training data and the
on-device predictor both call it, so there is no train/serve skew.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache

import numpy as np

from edge_ecg.errors import SignalError
from edge_ecg.signal.beats import cut_beats, whole_beats
from edge_ecg.signal.leads import STANDARD_12, canonical_lead, derive_limb_leads
from edge_ecg.signal.normalize import CLIP_MV, median_last_axis, normalize
from edge_ecg.signal.patient_context import N_CONTEXT, N_RAW, beat_context
from edge_ecg.signal.period import (
    PERIOD_FEATURES,
    period_features_from_ms,
    rr_intervals_ms,
    rr_series_from_ms,
)


# The validity mask (`valid`, issue 17) marks, per lead and per 40-ms segment of the window,
# whether every sample in it was measured. Segments, not samples: a lost frame of a serial or
# BLE link is 10-40 ms of every lead, the runtime's limits are stated in tens of milliseconds
# (a filled run of at most 120 ms), and a per-sample mask would double the input the model
# reads and the training set holds. A segment with any filled sample is invalid.
VALID_SEG_S = 0.04


@dataclass(frozen=True)
class SignalContract:
    fs_hz: float = 500.0
    leads: tuple[str, ...] = STANDARD_12
    window_s: float = 10.0
    hop_s: float = 1.0
    beat_pre_s: float = 0.25          # P wave and PR segment before R
    beat_post_s: float = 0.45         # QRS, ST and T (and a U wave) after R
    max_beats: int = 32               # 10 s at 190 bpm; faster rhythms keep the first 32
    filter: str = "bandpass_0.5_40"   # name resolved by edge_ecg.signal.filters.make_filter
    normalisation: str = "median_mv"  # name resolved by edge_ecg.signal.normalize.normalize
    period_features: tuple[str, ...] = field(default=PERIOD_FEATURES)

    @property
    def window_len(self) -> int:
        return int(round(self.window_s * self.fs_hz))

    @property
    def hop_len(self) -> int:
        return int(round(self.hop_s * self.fs_hz))

    @property
    def beat_pre(self) -> int:
        return int(round(self.beat_pre_s * self.fs_hz))

    @property
    def beat_len(self) -> int:
        return self.beat_pre + int(round(self.beat_post_s * self.fs_hz))

    @property
    def n_leads(self) -> int:
        return len(self.leads)

    @property
    def valid_seg(self) -> int:
        """Samples per segment of the validity mask (`valid`)."""
        return max(1, int(round(VALID_SEG_S * self.fs_hz)))

    @property
    def n_valid_seg(self) -> int:
        """Segments of the validity mask over one window (the last one may be short)."""
        return -(-self.window_len // self.valid_seg)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["leads"] = list(self.leads)
        d["period_features"] = list(self.period_features)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SignalContract":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SignalError(f"signal contract has unknown fields {sorted(unknown)}")
        d = dict(d)
        for key in ("leads", "period_features"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


@dataclass(frozen=True)
class ModelInputs:
    """One window's model inputs (unbatched). `stack_inputs` adds the batch axis."""

    x: np.ndarray           # (L, T) float32, normalised
    lead_mask: np.ndarray   # (L,) bool
    beats: np.ndarray       # (max_beats, L, beat_len) float32
    beat_mask: np.ndarray   # (max_beats,) bool
    rr_ms: np.ndarray       # (max_beats,) float32
    rr_mask: np.ndarray     # (max_beats,) bool
    period: np.ndarray      # (n_period_features,) float32
    beat_rr: np.ndarray     # (max_beats, 3) float32: each beat slot's RR context, ms
    valid: np.ndarray       # (L, n_valid_seg) bool: lead present and segment all measured
    # (max_beats, N_CONTEXT) float32: each beat slot judged against the patient's context
    # (edge_ecg.signal.patient_context); all zero where none was kept (`known` = 0)
    beat_ctx: np.ndarray


INPUT_NAMES: tuple[str, ...] = ("x", "lead_mask", "beats", "beat_mask", "rr_ms", "rr_mask", "period",
                                "beat_rr", "valid", "beat_ctx")

# `beat_rr` columns: the RR interval before and after each kept beat and the window's mean RR
# (ms; 0 = unknown: no neighbour inside the window, or an empty slot). A beat's class rests on
# its timing (a PVC comes early and is followed by a compensatory pause; de Chazal et al. 2004
# classify on pre-, post- and average RR) and the beat slots do not line up with `rr_ms`, which
# runs over every peak in the window, whole beat or not.
BEAT_RR_COLUMNS: tuple[str, ...] = ("pre_rr_ms", "post_rr_ms", "mean_rr_ms")


def beat_rr_context(r: np.ndarray, pre: int, post: int, n: int, max_beats: int,
                    fs_hz: float, out: np.ndarray | None = None) -> np.ndarray:
    """`beat_rr` `(max_beats, 3)` of the whole beats `whole_beats` keeps from the sorted peaks
    `r` (window samples), in the same slots.

    The slots are the peaks `first .. first + k - 1`, so their RR before and after are two
    slices of the interval series: a window's dozen peaks are tested in Python and the columns
    copied as slices (~5x fewer numpy calls than index arrays and `np.where`; the same
    float64 intervals and mean, cast to float32 the same way)."""
    out = np.zeros((max_beats, 3), np.float32) if out is None else out
    out[:] = 0.0
    r = np.asarray(r, dtype=np.int64)
    last = n - post
    whole = [pre <= v <= last for v in r.tolist()]      # r - pre >= 0 and r + post <= n
    k = min(sum(whole), max_beats)
    if k == 0 or r.size < 2:
        return out
    first = whole.index(True)
    rr = (r[1:] - r[:-1]) * (1000.0 / fs_hz)                # rr[i]: peak i -> i + 1, float64
    # peak first + j has an interval before it when first + j >= 1, after it when < rr.size
    if first:
        out[:k, 0] = rr[first - 1:first - 1 + k]
    else:
        out[1:k, 0] = rr[:k - 1]
    m = min(k, rr.size - first)
    out[:m, 1] = rr[first:first + m]
    out[:k, 2] = float(np.add.reduce(rr)) / rr.size          # rr.mean(): the same sum / n
    return out


def prepare_inputs(window: np.ndarray, lead_names: tuple[str, ...] | list[str],
                   r_peaks: np.ndarray, contract: SignalContract,
                   seg_filled: np.ndarray | None = None,
                   ctx_rows: np.ndarray | None = None) -> ModelInputs:
    """Model inputs from one filtered window.

    `window` is time-major `(contract.window_len, n_source_leads)` in mV, already filtered with
    the contract's filter at `contract.fs_hz`; `r_peaks` are sample indices within it.
    Leads the source lacks are zero and masked (limb leads derived from I and II).
    `seg_filled` `(n_valid_seg,)` bool marks the segments holding filled samples (a gap's
    fill; segment k is window samples `[k * valid_seg, (k + 1) * valid_seg)`): they are invalid
    in `valid` on every lead and the model reads nothing there. The beats and RR intervals stay as the detector found them (see
    `_fill`). `ctx_rows` `(len(r_peaks), N_RAW)`: each peak's patient-context row
    (`PatientContext.observe`), giving `beat_ctx`; None leaves it zero.
    """
    x = np.empty((contract.n_leads, contract.window_len), dtype=np.float32)
    beats = np.zeros((contract.max_beats, contract.n_leads, contract.beat_len), dtype=np.float32)
    beat_rr = np.zeros((contract.max_beats, 3), dtype=np.float32)
    beat_ctx = np.zeros((contract.max_beats, N_CONTEXT), dtype=np.float32)
    seg_filled = _check_seg_filled(seg_filled, contract)
    lead_mask, nb, rr, rr_mask, period = _fill(window, lead_names, r_peaks, contract, x, beats,
                                               beat_rr, ctx_rows, beat_ctx)
    beat_mask = np.zeros(contract.max_beats, dtype=bool)
    beat_mask[:nb] = True
    valid = np.empty((contract.n_leads, contract.n_valid_seg), dtype=bool)
    _valid(lead_mask, seg_filled, valid)
    return ModelInputs(x=x, lead_mask=lead_mask, beats=beats,
                       beat_mask=beat_mask, rr_ms=rr, rr_mask=rr_mask, period=period,
                       beat_rr=beat_rr, valid=valid, beat_ctx=beat_ctx)


def _check_seg_filled(seg_filled, contract: SignalContract) -> np.ndarray | None:
    if seg_filled is None:
        return None
    f = np.asarray(seg_filled, dtype=bool)
    if f.shape != (contract.n_valid_seg,):
        raise SignalError(f"seg_filled must be ({contract.n_valid_seg},) segments of "
                          f"{contract.valid_seg} samples, got {f.shape}")
    return f if f.any() else None


def _valid(lead_mask: np.ndarray, seg_filled: np.ndarray | None, out: np.ndarray) -> None:
    """`valid` `(L, n_valid_seg)`: the lead is present and the segment was all measured."""
    out[:] = lead_mask[:, None]
    if seg_filled is not None:
        out[:, seg_filled] = 0


# Limb leads `derive_limb_leads` computes, in its order.
_DERIVED: tuple[str, ...] = tuple(derive_limb_leads(np.zeros(1), np.zeros(1)))


@dataclass(frozen=True)
class _LeadPlan:
    """Where each model lead comes from, for one (source leads, model leads) pair: what
    `to_standard_leads` decides per call, decided once (the lead names of a stream never
    change, and this is pure string work)."""

    direct_k: np.ndarray      # model rows taken from a source column ...
    direct_j: np.ndarray      # ... namely this one
    identity: bool            # direct_k == direct_j == arange(n_model): one transposing copy
    derived: tuple[tuple[int, str], ...]   # (model row, limb lead) derived from I and II
    i_col: int                # source columns of I and II (-1 where absent)
    ii_col: int
    mask: np.ndarray          # (n_model,) bool, as to_standard_leads returns it
    present: np.ndarray       # flatnonzero(mask)
    all_present: bool


@lru_cache(maxsize=64)
def _lead_plan(names: tuple[str, ...], target: tuple[str, ...]) -> _LeadPlan:
    col: dict[str, int] = {}
    for j, name in enumerate(names):          # the first source column of a lead wins
        std = canonical_lead(name)
        if std is not None and std not in col:
            col[std] = j
    direct = [(k, col[name]) for k, name in enumerate(target) if name in col]
    derived: list[tuple[int, str]] = []
    if "I" in col and "II" in col:            # derived only where not measured
        derived = [(k, name) for k, name in enumerate(target)
                   if name not in col and name in _DERIVED]
    dk = np.array([k for k, _ in direct], dtype=np.intp)
    dj = np.array([j for _, j in direct], dtype=np.intp)
    n = len(target)
    mask = np.zeros(n, dtype=bool)
    mask[dk] = True
    for k, _ in derived:
        mask[k] = True
    identity = len(direct) == n and bool(np.all(dk == np.arange(n)) and np.all(dj == np.arange(n)))
    present = np.flatnonzero(mask)
    for a in (dk, dj, mask, present):        # shared by every call: read-only
        a.flags.writeable = False
    return _LeadPlan(direct_k=dk, direct_j=dj, identity=identity, derived=tuple(derived),
                     i_col=col.get("I", -1), ii_col=col.get("II", -1), mask=mask,
                     present=present, all_present=bool(mask.all()))


def _fill(window: np.ndarray, lead_names, r_peaks: np.ndarray, contract: SignalContract,
          x: np.ndarray, beats: np.ndarray, beat_rr: np.ndarray,
          ctx_rows: np.ndarray | None = None, beat_ctx: np.ndarray | None = None):
    """The work of `prepare_inputs`, written into caller-owned arrays.

    `x` `(L, T)` float32, `beat_rr` `(max_beats, 3)` and `beat_ctx` are overwritten whole; `beats`
    `(>= max_beats, L, beat_len)` gets the kept beats in its first `nb` rows (later rows are
    the caller's to zero). Returns
    `(lead_mask, nb, rr_ms, rr_mask, period)`.

    The same numbers as the straightforward form (to_standard_leads -> a lead-major copy ->
    normalize -> beat_windows -> rr_series / period_features), with less copying: source
    columns go straight into the lead-major rows, the median takes numpy's single-rank SIMD
    selection (`median_last_axis`), the beats are one gather from a sliding-window view, and
    the RR intervals are computed once for both rhythm inputs.
    """
    window = np.asarray(window)
    if window.ndim != 2 or window.shape[0] != contract.window_len:
        raise SignalError(
            f"window must be ({contract.window_len}, n_leads) at {contract.fs_hz} Hz, "
            f"got {window.shape}"
        )
    if not np.all(np.isfinite(window)):
        raise SignalError("window holds NaN or infinite samples; withhold it instead")
    names = tuple(lead_names)
    if window.shape[1] != len(names):
        raise ValueError(f"expected (T, {len(names)}) for leads {list(names)}, got {window.shape}")
    plan = _lead_plan(names, tuple(contract.leads))
    if not plan.present.size:
        raise SignalError(
            f"none of the leads {list(lead_names)} maps to the model's leads {list(contract.leads)}"
        )
    w = np.asarray(window, dtype=np.float32).T                  # (S, T) view
    n_model = contract.n_leads
    if plan.identity:
        x[:] = w[:n_model]
    else:
        if not plan.all_present:
            x[~plan.mask] = 0.0
        if plan.direct_k.size:
            x[plan.direct_k] = w[plan.direct_j]
        if plan.derived:
            limb = derive_limb_leads(np.ascontiguousarray(w[plan.i_col]),
                                     np.ascontiguousarray(w[plan.ii_col]))
            for k, name in plan.derived:
                x[k] = limb[name]
    # only the present leads are normalised (absent ones stay zero)
    # A float64 window can overflow float32 to inf, and a derived lead to NaN: the generic
    # `normalize` handles that as numpy's median does. float32 and integer windows cannot.
    fast = contract.normalisation == "median_mv" and (
        window.dtype.kind in "iub" or window.dtype.itemsize <= 4)
    if plan.all_present:
        if fast:
            np.subtract(x, median_last_axis(x), out=x)
            np.clip(x, -CLIP_MV, CLIP_MV, out=x)
        else:
            x[:] = normalize(x.copy(), contract.normalisation, axis=-1)
    else:
        sub = x[plan.present]                                   # a contiguous copy
        if fast:
            np.subtract(sub, median_last_axis(sub), out=sub)
            np.clip(sub, -CLIP_MV, CLIP_MV, out=sub)
        else:
            sub = normalize(sub, contract.normalisation, axis=-1)
        x[plan.present] = sub
    r = np.asarray(r_peaks, dtype=np.int64)
    inside = (r >= 0) & (r < contract.window_len)
    r = r[inside]
    pre = contract.beat_pre
    beat_rr_context(r, pre, contract.beat_len - pre, contract.window_len, contract.max_beats,
                    contract.fs_hz, out=beat_rr)
    post = contract.beat_len - pre
    slots = whole_beats(r, pre, post, contract.window_len, contract.max_beats)
    nb = cut_beats(x, slots, pre, post, beats)
    if beat_ctx is not None:
        beat_ctx[:] = 0.0
        if ctx_rows is not None and nb:
            rows = np.asarray(ctx_rows)
            if rows.shape != (inside.size, N_RAW):
                raise SignalError(f"ctx_rows must be ({inside.size}, {N_RAW}): one row per "
                                  f"R peak, got {rows.shape}")
            first = int(np.argmax((r - pre >= 0) & (r + post <= contract.window_len)))
            beat_context(rows[inside][first:first + nb], beat_rr[:nb, 1], beat_ctx)
    rr_ms = rr_intervals_ms(r, contract.fs_hz)
    rr, rr_mask = rr_series_from_ms(rr_ms, contract.max_beats)
    period = period_features_from_ms(rr_ms, int(r.size), contract.window_s)
    return plan.mask.copy(), nb, rr, rr_mask, period


def stack_inputs(items: list[ModelInputs]) -> dict[str, np.ndarray]:
    """Batch a list of inputs into the named arrays the model and the exported graph take.

    Masks become float32 (1.0 = present): ONNX graphs and int8 kernels handle floats
    everywhere, bools not. Stacked straight into float32 (one copy, not a stack and a cast).
    """
    out = {}
    for name in INPUT_NAMES:
        out[name] = np.stack([getattr(it, name) for it in items], dtype=np.float32,
                             casting="unsafe")
    return out


class InputBatch:
    """A reusable batch in `stack_inputs` form, filled window by window in place.

    `add(window, lead_names, r_peaks)` writes row `n` exactly as
    `stack_inputs([prepare_inputs(...), ...])` would hold it, without allocating a window's
    arrays (~0.8 MB, mostly the zero-padded beat tensor) and copying them again to stack them:
    rows are reused from batch to batch, and only the beat rows a previous window filled and
    this one does not are zeroed. `arrays()` are views valid until the next `clear()`; the
    runtime hands them to the backend at once. The capacity doubles when a batch needs more.
    """

    _arrays: dict[str, np.ndarray]     # input name -> (capacity, ...) rows
    _nb: np.ndarray                    # (capacity,) beat rows each row filled

    def __init__(self, contract: SignalContract, capacity: int = 4) -> None:
        self.contract = contract
        self.n = 0
        self._alloc(max(int(capacity), 1))

    def _alloc(self, capacity: int) -> None:
        c = self.contract
        shapes = {"x": (c.n_leads, c.window_len), "lead_mask": (c.n_leads,),
                  "beats": (c.max_beats, c.n_leads, c.beat_len), "beat_mask": (c.max_beats,),
                  "rr_ms": (c.max_beats,), "rr_mask": (c.max_beats,),
                  "period": (len(c.period_features),), "beat_rr": (c.max_beats, 3),
                  "valid": (c.n_leads, c.n_valid_seg), "beat_ctx": (c.max_beats, N_CONTEXT)}
        new = {k: np.zeros((capacity,) + shapes[k], dtype=np.float32) for k in INPUT_NAMES}
        nb = np.zeros(capacity, dtype=np.int64)
        if hasattr(self, "_arrays"):
            for k, v in self._arrays.items():
                new[k][: v.shape[0]] = v
            nb[: self._nb.shape[0]] = self._nb
        self._arrays, self._nb = new, nb

    @property
    def capacity(self) -> int:
        return int(self._nb.shape[0])

    def clear(self) -> None:
        self.n = 0

    def add(self, window: np.ndarray, lead_names, r_peaks: np.ndarray,
            seg_filled: np.ndarray | None = None, ctx_rows: np.ndarray | None = None) -> int:
        """Row `n` from one filtered window and its R peaks (as `prepare_inputs`); its index."""
        seg_filled = _check_seg_filled(seg_filled, self.contract)
        if self.n == self.capacity:
            self._alloc(2 * self.capacity)
        i, a = self.n, self._arrays
        beats = a["beats"][i]
        lead_mask, nb, rr, rr_mask, period = _fill(window, lead_names, r_peaks, self.contract,
                                                   a["x"][i], beats, a["beat_rr"][i],
                                                   ctx_rows, a["beat_ctx"][i])
        _valid(lead_mask, seg_filled, a["valid"][i])
        if self._nb[i] > nb:
            beats[nb: self._nb[i]] = 0.0
        self._nb[i] = nb
        a["lead_mask"][i] = lead_mask
        a["beat_mask"][i, :nb] = 1.0
        a["beat_mask"][i, nb:] = 0.0
        a["rr_ms"][i] = rr
        a["rr_mask"][i] = rr_mask
        a["period"][i] = period
        self.n += 1
        return i

    def arrays(self) -> dict[str, np.ndarray]:
        """The filled rows, `{name: (n, ...) float32}` (views into the reused buffers)."""
        return {k: v[: self.n] for k, v in self._arrays.items()}


__all__ = ["BEAT_RR_COLUMNS", "INPUT_NAMES", "VALID_SEG_S", "InputBatch", "ModelInputs",
           "SignalContract", "beat_rr_context", "prepare_inputs", "stack_inputs"]
