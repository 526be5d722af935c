"""EDF+ and BDF+ files: a small pure-numpy reader and a crash-safe, block-by-block writer.

Why not pyedflib for these: its writer (edflib) leaves the header's record count at -1 until
the file is closed, so a killed recording is refused by pyedflib itself; and edflib truncates
annotations to 512 bytes on reading, where a recorded prediction event is ~1 kB of JSON. The
writer here rewrites the record count after every data record, so a killed process leaves a
valid file up to the last complete record; pyedflib reads what it writes (a test checks).

Format (EDF: Kemp et al. 1992; EDF+: Kemp & Olivan 2003; BDF: BioSemi, 24-bit samples): a
256-byte header, 256 bytes per signal, then data records of `samples_per_record` samples per
signal (int16 little-endian in EDF, int24 in BDF). Physical value = pmin + (d - dmin) *
(pmax - pmin) / (dmax - dmin). EDF+ annotations live in an "EDF Annotations" signal as TALs:
`+onset[\\x15duration]\\x14text\\x14\\x00`; each record opens with a time-keeping TAL (its onset).

Anything unusable raises `EdfError` (a `RecordError`) naming the file, the field and its byte
offset, and saying what to do.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_ecg.errors import RecordError


class EdfError(RecordError):
    """An EDF/BDF file is missing, not EDF, malformed or truncated (the message names it)."""


ANNOTATION_LABELS = ("EDF Annotations", "BDF Annotations")
_FIXED = (("version", 8), ("patient", 80), ("recording", 80), ("startdate", 8),
          ("starttime", 8), ("header_bytes", 8), ("reserved", 44), ("n_records", 8),
          ("record_s", 8), ("n_signals", 4))
_PER_SIGNAL = (("label", 16), ("transducer", 80), ("dimension", 8), ("pmin", 8), ("pmax", 8),
               ("dmin", 8), ("dmax", 8), ("prefilter", 80), ("spr", 8), ("sig_reserved", 32))
N_RECORDS_OFFSET = 236        # byte offset of the record-count field in the header
BDF_VERSION = b"\xffBIOSEMI"
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


@dataclass(frozen=True)
class EdfSignal:
    """One signal's header fields (digital and physical ranges, samples per data record)."""

    label: str
    transducer: str
    dimension: str
    pmin: float
    pmax: float
    dmin: int
    dmax: int
    prefilter: str
    spr: int

    @property
    def is_annotation(self) -> bool:
        return self.label in ANNOTATION_LABELS

    @property
    def gain(self) -> float:
        """Digital counts per physical unit."""
        return (self.dmax - self.dmin) / (self.pmax - self.pmin)

    @property
    def baseline(self) -> float:
        """Digital count at physical zero."""
        return self.dmin - self.pmin * self.gain


@dataclass(frozen=True)
class Annotation:
    """One EDF+ annotation: onset and duration in seconds from the file start, and its text."""

    onset_s: float
    duration_s: float
    text: str


@dataclass
class EdfHeader:
    path: str
    bdf: bool
    plus: str                   # "" (plain EDF/BDF), "C" (continuous) or "D" (discontinuous)
    start: dt.datetime
    n_records: int              # as the header says (-1: still recording)
    record_s: float
    signals: list[EdfSignal]
    header_bytes: int
    patient: str = ""
    recording: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def sample_bytes(self) -> int:
        return 3 if self.bdf else 2

    @property
    def record_bytes(self) -> int:
        return sum(s.spr for s in self.signals) * self.sample_bytes


# --- numbers in 8-character ASCII fields ----------------------------------------------------
def format_number(x: float, width: int = 8) -> str | None:
    """The shortest decimal text of `x` that fits `width` characters and reads back as `x`
    exactly (float64); None when there is none."""
    if x == int(x) and len(str(int(x))) <= width:
        return str(int(x))
    for decimals in range(1, width):
        s = f"{x:.{decimals}f}".rstrip("0").rstrip(".")
        if len(s) > width:
            return None
        if float(s) == x:
            return s
    return None


def short_text(x: float, width: int = 8) -> str:
    """The most precise decimal text of `x` that fits `width` characters."""
    for decimals in range(width, -1, -1):
        t = f"{x:.{decimals}f}"
        if "." in t:
            t = t.rstrip("0").rstrip(".")
        if len(t) <= width:
            return "0" if t in ("-0", "") else t
    raise EdfError(f"{x!r} does not fit an EDF number field of {width} characters")


