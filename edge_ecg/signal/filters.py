"""IIR filters as pure functions with explicit carried state: streaming == offline.

`make_filter(name, fs_hz)` turns a filter name from a contract or manifest into second-order
sections; `filter_apply(sos, x, state)` filters one chunk and returns the state to carry, so
feeding a signal in any chunking gives the same samples as one pass (`filter_offline`).

Names: `bandpass_LO_HI`, `highpass_F` (baseline-wander removal), `lowpass_F`, `notch_F`
(mains interference), frequencies in Hz, e.g. `bandpass_0.5_40`, `highpass_0.5`, `notch_50`.
Design choices (Butterworth orders, notch Q) follow common ECG practice: 0.5 Hz high-pass
removes respiration/motion baseline wander while keeping the ST segment usable for monitoring
(AHA 2007 recommendations, Kligfield et al., Circulation 115:1306); 40 Hz low-pass suits
monitoring bandwidth; a notch with Q = 30 is about 2 Hz wide at 50/60 Hz.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.signal

from edge_ecg.errors import SignalError
from edge_ecg.signal.layout import as_time_major

BANDPASS_ORDER = 2   # per edge: 2 sections, 4th order overall
HIGHPASS_ORDER = 2
LOWPASS_ORDER = 4
NOTCH_Q = 30.0


def _fast_sosfilt():
    """scipy's compiled in-place kernel behind `sosfilt`, if present and correct.

    Public `sosfilt` validates its arguments on every call (about 100 us here), which is more
    than the whole per-chunk budget of a streaming QRS detector at 0.1-s chunks. The kernel is
    private API, so it is checked against the public function once and dropped if it differs.
    """
    try:
        from scipy.signal._sosfilt import _sosfilt
    except ImportError:  # pragma: no cover - depends on the scipy build
        return None
    sos = scipy.signal.butter(2, 0.2, output="sos")
    x = np.linspace(-1.0, 1.0, 17)
    zi = np.zeros((1, sos.shape[0], 2))
    try:
        y = x[None, :].copy()
        _sosfilt(sos, y, zi)
    except Exception:  # pragma: no cover
        return None
    ref, zf = scipy.signal.sosfilt(sos, x, zi=np.zeros((sos.shape[0], 2)))
    if np.allclose(y[0], ref) and np.allclose(zi[0], zf):
        return _sosfilt
    return None  # pragma: no cover


_SOSFILT = _fast_sosfilt()


@dataclass(frozen=True)
class FilterState:
    """The carried state of a cascade of sections: `zi` float64 `(n_sections, 2, n_leads)`."""

    zi: np.ndarray


def _parse(name: str) -> tuple[str, list[float]]:
    kind, *parts = name.split("_")
    try:
        freqs = [float(p) for p in parts]
    except ValueError:
        raise SignalError(f"filter name {name!r}: frequencies must be numbers in Hz") from None
    return kind, freqs


@lru_cache(maxsize=64)
def _design(name: str, fs_hz: float) -> np.ndarray:
    kind, freqs = _parse(name)
    nyq = fs_hz / 2.0
    need = {"bandpass": 2, "highpass": 1, "lowpass": 1, "notch": 1}
    if kind not in need:
        raise SignalError(
            f"unknown filter {name!r}: use bandpass_LO_HI, highpass_F, lowpass_F or notch_F"
        )
    if len(freqs) != need[kind]:
        raise SignalError(f"filter {name!r}: {kind} takes {need[kind]} frequency(ies) in Hz")
    if not all(0.0 < f < nyq for f in freqs):
        raise SignalError(
            f"filter {name!r} at fs {fs_hz:g} Hz: frequencies must lie in (0, {nyq:g}) Hz"
        )
    if kind == "bandpass":
        lo, hi = freqs
        if lo >= hi:
            raise SignalError(f"filter {name!r}: low edge must be below high edge")
        return scipy.signal.butter(BANDPASS_ORDER, [lo, hi], "bandpass", fs=fs_hz, output="sos")
    if kind == "highpass":
        return scipy.signal.butter(HIGHPASS_ORDER, freqs[0], "highpass", fs=fs_hz, output="sos")
    if kind == "lowpass":
        return scipy.signal.butter(LOWPASS_ORDER, freqs[0], "lowpass", fs=fs_hz, output="sos")
    b, a = scipy.signal.iirnotch(freqs[0], NOTCH_Q, fs=fs_hz)
    return scipy.signal.tf2sos(b, a)


def make_filter(name: str, fs_hz: float) -> np.ndarray:
    """Second-order sections `(n_sections, 6)` float64 for the named filter at `fs_hz`."""
    if not np.isfinite(fs_hz) or fs_hz <= 0:
        raise SignalError(f"filter {name!r}: sampling rate must be positive, got {fs_hz}")
    return _design(str(name), float(fs_hz)).copy()


def filter_initial(sos: np.ndarray, n_leads: int, x0: np.ndarray | None = None) -> FilterState:
    """The starting state: at rest (zeros), or steady state for a constant input `x0` per lead.

    Starting in steady state for the first sample (`sosfilt_zi * x0`) avoids the multi-second
    transient a DC offset would cause in a high-pass filter.
    """
    sos = np.asarray(sos, dtype=np.float64)
    zi = np.zeros((sos.shape[0], 2, int(n_leads)), dtype=np.float64)
    if x0 is not None:
        x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
        if x0.size != n_leads:
            raise SignalError(f"x0 has {x0.size} values for {n_leads} leads")
        if not np.all(np.isfinite(x0)):
            raise SignalError("x0 holds NaN or infinite values")
        zi = scipy.signal.sosfilt_zi(sos)[:, :, None] * x0[None, None, :]
    return FilterState(zi=np.ascontiguousarray(zi))


def filter_apply(sos: np.ndarray, x: np.ndarray,
                 state: FilterState) -> tuple[np.ndarray, FilterState]:
    """Filter one chunk `x` `(T, L)`; returns `(y float32 (T, L), next state)`.

    Pure: `state` is not modified. Arithmetic is float64 inside, so any chunking agrees with
    one pass to float32 rounding.
    """
    x = as_time_major(x)
    if state.zi.shape[2] != x.shape[1]:
        raise SignalError(f"filter state is for {state.zi.shape[2]} leads, chunk has {x.shape[1]}")
    if _SOSFILT is not None:
        # kernel layout: signals (L, T) and state (L, n_sections, 2), both modified in place
        y = np.array(x.T, dtype=np.float64, order="C")
        zi = np.ascontiguousarray(state.zi.transpose(2, 0, 1))
        _SOSFILT(np.asarray(sos, dtype=np.float64), y, zi)
        return y.T.astype(np.float32), FilterState(zi=np.ascontiguousarray(zi.transpose(1, 2, 0)))
    y, zf = scipy.signal.sosfilt(sos, np.asarray(x, dtype=np.float64), axis=0, zi=state.zi)
    return y.astype(np.float32), FilterState(zi=zf)


def sos_step(sos: np.ndarray, y: np.ndarray, zi: np.ndarray) -> None:
    """Low-overhead in-place filtering for hot loops: `y` float64 C-contiguous `(L, T)` and
    `zi` float64 `(L, n_sections, 2)` (lead-major layout of `FilterState.zi`) are overwritten
    with the output and the next state. `filter_apply` is the checked, pure interface."""
    if _SOSFILT is not None:
        _SOSFILT(sos, y, zi)
        return
    out, zf = scipy.signal.sosfilt(sos, y, axis=1, zi=zi.transpose(1, 0, 2))  # pragma: no cover
    y[...] = out  # pragma: no cover
    zi[...] = zf.transpose(1, 0, 2)  # pragma: no cover


def filter_offline(name: str, x: np.ndarray, fs_hz: float) -> np.ndarray:
    """Filter a whole signal in one pass, starting in steady state for its first sample."""
    x = as_time_major(x)
    if x.shape[0] == 0:
        return np.zeros(x.shape, dtype=np.float32)
    sos = make_filter(name, fs_hz)
    y, _ = filter_apply(sos, x, filter_initial(sos, x.shape[1], x0=x[0]))
    return y
