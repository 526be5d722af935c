"""EnECG-style label tables over MIMIC-IV-ECG WFDB records (the ECG-MoE paper's benchmark).

One JSON object per line:
    {"ecg_path": "files/p1000/p10000032/s40689238/40689238", "subject_id": 10000032,
     "study_id": 40689238, "rr_interval": 857, "age": 52, "gender": 1, "flag": 0,
     "report_label": 3}
`rr_interval` 29999 means "not measured" (EnECG's marker); `gender` 0 male, 1 female; `flag` 1
for an abnormal potassium; `report_label` one of the machine report's 15 labels (mapped to the
rhythm classes of the arrhythmia task by rhythms.toml), as an
index or as the label string. `ecg_path` is relative to the table's folder (or to `root`), or
absolute. Every malformed line raises `RecordError` naming file, line and field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from edge_ecg.data.tasks import DEFAULT_TASKS, TaskSet
from edge_ecg.errors import RecordError

RR_MISSING = 29999.0   # EnECG: RR interval not measured


@dataclass(frozen=True)
class EnECGLabel:
    """One line of the label table, checked."""

    ecg_path: str
    subject_id: str
    study_id: str
    rr_interval: float          # ms; RR_MISSING when not measured
    age: float | None
    gender: int | None          # 0 male, 1 female
    flag: int | None            # 1 potassium abnormal
    report_label: int | None    # index into the arrhythmia task's labels
    line: int
    extra: dict = field(default_factory=dict)

    def fields(self) -> dict:
        """The label-table fields the tasks read (tasks.toml `label_field`)."""
        return {"rr_interval": self.rr_interval, "age": self.age, "gender": self.gender,
                "flag": self.flag, "report_label": self.report_label, **self.extra}


def _number(value, where: str, name: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError(f"{where}: field {name!r} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise RecordError(f"{where}: field {name!r} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        return None
    return v


def _binary(value, where: str, name: str, words: tuple[str, ...]) -> int | None:
    if isinstance(value, str) and value.strip().lower() in words:
        return words.index(value.strip().lower())
    v = _number(value, where, name)
    if v is None:
        return None
    if v not in (0.0, 1.0):
        raise RecordError(f"{where}: field {name!r} must be 0 or 1, got {value!r}")
    return int(v)


def report_label_index(value, classes: tuple[str, ...], where: str) -> int | None:
    """The rhythm-class index of a report label (an index into the machine report's 15
    labels, or a label / class name), through rhythms.toml."""
    from edge_ecg.data.rhythms import enecg_class

    if isinstance(value, float) and value != value:        # NaN: not measured
        return None
    cls = enecg_class(value, where)
    if cls is None:
        return None
    if cls not in classes:
        raise RecordError(f"{where}: rhythm class {cls!r} is not a label of the arrhythmia task "
                          f"{list(classes)}")
    return classes.index(cls)


def read_labels(path: str | Path, tasks: TaskSet = DEFAULT_TASKS) -> list[EnECGLabel]:
    """Parse and check an EnECG jsonl label table."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecordError(f"{path}: cannot read label table ({exc.strerror or exc})") from None
    classes = (tasks["arrhythmia"].labels if "arrhythmia" in tasks.names
               else DEFAULT_TASKS["arrhythmia"].labels)
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{i}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordError(
                f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise RecordError(f"{where}: each line must be a JSON object, got {type(obj).__name__}")
        if not isinstance(obj.get("ecg_path"), str) or not obj["ecg_path"]:
            raise RecordError(f"{where}: field 'ecg_path' (record path, string) is missing")
        if obj.get("subject_id") in (None, ""):
            raise RecordError(
                f"{where}: field 'subject_id' is missing (needed to split by patient)")
        rr = _number(obj.get("rr_interval"), where, "rr_interval")
        if rr is not None and rr != RR_MISSING and not 0 < rr < 5000:
            raise RecordError(f"{where}: rr_interval {rr} ms is outside 0-5000 "
                              f"(use {int(RR_MISSING)} for 'not measured')")
        age = _number(obj.get("age"), where, "age")
        if age is not None and not 0 <= age < 130:
            raise RecordError(f"{where}: age {age} is not in years")
        known = {"ecg_path", "subject_id", "study_id", "rr_interval", "age", "gender", "flag",
                 "report_label"}
        out.append(EnECGLabel(
            ecg_path=obj["ecg_path"],
            subject_id=str(obj["subject_id"]),
            study_id=str(obj.get("study_id", "")),
            rr_interval=RR_MISSING if rr is None else rr,
            age=age,
            gender=_binary(obj.get("gender"), where, "gender", ("m", "f")),
            flag=_binary(obj.get("flag"), where, "flag", ("normal", "abnormal")),
            report_label=report_label_index(obj.get("report_label"), classes, where),
            line=i,
            extra={k: v for k, v in obj.items() if k not in known},
        ))
    if not out:
        raise RecordError(f"{path}: label table holds no records")
    return out


def record_path(label: EnECGLabel, table: str | Path, root: str | Path | None = None) -> Path:
    """Where the WFDB record of a label line lives (without extension)."""
    p = Path(label.ecg_path)
    if p.suffix == ".hea":
        p = p.with_suffix("")
    if p.is_absolute():
        return p
    return Path(root) / p if root is not None else Path(table).parent / p


def load_record(lab: EnECGLabel, table: str | Path, root: str | Path | None = None):
    """The `LabelledRecord` of one label line (reads the WFDB record)."""
    from edge_ecg.data.records import read_record
    from edge_ecg.data.windows import LabelledRecord

    path = record_path(lab, table, root)
    try:
        rec = read_record(path)
    except RecordError as exc:
        raise RecordError(f"{table}:{lab.line}: {exc}") from None
    return LabelledRecord(signal=rec.signal, fs_hz=rec.fs_hz, leads=rec.leads,
                          subject=f"enecg-{lab.subject_id}", labels=lab.fields(),
                          record_id=str(path), meta={"study_id": lab.study_id, "line": lab.line})


def record_loaders(table: str | Path, tasks: TaskSet = DEFAULT_TASKS,
                   root: str | Path | None = None, limit: int | None = None) -> list:
    """One zero-argument loader per line of the table: records are read one at a time when
    the dataset builder calls them (a failing record can be skipped and counted)."""
    labels = read_labels(table, tasks)
    if limit is not None:
        labels = labels[:limit]
    return [partial(load_record, lab, table, root) for lab in labels]
