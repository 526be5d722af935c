"""MIT-BIH-style records (reference beat annotations) as a labelled data source.

Serves every database of that layout described in databases.toml: MIT-BIH Arrhythmia
(`mitdb:`), the MIT-BIH Supraventricular Arrhythmia Database (`svdb:`, 128 Hz, channels ECG1 and
ECG2) and the Creighton University VT database (`cudb:`, 250 Hz, one channel "ECG", invalid
samples, VF episodes marked `[` ... `]` and no beat classes). Record ids and subjects are
prefixed with the database (`svdb-800`), so splits and per-database figures keep them apart.

Per window: the RR label is the mean RR of the reference beats inside it (the dataset builder
computes it from `ref_beats`); the arrhythmia label is the rhythm annotation of a full `.atr`
file (aux notes "(N", "(AFIB", ...) that covers most of the window, mapped to a rhythm class by
rhythms.toml. Without one (a `.beat`-only record) the rhythm is unknown and the label missing
(NaN), never guessed. The reference AF episodes travel in the record's meta for episode scoring. Age and sex come from the header comment
("69 M 1085 1629 x1", MIT-BIH convention).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache, partial
from importlib import resources
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:      # Python 3.10: the same parser as the `tomli` package
    import tomli as tomllib

import numpy as np

from edge_ecg.data.rhythms import mitdb_class, rhythm_table
from edge_ecg.errors import RecordError, SignalError

DATABASES_WHERE = "edge_ecg/data/databases.toml"


@dataclass(frozen=True)
class Database:
    """One database's description (databases.toml)."""

    name: str
    title: str
    beat_classes: bool
    leads: dict[str, str]
    same_subject: dict[str, str]


