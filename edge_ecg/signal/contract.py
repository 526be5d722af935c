"""The signal contract: what the model eats, computed the same way in training and runtime.

A `SignalContract` travels in every checkpoint config and bundle manifest. `prepare_inputs`
turns one filtered window plus its R peaks into the model's inputs; training data and the
on-device predictor both call it, so there is no train/serve skew.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from edge_ecg.errors import SignalError
from edge_ecg.signal.beats import beat_windows
from edge_ecg.signal.leads import STANDARD_12, to_standard_leads
from edge_ecg.signal.normalize import normalize
from edge_ecg.signal.period import PERIOD_FEATURES, period_features, rr_series


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


INPUT_NAMES: tuple[str, ...] = ("x", "lead_mask", "beats", "beat_mask", "rr_ms", "rr_mask", "period")


def prepare_inputs(window: np.ndarray, lead_names: tuple[str, ...] | list[str],
                   r_peaks: np.ndarray, contract: SignalContract) -> ModelInputs:
    """Model inputs from one filtered window.

    `window` is time-major `(contract.window_len, n_source_leads)` in mV, already filtered with
    the contract's filter at `contract.fs_hz`; `r_peaks` are sample indices within it.
    Leads the source lacks are zero and masked (limb leads derived from I and II).
    """
    window = np.asarray(window)
    if window.ndim != 2 or window.shape[0] != contract.window_len:
        raise SignalError(
            f"window must be ({contract.window_len}, n_leads) at {contract.fs_hz} Hz, "
            f"got {window.shape}"
        )
    if not np.all(np.isfinite(window)):
        raise SignalError("window holds NaN or infinite samples; withhold it instead")
    y, lead_mask = to_standard_leads(window, tuple(lead_names), contract.leads)
    if not lead_mask.any():
        raise SignalError(
            f"none of the leads {list(lead_names)} maps to the model's leads {list(contract.leads)}"
        )
    # (T, L) -> (L, T); only the present leads are normalised (absent ones stay zero), on a
    # contiguous lead-major copy: the median's partition is 2x faster than on a strided view.
    x = np.zeros((contract.n_leads, contract.window_len), dtype=np.float32)
    x[lead_mask] = normalize(np.ascontiguousarray(y.T[lead_mask]), contract.normalisation, axis=-1)
    r = np.asarray(r_peaks, dtype=np.int64)
    r = r[(r >= 0) & (r < contract.window_len)]
    beats, beat_mask = beat_windows(x, r, contract.beat_pre, contract.beat_len - contract.beat_pre,
                                    contract.max_beats)
    rr, rr_mask = rr_series(r, contract.fs_hz, contract.max_beats)
    period = period_features(r, contract.fs_hz, contract.window_s)
    return ModelInputs(x=x, lead_mask=lead_mask, beats=beats,
                       beat_mask=beat_mask, rr_ms=rr, rr_mask=rr_mask, period=period)


def stack_inputs(items: list[ModelInputs]) -> dict[str, np.ndarray]:
    """Batch a list of inputs into the named arrays the model and the exported graph take.

    Masks become float32 (1.0 = present): ONNX graphs and int8 kernels handle floats
    everywhere, bools not.
    """
    out = {}
    for name in INPUT_NAMES:
        arr = np.stack([getattr(it, name) for it in items])
        out[name] = arr.astype(np.float32)
    return out
