"""Rendering: every beat's waves summed into a dipole signal (one vectorised scatter-add), and
the fibrillatory and flutter waves of the atria."""

from __future__ import annotations

import numpy as np

from edge_ecg.data.synth.morphology import unit
from edge_ecg.data.synth.noise import smooth_noise

_SUPPORT_S = (-0.6, 0.85)   # beat support around R: a 350 ms PR plus P, and a U wave after T


def render_beats(n: int, fs: float, r_s: np.ndarray, c, sl, sr, v) -> np.ndarray:
    """Sum every beat's waves into an `(n, 3)` dipole signal (vectorised scatter-add)."""
    active = np.any(v != 0, axis=(0, 2))          # waves this record uses (no U, R2, ... else)
    if r_s.size == 0 or not active.any():
        return np.zeros((n, 3))
    c, sl, sr, v = c[:, active], sl[:, active], sr[:, active], v[:, active]
    lo, hi = int(np.floor(_SUPPORT_S[0] * fs)), int(np.ceil(_SUPPORT_S[1] * fs))
    centre = np.round(r_s * fs).astype(np.int64)                    # (B,)
    offs = np.arange(lo, hi)                                       # (S,)
    idx = centre[:, None] + offs[None, :]                          # (B, S)
    # time of each support sample relative to the exact R time of its beat
    tr = idx / fs - r_s[:, None]                                    # (B, S)
    dt = tr[:, None, :] - c[:, :, None]                            # (B, W, S)
    sig = np.where(dt < 0, sl[:, :, None], sr[:, :, None])
    g = np.exp(-0.5 * (dt / sig) ** 2)                             # (B, W, S)
    contrib = np.einsum("bws,bwk->bsk", g, v)                      # (B, S, 3)
    ok = (idx >= 0) & (idx < n)
    flat = idx[ok]
    out = np.empty((n, 3))
    for k in range(3):
        out[:, k] = np.bincount(flat, weights=contrib[..., k][ok], minlength=n)
    return out


def atrial_activity(n: int, fs: float, atrial: list, rng: np.random.Generator) -> np.ndarray:
    """Fibrillatory (AF) and flutter waves as an `(n, 3)` dipole signal."""
    out = np.zeros((n, 3))
    t = np.arange(n) / fs
    for kind, t0, t1, arg in atrial:
        a, b = max(int(t0 * fs), 0), min(int(np.ceil(t1 * fs)), n)
        if b <= a:
            continue
        seg = t[a:b]
        if kind == "af":
            # f waves: 4.5-8 Hz (270-480/min) with wandering frequency and amplitude
            # (Stridh & Sornmo, IEEE TBME, 2001), mostly seen in V1 and the
            # inferior leads; amplitude 0.05-0.2 mV.
            f0 = rng.uniform(4.5, 8.0)
            freq = f0 + 0.4 * smooth_noise(b - a, fs, 1.0, rng)
            phase = 2 * np.pi * np.cumsum(freq) / fs + rng.uniform(0, 2 * np.pi)
            amp = rng.uniform(0.05, 0.15) * np.clip(1 + 0.35 * smooth_noise(b - a, fs, 0.7, rng),
                                                    0.2, None)
            wave = amp * (np.sin(phase) + 0.3 * np.sin(2 * phase + 1.0))
            direction = unit([0.1, 0.5, -0.85] + rng.normal(0, 0.15, 3))
        else:
            # Typical (counter-clockwise) flutter: negative sawtooth in II, III, aVF, 0.1-0.3 mV.
            phase0, ac = arg
            ph = np.mod((seg - phase0) / ac, 1.0)
            # fast upstroke over 20 % of the cycle, slow downslope over the rest
            wave = np.where(ph < 0.2, ph / 0.2, 1.0 - (ph - 0.2) / 0.8) * 2 - 1
            wave = wave * rng.uniform(0.1, 0.25)
            direction = unit([0.1, 0.9, -0.3])
        out[a:b] += wave[:, None] * direction[None, :]
    return out