def physical_range(gain: float, baseline: float, dlo: int, dhi: int
                   ) -> tuple[str, str, str, bool]:
    """Physical dimension and extremes for the digital range `[dlo, dhi]` of a lead whose
    counts are `gain` per mV around `baseline`: `(dimension, pmin, pmax, exact)`.

    The digital range is always the format's full range (a count at the ADC rail stays at the
    rail, and every count is stored unchanged). The physical texts have 8 characters; `exact`
    when they are the exact values in mV or, failing that, in uV (MIT-BIH's 200 counts/mV
    around 1024 gives -168.96..158.715 mV; 1000 counts/mV in 24 bits -8388608..8388607 uV),
    so a reader recovers gain and baseline bit for bit. Otherwise mV rounded to 8 characters
    (the scale is then off by up to ~1e-6 relative; counts stay exact).
    """
    for dim, per_mv in (("mV", 1.0), ("uV", 1000.0)):
        g = gain / per_mv
        p0, p1 = format_number((dlo - baseline) / g), format_number((dhi - baseline) / g)
        if p0 is not None and p1 is not None:
            return dim, p0, p1, True
    return ("mV", short_text((dlo - baseline) / gain), short_text((dhi - baseline) / gain),
            False)


def _tal_time(t: float) -> str:
    s = f"{t:+.7f}".rstrip("0").rstrip(".")
    return s if s not in ("+", "-") else "+0"


def encode_tal(onset_s: float, text: str, duration_s: float | None = None) -> bytes:
    """One TAL: onset, optional duration, one annotation text (\\x14 and \\x00 replaced)."""
    clean = text.replace("\x14", " ").replace("\x15", " ").replace("\x00", " ")
    dur = f"\x15{duration_s:.7f}".rstrip("0").rstrip(".") if duration_s else ""
    return f"{_tal_time(onset_s)}{dur}\x14{clean}\x14\x00".encode("utf-8")


def decode_tals(raw: bytes, where: str = "") -> tuple[float | None, list[Annotation]]:
    """The annotations of one record's annotation bytes; the first TAL's onset is the record's
    time-keeping onset (returned first, None if absent)."""
    keep: float | None = None
    out: list[Annotation] = []
    for k, tal in enumerate(raw.rstrip(b"\x00").split(b"\x00")):
        if not tal:
            continue
        parts = tal.split(b"\x14")
        head = parts[0].split(b"\x15")
        try:
            onset = float(head[0].decode("ascii"))
            dur = float(head[1].decode("ascii")) if len(head) > 1 and head[1] else 0.0
        except (ValueError, UnicodeDecodeError):
            raise EdfError(f"{where}: annotation {k} has an unreadable onset "
                           f"{parts[0][:20]!r}; the annotation signal is corrupt") from None
        texts = [p.decode("utf-8", "replace") for p in parts[1:] if p]
        if k == 0 and keep is None:
            keep = onset           # time-keeping TAL (its texts, if any, are annotations too)
        out.extend(Annotation(onset, dur, t) for t in texts)
    return keep, out


# --- reading ---------------------------------------------------------------------------------
def _field(raw: bytes, off: int, n: int, name: str, path: str) -> str:
    chunk = raw[off:off + n]
    try:
        return chunk.decode("ascii").strip()
    except UnicodeDecodeError:
        raise EdfError(f"{path}: header field {name!r} at byte {off} is not ASCII "
                       f"({chunk[:16]!r}): not an EDF/BDF file, or a corrupt header") from None


def _number(text: str, off: int, name: str, path: str, kind=float):
    try:
        v = kind(text) if kind is float else int(float(text))
    except ValueError:
        v = None
    if v is None or (kind is float and not math.isfinite(v)):
        raise EdfError(f"{path}: header field {name!r} at byte {off} is {text!r}, not a number: "
                       "not an EDF/BDF file, or a corrupt header")
    return v


