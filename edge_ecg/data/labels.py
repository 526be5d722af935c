"""A window's labels: the label-table fields of a record's window, and each field's value as a
task's training target (`NaN` = missing)."""

from __future__ import annotations

import math

from edge_ecg.data.tasks import TaskSpec
from edge_ecg.data.windows import LabelledRecord, mean_rr_ms


def task_value(task: TaskSpec, value) -> float:
    """A label-table value as the float32 training target of `task` (NaN = missing)."""
    if value is None:
        return math.nan
    if task.kind == "multiclass":
        if isinstance(value, str):
            return float(task.labels.index(value)) if value in task.labels else math.nan
        v = float(value)
        return v if 0 <= v < len(task.labels) and v == int(v) else math.nan
    if isinstance(value, str):
        key = value.strip().lower()
        if task.kind == "binary" and key in task.labels:
            return float(task.labels.index(key))
        try:
            value = float(key)
        except ValueError:
            return math.nan
    v = float(value)
    if not math.isfinite(v) or (task.missing is not None and v == float(task.missing)):
        return math.nan
    if task.kind == "binary" and v not in (0.0, 1.0):
        return math.nan
    return v


def window_labels(rec: LabelledRecord, start_src: int, end_src: int) -> dict:
    """The label-table fields of one window (source samples `[start_src, end_src)`)."""
    lab = dict(rec.labels)
    if rec.ref_beats is not None:
        rr = mean_rr_ms(rec.ref_beats, start_src, end_src, rec.fs_hz)
        lab["rr_interval"] = None if math.isnan(rr) else rr
    if rec.window_labels is not None:
        lab.update(rec.window_labels(start_src, end_src))
    return lab
