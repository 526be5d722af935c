"""Records to model windows, by the same chain the runtime runs while streaming.

`make_windows`: resample to the contract rate -> the contract's filter -> QRS detection on the
filtered leads -> windows of `contract.window_len` every hop -> `prepare_inputs`. The runtime
does the same steps chunk by chunk with carried state (streaming == offline in
`edge_ecg.signal`), so a model trained on these windows sees what it will see on a device.

`LabelledRecord` is what every data source (synthetic, EnECG/MIMIC-IV-ECG, PTB-XL, MIT-BIH)
hands the dataset builder: a signal, its record-level labels and, where the source knows them,
reference beats and a per-window labeller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge_ecg.errors import SignalError
from edge_ecg.signal.beats import whole_beats
from edge_ecg.signal.contract import ModelInputs, SignalContract, prepare_inputs
from edge_ecg.signal.filters import filter_offline
from edge_ecg.signal.patient_context import context_rows
from edge_ecg.signal.qrs import detect_beats
from edge_ecg.signal.resample import resample_offline


@dataclass(frozen=True)
class LabelledRecord:
    """One record and what is known about it, ready to be cut into windows.

    `labels` uses the label-table field names of tasks.toml (rr_interval, age, gender, flag,
    report_label); `ref_beats` are reference R peaks in samples at `fs_hz` (None where the
    source has none); `window_labels(start, end)` (source samples) returns per-window
    overrides such as the rhythm of a schedule segment or a PVC in the window.
    """

    signal: np.ndarray                     # (T, L) float32 mV
    fs_hz: float
    leads: tuple[str, ...]
    subject: str
    labels: dict
    record_id: str = ""
    ref_beats: np.ndarray | None = None
    window_labels: Callable[[int, int], dict] | None = None
    meta: dict = field(default_factory=dict)


def window_starts(n_samples: int, contract: SignalContract,
                  hop_s: float | None = None) -> np.ndarray:
    """Start indices (contract rate) of the full windows of a signal of `n_samples`."""
    hop = int(round((contract.hop_s if hop_s is None else hop_s) * contract.fs_hz))
    if hop <= 0:
        raise SignalError(f"hop must be > 0 s, got {hop_s}")
    if n_samples < contract.window_len:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_samples - contract.window_len + 1, hop, dtype=np.int64)


def condition_signal(signal: np.ndarray, fs_hz: float, contract: SignalContract) -> np.ndarray:
    """Resample to the contract rate and apply the contract's filter: `(T', L)` float32."""
    x = np.asarray(signal, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise SignalError(f"signal must be (n_samples, n_leads) with samples, got {x.shape}")
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise SignalError(f"signal holds NaN/inf (first at sample {bad[0]}, lead {bad[1]}); "
                          "repair or crop the record first")
    if float(fs_hz) != float(contract.fs_hz):
        x = resample_offline(x, float(fs_hz), float(contract.fs_hz))
    return filter_offline(contract.filter, x, contract.fs_hz)


# A window more than half of whose samples are invalid is dropped: the model would read mostly
# fill, and the few beats left say little about the window's rhythm. Below that the window is
# kept with its invalid segments marked in `valid` (the runtime's gap fill is marked the same way).
MAX_INVALID_FRACTION = 0.5


def fill_invalid(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(filled, invalid)`: NaN/inf samples of `x` `(T, L)` filled by linear interpolation
    between the valid samples on each side, per lead (held flat at the record's ends), and the
    `(T,)` bool mask of samples where any lead was invalid (a whole time step is then invalid,
    as a lost frame is for every lead)."""
    x = np.asarray(x, dtype=np.float32)
    ok = np.isfinite(x)
    invalid = ~ok.all(axis=1)
    if not invalid.any():
        return x, invalid
    y = x.copy()
    t = np.arange(x.shape[0])
    for j in range(x.shape[1]):
        good = ok[:, j]
        if not good.any():
            raise SignalError(f"lead {j} has no valid sample; drop the lead or the record")
        if not good.all():
            y[~good, j] = np.interp(t[~good], t[good], x[good, j])
    return y, invalid


def invalid_at_rate(invalid: np.ndarray, fs_src: float, fs_dst: float, n_dst: int) -> np.ndarray:
    """The `(n_dst,)` mask at `fs_dst` of an invalid-sample mask at `fs_src`: a resampled
    sample is invalid where any source sample it is made from is (each run widened to whole
    destination samples, never narrowed)."""
    out = np.zeros(n_dst, dtype=bool)
    ratio = fs_dst / fs_src
    edges = np.flatnonzero(np.diff(np.concatenate([[0], invalid.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):
        lo = max(0, int(np.floor(a * ratio)))
        hi = min(n_dst, int(np.ceil(b * ratio)))
        out[lo:hi] = True
    return out


def segments_filled(bad: np.ndarray, start: int, contract: SignalContract) -> np.ndarray:
    """`(n_valid_seg,)` bool: the validity-mask segments of the window at `start` holding an
    invalid sample (`bad` at the contract rate, the whole record)."""
    seg, w = contract.valid_seg, contract.window_len
    edges = np.minimum(np.arange(contract.n_valid_seg + 1) * seg, w) + start
    c = np.concatenate([[0], np.cumsum(bad, dtype=np.int64)])
    return (c[edges[1:]] - c[edges[:-1]]) > 0


def make_windows(signal: np.ndarray, fs_hz: float, leads, contract: SignalContract,
                 hop_s: float | None = None, with_beats: bool = False):
    """Model inputs of every full window of a record.

    Invalid (NaN) samples are filled linearly (`fill_invalid`) and marked invalid in each
    window's `valid` input; a window more than `MAX_INVALID_FRACTION` invalid is dropped (its
    start is not among `starts`).

    Returns `(starts, inputs)`: `starts` int64 are window starts in samples AT THE CONTRACT
    RATE (multiply by `fs_hz / contract.fs_hz` for the source); a record shorter than one
    window gives none. R peaks are detected once on the whole filtered record (as the
    runtime's beat tracker does on the stream), then each window gets the peaks inside it.
    `with_beats`: also the R peaks of each window's beat slots (window samples, the beats
    `whole_beats` keeps, slot order): `(starts, inputs, slot_peaks)`.
    """
    leads = tuple(leads)
    x = np.asarray(signal)
    if x.ndim != 2 or x.shape[1] != len(leads):
        raise SignalError(f"signal must be (n_samples, {len(leads)}) for leads {list(leads)}, "
                          f"got {x.shape}")
    x, invalid = fill_invalid(x)
    y = condition_signal(x, fs_hz, contract)
    short = contract.window_len - y.shape[0]
    if 0 < short <= contract.window_len // 100:
        # A record of exactly one window's length (CinC 2017 has 9.997-s ones) loses a sample
        # or two to resampling; holding the last value for <= 1 % of the window keeps it.
        y = np.concatenate([y, np.repeat(y[-1:], short, axis=0)])
    starts = window_starts(y.shape[0], contract, hop_s)
    if starts.size == 0:
        return (starts, [], []) if with_beats else (starts, [])
    w = contract.window_len
    bad = None
    if invalid.any():
        bad = invalid_at_rate(invalid, fs_hz, contract.fs_hz, y.shape[0])
        c = np.concatenate([[0], np.cumsum(bad, dtype=np.int64)])
        starts = starts[(c[starts + w] - c[starts]) <= MAX_INVALID_FRACTION * w]
        if starts.size == 0:
            return (starts, [], []) if with_beats else (starts, [])
    r = detect_beats(y, contract.fs_hz)
    # the patient context of every beat, over the whole record in order, as the stream
    # observes them (edge_ecg.runtime.stream_processor): each window's `beat_ctx` from it
    ctx = context_rows(y, r, contract.fs_hz, contract.beat_pre,
                       contract.beat_len - contract.beat_pre)
    lo = np.searchsorted(r, starts, side="left")
    hi = np.searchsorted(r, starts + w, side="left")
    items = [prepare_inputs(y[s:s + w], leads, r[a:b] - s, contract,
                            seg_filled=None if bad is None else segments_filled(bad, s, contract),
                            ctx_rows=ctx[a:b])
             for s, a, b in zip(starts, lo, hi)]
    if not with_beats:
        return starts, items
    pre = contract.beat_pre
    slots = [whole_beats(r[a:b] - s, pre, contract.beat_len - pre, w, contract.max_beats)
             for s, a, b in zip(starts, lo, hi)]
    return starts, items, slots


def beat_slot_labels(slot_peaks: np.ndarray, start: int, ratio: float, ref_beats: np.ndarray,
                     ref_classes: np.ndarray, fs_src: float, max_beats: int,
                     tolerance_s: float = 0.15) -> np.ndarray:
    """Per-slot class labels `(max_beats,)` float32 of one window: each detected beat takes the
    class of the nearest reference beat within `tolerance_s` (EC57's match window); NaN where
    none matches (a false detection teaches no class) or the reference beat has no class
    (`ref_classes` < 0). `slot_peaks` are window samples at the contract rate, `start` the
    window's start (contract rate) and `ratio` source / contract rate."""
    out = np.full(max_beats, np.nan, dtype=np.float32)
    ref = np.asarray(ref_beats, dtype=np.int64)
    if not len(slot_peaks) or not ref.size:
        return out
    pos = (np.asarray(slot_peaks, dtype=np.float64) + start) * ratio     # source samples
    j = np.clip(np.searchsorted(ref, pos), 1, ref.size - 1) if ref.size > 1 else np.zeros(
        len(pos), dtype=np.int64)
    near = np.where(np.abs(ref[j - 1] - pos) <= np.abs(ref[j] - pos), j - 1, j) if ref.size > 1 \
        else j
    ok = (np.abs(ref[near] - pos) <= tolerance_s * fs_src) & (ref_classes[near] >= 0)
    out[: len(pos)][ok] = ref_classes[near][ok]
    return out


def mean_rr_ms(beats: np.ndarray, start: int, end: int, fs_hz: float) -> float:
    """Mean RR (ms) of the reference beats inside `[start, end)`; NaN with fewer than two."""
    b = np.asarray(beats)
    b = b[(b >= start) & (b < end)]
    if b.size < 2:
        return float("nan")
    return float((b[-1] - b[0]) / (b.size - 1) * 1000.0 / fs_hz)
