"""Noise stress test records built as the MIT-BIH NSTDB `nst` tool builds them, from a seed.

Recipe (Moody, Muldrow & Mark, Computers in Cardiology 11:381, 1984; WFDB `nst(1)`):

- Protocol: a noise-free 5-minute learning period, then 2-minute blocks, noisy and clean in
  turn, to the end of the clean record.
- Noise: recorded baseline wander (`bw`) and muscle artifact (`ma`) from ../shared/data/nstdb
  (the electrode-motion record `em` is not shared here). Clean lead k takes noise channel
  k mod 2 of each noise record. Both types are added, each carrying half the noise power.
- SNR as `nst` defines it: S = A^2 / 8, where A is the QRS peak-to-peak amplitude (as WFDB
  `sigamp` measures it: trimmed mean, largest and smallest 5 % dropped, of up to 300 normal
  beats, peak-to-peak within +/-50 ms of the annotation); N = the mean square of the noise
  (trimmed mean of up to 300 one-second RMS values, each with its mean removed), measured on
  the noise samples that are added (nst measures the noise record's start; the noise records
  are not stationary, so this keeps the SNR of the blocks close to the one asked for). The
  noise gain a makes 10 log10(S / (a^2 N)) the requested SNR.
- Offsets: like `nst`, the added noise is made continuous where a block starts or ends (the
  offset b is recomputed at each gain change), so no step enters the ECG.

What the seed decides: where in each (30-minute, looping) noise record the noise starts. The
same clean record, SNR and seed give the same samples, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ecg.data.records import beat_annotations, read_record
from edge_ecg.errors import RecordError

LEARN_S = 300.0               # nst: five-minute noise-free learning period
BLOCK_S = 120.0               # then two-minute noisy / clean blocks in turn
NOISE_TYPES = ("bw", "ma")    # baseline wander, muscle artifact
SNRS_DB = (24.0, 18.0, 12.0, 6.0, 0.0, -6.0)   # the NSTDB levels
QRS_WINDOW_S = 0.05           # sigamp: peak-to-peak within +/-50 ms of each normal beat
MAX_MEASUREMENTS = 300        # sigamp: up to 300 measurements per signal
TRIM = 0.05                   # sigamp: trimmed means drop the largest and smallest 5 %
NORMAL_SYMBOLS = frozenset("NLRej")   # AAMI class N: the "normal QRS" sigamp measures


@dataclass(frozen=True)
class NoiseStressRecord:
    """A clean record with calibrated noise added: `signal` float32 mV `(T, L)`."""

    name: str
    signal: np.ndarray
    fs_hz: float
    snr_db: float
    seed: int
    ref: np.ndarray            # reference beat samples (those of the clean record)
    noisy: np.ndarray          # (n_blocks, 2) int64 [start, stop) of the noisy blocks
    gains: np.ndarray          # (L, n_noise_types) noise gain a per lead and noise type

    def in_noise(self, samples: np.ndarray) -> np.ndarray:
        """Boolean mask: which of `samples` fall inside a noisy block."""
        s = np.asarray(samples, dtype=np.int64)
        k = np.searchsorted(self.noisy[:, 0], s, side="right") - 1
        ok = k >= 0
        out = np.zeros(s.shape, dtype=bool)
        out[ok] = s[ok] < self.noisy[k[ok], 1]
        return out


def trimmed_mean(values: np.ndarray, trim: float = TRIM) -> float:
    """Mean after dropping the largest and smallest `trim` fraction (sigamp's estimate)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    k = int(trim * v.size)
    v = v[k: v.size - k] if v.size - 2 * k > 0 else v
    if v.size == 0:
        raise RecordError("noise stress: nothing to measure (no beats or no samples)")
    return float(v.mean())


def qrs_amplitude(x: np.ndarray, beats: np.ndarray, fs_hz: float) -> float:
    """QRS peak-to-peak amplitude of one lead `x` (mV): trimmed mean over normal beats."""
    w = round(QRS_WINDOW_S * fs_hz)
    beats = np.asarray(beats, dtype=np.int64)
    beats = beats[(beats >= w) & (beats < x.size - w)][:MAX_MEASUREMENTS]
    if beats.size == 0:
        raise RecordError("noise stress: no annotated beat to measure the QRS amplitude on")
    seg = x[beats[:, None] + np.arange(-w, w + 1)[None, :]]
    return trimmed_mean(seg.max(axis=1) - seg.min(axis=1))


def noise_rms(noise: np.ndarray, fs_hz: float) -> float:
    """Noise RMS of one channel (mV): trimmed mean of one-second RMS values, mean removed."""
    n = round(fs_hz)
    k = min(noise.size // n, MAX_MEASUREMENTS)
    if k == 0:
        raise RecordError("noise stress: the noise record is shorter than one second")
    seg = noise[: k * n].reshape(k, n)
    return trimmed_mean(np.sqrt(((seg - seg.mean(axis=1, keepdims=True)) ** 2).mean(axis=1)))


def noise_blocks(n_samples: int, fs_hz: float) -> np.ndarray:
    """`[start, stop)` of the noisy blocks of the standard protocol, `(n_blocks, 2)` int64."""
    learn, block = round(LEARN_S * fs_hz), round(BLOCK_S * fs_hz)
    starts = np.arange(learn, n_samples, 2 * block, dtype=np.int64)
    return np.stack([starts, np.minimum(starts + block, n_samples)], axis=1).reshape(-1, 2)


def _noise_channel(noise: np.ndarray, fs_noise: float, fs_hz: float, start: int,
                   n_samples: int) -> np.ndarray:
    """`n_samples` of a noise channel at `fs_hz` from sample `start`, looping (as nst
    rewinds a short noise record), linearly interpolated when the rates differ."""
    if abs(fs_noise - fs_hz) < 1e-9:
        return np.take(noise, start + np.arange(n_samples), mode="wrap")
    t = (start + np.arange(n_samples) * (fs_noise / fs_hz)) % noise.size
    return np.interp(t, np.arange(noise.size), noise, period=noise.size)


def make_noise_stress(clean_path: str | Path, noise_dir: str | Path, snr_db: float,
                      seed: int = 0, channels: list[int] | None = None) -> NoiseStressRecord:
    """An NST record from the clean WFDB record at `clean_path` at `snr_db`, deterministic
    from `seed`. `noise_dir` holds `bw` and `ma` (../shared/data/nstdb)."""
    rec = read_record(clean_path, channels=channels)
    ann = beat_annotations(clean_path)
    normal = np.array([s in NORMAL_SYMBOLS for s in ann.symbol], dtype=bool)
    beats = ann.sample[normal] if normal.any() else ann.sample
    x = rec.signal.astype(np.float64)
    n, n_leads = x.shape
    fs = rec.fs_hz
    blocks = noise_blocks(n, fs)
    rng = np.random.default_rng(seed)
    noises = []
    for kind in NOISE_TYPES:
        nrec = read_record(Path(noise_dir) / kind)
        start = int(rng.integers(0, nrec.n_samples))
        noises.append([_noise_channel(nrec.signal[:, c].astype(np.float64), nrec.fs_hz, fs,
                                      start, n) for c in range(nrec.signal.shape[1])])
    share = 1.0 / len(NOISE_TYPES)                 # each type carries an equal part of N
    out = np.empty_like(x)
    gains = np.zeros((n_leads, len(NOISE_TYPES)))
    for lead in range(n_leads):
        s_power = qrs_amplitude(x[:, lead], beats, fs) ** 2 / 8.0
        n_power = s_power / 10.0 ** (snr_db / 10.0)          # the N that gives the SNR
        total = np.zeros(n)
        for k, chans in enumerate(noises):
            v = chans[lead % len(chans)]
            used = np.concatenate([v[a:b] for a, b in blocks]) if blocks.size else v
            gains[lead, k] = np.sqrt(share * n_power) / noise_rms(used, fs)
            total += _add_blocks(np.zeros(n), v, gains[lead, k], blocks)
        if blocks.size:
            # trimmed means do not add: one rescale makes the sum's N (as measured) exact
            used = np.concatenate([total[a:b] for a, b in blocks])
            scale = np.sqrt(n_power) / noise_rms(used, fs)
            gains[lead] *= scale
            total *= scale
        out[:, lead] = x[:, lead] + total
    name = f"{Path(str(clean_path)).name}_{'+'.join(NOISE_TYPES)}_{snr_db:+g}dB_s{seed}"
    return NoiseStressRecord(name=name, signal=out.astype(np.float32), fs_hz=fs,
                             snr_db=float(snr_db), seed=int(seed), ref=ann.sample.copy(),
                             noisy=blocks, gains=gains)


def _add_blocks(clean: np.ndarray, noise: np.ndarray, gain: float,
                blocks: np.ndarray) -> np.ndarray:
    """`clean + a(t) * noise + b(t)`: a = `gain` inside the blocks and 0 outside; b is
    recomputed at every gain change so the sum is continuous, as nst does (a level reached
    at a block's end is held until the next block starts)."""
    added = np.zeros(clean.size)
    level = 0.0
    for start, stop in blocks:
        added[start:stop] = level + gain * (noise[start:stop] - noise[start])
        level = added[stop - 1]
        nxt = stop
        added[nxt:] = level                    # held until the next block overwrites it
    return clean + added
