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

import importlib.machinery
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edge_ecg.errors import SignalError
from edge_ecg.signal import design
from edge_ecg.signal.layout import as_time_major

BANDPASS_ORDER = 2   # per edge: 2 sections, 4th order overall
HIGHPASS_ORDER = 2
LOWPASS_ORDER = 4
NOTCH_Q = 30.0

_KERNEL_MODULE = "scipy.signal._sosfilt"

log = logging.getLogger(__name__)


def _df2t_reference(sos: np.ndarray, y: np.ndarray, zi: np.ndarray) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """Cascade of direct-form-II-transposed sections in plain numpy, one sample at a time
    (slow: only to check the compiled kernel on a short vector). Same layout as the kernel:
    `y` `(L, T)`, `zi` `(L, n_sections, 2)`; returns new arrays `(output, final state)`."""
    y = np.array(y, dtype=np.float64)
    z = np.array(zi, dtype=np.float64)
    for s, (b0, b1, b2, _, a1, a2) in enumerate(np.asarray(sos, dtype=np.float64)):
        for n in range(y.shape[1]):
            x_n = y[:, n].copy()
            y_n = b0 * x_n + z[:, s, 0]
            z[:, s, 0] = b1 * x_n - a1 * y_n + z[:, s, 1]
            z[:, s, 1] = b2 * x_n - a2 * y_n
            y[:, n] = y_n
    return y, z


def _verify_kernel(kernel) -> str | None:
    """None when `kernel(sos, y, zi)` filters in place like `_df2t_reference` (two leads, a
    4-section band-pass + notch cascade from rest and from a non-zero state), else why not."""
    sos = np.ascontiguousarray(np.vstack([design.butter(2, [5.0, 15.0], "bandpass", 200.0),
                                          design.tf2sos(*design.iirnotch(50.0, NOTCH_Q, 200.0))]))
    # irregular test vectors without numpy.random (its import is ~8 ms of every start-up)
    x = 1.5 * np.sin(2.3 * np.arange(2 * 41) + 0.5).reshape(2, 41)
    z1 = np.cos(1.7 * np.arange(2 * sos.shape[0] * 2) + 0.2).reshape(2, sos.shape[0], 2)
    for zi in (np.zeros((2, sos.shape[0], 2)), z1):
        ref_y, ref_z = _df2t_reference(sos, x, zi)
        y, z = np.ascontiguousarray(x.copy()), np.ascontiguousarray(zi.copy())
        try:
            kernel(sos, y, z)
        except Exception as exc:  # noqa: BLE001 - any failure means: do not use it
            return f"calling it failed: {exc!r}"
        if not (np.allclose(y, ref_y, rtol=1e-12, atol=1e-12)
                and np.allclose(z, ref_z, rtol=1e-12, atol=1e-12)):
            return "its output differs from the numpy direct-form-II-transposed reference"
    return None


