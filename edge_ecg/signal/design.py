"""IIR/FIR filter design in numpy alone, so the on-device runtime never imports scipy.signal.

`import scipy.signal` costs about 76 MB of resident memory (measured with scipy 1.17.1, numpy
2.4.6: 27 MB for numpy alone, 103 MB with scipy.signal; 37 MB with this module and
`edge_ecg.signal.filters` instead), half the runtime's 150 MB budget (issue #6), and the
runtime needs only a handful of designs from it. These functions follow scipy.signal 1.17's algorithms
step by step (same analog prototypes, same transforms, same pole/zero pairing, same numpy
operations in the same order), so the coefficients agree with scipy's to rounding (bitwise on
the designs the package uses; tests/signal/test_design.py checks coefficients and filtered
signals against scipy.signal):

- `butter(order, cutoff_hz, btype, fs_hz)` -> second-order sections: Butterworth analog
  prototype (poles on the unit circle), frequency transform (lowpass/highpass/bandpass) of
  the pre-warped edges, bilinear transform, then `zpk2sos` ("nearest" pairing: the pole
  closest to the unit circle goes last with its nearest zero).
- `iirnotch(f0_hz, q, fs_hz)` -> `(b, a)`: second-order notch (Sophocles J. Orfanidis,
  "Introduction to Signal Processing", Prentice-Hall, 1996, section 11.3, as scipy).
- `tf2sos(b, a)`, `zpk2sos(z, p, k)`: the conversions the designs above need.
- `sosfilt_zi(sos)`: the steady-state state of a cascade for a unit step input.
- `firwin(numtaps, cutoff, window=("kaiser", beta))`: windowed-sinc low-pass, Kaiser window
  from `np.kaiser` (numpy's i0 is the same Cephes Chebyshev expansion as scipy.special.i0).
"""

from __future__ import annotations

import numpy as np

from edge_ecg.errors import SignalError