@lru_cache(maxsize=1)
def databases() -> dict[str, Database]:
    text = resources.files("edge_ecg.data").joinpath("databases.toml").read_text()
    try:
        doc = tomllib.loads(text)
        return {name: Database(name=name, title=str(d["title"]),
                               beat_classes=bool(d["beat_classes"]),
                               leads=dict(d.get("leads", {})),
                               same_subject=dict(d.get("same_subject", {})))
                for name, d in doc.items()}
    except (KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise RecordError(f"{DATABASES_WHERE}: missing or malformed entry {exc}") from None


def database(name: str) -> Database:
    dbs = databases()
    if name not in dbs:
        raise RecordError(f"unknown database {name!r}; described in {DATABASES_WHERE}: "
                          f"{sorted(dbs)}")
    return dbs[name]


# A reference beat this close to an invalid sample keeps no class: its QRS is (partly) fill,
# and a detection there would be matched to it (EC57's +/-150 ms match window).
INVALID_BEAT_MARGIN_S = 0.15

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
    """(start, end, aux) rhythm intervals from the `.atr` aux notes, with the ventricular
    flutter/fibrillation episodes its `[` ... `]` marks bound laid over them (as the rhythm
    note `vf_episode_rhythm` of rhythms.toml); empty without either."""
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
    notes = [(s, marks[i + 1][0] if i + 1 < len(marks) else n_samples, a)
             for i, (s, a) in enumerate(marks)]
    episodes = vf_episodes(ann.sample, ann.symbol, n_samples)
    note = rhythm_table().vf_episode_rhythm
    if not episodes or note is None:
        return [(a, min(b, n_samples), r) for a, b, r in notes if a < n_samples]
    return overlay(notes, episodes, note, n_samples)


def vf_episodes(samples, symbols, n_samples: int) -> list[tuple[int, int]]:
    """(start, end) of the episodes `[` opens and `]` closes; an episode still open at the end
    of the record (or of the excerpt, `n_samples`) runs to it. A stray `]` is ignored."""
    out, start = [], None
    for smp, sym in zip(samples, symbols):
        smp = int(smp)
        if smp >= n_samples:
            break
        if sym == "[" and start is None:
            start = smp
        elif sym == "]" and start is not None:
            out.append((start, smp))
            start = None
    if start is not None:
        out.append((start, n_samples))
    return [(a, b) for a, b in out if b > a]


def overlay(intervals: list, episodes: list, note: str, n_samples: int) -> list:
    """`intervals` (start, end, aux) with `episodes` (start, end) cut out of them and added
    as `note`: an episode's own mark wins over the rhythm note in force around it."""
    out = []
    for a, b, r in intervals:
        pieces = [(a, min(b, n_samples))]
        for e0, e1 in episodes:
            pieces = [p for lo, hi in pieces
                      for p in ((lo, min(hi, e0)), (max(lo, e1), hi)) if p[1] > p[0]]
        out.extend((lo, hi, r) for lo, hi in pieces)
    out.extend((e0, e1, note) for e0, e1 in episodes)
    return sorted(out)


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


def vf_rhythm_episodes(rhythms: list) -> list[tuple[int, int]]:
    """(start, end) source samples of the reference ventricular flutter/fibrillation episodes
    (the `[` ... `]` marks and the "(VFL"/"(VF" notes), neighbours merged."""
    vf = {"(VFL", "(VF", rhythm_table().vf_episode_rhythm}
    out: list[list[int]] = []
    for s0, s1, aux in sorted(rhythms):
        if aux not in vf:
            continue
        if out and s0 <= out[-1][1]:
            out[-1][1] = max(out[-1][1], s1)
        else:
            out.append([s0, s1])
    return [(a, b) for a, b in out]


def load_record(path: str | Path, classes: tuple[str, ...], channels=None,
                seconds: float | None = None, db: str = "mitdb",
                leads: tuple[str, ...] | None = None):
    """The `LabelledRecord` of one record of database `db` (databases.toml) with its reference
    beats (only the first `seconds` when given); `leads` assigns a lead to each channel.

    Invalid samples stay NaN (the window builder fills and masks them); the reference beats
    next to them keep no class. Windows overlapping a VF episode get no RR label: the beats on
    either side of an episode are not consecutive."""
    from edge_ecg.data.aami import aami_indices
    from edge_ecg.data.records import (
        beat_annotations,
        find_beat_extension,
        invalid_runs,
        read_record,
    )
    from edge_ecg.data.windows import LabelledRecord
    from edge_ecg.signal.leads import assign_leads

    desc = database(db)
    path = str(path)
    path = path.removesuffix(".hea")
    rec = read_record(path, channels=channels, invalid="keep")
    try:
        lead_names = assign_leads(rec.leads, leads, desc.leads, where=path)
    except SignalError as exc:
        raise RecordError(str(exc)) from None
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
    vf = vf_rhythm_episodes(rhythms)

    def labeller(start: int, end: int) -> dict:
        cls = window_label(start, end, rhythms, f"{path}.atr")
        out = {"report_label": classes.index(cls) if cls in classes else None}
        if any(a < end and b > start for a, b in vf):
            out["rr_interval"] = None
        return out

    if desc.beat_classes:
        # AAMI EC57 class per reference beat (-1: none; paced: all -1)
        beat_classes = aami_indices(symbols, name if db == "mitdb" else f"{db}-{name}",
                                    find_beat_extension(path) or "atr")
    else:
        beat_classes = np.full(beats.size, -1, dtype=np.int64)
    invalid = None if rec.invalid is None else rec.invalid[:n]
    runs = invalid_runs(invalid)
    margin = int(round(INVALID_BEAT_MARGIN_S * fs))
    for a, b in runs:
        beat_classes[(beats >= a - margin) & (beats < b + margin)] = -1
    return LabelledRecord(signal=rec.signal[:n], fs_hz=fs, leads=lead_names,
                          subject=subject_of(path, db),
                          labels={"age": age, "gender": sex}, record_id=f"{db}-{name}",
                          ref_beats=beats, window_labels=labeller,
                          meta={"path": path, "af_episodes": af_episodes(rhythms),
                                "vf_episodes": vf, "invalid_runs": runs,
                                "symbols": symbols, "beat_classes": beat_classes})


def record_paths(target: str, db: str = "mitdb") -> list[Path]:
    """Record paths from `DIR` (every record with beat annotations) or `DIR/100,DIR/208`."""
    parts = [p for p in target.split(",") if p]
    if not parts:
        raise RecordError(f"{db}: give a folder or record paths, e.g. {db}:data/{db}/NAME,...")
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


def subject_of(path: str | Path, db: str = "mitdb") -> str:
    name = Path(path).name
    return f"{db}-{database(db).same_subject.get(name, name)}"


def record_loaders(target: str, classes: tuple[str, ...], seconds: float | None = None,
                   keep=None, db: str = "mitdb", leads: tuple[str, ...] | None = None) -> list:
    """One zero-argument loader per record (read when called); `keep(subject)` selects."""
    database(db)
    return [partial(load_record, p, classes, seconds=seconds, db=db, leads=leads)
            for p in record_paths(target, db) if keep is None or keep(subject_of(p, db))]


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
                    f"excerpt {start_s:g}-{end_s:g} s of record {Path(base).parent.name}/"
                    f"{Path(base).name}"],
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