def _load_compiled_sosfilt(scipy_dir: str | None = None):
    """scipy's compiled in-place kernel behind `sosfilt`, loaded WITHOUT `import scipy.signal`.

    Why: public `scipy.signal.sosfilt` validates its arguments on every call (measured with
    scipy 1.17.1: 31 us for a 0.1-s one-lead chunk at 360 Hz, against 1.8 us for `sos_step`
    on this kernel), and `import scipy.signal` adds ~76 MB of resident memory (27 -> 103 MB,
    measured), half the runtime's 150 MB budget. So the extension file `scipy/signal/_sosfilt*.so` is loaded by
    itself (it needs only numpy and scipy's light top-level package). The kernel is private
    API: it is used only if it matches a numpy reference (`_verify_kernel`).

    Returns `(kernel or None, note)`. `scipy_dir` overrides scipy's package folder (tests).
    """
    mod = sys.modules.get(_KERNEL_MODULE)      # scipy.signal already imported: reuse it
    if mod is None:
        try:
            if scipy_dir is None:
                spec = importlib.util.find_spec("scipy")    # locates, does not import
                if spec is None or not spec.submodule_search_locations:
                    return None, "scipy is not installed"
                scipy_dir = next(iter(spec.submodule_search_locations))
            folder = os.path.join(scipy_dir, "signal")
            paths = [os.path.join(folder, "_sosfilt" + suffix)
                     for suffix in importlib.machinery.EXTENSION_SUFFIXES]
            path = next((p for p in paths if os.path.isfile(p)), None)
            if path is None:
                return None, f"no compiled _sosfilt extension in {folder}"
            loader = importlib.machinery.ExtensionFileLoader(_KERNEL_MODULE, path)
            spec = importlib.util.spec_from_file_location(_KERNEL_MODULE, path, loader=loader)
            if spec is None:
                return None, f"no module spec for {path}"
            mod = importlib.util.module_from_spec(spec)
            loader.exec_module(mod)
            # Cython registers the module in sys.modules under its name while it executes.
            # Take it out again: a later real `import scipy.signal` then imports it the normal
            # way (and binds `scipy.signal._sosfilt`), getting this same module object back
            # from Cython (tests/signal/test_design.py checks that it still works).
            if sys.modules.get(_KERNEL_MODULE) is mod:
                del sys.modules[_KERNEL_MODULE]
        except Exception as exc:  # noqa: BLE001 - any failure means: use the public function
            return None, f"loading scipy's compiled _sosfilt failed: {exc!r}"
    kernel = getattr(mod, "_sosfilt", None)
    if kernel is None:
        return None, f"{_KERNEL_MODULE} has no _sosfilt"
    why = _verify_kernel(kernel)
    if why is not None:
        return None, f"scipy's compiled _sosfilt rejected: {why}"
    return kernel, f"scipy's compiled _sosfilt from {getattr(mod, '__file__', '?')}, verified"


_SOSFILT, KERNEL_NOTE = _load_compiled_sosfilt()
# Which kernel filters: "compiled" (scipy's extension, checked against the numpy reference at
# import) or "public" (fallback: scipy.signal.sosfilt, imported lazily on first use; correct
# but ~30 us per call slower and +76 MB resident, measured). KERNEL_NOTE says why.
KERNEL = "compiled" if _SOSFILT is not None else "public"
if _SOSFILT is None:   # a scipy upgrade that moved the private kernel must not pass unnoticed
    log.warning("%s; filtering with the public scipy.signal.sosfilt instead (correct, but "
                "~30 us a call slower and +76 MB resident)", KERNEL_NOTE)


def _public_sosfilt():
    """Fallback kernel: the public, argument-checking scipy.signal.sosfilt (heavy import)."""
    import scipy.signal

    return scipy.signal.sosfilt


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
        return design.butter(BANDPASS_ORDER, [lo, hi], "bandpass", fs_hz)
    if kind == "highpass":
        return design.butter(HIGHPASS_ORDER, freqs[0], "highpass", fs_hz)
    if kind == "lowpass":
        return design.butter(LOWPASS_ORDER, freqs[0], "lowpass", fs_hz)
    return design.tf2sos(*design.iirnotch(freqs[0], NOTCH_Q, fs_hz))


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
        zi = design.sosfilt_zi(sos)[:, :, None] * x0[None, None, :]
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
    y, zf = _public_sosfilt()(sos, np.asarray(x, dtype=np.float64), axis=0, zi=state.zi)
    return y.astype(np.float32), FilterState(zi=zf)


def sos_step(sos: np.ndarray, y: np.ndarray, zi: np.ndarray) -> None:
    """Low-overhead in-place filtering for hot loops: `y` float64 C-contiguous `(L, T)` and
    `zi` float64 `(L, n_sections, 2)` (lead-major layout of `FilterState.zi`) are overwritten
    with the output and the next state. `filter_apply` is the checked, pure interface."""
    if _SOSFILT is not None:
        _SOSFILT(sos, y, zi)
        return
    out, zf = _public_sosfilt()(sos, y, axis=1, zi=zi.transpose(1, 0, 2))  # pragma: no cover
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


__all__ = ["BANDPASS_ORDER", "HIGHPASS_ORDER", "KERNEL", "KERNEL_NOTE", "LOWPASS_ORDER", "NOTCH_Q",
           "FilterState", "filter_apply", "filter_initial", "filter_offline", "make_filter",
           "sos_step"]
