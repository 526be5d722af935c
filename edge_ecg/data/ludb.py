"""The Lobachevsky University ECG Database (Kalyakulina et al., IEEE Access 8, 2020) as a
labelled source: 12-lead, 500 Hz, 10-s records with age, sex and rhythm.

A folder of LUDB's layout holds `ludb.csv` (ID, Sex, Age, Rhythms, ...) and the records in
`data/` (or beside it). Labels come from `ludb.csv`, else from each header's "# <age>:",
"# <sex>:" and "# Rhythm:" lines. The cardiologists' QRS peaks (the `N` marks of the lead II
annotation file `.ii`) are the reference beats, so LUDB windows carry an RR label too. Each
record is a different patient.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from edge_ecg.data.rhythms import ludb_class
from edge_ecg.errors import RecordError

TABLE = "ludb.csv"
# LUDB header lead names are lower case (i, ii, ..., avr, v1).
LEADS = {"i": "I", "ii": "II", "iii": "III", "avr": "aVR", "avl": "aVL", "avf": "aVF",
         "v1": "V1", "v2": "V2", "v3": "V3", "v4": "V4", "v5": "V5", "v6": "V6"}


@dataclass(frozen=True)
class LudbEntry:
    record: str
    path: Path                 # record path without extension
    age: float | None
    sex: int | None            # 0 male, 1 female
    label: str | None          # rhythm class (rhythms.toml)


def _data_dir(folder: Path) -> Path:
    return folder / "data" if (folder / "data").is_dir() else folder


def _age(text: str | None) -> float | None:
    m = re.search(r"\d+(\.\d+)?", text or "")
    return float(m.group(0)) if m else None


def _sex(text: str | None) -> int | None:
    t = (text or "").strip().upper()[:1]
    return {"M": 0, "F": 1}.get(t)


def _from_header(path: Path) -> tuple[float | None, int | None, str]:
    age = sex = None
    rhythm = ""
    try:
        lines = path.with_suffix(".hea").read_text(errors="replace").splitlines()
    except OSError as exc:
        raise RecordError(f"{path}.hea: cannot read header ({exc.strerror or exc})") from None
    for line in lines:
        c = line.lstrip("#").strip()
        low = c.lower()
        if low.startswith("<age>:"):
            age = _age(c.split(":", 1)[1])
        elif low.startswith("<sex>:"):
            sex = _sex(c.split(":", 1)[1])
        elif low.startswith("rhythm:"):
            rhythm = c.split(":", 1)[1]
    return age, sex, rhythm


def read_entries(folder: str | Path) -> list[LudbEntry]:
    """Every record of the folder with its labels (table first, header otherwise)."""
    folder = Path(folder)
    data = _data_dir(folder)
    heads = sorted(data.glob("*.hea"), key=lambda p: (len(p.stem), p.stem))
    heads = [h for h in heads if h.stem != "ludb-ecg"]     # record 1 under its older name
    if not heads:
        raise RecordError(f"{data}: no LUDB records (*.hea); a ludb: folder holds ludb.csv and "
                          "data/ with the records")
    table: dict[str, dict] = {}
    tpath = folder / TABLE
    if tpath.is_file():
        with open(tpath, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not {"ID", "Sex", "Age", "Rhythms"} <= set(reader.fieldnames or ()):
                raise RecordError(f"{tpath}: expected columns ID, Sex, Age, Rhythms")
            for row in reader:
                table[row["ID"].strip()] = row
    out = []
    for h in heads:
        base = h.with_suffix("")
        row = table.get(h.stem)
        if row is not None:
            age, sex, rhythm = _age(row["Age"]), _sex(row["Sex"]), row["Rhythms"]
            where = f"{tpath} (ID {h.stem})"
        else:
            age, sex, rhythm = _from_header(base)
            where = str(h)
        out.append(LudbEntry(record=h.stem, path=base, age=age, sex=sex,
                             label=ludb_class(rhythm, where)))
    return out


def qrs_peaks(path: Path) -> np.ndarray | None:
    """The cardiologists' QRS peaks (samples) from the lead II annotation file, if present."""
    import wfdb

    if not Path(f"{path}.ii").is_file():
        return None
    try:
        ann = wfdb.rdann(str(path), "ii")
    except Exception as exc:
        raise RecordError(f"{path}.ii: unreadable annotation file ({exc})") from None
    sym = np.asarray(ann.symbol)
    return np.asarray(ann.sample, dtype=np.int64)[sym == "N"]


def load_record(entry: LudbEntry, classes: tuple[str, ...]):
    from edge_ecg.data.records import read_record
    from edge_ecg.data.windows import LabelledRecord

    rec = read_record(entry.path)
    leads = tuple(LEADS.get(n.lower(), n) for n in rec.leads)
    return LabelledRecord(
        signal=rec.signal, fs_hz=rec.fs_hz, leads=leads, subject=f"ludb-{entry.record}",
        labels={"age": entry.age, "gender": entry.sex,
                "report_label": classes.index(entry.label) if entry.label in classes else None},
        record_id=f"ludb-{entry.record}", ref_beats=qrs_peaks(entry.path),
        meta={"condition": entry.label})


def record_loaders(folder: str | Path, classes: tuple[str, ...], keep=None) -> list:
    return [partial(load_record, e, classes) for e in read_entries(folder)
            if keep is None or keep(f"ludb-{e.record}")]