def read_header(path: str | os.PathLike) -> EdfHeader:
    """Parse and check an EDF/EDF+/BDF/BDF+ header (EdfError naming the field otherwise)."""
    p = str(path)
    try:
        with open(p, "rb") as f:
            raw = f.read(256)
            if len(raw) < 256:
                raise EdfError(f"{p}: {len(raw)} bytes, shorter than an EDF header (256 bytes): "
                               "not an EDF/BDF file, or truncated")
            version = raw[:8]
            bdf = version == BDF_VERSION
            if not bdf and version.strip() != b"0":
                raise EdfError(f"{p}: version field {version!r} at byte 0 is neither EDF ('0') "
                               "nor BDF ('\\xffBIOSEMI'): not an EDF/BDF file")
            vals: dict[str, str] = {}
            off = 8
            for name, n in _FIXED[1:]:
                vals[name] = _field(raw, off, n, name, p)
                off += n
            ns = _number(vals["n_signals"], 252, "number of signals", p, int)
            if not 1 <= ns <= 4096:
                raise EdfError(f"{p}: number of signals {ns} (byte 252) out of range 1..4096")
            hb = _number(vals["header_bytes"], 184, "header bytes", p, int)
            if hb != 256 * (ns + 1):
                raise EdfError(f"{p}: header bytes {hb} (byte 184) is not 256 * (1 + {ns} "
                               "signals): a corrupt header")
            rest = f.read(256 * ns)
    except OSError as exc:
        raise EdfError(f"cannot read EDF file {p}: {exc.strerror or exc}") from None
    if len(rest) < 256 * ns:
        raise EdfError(f"{p}: header announces {ns} signals but the file ends at byte "
                       f"{256 + len(rest)}, inside the signal headers: truncated")
    cols: dict[str, list[str]] = {}
    off = 0
    for name, n in _PER_SIGNAL:
        cols[name] = [_field(rest, off + i * n, n, f"{name} of signal {i}", p)
                      for i in range(ns)]
        off += n * ns
    signals = []
    for i in range(ns):
        o = 256 + i * 16
        sig = EdfSignal(
            label=cols["label"][i], transducer=cols["transducer"][i],
            dimension=cols["dimension"][i],
            pmin=_number(cols["pmin"][i], o, f"physical minimum of signal {i}", p),
            pmax=_number(cols["pmax"][i], o, f"physical maximum of signal {i}", p),
            dmin=_number(cols["dmin"][i], o, f"digital minimum of signal {i}", p, int),
            dmax=_number(cols["dmax"][i], o, f"digital maximum of signal {i}", p, int),
            prefilter=cols["prefilter"][i],
            spr=_number(cols["spr"][i], o, f"samples per record of signal {i}", p, int))
        if sig.dmax <= sig.dmin or sig.pmax == sig.pmin or sig.spr < 1:
            raise EdfError(f"{p}: signal {i} ({sig.label!r}) has digital range "
                           f"{sig.dmin}..{sig.dmax}, physical {sig.pmin}..{sig.pmax}, "
                           f"{sig.spr} samples per record: unusable")
        signals.append(sig)
    reserved = vals["reserved"]
    plus = reserved[4] if reserved[:4] in ("EDF+", "BDF+") and len(reserved) > 4 else ""
    try:
        d, m, y = (int(x) for x in vals["startdate"].split("."))
        hh, mm, ss = (int(x) for x in vals["starttime"].split("."))
        start = dt.datetime(2000 + y if y < 85 else 1900 + y, m, d, hh, mm, ss)
    except ValueError:
        raise EdfError(f"{p}: start date/time {vals['startdate']!r} {vals['starttime']!r} "
                       "(bytes 168-183) is not dd.mm.yy hh.mm.ss") from None
    record_s = _number(vals["record_s"], 244, "data record duration", p)
    n_records = _number(vals["n_records"], 236, "number of data records", p, int)
    if record_s < 0 or (record_s == 0 and n_records != 0 and
                        not all(s.is_annotation for s in signals)):
        raise EdfError(f"{p}: data record duration {record_s} (byte 244) must be positive")
    return EdfHeader(path=p, bdf=bdf, plus=plus, start=start, n_records=n_records,
                     record_s=record_s, signals=signals, header_bytes=hb,
                     patient=vals["patient"], recording=vals["recording"])


