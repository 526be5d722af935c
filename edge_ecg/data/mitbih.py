"""MIT-BIH-style records (reference beat annotations) as a labelled data source.

Per window: the RR label is the mean RR of the reference beats inside it (the dataset builder
computes it from `ref_beats`); the arrhythmia label is the rhythm annotation of a full `.atr`
file (aux notes "(N", "(AFIB", ...) that covers most of the window, mapped to a rhythm class by
rhythms.toml. Without one (a `.beat`-only record) the rhythm is unknown and the label missing
(NaN), never guessed. The reference AF episodes travel in the record's meta for episode scoring. Age and sex come from the header comment
("69 M 1085 1629 x1", MIT-BIH convention).
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np

from edge_ecg.data.rhythms import mitdb_class, rhythm_table
from edge_ecg.errors import RecordError

# The MIT-BIH directory: records 201 and 202 come from the same subject.
SAME_SUBJECT = {"202": "201"}

_AGE_SEX = re.compile(r"^\s*(\d{1,3}|\?|-1)\s+([MF?])\b")


_KEY_VALUE = re.compile(r"^\s*(age|sex)\s*:\s*(\S+)", re.IGNORECASE)


def age_sex(comments) -> tuple[float | None, int | None]:
    """(age, sex 0/1) from header comments, None where not given: MIT-BIH's "69 M ..." line
    or "age: 69" / "sex: M" lines (as `edge-ecg simulate` writes)."""
    age = sex = None
    for c in comments:
        m = _AGE_SEX.match(c)
        if m:
            age = float(m.group(1)) if m.group(1).isdigit() else None
            return age, {"M": 0, "F": 1}.get(m.group(2))
        kv = _KEY_VALUE.match(c)
        if kv and kv.group(1).lower() == "age":
            try:
                age = float(kv.group(2))
            except ValueError:
                age = None
        elif kv:
            sex = {"M": 0, "F": 1}.get(kv.group(2).upper()[:1])
    return age, sex


def rhythm_intervals(path: str | Path, n_samples: int) -> list[tuple[int, int, str]]:
    """(start, end, aux) rhythm intervals from the `.atr` aux notes; empty without them."""
    import wfdb

    base = str(path)
    if not Path(base + ".atr").is_file():
        return []
    try:
        ann = wfdb.rdann(base, "atr")
    except Exception as exc:
        raise RecordError(f"{base}.atr: unreadable annotation file ({exc})") from None
    marks = [(int(s), a.strip("\x00 ").strip()) for s, a in zip(ann.sample, ann.aux_note or [])
             if a and a.strip("\x00 ").startswith("(")]
    marks.sort()
    return [(s, marks[i + 1][0] if i + 1 < len(marks) else n_samples, a)
            for i, (s, a) in enumerate(marks)]


def window_rhythm(start: int, end: int, rhythms: list) -> str | None:
    """The rhythm annotation ("(AFIB", ...) covering most of `[start, end)`, or None."""
    rhythm, best = None, 0
    for s0, s1, aux in rhythms:
        n = min(end, s1) - max(start, s0)
        if n > best:
            best, rhythm = n, aux
    return rhythm


def window_label(start: int, end: int, rhythms: list, where: str = "mitdb") -> str | None:
    """The rhythm class (rhythms.toml) of the window `[start, end)` (source samples), or None
    where no rhythm annotation covers it (unknown, never guessed)."""
    rhythm = window_rhythm(start, end, rhythms)
    return None if rhythm is None else mitdb_class(rhythm, where)


def af_episodes(rhythms: list) -> list[tuple[int, int]]:
    """(start, end) source samples of the reference AF / flutter episodes."""
    return [(s0, s1) for s0, s1, aux in rhythms
            if rhythm_table().mitdb.get(aux) == "af_or_flutter"]


def load_record(path: str | Path, classes: tuple[str, ...], channels=None,
                seconds: float | None = None):
    """The `LabelledRecord` of one MIT-BIH record with its reference beats (only the first
    `seconds` when given)."""
    from edge_ecg.data.aami import aami_indices
    from edge_ecg.data.records import beat_annotations, find_beat_extension, read_record
    from edge_ecg.data.windows import LabelledRecord

    path = str(path)
    path = path.removesuffix(".hea")
    rec = read_record(path, channels=channels)
    ann = beat_annotations(path)
    n = rec.n_samples
    if seconds is not None:
        n = min(n, int(round(seconds * rec.fs_hz)))
    keep = ann.sample < n
    beats = ann.sample[keep]
    symbols = np.asarray(ann.symbol)[keep]
    rhythms = rhythm_intervals(path, n)
    if beats.size < 2:
        raise RecordError(f"{path}: fewer than two reference beats")
    name = Path(path).name
    age, sex = age_sex(rec.comments)
    fs = rec.fs_hz

    for _, _, aux in rhythms:          # an unknown rhythm is an error before any window
        mitdb_class(aux, f"{path}.atr")

    def labeller(start: int, end: int) -> dict:
        cls = window_label(start, end, rhythms, f"{path}.atr")
        return {"report_label": classes.index(cls) if cls in classes else None}

    return LabelledRecord(signal=rec.signal[:n], fs_hz=fs, leads=rec.leads,
                          subject=subject_of(path),
                          labels={"age": age, "gender": sex}, record_id=f"mitdb-{name}",
                          ref_beats=beats, window_labels=labeller,
                          meta={"path": path, "af_episodes": af_episodes(rhythms),
                                "symbols": symbols,
                                # AAMI EC57 class per reference beat (-1: none; paced: all -1)
                                "beat_classes": aami_indices(symbols, name,
                                                             find_beat_extension(path) or "atr")})


def record_paths(target: str) -> list[Path]:
    """Record paths from `DIR` (every record with beat annotations) or `DIR/100,DIR/208`."""
    parts = [p for p in target.split(",") if p]
    if not parts:
        raise RecordError("mitdb: give a folder or record paths, e.g. mitdb:data/mitdb/100,...")
    out = []
    for part in parts:
        p = Path(part)
        if p.is_dir():
            found = sorted(h.with_suffix("") for h in p.glob("*.hea")
                           if h.with_suffix(".atr").is_file() or h.with_suffix(".beat").is_file())
            if not found:
                raise RecordError(f"{p}: no WFDB records with .atr/.beat annotations")
            out.extend(found)
        else:
            base = Path(str(p)[:-4]) if str(p).endswith(".hea") else p
            if not Path(str(base) + ".hea").is_file():
                raise RecordError(f"{base}.hea: WFDB header not found")
            out.append(base)
    return out


def subject_of(path: str | Path) -> str:
    name = Path(path).name
    return f"mitdb-{SAME_SUBJECT.get(name, name)}"


def record_loaders(target: str, classes: tuple[str, ...], seconds: float | None = None,
                   keep=None) -> list:
    """One zero-argument loader per record (read when called); `keep(subject)` selects."""
    return [partial(load_record, p, classes, seconds=seconds) for p in record_paths(target)
            if keep is None or keep(subject_of(p))]


def write_excerpt(path: str | Path, start_s: float, end_s: float, out_dir: str | Path,
                  name: str | None = None) -> Path:
    """Write `[start_s, end_s)` of a record and its `.atr` annotations (shifted, the rhythm in
    force at the start repeated at sample 0) as a new WFDB record; returns its path.

    The demo's packaged patient is made this way from MIT-BIH record 223 (see
    edge_ecg/assets/demo/README.md)."""
    import wfdb

    base = str(path).removesuffix(".hea")
    rec = wfdb.rdrecord(base, physical=False)
    fs = float(rec.fs)
    a, b = int(round(start_s * fs)), int(round(end_s * fs))
    if not 0 <= a < b <= rec.sig_len:
        raise RecordError(f"{base}: excerpt {start_s}-{end_s} s lies outside the record "
                          f"(0-{rec.sig_len / fs:.0f} s)")
    name = name or f"{Path(base).name}_{int(start_s)}_{int(end_s)}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=rec.units, sig_name=rec.sig_name,
                d_signal=rec.d_signal[a:b], fmt=rec.fmt, adc_gain=rec.adc_gain,
                baseline=rec.baseline,
                comments=list(rec.comments or []) + [
                    f"excerpt {start_s:g}-{end_s:g} s of MIT-BIH record {Path(base).name}"],
                write_dir=str(out))
    ann = wfdb.rdann(base, "atr")
    samples = np.asarray(ann.sample)
    aux = list(ann.aux_note or [""] * len(samples))
    symbols = list(ann.symbol)
    keep = [i for i in range(len(samples)) if a <= samples[i] < b]
    before = [i for i in range(len(samples)) if samples[i] < a and aux[i].startswith("(")]
    s_out = [samples[i] - a for i in keep]
    sym_out = [symbols[i] for i in keep]
    aux_out = [aux[i] for i in keep]
    if before and not (s_out and s_out[0] == 0 and aux_out[0].startswith("(")):
        s_out.insert(0, 0)
        sym_out.insert(0, "+")
        aux_out.insert(0, aux[before[-1]])
    wfdb.wrann(name, "atr", np.asarray(s_out, dtype=np.int64), symbol=sym_out,
               aux_note=aux_out, fs=fs, write_dir=str(out))
    return out / name
