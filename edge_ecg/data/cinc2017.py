"""The PhysioNet/CinC Challenge 2017 set (Clifford et al., CinC 44, 2017) as a labelled source.

A folder holds `REFERENCE.csv` (no header: `record,label`, label N normal sinus rhythm, A atrial
fibrillation, O other rhythm, ~ too noisy) and one single-lead WFDB record per row (AliveCor
hand-held device, 300 Hz, lead I-like: the electrodes are held in the left and right hand).
Each recording is its own subject: the challenge publishes no patient identifiers, and its
score is per recording. Labels map to rhythm classes through rhythms.toml.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from edge_ecg.data.rhythms import cinc2017_class
from edge_ecg.errors import RecordError

REFERENCE = "REFERENCE.csv"
# AliveCor KardiaMobile: left and right hand on the two electrodes, i.e. Einthoven lead I.
LEAD = "I"


@dataclass(frozen=True)
class CincEntry:
    record: str
    letter: str
    label: str          # rhythm class (rhythms.toml)
    row: int


def read_reference(folder: str | Path) -> list[CincEntry]:
    """The rows of `REFERENCE.csv`; an unknown label or a malformed row is an error naming it."""
    path = Path(folder) / REFERENCE
    try:
        fh = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise RecordError(f"{path}: cannot read the CinC 2017 label table "
                          f"({exc.strerror or exc}); a cinc2017: folder needs REFERENCE.csv "
                          "beside the records") from None
    out = []
    with fh:
        for row_no, row in enumerate(csv.reader(fh), start=1):
            if not row or not "".join(row).strip():
                continue
            where = f"{path}:{row_no}"
            if len(row) != 2 or not row[0].strip():
                raise RecordError(f"{where}: expected 'record,label', got {','.join(row)!r}")
            out.append(CincEntry(record=row[0].strip(), letter=row[1].strip(),
                                 label=cinc2017_class(row[1], where), row=row_no))
    if not out:
        raise RecordError(f"{path}: no rows")
    return out


def load_record(entry: CincEntry, folder: str | Path, classes: tuple[str, ...]):
    """The `LabelledRecord` of one recording (lead named I)."""
    from edge_ecg.data.records import read_record
    from edge_ecg.data.windows import LabelledRecord

    rec = read_record(Path(folder) / entry.record)
    if rec.signal.shape[1] != 1:
        raise RecordError(f"{rec.path}: CinC 2017 records hold one lead, found "
                          f"{rec.signal.shape[1]}")
    return LabelledRecord(
        signal=rec.signal, fs_hz=rec.fs_hz, leads=(LEAD,), subject=f"cinc-{entry.record}",
        labels={"report_label": classes.index(entry.label) if entry.label in classes else None},
        record_id=f"cinc-{entry.record}", meta={"condition": entry.label})


def subjects(folder: str | Path) -> list[str]:
    return [f"cinc-{e.record}" for e in read_reference(folder)]


def record_loaders(folder: str | Path, classes: tuple[str, ...], keep=None) -> list:
    """One zero-argument loader per row; `keep(subject)` selects rows (folds)."""
    entries = read_reference(folder)
    return [partial(load_record, e, folder, classes) for e in entries
            if keep is None or keep(f"cinc-{e.record}")]
