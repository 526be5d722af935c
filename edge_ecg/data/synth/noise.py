"""Recording noise: baseline wander, EMG, mains and electrode motion, generated per electrode
and projected the way the leads are formed."""

from __future__ import annotations

import numpy as np

NOISE_KINDS: tuple[str, ...] = ("baseline", "emg", "powerline", "motion")
# Default share of the noise power per kind (a typical ambulatory mix; motion is bursty).
DEFAULT_NOISE_MIX = {"baseline": 0.4, "emg": 0.3, "powerline": 0.1, "motion": 0.2}


def smooth_noise(n: int, fs: float, knot_hz: float, rng: np.random.Generator) -> np.ndarray:
    """A slowly varying random curve (linear interpolation of random knots)."""
    n_k = int(n / fs * knot_hz) + 2
    return np.interp(np.arange(n) / fs * knot_hz, np.arange(n_k), rng.normal(0, 1, n_k))


def noise8(n: int, fs: float, mix: dict, rng: np.random.Generator,
            powerline_hz: float | None) -> np.ndarray:
    """Noise of the 8 independent leads, each kind normalised to unit power per lead and
    weighted by `mix`. Generated per electrode (RA, LA, LL, V1-V6) and projected the way
    the leads are formed (I = LA - RA, II = LL - RA, Vi - Wilson's central terminal), so
    neighbouring leads share noise as real ones do. Models after the MIT-BIH Noise Stress
    Test Database kinds (Moody et al., Computers in Cardiology 11:381-384, 1984)."""
    t = np.arange(n) / fs
    e = 9
    comps = {}
    if mix.get("baseline"):
        # Respiration and electrode drift, < 0.5 Hz.
        resp = np.sin(2 * np.pi * rng.uniform(0.15, 0.35) * t + rng.uniform(0, 6.3))
        slow = np.stack([smooth_noise(n, fs, 0.4, rng) for _ in range(e)], axis=1)
        comps["baseline"] = resp[:, None] * rng.normal(0, 1, e)[None, :] + slow
    if mix.get("emg"):
        comps["emg"] = (rng.standard_normal((n, e), dtype=np.float32)
                        * rng.uniform(0.5, 1.5, e).astype(np.float32)[None, :])
    if mix.get("powerline"):
        f = powerline_hz or float(rng.choice([50.0, 60.0]))
        ph = rng.uniform(0, 6.3)
        gains = rng.uniform(0.5, 1.5, e)
        # mains and its 3rd harmonic, where the rate can carry them (an ADC's anti-alias
        # filter removes what it cannot)
        hum = np.zeros(n)
        for k, a in ((1, 1.0), (3, 0.2)):
            if k * f < 0.45 * fs:
                hum += a * np.sin(2 * np.pi * k * f * t + k * ph)
        if hum.any():
            comps["powerline"] = hum[:, None] * gains[None, :]
    if mix.get("motion"):
        # Electrode motion: one or two bursts of large low-frequency artefact on an electrode,
        # over a low level of cable/skin movement on all of them.
        mot = 0.05 * np.stack([smooth_noise(n, fs, 6.0, rng) for _ in range(e)], axis=1)
        for _ in range(int(rng.integers(1, 3))):
            ch = int(rng.integers(0, e))
            length = int(min(n, rng.uniform(0.5, 2.0) * fs))
            start = int(rng.integers(0, max(n - length, 1)))
            win = np.hanning(length)
            mot[start:start + length, ch] += win * smooth_noise(length, fs, 6.0, rng) * 3
        comps["motion"] = mot
    # electrodes -> leads: I = LA - RA, II = LL - RA, Vi - (RA + LA + LL) / 3
    proj = np.zeros((e, 8))
    proj[[1, 0], 0] = (1, -1)
    proj[[2, 0], 1] = (1, -1)
    proj[3:, 2:] = np.eye(6)
    proj[:3, 2:] = -1.0 / 3
    out = np.zeros((n, 8))
    for kind, el in comps.items():
        leads = el @ proj.astype(el.dtype)
        rms = np.sqrt(np.mean(np.square(leads, dtype=np.float64), axis=0))
        # a lead the kind does not reach (motion on one chest electrode) stays at zero
        out += leads * (np.sqrt(mix[kind]) / np.where(rms > 0, rms, 1.0))[None, :]
    return out
