"""MIT-BIH-style records (reference beat annotations) as a labelled data source.

Per window: the RR label is the mean RR of the reference beats inside it (the dataset builder
computes it from `ref_beats`); the arrhythmia label comes from the rhythm annotations of a
full `.atr` file where present (aux notes "(N", "(AFIB", ...) and from the beats: a window
holding a 'V' beat is a PVC window, one holding a premature atrial beat in sinus rhythm a PAC
window, a paced ('/') majority a paced window. Without any of these the rhythm is unknown and
the label missing (NaN), never guessed. Age and sex come from the header comment
("69 M 1085 1629 x1", MIT-BIH convention).
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np

from edge_ecg.errors import RecordError

# MIT-BIH rhythm annotations (PhysioNet "ecgcodes" / MIT-BIH directory) -> arrhythmia class.
RHYTHMS = {
    "(N": "sinus_rhythm",
    "(SBR": "sinus_bradycardia",
    "(AFIB": "atrial_fibrillation",
    "(AFL": "atrial_flutter",
    "(SVTA": "supraventricular_tachycardia",
    "(P": "ventricular_paced",
    "(B": "premature_ventricular_contractions",     # ventricular bigeminy
    "(T": "premature_ventricular_contractions",     # ventricular trigeminy
}
PAC_SYMBOLS = frozenset(["A", "a", "S", "J"])          # premature supraventricular beats
PACED_SYMBOLS = frozenset(["/", "f"])
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


def window_label(start: int, end: int, beats: np.ndarray, symbols: np.ndarray,
                 rhythms: list, fs_hz: float) -> str | None:
    """The arrhythmia class of the window `[start, end)` (source samples), or None (unknown)."""
    inside = (beats >= start) & (beats < end)
    sym = symbols[inside]
    rhythm = None
    best = 0
    for s0, s1, aux in rhythms:
        n = min(end, s1) - max(start, s0)
        if n > best:
            best, rhythm = n, aux
    cls = RHYTHMS.get(rhythm) if rhythm is not None else None
    if rhythm is not None and cls is None:
        return "other"                       # an annotated rhythm outside our classes
    b = beats[inside]
    hr = 60.0 * fs_hz * (b.size - 1) / (b[-1] - b[0]) if b.size >= 2 else None
    if sym.size and np.mean(np.isin(sym, list(PACED_SYMBOLS))) > 0.5:
        return "ventricular_paced"
    if cls in (None, "sinus_rhythm", "sinus_bradycardia") and np.any(sym == "V"):
        return "premature_ventricular_contractions"
    if cls == "sinus_rhythm" and np.any(np.isin(sym, list(PAC_SYMBOLS))):
        return "premature_atrial_contractions"
    if cls == "sinus_rhythm" and hr is not None:
        # Rate classes as a machine report names them (< 60 / > 100 bpm).
        if hr < 60:
            return "sinus_bradycardia"
        if hr > 100:
            return "sinus_tachycardia"
    if cls == "atrial_fibrillation" and hr is not None and hr > 100:
        return "af_rapid_ventricular_response"
    return cls


def load_record(path: str | Path, classes: tuple[str, ...], channels=None,
                seconds: float | None = None):
    """The `LabelledRecord` of one MIT-BIH record with its reference beats (only the first
    `seconds` when given)."""
    from edge_ecg.data.records import beat_annotations, read_record
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

    def labeller(start: int, end: int) -> dict:
        cls = window_label(start, end, beats, symbols, rhythms, fs)
        return {"report_label": classes.index(cls) if cls in classes else None}

    return LabelledRecord(signal=rec.signal[:n], fs_hz=fs, leads=rec.leads,
                          subject=f"mitdb-{SAME_SUBJECT.get(name, name)}",
                          labels={"age": age, "gender": sex}, record_id=f"mitdb-{name}",
                          ref_beats=beats, window_labels=labeller,
                          meta={"path": path})


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


def record_loaders(target: str, classes: tuple[str, ...], seconds: float | None = None) -> list:
    """One zero-argument loader per record (read when called)."""
    return [partial(load_record, p, classes, seconds=seconds) for p in record_paths(target)]
