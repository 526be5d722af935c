"""PTB-XL (Wagner et al., Sci Data 7:154, 2020) as a labelled data source.

`ptbxl_database.csv` holds one row per ECG: ecg_id, patient_id, age, sex (0 male, 1 female, as
EnECG), scp_codes (a Python dict literal of SCP-ECG statement -> likelihood, parsed with
`ast.literal_eval` only: the table is untrusted data) and the record paths filename_lr (100 Hz)
and filename_hr (500 Hz). The SCP rhythm statements map onto the rhythm classes of the
arrhythmia task (rhythms.toml); PTB-XL has no potassium labels, so that task is missing (NaN)
for its windows; the RR label comes from the beats the signal chain detects where the
caller asks for it (`dataset.py`, option `rr=detected`).
"""

from __future__ import annotations

import ast
import csv
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from edge_ecg.errors import RecordError

DATABASE = "ptbxl_database.csv"

# PTB-XL sets ages above 89 to 300 (HIPAA de-identification); they stand for "90 or older".
AGE_CENSORED = 300
AGE_CENSORED_AS = 90.0


def parse_scp_codes(text: str, where: str) -> dict[str, float]:
    """The scp_codes column: a dict literal of code -> likelihood (0-100)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise RecordError(f"{where}: scp_codes is not a dict literal: {text[:80]!r}") from None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) for k, v in value.items()):
        raise RecordError(f"{where}: scp_codes must map code strings to numbers, got {text[:80]!r}")
    return {k: float(v) for k, v in value.items()}


def scp_to_class(codes: dict[str, float]) -> str | None:
    """The rhythm class (rhythms.toml) of a set of SCP statements (any likelihood counts: PTB-XL
    gives rhythm statements likelihood 0); None without a rhythm statement."""
    from edge_ecg.data.rhythms import scp_class

    return scp_class(codes)


@dataclass(frozen=True)
class PTBXLEntry:
    ecg_id: str
    patient_id: str
    age: float | None
    sex: int | None
    scp_codes: dict
    filename: str            # relative to the PTB-XL folder, without extension
    label: str | None        # rhythm class (None: no rhythm statement)
    row: int
    strat_fold: int | None = None


def read_database(folder: str | Path, rate: str = "hr") -> list[PTBXLEntry]:
    """Rows of `ptbxl_database.csv`; `rate` "hr" (500 Hz) or "lr" (100 Hz) picks the file."""
    folder = Path(folder)
    path = folder / DATABASE
    if rate not in ("hr", "lr"):
        raise RecordError(f"PTB-XL rate must be 'hr' (500 Hz) or 'lr' (100 Hz), got {rate!r}")
    try:
        fh = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise RecordError(f"{path}: cannot read the PTB-XL table ({exc.strerror or exc})") from None
    with fh:
        reader = csv.DictReader(fh)
        col = f"filename_{rate}"
        need = {"ecg_id", "patient_id", "age", "sex", "scp_codes", col}
        missing = need - set(reader.fieldnames or ())
        if missing:
            raise RecordError(f"{path}: missing column(s) {sorted(missing)}")
        out = []
        for row_no, row in enumerate(reader, start=2):
            where = f"{path}:{row_no}"
            codes = parse_scp_codes(row["scp_codes"], where)
            age = _float(row["age"], where, "age")
            if age is not None and age >= AGE_CENSORED:
                age = AGE_CENSORED_AS
            sex = _float(row["sex"], where, "sex")
            if sex is not None and sex not in (0.0, 1.0):
                raise RecordError(
                    f"{where}: sex must be 0 (male) or 1 (female), got {row['sex']!r}")
            if not row[col]:
                raise RecordError(f"{where}: empty {col}")
            patient = _float(row["patient_id"], where, "patient_id")
            out.append(PTBXLEntry(
                ecg_id=row["ecg_id"],
                patient_id=str(int(patient)) if patient is not None else f"ecg{row['ecg_id']}",
                age=age, sex=None if sex is None else int(sex), scp_codes=codes,
                filename=row[col], label=scp_to_class(codes), row=row_no,
                strat_fold=_int_or_none(row.get("strat_fold"))))
    if not out:
        raise RecordError(f"{path}: no rows")
    return out


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(float(text)) if text not in (None, "") else None
    except ValueError:
        return None


def _float(text: str, where: str, name: str) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        v = float(text)
    except ValueError:
        raise RecordError(f"{where}: {name} must be a number, got {text!r}") from None
    return v if math.isfinite(v) else None


def load_record(entry: PTBXLEntry, folder: str | Path, classes: tuple[str, ...]):
    """The `LabelledRecord` of one PTB-XL row."""
    from edge_ecg.data.records import read_record
    from edge_ecg.data.windows import LabelledRecord

    rec = read_record(Path(folder) / entry.filename)
    labels = {"age": entry.age, "gender": entry.sex,
              "report_label": classes.index(entry.label) if entry.label in classes else None}
    return LabelledRecord(signal=rec.signal, fs_hz=rec.fs_hz, leads=rec.leads,
                          subject=f"ptbxl-{entry.patient_id}", labels=labels,
                          record_id=f"ptbxl-{entry.ecg_id}",
                          meta={"scp_codes": entry.scp_codes, "condition": entry.label})


def record_loaders(folder: str | Path, classes: tuple[str, ...], rate: str = "hr",
                   limit: int | None = None, keep=None) -> list:
    """One zero-argument loader per row (records read when called); `keep(subject)` selects."""
    entries = read_database(folder, rate)
    if keep is not None:
        entries = [e for e in entries if keep(f"ptbxl-{e.patient_id}")]
    if limit is not None:
        entries = entries[:limit]
    return [partial(load_record, e, folder, classes) for e in entries]