# --- pole/zero helpers (scipy.signal._filter_design: _cplxreal, zpk2tf, zpk2sos) ------------
def _cplxreal(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split `z` into complex values with positive imaginary part (one per conjugate pair,
    the pair averaged) and real values, both sorted by real part."""
    z = np.atleast_1d(z)
    if z.size == 0:
        return z, z
    tol = 100 * np.finfo((1.0 * z).dtype).eps
    z = z[np.lexsort((abs(z.imag), z.real))]
    real_indices = abs(z.imag) <= tol * abs(z)
    zr = z[real_indices].real
    if len(zr) == len(z):
        return np.array([]), zr
    z = z[~real_indices]
    zp = z[z.imag > 0]
    zn = z[z.imag < 0]
    if len(zp) != len(zn):
        raise SignalError("filter design: a complex root has no matching conjugate")
    same_real = np.diff(zp.real) <= tol * abs(zp[:-1])
    diffs = np.diff(np.concatenate(([0], same_real, [0])))
    run_starts = np.nonzero(diffs > 0)[0]
    run_stops = np.nonzero(diffs < 0)[0]
    for start, stop in zip(run_starts, run_stops + 1):   # runs of equal real part: by |imag|
        for chunk in (zp[start:stop], zn[start:stop]):
            chunk[...] = chunk[np.lexsort([abs(chunk.imag)])]
    if np.any(abs(zp - zn.conj()) > tol * abs(zn)):
        raise SignalError("filter design: a complex root has no matching conjugate")
    return (zp + zn.conj()) / 2, zr


def _poly(roots) -> np.ndarray:
    """Polynomial coefficients (highest power first) with the given roots; real when the
    roots come in conjugate pairs (as numpy.poly)."""
    roots = np.atleast_1d(np.asarray(roots))
    if roots.shape[0] == 0:
        return np.asarray(1.0, dtype=np.real(roots).dtype)
    a = np.ones((1,), dtype=roots.dtype)
    one = np.ones_like(roots[0])
    for r in roots:
        a = np.convolve(a, np.stack((one, -r)), mode="full")
    if np.iscomplexobj(a):
        c = np.asarray(roots, dtype=np.complex128)
        if np.all(np.sort(np.imag(c)) == np.sort(np.imag(np.conj(c)))):
            a = np.real(a).copy()
    return a


def _single_section(z, p) -> np.ndarray:
    """One section `[b0 b1 b2 1 a1 a2]` with unit gain from up to two zeros and poles."""
    z, p = np.asarray(z), np.asarray(p)
    k = np.asarray(1, dtype=np.result_type(np.real(z), np.real(p), 1))
    if np.issubdtype(k.dtype, np.integer):
        k = k.astype(np.float64)
    b = np.multiply(k, _poly(z))
    a = np.atleast_1d(_poly(p))
    b = np.atleast_1d(b)
    sos = np.zeros(6)
    sos[3 - len(b):3] = b
    sos[6 - len(a):6] = a
    return sos


def _nearest_idx(fro: np.ndarray, to, which: str) -> int:
    """Index in `fro` of the value nearest `to` that is real / complex / any."""
    order = np.argsort(np.abs(fro - to))
    if which == "any":
        return int(order[0])
    mask = np.isreal(fro[order])
    if which == "complex":
        mask = ~mask
    return int(order[np.nonzero(mask)[0][0]])


def zpk2sos(z, p, k) -> np.ndarray:
    """Second-order sections `(n_sections, 6)` of a digital filter from zeros, poles and gain,
    with scipy's default "nearest" pairing: sections in order of increasing closeness of their
    poles to the unit circle, each pole pair with its nearest zeros, the gain in section 0."""
    z, p, k = np.asarray(z), np.asarray(p), np.asarray(k)
    if len(z) == len(p) == 0:
        return np.asarray([[k, 0.0, 0.0, 1.0, 0.0, 0.0]])
    p = np.concatenate((p, np.zeros(max(len(z) - len(p), 0))))
    z = np.concatenate((z, np.zeros(max(len(p) - len(z), 0))))
    n_sections = (max(len(p), len(z)) + 1) // 2
    if len(p) % 2 == 1:
        p = np.concatenate((p, [0.0]))
        z = np.concatenate((z, [0.0]))
    z = np.concatenate(_cplxreal(z))
    p = np.concatenate(_cplxreal(p))
    if not np.isreal(k):
        raise SignalError("filter design: the gain must be real")
    k = k.real

    def idx_worst(v):                      # closest to the unit circle
        return np.argmin(np.abs(1 - np.abs(v)))

    sos = np.zeros((n_sections, 6))
    for si in range(n_sections - 1, -1, -1):    # the "worst" poles go last
        p1_idx = idx_worst(p)
        p1 = p[p1_idx]
        p = np.delete(p, p1_idx)
        if np.isreal(p1) and np.isreal(p).sum() == 0:
            # last remaining real pole: pair with the nearest real zero
            z1_idx = _nearest_idx(z, p1, "real")
            z1 = z[z1_idx]
            z = np.delete(z, z1_idx)
            sos[si] = _single_section([z1, 0], [p1, 0])
        elif (len(p) + 1 == len(z) and not np.isreal(p1)
              and np.isreal(p).sum() == 1 and np.isreal(z).sum() == 1):
            # one real pole and one real zero left: this complex pole takes a complex zero
            z1_idx = _nearest_idx(z, p1, "complex")
            z1 = z[z1_idx]
            z = np.delete(z, z1_idx)
            sos[si] = _single_section([z1, z1.conj()], [p1, p1.conj()])
        else:
            if np.isreal(p1):
                prealidx = np.flatnonzero(np.isreal(p))
                p2_idx = prealidx[idx_worst(p[prealidx])]
                p2 = p[p2_idx]
                p = np.delete(p, p2_idx)
            else:
                p2 = p1.conj()
            if len(z) > 0:
                z1_idx = _nearest_idx(z, p1, "any")
                z1 = z[z1_idx]
                z = np.delete(z, z1_idx)
                if not np.isreal(z1):
                    sos[si] = _single_section([z1, z1.conj()], [p1, p2])
                elif len(z) > 0:
                    z2_idx = _nearest_idx(z, p1, "real")
                    z2 = z[z2_idx]
                    z = np.delete(z, z2_idx)
                    sos[si] = _single_section([z1, z2], [p1, p2])
                else:
                    sos[si] = _single_section([z1], [p1, p2])
            else:
                sos[si] = _single_section([], [p1, p2])
    sos[0][:3] *= k
    return sos


def tf2sos(b, a) -> np.ndarray:
    """Second-order sections of the transfer function `b(z) / a(z)` (roots, then `zpk2sos`)."""
    b = np.atleast_1d(np.asarray(b, dtype=np.float64))
    a = np.trim_zeros(np.atleast_1d(np.asarray(a, dtype=np.float64)), "f")
    if a.size == 0:
        raise SignalError("filter design: the denominator is all zeros")
    b, a = b / a[0], a / a[0]
    lead = 0
    while lead < len(b) - 1 and abs(b[lead]) <= 1e-14:   # scipy.signal.normalize trims these
        lead += 1
    b = b[lead:]
    k = b[0]
    z = np.roots(b / b[0]) if len(b) > 1 else np.array([])
    p = np.roots(a) if len(a) > 1 else np.array([])
    return zpk2sos(z, p, k)


# --- IIR designs ---------------------------------------------------------------------------
def _check_edges(cutoff_hz, fs_hz: float) -> np.ndarray:
    if not np.isfinite(fs_hz) or fs_hz <= 0:
        raise SignalError(f"filter design: sampling rate must be positive, got {fs_hz}")
    wn = np.asarray(cutoff_hz, dtype=np.float64) / (fs_hz / 2)
    if np.any(wn <= 0) or np.any(wn >= 1) or not np.all(np.isfinite(wn)):
        raise SignalError(f"filter design: edges {cutoff_hz} Hz must lie in (0, {fs_hz / 2:g}) Hz")
    if wn.size > 1 and not wn[0] < wn[1]:
        raise SignalError(f"filter design: low edge must be below high edge, got {cutoff_hz}")
    return wn


def butter(order: int, cutoff_hz, btype: str, fs_hz: float) -> np.ndarray:
    """Digital Butterworth filter as second-order sections `(n_sections, 6)`.

    `btype` is "lowpass" or "highpass" (one edge) or "bandpass" (two edges, `order` per edge,
    so `2 * order` overall), edges in Hz. Same result as
    `scipy.signal.butter(order, cutoff_hz, btype, fs=fs_hz, output="sos")`.
    """
    if int(order) != order or order < 1:
        raise SignalError(f"filter design: order must be a positive integer, got {order}")
    order = int(order)
    wn = _check_edges(cutoff_hz, fs_hz)
    need = {"lowpass": 1, "highpass": 1, "bandpass": 2}
    if btype not in need:
        raise SignalError(f"filter design: btype {btype!r} is not lowpass, highpass or bandpass")
    if wn.size != need[btype]:
        raise SignalError(f"filter design: {btype} takes {need[btype]} edge(s), got {cutoff_hz}")
    # analog prototype: poles evenly spaced on the left half of the unit circle, no zeros
    m = np.arange(-order + 1, order, 2, dtype=np.float64)
    p = -np.exp(1j * np.pi * m / (2 * order))
    z = np.asarray([], dtype=np.float64)
    k = 1.0
    fs = 2.0                                  # normalised frequencies: Nyquist = 1
    warped = 2 * fs * np.tan(np.pi * wn / fs)  # pre-warp the edges for the bilinear transform
    degree = len(p) - len(z)
    if btype == "lowpass":
        wo = float(warped)
        z, p, k = wo * z, wo * p, k * wo ** degree
    elif btype == "highpass":
        wo = float(warped)
        k = k * np.real(np.prod(-z) / np.prod(-p))
        z, p = np.concatenate((wo / z, np.zeros(degree))), wo / p
    else:
        bw = float(warped[1] - warped[0])
        wo = float(np.sqrt(warped[0] * warped[1]))
        z_lp = (z * bw / 2).astype(np.complex128)
        p_lp = (p * bw / 2).astype(np.complex128)
        z = np.concatenate((z_lp + np.sqrt(z_lp ** 2 - wo ** 2),
                            z_lp - np.sqrt(z_lp ** 2 - wo ** 2)))
        p = np.concatenate((p_lp + np.sqrt(p_lp ** 2 - wo ** 2),
                            p_lp - np.sqrt(p_lp ** 2 - wo ** 2)))
        z = np.concatenate((z, np.zeros(degree)))
        k = k * bw ** degree
    # bilinear transform; zeros at infinity map to z = -1
    fs2 = 2.0 * fs
    degree = len(p) - len(z)
    z_z = (fs2 + z) / (fs2 - z)
    p_z = (fs2 + p) / (fs2 - p)
    z_z = np.concatenate((z_z, -np.ones(degree)))
    k_z = k * np.real(np.prod(fs2 - z) / np.prod(fs2 - p))
    return zpk2sos(z_z, p_z, k_z)


def iirnotch(f0_hz: float, q: float, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Second-order notch at `f0_hz` with quality factor `q` (-3 dB width `f0_hz / q`):
    `(b, a)`, as `scipy.signal.iirnotch(f0_hz, q, fs=fs_hz)`."""
    w0 = 2 * float(f0_hz) / float(fs_hz)
    if not 0.0 < w0 < 1.0:
        raise SignalError(f"notch at {f0_hz} Hz must lie in (0, {fs_hz / 2:g}) Hz")
    if not q > 0:
        raise SignalError(f"notch quality factor must be positive, got {q}")
    bw = w0 / float(q) * np.pi
    w0 = w0 * np.pi
    beta = np.tan(bw / 2.0)
    gain = 1.0 / (1.0 + beta)
    b = gain * np.asarray([1.0, -2.0 * np.cos(w0), 1.0])
    a = np.asarray([1.0, -2.0 * gain * np.cos(w0), 2.0 * gain - 1.0])
    return b, a


def _lfilter_zi(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Steady-state state of one direct-form-II-transposed section for a unit step."""
    if a[0] != 1.0:
        b, a = b / a[0], a / a[0]
    n = max(len(a), len(b))
    companion_t = np.zeros((n - 1, n - 1))
    companion_t[:, 0] = -a[1:] / (1.0 * a[0])        # companion(a).T: first column
    companion_t[np.arange(0, n - 2), np.arange(1, n - 1)] = 1
    i_minus_a = np.eye(n - 1) - companion_t
    return np.linalg.solve(i_minus_a, b[1:] - a[1:] * b[0])


def sosfilt_zi(sos: np.ndarray) -> np.ndarray:
    """State `(n_sections, 2)` of a cascade in steady state for a constant unit input; times
    `x0` it starts a filter without the transient a DC offset would cause."""
    sos = np.asarray(sos, dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6:
        raise SignalError(f"sos must have shape (n_sections, 6), got {sos.shape}")
    zi = np.empty((sos.shape[0], 2))
    scale = 1.0
    for i, section in enumerate(sos):
        b, a = section[:3], section[3:]
        zi[i] = scale * _lfilter_zi(b, a)
        scale *= np.sum(b) / np.sum(a)               # section's DC gain H(1)
    return zi


# --- FIR design ----------------------------------------------------------------------------
def firwin(numtaps: int, cutoff: float, window: tuple[str, float]) -> np.ndarray:
    """Linear-phase low-pass FIR by the window method: `numtaps` taps, `cutoff` as a fraction
    of Nyquist, `window=("kaiser", beta)`; unit gain at DC. As
    `scipy.signal.firwin(numtaps, cutoff, window=("kaiser", beta))`."""
    if not (isinstance(window, tuple) and len(window) == 2 and window[0] == "kaiser"):
        raise SignalError(f"firwin: only ('kaiser', beta) windows are supported, got {window!r}")
    if not 0.0 < float(cutoff) < 1.0:
        raise SignalError(f"firwin: cutoff {cutoff} must lie in (0, 1) (fraction of Nyquist)")
    numtaps = int(numtaps)
    if numtaps < 1:
        raise SignalError(f"firwin: numtaps must be positive, got {numtaps}")
    alpha = 0.5 * (numtaps - 1)
    m = np.arange(0, numtaps, dtype=np.float64) - alpha
    h = float(cutoff) * np.sinc(float(cutoff) * m)   # ideal low-pass, delayed by alpha taps
    h *= np.kaiser(numtaps, float(window[1]))
    return h / np.sum(h)                             # unit gain at DC


__all__ = ["butter", "firwin", "iirnotch", "sosfilt_zi", "tf2sos", "zpk2sos"]
