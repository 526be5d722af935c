"""WFDB records and beat annotations, read through `wfdb`, checked, in the project's units.

`read_record` returns both the ADC counts (what a device would send: int samples with gain and
baseline) and millivolts, time-major `(T, L)`. Anything unusable (missing file, unreadable
header, no samples, zero gain) raises `RecordError` naming the file and what is wrong, never a
silently wrong signal. Invalid samples (the format's invalid code, NaN in millivolts; CUDB has
them where its monitor lost the signal) are refused unless the caller asks for them
(`invalid="keep"`): then they stay NaN and `Record.invalid` marks them, for the caller to treat
as gaps (replay) or masked spans (training windows).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ecg.errors import RecordError

# Beat symbols of the MIT-BIH annotation set that mark a QRS complex (the AAMI EC57 beat
# classes N, S, V, F, Q map from these; PhysioNet "ecgcodes"). Rhythm, noise ('~'), signal
# quality and other non-beat labels ('+', '|', '"', '[', ']', '!', 'x', ...) are dropped.
BEAT_SYMBOLS = frozenset(["N", "L", "R", "B", "A", "a", "J", "S", "V", "r", "F", "e", "j", "n",
                          "E", "/", "f", "Q", "?"])


@dataclass(frozen=True)
class Record:
    """One WFDB record: `signal` float32 mV and `adc` int32 counts, both `(T, L)`."""

    path: str
    signal: np.ndarray
    adc: np.ndarray
    gain: np.ndarray          # (L,) counts per mV
    baseline: np.ndarray      # (L,) counts at 0 mV
    fs_hz: float
    leads: tuple[str, ...]
    comments: tuple[str, ...]
    invalid: np.ndarray | None = None   # (T,) bool: any lead invalid there; None = all valid

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[0])

    @property
    def seconds(self) -> float:
        return self.n_samples / self.fs_hz


@dataclass(frozen=True)
class Annotations:
    """Annotation sample indices (int64, ascending) and their symbols."""

    sample: np.ndarray
    symbol: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.sample.size)


def _record_base(path: str | os.PathLike) -> str:
    """The WFDB record name wfdb expects: the path without a `.hea` suffix."""
    p = str(path)
    return p.removesuffix(".hea")


INVALID_POLICIES = ("refuse", "keep")


def invalid_runs(invalid: np.ndarray | None) -> list[tuple[int, int]]:
    """`[start, end)` sample runs where `invalid` (T,) bool is True (empty for None)."""
    if invalid is None or not invalid.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], invalid.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def read_record(path: str | os.PathLike, channels: list[int] | None = None,
                invalid: str = "refuse") -> Record:
    """Read a WFDB record (`path` with or without `.hea`), optionally only some `channels`.

    `invalid`: "refuse" (a `RecordError` naming the first invalid sample) or "keep" (NaN in
    `signal`, marked in `Record.invalid`)."""
    if invalid not in INVALID_POLICIES:
        raise ValueError(f"invalid must be one of {INVALID_POLICIES}, got {invalid!r}")
    import wfdb  # the reader is only needed here; keeps `import edge_ecg.data` light

    base = _record_base(path)
    header = base + ".hea"
    if not Path(header).is_file():
        raise RecordError(f"{header}: WFDB header not found; pass the record path "
                          f"(e.g. data/mitdb/100 or data/mitdb/100.hea)")
    try:
        rec = wfdb.rdrecord(base, channels=channels, physical=False, return_res=32)
    except FileNotFoundError as exc:
        raise RecordError(f"{base}: signal file missing ({exc.filename or exc})") from None
    except (ValueError, IndexError) as exc:
        raise RecordError(f"{base}: cannot read record: {exc}") from None
    except Exception as exc:  # wfdb raises bare Exceptions for malformed headers
        raise RecordError(f"{base}: unreadable WFDB record ({type(exc).__name__}: {exc})") from None

    adc = rec.d_signal
    if adc is None or np.ndim(adc) != 2 or adc.shape[0] == 0 or adc.shape[1] == 0:
        shape = None if adc is None else np.shape(adc)
        raise RecordError(f"{base}: expected samples of shape (T, n_leads) with T > 0, got {shape}")
    fs = float(rec.fs or 0.0)
    if not np.isfinite(fs) or fs <= 0:
        raise RecordError(f"{header}: sampling frequency must be positive, got {rec.fs}")
    gain = np.asarray(rec.adc_gain, dtype=np.float64)
    baseline = np.asarray(rec.baseline, dtype=np.float64)
    if np.any(gain == 0) or not np.all(np.isfinite(gain)):
        bad = [rec.sig_name[i] for i in np.flatnonzero((gain == 0) | ~np.isfinite(gain))]
        raise RecordError(f"{header}: zero or invalid ADC gain for lead(s) {bad}")
    mv = rec.dac(return_res=32)  # invalid samples (the format's NaN code) become NaN
    finite = np.isfinite(mv)
    bad = None
    if not finite.all():
        if invalid == "refuse":
            t, lead = np.argwhere(~finite)[0]
            raise RecordError(
                f"{base}: {int((~finite).sum())} invalid (NaN) sample(s), first at sample "
                f"{int(t)} of lead {rec.sig_name[lead]!r}; repair or crop the record before use"
            )
        bad = ~finite.all(axis=1)
    return Record(
        path=base,
        signal=np.ascontiguousarray(mv, dtype=np.float32),
        adc=np.ascontiguousarray(adc, dtype=np.int32),
        gain=gain.astype(np.float32),
        baseline=baseline.astype(np.float32),
        fs_hz=fs,
        leads=tuple(str(n) for n in rec.sig_name),
        comments=tuple(str(c) for c in (rec.comments or ())),
        invalid=bad,
    )


def read_annotations(path: str | os.PathLike, extension: str) -> Annotations:
    """Read the annotation file `<record>.<extension>` (e.g. `atr`, `beat`)."""
    import wfdb

    base = _record_base(path)
    ext = extension.lstrip(".")
    file = f"{base}.{ext}"
    if not Path(file).is_file():
        raise RecordError(f"{file}: annotation file not found")
    try:
        ann = wfdb.rdann(base, ext)
    except Exception as exc:
        raise RecordError(
            f"{file}: unreadable annotation file ({type(exc).__name__}: {exc})") from None
    sample = np.asarray(ann.sample, dtype=np.int64)
    symbol = tuple(str(s) for s in (ann.symbol or ()))
    if symbol and len(symbol) != sample.size:
        raise RecordError(f"{file}: {sample.size} samples but {len(symbol)} symbols")
    order = np.argsort(sample, kind="stable")
    return Annotations(sample=sample[order], symbol=tuple(symbol[i] for i in order))


def find_beat_extension(path: str | os.PathLike) -> str | None:
    """`atr` or `beat`, whichever annotation file exists beside the record (atr first)."""
    base = _record_base(path)
    for ext in ("atr", "beat"):
        if Path(f"{base}.{ext}").is_file():
            return ext
    return None


def beat_annotations(path: str | os.PathLike, extension: str | None = None) -> Annotations:
    """The reference beats of a record: `.atr` or `.beat`, beat symbols only."""
    ext = extension or find_beat_extension(path)
    if ext is None:
        base = _record_base(path)
        raise RecordError(f"{base}: no beat annotations found ({base}.atr or {base}.beat)")
    return beats_only(read_annotations(path, ext))


def beats_only(ann: Annotations) -> Annotations:
    """The beat annotations of `ann` (its rhythm, noise and VF marks dropped)."""
    keep = np.array([s in BEAT_SYMBOLS for s in ann.symbol], dtype=bool)
    return Annotations(sample=ann.sample[keep],
                       symbol=tuple(s for s, k in zip(ann.symbol, keep) if k))
