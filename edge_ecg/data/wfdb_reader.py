"""A small, exact WFDB reader for the device path: headers and the plain signal formats, no wfdb.

`import wfdb` costs ~230 ms of a stream's start-up and pulls pandas in (measured, bench/runtime.py
section 5); a record replay needs none of it. This reads a single-segment record whose signals
are all in a plain format (16, 61, 80, 160, 212, 24, 32; one sample per frame, no skew; byte
offsets are read) into the same `edge_ecg.data.records.Record` that `records.read_record` makes
through wfdb: the same ADC counts, gains, baselines, rate, names, comments, millivolts (wfdb's
`dac`, float32) and invalid samples (the format's invalid code, NaN in millivolts). Anything
else (FLAC 516 as in PTB-XL, LUDB and CinC 2017 here, format 8 or 310/311, several samples per
frame, skew, multi-segment records) goes to wfdb through `records.read_record`, as training
reads every record. tests/data/test_wfdb_reader.py checks the two agree on the shared records.

The header grammar is WFDB's (PhysioNet "header(5)") in wfdb-python's own patterns, with its
read defaults: gain 0 or absent is 200 counts/mV, a missing baseline is the ADC zero (else 0),
rate absent is 250 Hz, comment lines (`#`) anywhere and blank lines skipped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ecg.data.records import INVALID_POLICIES, Record, _record_base
from edge_ecg.errors import RecordError

# The digital value a format stores for an invalid sample (WFDB signal(5); wfdb's
# INVALID_SAMPLE_VALUE), for the formats read here.
INVALID_CODE = {"80": -(2**7), "212": -(2**11), "16": -(2**15), "61": -(2**15),
                "160": -(2**15), "24": -(2**23), "32": -(2**31)}
PLAIN_FORMATS = frozenset(INVALID_CODE)
_BYTES = {"80": 1, "16": 2, "61": 2, "160": 2, "24": 3, "32": 4, "212": 1.5}
DEFAULT_GAIN = 200.0         # counts/mV where the header gives none, or 0 (WFDB's DEFGAIN)
DEFAULT_FS = 250.0           # Hz where the record line gives none (WFDB's DEFFREQ)

# wfdb-python's patterns (wfdb/io/header.py), so that a header reads the same either way.
_RECORD = re.compile(r"""
    [ \t]* (?P<record_name>[-\w]+)
           /?(?P<n_seg>\d*)
    [ \t]+ (?P<n_sig>\d+)
    [ \t]* (?P<fs>\d*\.?\d*)
           /*(?P<counter_freq>-?\d*\.?\d*)
           \(?(?P<base_counter>-?\d*\.?\d*)\)?
    [ \t]* (?P<sig_len>\d*)
    """, re.VERBOSE)
_SIGNAL = re.compile(r"""
    [ \t]* (?P<file_name>~?[-\w]*\.?[\w]*)
    [ \t]+ (?P<fmt>\d+)
           x?(?P<samps_per_frame>\d*)
           :?(?P<skew>\d*)
           \+?(?P<byte_offset>\d*)
    [ \t]* (?P<adc_gain>-?\d*\.?\d*e?[\+-]?\d*)
           \(?(?P<baseline>-?\d*)\)?
           /?(?P<units>[\w\^\-\?%\/]*)
    [ \t]* (?P<adc_res>\d*)
    [ \t]* (?P<adc_zero>-?\d*)
    [ \t]* (?P<init_value>-?\d*)
    [ \t]* (?P<checksum>-?\d*)
    [ \t]* (?P<block_size>\d*)
    [ \t]* (?P<sig_name>[\S]?[^\t\n\r\f\v]*)
    """, re.VERBOSE)


@dataclass(frozen=True)
class SignalSpec:
    """One signal line of a header."""

    file_name: str
    fmt: str
    samps_per_frame: int
    skew: int
    byte_offset: int
    gain: float                # counts per unit (DEFAULT_GAIN where absent or 0)
    baseline: int              # counts at 0 units
    units: str
    description: str | None    # the signal's name


@dataclass(frozen=True)
class Header:
    """A WFDB header: the record line, its signal lines and its comments."""

    record_name: str
    n_seg: int | None          # set for a multi-segment record (read through wfdb)
    n_sig: int
    fs_hz: float
    sig_len: int | None        # samples per signal; None: from the signal file's size
    signals: tuple[SignalSpec, ...]
    comments: tuple[str, ...]

    @property
    def plain(self) -> bool:
        """Whether this module reads the record (else wfdb does)."""
        return self.n_seg is None and bool(self.signals) and all(
            s.fmt in PLAIN_FORMATS and s.samps_per_frame == 1 and s.skew == 0
            for s in self.signals)


def parse_header(text: str, where: str = "header") -> Header:
    """A header's text (`where` names it in errors)."""
    lines, comments = [], []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            comments.append(line.strip(" \t#"))
        elif line:
            lines.append(line)
    if not lines:
        raise RecordError(f"{where}: no record line")
    m = _RECORD.match(lines[0])
    if m is None:
        raise RecordError(f"{where}: invalid syntax in the record line {lines[0]!r}")
    fs = float(m["fs"]) if m["fs"] not in ("", ".") else DEFAULT_FS
    n_seg = int(m["n_seg"]) if m["n_seg"] else None
    signals = []
    if n_seg is None:
        for line in lines[1:]:
            s = _SIGNAL.match(line)
            if s is None:
                raise RecordError(f"{where}: invalid syntax in the signal line {line!r}")
            gain = float(s["adc_gain"]) if s["adc_gain"] else DEFAULT_GAIN
            baseline = (int(s["baseline"]) if s["baseline"] else
                        int(s["adc_zero"]) if s["adc_zero"] else 0)
            signals.append(SignalSpec(
                file_name=s["file_name"], fmt=s["fmt"],
                samps_per_frame=int(s["samps_per_frame"] or 1), skew=int(s["skew"] or 0),
                byte_offset=int(s["byte_offset"] or 0),
                gain=gain if gain != 0 else DEFAULT_GAIN, baseline=baseline,
                units=s["units"] or "mV", description=s["sig_name"] or None))
    return Header(record_name=m["record_name"], n_seg=n_seg, n_sig=int(m["n_sig"]),
                  fs_hz=fs, sig_len=int(m["sig_len"]) if m["sig_len"] else None,
                  signals=tuple(signals), comments=tuple(comments))


def read_header(path: str | os.PathLike) -> Header:
    """The header of the record at `path` (with or without `.hea`)."""
    header = _record_base(path) + ".hea"
    try:
        text = Path(header).read_bytes().decode("ascii", errors="ignore")
    except FileNotFoundError:
        raise RecordError(f"{header}: WFDB header not found; pass the record path "
                          f"(e.g. data/mitdb/100 or data/mitdb/100.hea)") from None
    return parse_header(text, header)


def _decode(raw: np.ndarray, fmt: str, n: int) -> np.ndarray:
    """`n` samples of format `fmt` from the bytes `raw` (uint8), as int32."""
    if fmt == "212":              # two 12-bit samples in 3 bytes, low nibble of byte 1 first
        flat = np.zeros(-(-n // 2) * 3, np.int32)
        flat[:raw.size] = raw
        b = flat.reshape(-1, 3)
        out = np.empty(b.shape[0] * 2, np.int32)
        out[0::2] = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
        out[1::2] = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
        out = out[:n]
        out[out > 2047] -= 4096
        return out
    if fmt == "24":
        b3 = raw[:3 * n].reshape(-1, 3).astype(np.int32)
        out = b3[:, 0] | (b3[:, 1] << 8) | (b3[:, 2] << 16)
        out[out > 2**23 - 1] -= 2**24
        return out
    if fmt == "80":
        return raw[:n].astype(np.int32) - 128
    if fmt == "160":
        return raw[:2 * n].view("<u2").astype(np.int32) - 32768
    dtype = {"16": "<i2", "61": ">i2", "32": "<i4"}[fmt]
    return raw[:np.dtype(dtype).itemsize * n].view(dtype).astype(np.int32)


def read_samples(header: Header, folder: str | os.PathLike) -> np.ndarray:
    """The ADC counts `(T, n_sig)` int32 of a plain record (`Header.plain`) in `folder`."""
    files: dict[str, list[int]] = {}
    for k, s in enumerate(header.signals):
        files.setdefault(s.file_name, []).append(k)
    sig_len = header.sig_len
    if sig_len is None:           # from the size of the first signal's file, as wfdb does
        first = header.signals[0]
        width = len(files[first.file_name])
        size = os.path.getsize(Path(folder) / first.file_name) - first.byte_offset
        sig_len = int(size / (_BYTES[first.fmt] * width))
    out = None
    for name, cols in files.items():
        spec = header.signals[cols[0]]
        if any(header.signals[k].fmt != spec.fmt for k in cols):
            raise RecordError(f"{name}: signals of several formats in one file")
        n = sig_len * len(cols)
        need = int(np.ceil(n * _BYTES[spec.fmt]))
        with open(Path(folder) / name, "rb") as f:
            f.seek(spec.byte_offset)
            raw = np.fromfile(f, np.uint8, count=need)
        if raw.size < need:
            raise RecordError(f"{Path(folder) / name}: {raw.size} bytes where the header "
                              f"needs {need} ({sig_len} samples of {len(cols)} signal(s), "
                              f"format {spec.fmt})")
        block = _decode(raw, spec.fmt, n).reshape(sig_len, len(cols))
        if len(files) == 1 and cols == list(range(header.n_sig)):
            return block                      # one file holding every signal in order
        if out is None:
            out = np.empty((sig_len, header.n_sig), np.int32)
        if cols == list(range(cols[0], cols[0] + len(cols))):
            out[:, cols[0]:cols[0] + len(cols)] = block
        else:
            out[:, cols] = block
    assert out is not None                    # a plain header has signals
    return out


@dataclass(frozen=True)
class AdcRecord:
    """What a replay sends (`edge_ecg.runtime.replay`): a record's ADC counts `(T, L)` int32
    with their gain and baseline, and where a sample is invalid; `Record` without its
    millivolts, which a replay never reads (computing them was half of the read)."""

    path: str
    adc: np.ndarray
    gain: np.ndarray          # (L,) float32 counts per mV
    baseline: np.ndarray      # (L,) float32 counts at 0 mV
    fs_hz: float
    leads: tuple[str, ...]
    comments: tuple[str, ...]
    invalid: np.ndarray | None = None   # (T,) bool: any lead at its invalid code; None: none


def _read_plain(path: str | os.PathLike, hdr: Header, channels: list[int] | None):
    """A plain record's `(base, signals, adc, names, gain, baseline)`, checked."""
    base = _record_base(path)
    header = base + ".hea"
    if len(hdr.signals) != hdr.n_sig:
        raise RecordError(f"{header}: {hdr.n_sig} signals announced, {len(hdr.signals)} "
                          "signal lines")
    try:
        adc = read_samples(hdr, Path(base).parent)
    except FileNotFoundError as exc:
        raise RecordError(f"{base}: signal file missing ({exc.filename or exc})") from None
    signals = hdr.signals
    if channels is not None:
        try:
            signals = tuple(hdr.signals[k] for k in channels)
        except (IndexError, TypeError):
            raise RecordError(f"{base}: cannot read record: channels {channels} of "
                              f"{hdr.n_sig}") from None
        adc = np.ascontiguousarray(adc[:, list(channels)])
    if adc.shape[0] == 0 or adc.shape[1] == 0:
        raise RecordError(f"{base}: expected samples of shape (T, n_leads) with T > 0, "
                          f"got {adc.shape}")
    fs = hdr.fs_hz
    if not np.isfinite(fs) or fs <= 0:
        raise RecordError(f"{header}: sampling frequency must be positive, got {fs:g}")
    names = [str(s.description) for s in signals]
    gain = np.array([s.gain for s in signals], dtype=np.float64)
    baseline = np.array([s.baseline for s in signals], dtype=np.float64)
    if not np.all(np.isfinite(gain)):
        leads = [names[i] for i in np.flatnonzero(~np.isfinite(gain))]
        raise RecordError(f"{header}: zero or invalid ADC gain for lead(s) {leads}")
    return base, signals, adc, names, gain, baseline


def read_adc(path: str | os.PathLike, channels: list[int] | None = None) -> AdcRecord:
    """A record's ADC counts for a replay: without wfdb where it is plain, through
    `records.read_record(invalid="keep")` otherwise; the counts, gains, baselines and invalid
    samples `read_record` gives."""
    hdr = read_header(path)
    if not hdr.plain:
        rec = read_record(path, channels=channels, invalid="keep")
        return AdcRecord(path=rec.path, adc=rec.adc, gain=rec.gain, baseline=rec.baseline,
                         fs_hz=rec.fs_hz, leads=rec.leads, comments=rec.comments,
                         invalid=rec.invalid)
    base, signals, adc, names, gain, baseline = _read_plain(path, hdr, channels)
    nan_at = adc == np.array([INVALID_CODE[s.fmt] for s in signals], dtype=np.int32)
    bad = nan_at.any(axis=1)
    return AdcRecord(path=base, adc=adc, gain=gain.astype(np.float32),
                     baseline=baseline.astype(np.float32), fs_hz=float(hdr.fs_hz),
                     leads=tuple(names), comments=hdr.comments,
                     invalid=bad if bad.any() else None)


def read_record(path: str | os.PathLike, channels: list[int] | None = None,
                invalid: str = "refuse") -> Record:
    """`edge_ecg.data.records.read_record`, without wfdb where the record is plain
    (`Header.plain`), through it otherwise; the same `Record` either way."""
    if invalid not in INVALID_POLICIES:
        raise ValueError(f"invalid must be one of {INVALID_POLICIES}, got {invalid!r}")
    hdr = read_header(path)
    if not hdr.plain:
        from edge_ecg.data.records import read_record as read_with_wfdb

        return read_with_wfdb(path, channels=channels, invalid=invalid)
    base, signals, adc, names, gain, baseline = _read_plain(path, hdr, channels)
    # wfdb's dac(return_res=32): float32 counts, minus the baseline and over the gain, each
    # step computed in float64 (lists promote) and stored back in float32
    nan_at = adc == np.array([INVALID_CODE[s.fmt] for s in signals])
    mv = adc.astype(np.float32)
    np.subtract(mv, [s.baseline for s in signals], mv)
    np.divide(mv, [s.gain for s in signals], mv)
    bad = None
    if nan_at.any():
        mv[nan_at] = np.nan
        if invalid == "refuse":
            t, lead = np.argwhere(nan_at)[0]
            raise RecordError(
                f"{base}: {int(nan_at.sum())} invalid (NaN) sample(s), first at sample "
                f"{int(t)} of lead {names[lead]!r}; repair or crop the record before use")
        bad = nan_at.any(axis=1)
    return Record(path=base, signal=mv, adc=adc, gain=gain.astype(np.float32),
                  baseline=baseline.astype(np.float32), fs_hz=float(hdr.fs_hz),
                  leads=tuple(names), comments=hdr.comments, invalid=bad)