class EdfReader:
    """Random access to an EDF/BDF file's data records (memory-mapped, never loaded whole).

    `n_records` is the header's count; a count of -1 (a recording still open, or killed before
    its writer fixed it) is taken from the file size, complete records only. A file shorter
    than its header says is refused as truncated; bytes after the last announced record (a
    record cut by a kill) are ignored and counted in `trailing_bytes`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.header = h = read_header(path)
        self.path = h.path
        size = os.path.getsize(self.path)
        rb = h.record_bytes
        avail = (size - h.header_bytes) // rb if rb else 0
        if h.n_records < 0:
            n = avail
        else:
            n = h.n_records
            if avail < n:
                raise EdfError(
                    f"{self.path}: header announces {n} data records of {rb} bytes but the file "
                    f"holds {avail} complete ones ({size} bytes): truncated. Copy the whole file"
                    " again; a recording edge-ecg was writing is never left this way")
        self.n_records = n
        self.trailing_bytes = size - h.header_bytes - n * rb
        self._offsets = np.cumsum([0] + [s.spr * h.sample_bytes for s in h.signals])
        self._mm = (np.memmap(self.path, dtype=np.uint8, mode="r", offset=h.header_bytes,
                              shape=(n, rb)) if n and rb else np.zeros((0, rb), np.uint8))

    @property
    def signals(self) -> list[EdfSignal]:
        return self.header.signals

    def close(self) -> None:
        self._mm = None

    def __enter__(self) -> "EdfReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def fs_hz(self, i: int) -> float:
        return self.signals[i].spr / self.header.record_s

    def digital(self, i: int, rec0: int = 0, rec1: int | None = None) -> np.ndarray:
        """Signal `i`'s digital values over records `[rec0, rec1)`, int32."""
        rec1 = self.n_records if rec1 is None else rec1
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        raw = np.asarray(self._mm[rec0:rec1, a:b])
        if not self.header.bdf:
            return raw.reshape(-1).view("<i2").astype(np.int32)
        t = raw.reshape(-1, 3).astype(np.int32)
        v = t[:, 0] | (t[:, 1] << 8) | (t[:, 2] << 16)
        return np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.int32)

    def annotation_signal(self) -> int | None:
        for i, s in enumerate(self.signals):
            if s.is_annotation:
                return i
        return None

    def record_annotations(self, rec0: int = 0, rec1: int | None = None
                           ) -> tuple[list[float | None], list[Annotation]]:
        """Per record its time-keeping onset, and all annotations of records `[rec0, rec1)`."""
        rec1 = self.n_records if rec1 is None else rec1
        i = self.annotation_signal()
        if i is None:
            return [None] * (rec1 - rec0), []
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        onsets, anns = [], []
        for r in range(rec0, rec1):
            keep, found = decode_tals(bytes(self._mm[r, a:b]),
                                      f"{self.path} data record {r}")
            onsets.append(keep)
            anns.extend(found)
        return onsets, anns


# --- writing ---------------------------------------------------------------------------------
def _ascii(text: str, n: int) -> bytes:
    b = text.encode("ascii", "replace")[:n]
    return b + b" " * (n - len(b))


def record_duration(fs_hz: float) -> float:
    """The shortest data-record duration (from 1 s) holding a whole number of samples."""
    for d in (1, 2, 4, 5, 10, 20, 25, 50, 100, 0.5, 0.25, 0.2, 0.1):
        n = fs_hz * d
        if abs(n - round(n)) < 1e-6 * max(1.0, n) and round(n) >= 1:
            return float(d)
    raise EdfError(f"sampling rate {fs_hz!r} Hz gives no whole number of samples in any data "
                   "record of 0.1-100 s; EDF cannot store it")


class EdfWriter:
    """EDF+C / BDF+C writer, one data record at a time, the header's count kept current.

    `write_record(digital, annotations)` appends one record: `digital` `(spr, n_signals)` ints
    (clipped to the format's range and counted in `clipped_samples`); `gain` is counts
    per mV, annotations as
    TAL bytes already sized to fit `annotation_bytes`. After each record the file is flushed and
    the record count rewritten, so a reader sees every complete record of a killed process.
    """

    def __init__(self, path: str | os.PathLike, labels: list[str], fs_hz: float,
                 gain: np.ndarray, baseline: np.ndarray,
                 transducer: str = "ECG electrode", bdf: bool | None = None,
                 annotation_bytes: int = 2048, start: dt.datetime | None = None,
                 patient: str = "X X X X", recording: str | None = None,
                 fsync: bool = False) -> None:
        self.path = str(path)
        self.bdf = self.path.lower().endswith(".bdf") if bdf is None else bdf
        self.record_s = record_duration(fs_hz)
        self.spr = int(round(fs_hz * self.record_s))
        nb = 3 if self.bdf else 2
        self.annotation_bytes = int(math.ceil(annotation_bytes / nb)) * nb
        self.fsync = fsync
        self.n_records = 0
        self.clipped_samples = 0
        self.inexact_scale = 0              # leads whose mV scale the header only approximates
        lim = (1 << 23) if self.bdf else (1 << 15)
        self.dmin = np.empty(len(labels), np.int64)
        self.dmax = np.empty(len(labels), np.int64)
        start = (start or dt.datetime.now()).replace(microsecond=0)
        recording = recording or (f"Startdate {start.day:02d}-{_MONTHS[start.month - 1]}-"
                                  f"{start.year} X X edge-ecg")
        kind = b"BDF+C" if self.bdf else b"EDF+C"
        ns = len(labels) + 1
        hdr = bytearray()
        hdr += BDF_VERSION if self.bdf else _ascii("0", 8)
        hdr += _ascii(patient, 80) + _ascii(recording, 80)
        hdr += _ascii(start.strftime("%d.%m.%y"), 8) + _ascii(start.strftime("%H.%M.%S"), 8)
        hdr += _ascii(str(256 * (ns + 1)), 8) + _ascii(kind.decode(), 44)
        hdr += _ascii("0", 8) + _ascii(format_number(self.record_s) or "1", 8)
        hdr += _ascii(str(ns), 4)
        cols: dict[str, list[bytes]] = {k: [] for k, _ in _PER_SIGNAL}
        for j, label in enumerate(labels):
            d0, d1 = -lim, lim - 1
            dim, p0, p1, exact = physical_range(float(gain[j]), float(baseline[j]), d0, d1)
            self.inexact_scale += not exact
            self.dmin[j], self.dmax[j] = d0, d1
            for k, v in (("label", label), ("transducer", transducer), ("dimension", dim),
                         ("pmin", p0), ("pmax", p1), ("dmin", str(d0)), ("dmax", str(d1)),
                         ("prefilter", ""), ("spr", str(self.spr)), ("sig_reserved", "")):
                cols[k].append(_ascii(v, dict(_PER_SIGNAL)[k]))
        ann_label = "BDF Annotations" if self.bdf else "EDF Annotations"
        for k, v in (("label", ann_label), ("transducer", ""), ("dimension", ""),
                     ("pmin", "-1"), ("pmax", "1"), ("dmin", str(-lim)), ("dmax", str(lim - 1)),
                     ("prefilter", ""), ("spr", str(self.annotation_bytes // nb)),
                     ("sig_reserved", "")):
            cols[k].append(_ascii(v, dict(_PER_SIGNAL)[k]))
        for k, _ in _PER_SIGNAL:
            hdr += b"".join(cols[k])
        assert len(hdr) == 256 * (ns + 1)
        try:
            self._f = open(self.path, "wb")
            self._f.write(hdr)
            self._f.flush()
        except OSError as exc:
            raise EdfError(f"cannot write recording {self.path}: {exc.strerror or exc}") from None
        self.n_signals = len(labels)

    def time_keeping(self) -> bytes:
        """The TAL that opens the next record: its onset in seconds."""
        return f"{_tal_time(self.n_records * self.record_s)}\x14\x14\x00".encode("ascii")

    def write_record(self, digital: np.ndarray, tals: bytes = b"") -> None:
        d = np.asarray(digital, dtype=np.int64)
        if d.shape != (self.spr, self.n_signals):
            raise ValueError(f"a record is ({self.spr}, {self.n_signals}), got {d.shape}")
        clipped = np.clip(d, self.dmin, self.dmax)
        self.clipped_samples += int(np.count_nonzero(clipped != d))
        ann = self.time_keeping() + tals
        if len(ann) > self.annotation_bytes:
            raise ValueError(f"annotations of {len(ann)} bytes exceed {self.annotation_bytes}")
        ann = ann + b"\x00" * (self.annotation_bytes - len(ann))
        if self.bdf:
            u = np.ascontiguousarray((clipped.T & 0xFFFFFF).astype("<u4"))
            sig = u.view(np.uint8).reshape(self.n_signals, self.spr, 4)[:, :, :3].tobytes()
        else:
            sig = clipped.T.astype("<i2").tobytes()
        try:
            self._f.write(sig + ann)
            self._f.flush()                    # the record first, then the count that covers it
            self.n_records += 1
            self._f.seek(N_RECORDS_OFFSET)
            self._f.write(_ascii(str(self.n_records), 8))
            self._f.flush()
            if self.fsync:
                os.fsync(self._f.fileno())
            self._f.seek(0, os.SEEK_END)
        except OSError as exc:
            raise EdfError(f"cannot write recording {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._f is not None and not self._f.closed:
            self._f.close()


def write_edf(path: str | os.PathLike, digital: np.ndarray, fs_hz: float, labels: list[str],
              gain: np.ndarray, baseline: np.ndarray,
              annotations: list[Annotation] = (), **kwargs) -> Path:
    """A whole signal `(T, n)` of counts to an EDF+/BDF+ file (tests, exports). T is padded
    with the last value to whole records; annotations must fit the first record."""
    w = EdfWriter(path, labels, fs_hz, gain, baseline, **kwargs)
    x = np.asarray(digital)
    n_rec = max(1, -(-x.shape[0] // w.spr))
    pad = n_rec * w.spr - x.shape[0]
    if pad:
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
    tals = b"".join(encode_tal(a.onset_s, a.text, a.duration_s) for a in annotations)
    for r in range(n_rec):
        w.write_record(x[r * w.spr:(r + 1) * w.spr], tals if r == 0 else b"")
    w.close()
    return Path(path)
