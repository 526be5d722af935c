"""Windowed, labelled data sets for training and evaluation, from a one-line spec.

Specs:
  `synth:N[?seconds=10&fs=500&seed=3&snr=20&conditions=a,b&potassium=normal,hyper&leads=I,II]`
      N synthetic patients, a balanced mix of conditions, potassium states, ages 18-90 and
      both sexes (`edge_ecg.data.synth.cohort_plan`); snr is dB, `none` (clean) or a range
      `lo-hi` drawn per record (default 10-30).
  `PATH.jsonl[?root=DIR&limit=N]`   an EnECG / MIMIC-IV-ECG label table
  `DIR[?rate=hr|lr&limit=N]`        a PTB-XL folder (holds ptbxl_database.csv)
  `mitdb:DIR` or `mitdb:DIR/100,DIR/208[?seconds=300]`   MIT-BIH-style records with reference
      beats (optionally only the first `seconds` of each)
Every spec takes `hop=SECONDS` (default: one window, i.e. non-overlapping windows: neighbouring
overlapping windows are near duplicates and would multiply memory, ~0.8 MB per window with the
default contract's beat tensor).

Labels are per window (`NaN` = missing): record-level labels from the source's table, the RR
label from reference beats inside the window where the source has them (synthetic, MIT-BIH),
the rhythm of the window where it changes within a record. Splits are by subject, never by
record or window, so no patient is on both sides.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

from edge_ecg.data.tasks import TaskSet, TaskSpec
from edge_ecg.data.windows import LabelledRecord, make_windows, mean_rr_ms
from edge_ecg.errors import RecordError, SignalError
from edge_ecg.signal.contract import INPUT_NAMES, SignalContract, stack_inputs

SPEC_FORMS = ("synth:N[?seconds=..&fs=..&seed=..&snr=..]", "PATH.jsonl (EnECG)",
              "PTB-XL folder (with ptbxl_database.csv)", "mitdb:DIR or mitdb:DIR/100,DIR/208")


@dataclass
class WindowDataset:
    """Model inputs of N windows (stack_inputs form), per-task labels, subjects and metadata."""

    inputs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]        # task -> (N,) float32, NaN = missing
    subjects: np.ndarray                 # (N,) str
    meta: list[dict]
    skipped: list[str] = field(default_factory=list)   # records that could not be used, why

    def __len__(self) -> int:
        return int(self.subjects.shape[0])

    def subset(self, idx) -> WindowDataset:
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return WindowDataset(
            inputs={k: v[idx] for k, v in self.inputs.items()},
            labels={k: v[idx] for k, v in self.labels.items()},
            subjects=self.subjects[idx],
            meta=[self.meta[i] for i in idx],
            skipped=list(self.skipped),
        )

    def split(self, val_frac: float = 0.2, seed: int = 0) -> tuple[WindowDataset, WindowDataset]:
        """(train, val) BY SUBJECT: about `val_frac` of the subjects (at least one when there
        are two or more) go to val with all their windows."""
        if not 0.0 <= val_frac < 1.0:
            raise ValueError(f"val_frac must be in [0, 1), got {val_frac}")
        subjects = np.unique(self.subjects)
        order = np.random.default_rng(seed).permutation(subjects)
        n_val = int(round(val_frac * subjects.size))
        if val_frac > 0 and subjects.size >= 2:
            n_val = min(max(n_val, 1), subjects.size - 1)
        in_val = np.isin(self.subjects, order[:n_val])
        return self.subset(~in_val), self.subset(in_val)

    def concat(self, other: WindowDataset) -> WindowDataset:
        return WindowDataset(
            inputs={k: np.concatenate([v, other.inputs[k]]) for k, v in self.inputs.items()},
            labels={k: np.concatenate([v, other.labels[k]]) for k, v in self.labels.items()},
            subjects=np.concatenate([self.subjects, other.subjects]),
            meta=self.meta + other.meta, skipped=self.skipped + other.skipped)


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


def build_dataset(loaders, contract: SignalContract, tasks: TaskSet, hop_s: float | None = None,
                  progress: bool = True, desc: str = "windows") -> WindowDataset:
    """Window every record the `loaders` (zero-argument callables -> LabelledRecord) give.

    A record that cannot be read or used (RecordError/SignalError) is skipped and listed in
    `skipped` with a warning; no usable record at all is an error.
    """
    from tqdm import tqdm

    hop_s = contract.window_s if hop_s is None else hop_s
    parts: list[dict[str, np.ndarray]] = []
    labels: dict[str, list[float]] = {t.name: [] for t in tasks}
    subjects: list[str] = []
    meta: list[dict] = []
    skipped: list[str] = []
    for load in tqdm(loaders, desc=desc, unit="rec", disable=not progress):
        try:
            rec = load()
            starts, items = make_windows(rec.signal, rec.fs_hz, rec.leads, contract, hop_s=hop_s)
        except (RecordError, SignalError) as exc:
            skipped.append(str(exc))
            continue
        if not items:
            skipped.append(f"{rec.record_id}: {rec.signal.shape[0] / rec.fs_hz:.1f} s is shorter "
                           f"than one {contract.window_s} s window")
            continue
        parts.append(stack_inputs(items))
        ratio = rec.fs_hz / contract.fs_hz
        span = int(round(contract.window_s * rec.fs_hz))
        for s in starts:
            s_src = int(round(s * ratio))
            lab = window_labels(rec, s_src, s_src + span)
            for t in tasks:
                labels[t.name].append(task_value(t, lab.get(t.label_field)))
            subjects.append(rec.subject)
            meta.append({"record": rec.record_id, "start": int(s), "start_s": s / contract.fs_hz,
                         **{k: v for k, v in rec.meta.items() if k == "condition"}})
    if skipped:
        warnings.warn(f"{len(skipped)} record(s) skipped; first: {skipped[0]}", stacklevel=2)
    if not parts:
        raise RecordError("no usable windows: " + (skipped[0] if skipped else "no records"))
    inputs = {k: np.concatenate([p[k] for p in parts]) for k in INPUT_NAMES}
    return WindowDataset(
        inputs=inputs,
        labels={k: np.asarray(v, dtype=np.float32) for k, v in labels.items()},
        subjects=np.asarray(subjects, dtype=str), meta=meta, skipped=skipped)


def _synth_record(entry, seconds: float, fs_hz: float, snr, snr_seed: int,
                  leads: tuple[str, ...] | None = None) -> LabelledRecord:
    from edge_ecg.data.synth import arrhythmia_index, synthesize

    if isinstance(snr, tuple):
        snr = float(np.random.default_rng([snr_seed, entry.seed]).uniform(*snr))
    rec = synthesize(entry.condition, seconds=seconds, fs_hz=fs_hz, seed=entry.seed,
                     age=entry.age, sex=entry.sex, potassium=entry.potassium, snr_db=snr,
                     **({"leads": leads} if leads else {}))
    return LabelledRecord(
        signal=rec.signal, fs_hz=rec.fs_hz, leads=rec.leads, subject=entry.subject_id,
        labels=dict(rec.labels), record_id=entry.subject_id, ref_beats=rec.r_peaks,
        window_labels=lambda s, e: {"report_label": arrhythmia_index(rec.condition_at(s, e))},
        meta={"condition": entry.condition, "potassium": entry.potassium})


def _option(opts: dict, key: str, cast, default, spec: str):
    if key not in opts:
        return default
    try:
        return cast(opts[key])
    except ValueError:
        raise RecordError(
            f"dataset spec {spec!r}: option {key}={opts[key]!r} is not valid") from None


def _snr_option(text: str | None):
    if text is None:
        return (10.0, 30.0)
    if text.lower() in ("none", "clean", "inf"):
        return None
    if "-" in text.strip("-"):
        lo, hi = text.split("-", 1)
        return (float(lo), float(hi))
    return float(text)


def resolve_spec(spec: str, contract: SignalContract, tasks: TaskSet, seed: int = 0):
    """`(loaders, hop_s, description)` of a dataset spec (see the module docstring)."""
    from edge_ecg.data.tasks import DEFAULT_TASKS

    classes = (tasks["arrhythmia"].labels if "arrhythmia" in tasks.names
               else DEFAULT_TASKS["arrhythmia"].labels)
    body, _, query = spec.partition("?")
    opts = dict(parse_qsl(query))
    hop = _option(opts, "hop", float, None, spec)
    known = {"hop"}
    if body.startswith("synth:"):
        from edge_ecg.data.synth import cohort_plan

        known |= {"seconds", "fs", "seed", "snr", "conditions", "potassium", "leads"}
        n = _option({"n": body[6:]}, "n", int, None, spec)
        if n is None or n <= 0:
            raise RecordError(f"dataset spec {spec!r}: synth:N needs a positive count N")
        seconds = _option(opts, "seconds", float, contract.window_s, spec)
        fs = _option(opts, "fs", float, contract.fs_hz, spec)
        sd = _option(opts, "seed", int, seed, spec)
        snr = _option(opts, "snr", _snr_option, (10.0, 30.0), spec)
        conds = opts["conditions"].split(",") if "conditions" in opts else None
        kal = opts["potassium"].split(",") if "potassium" in opts else None
        try:
            plan = cohort_plan(n, seed=sd, conditions=conds, potassium=kal)
            if "leads" in opts:
                from edge_ecg.signal.leads import STANDARD_12

                bad = [x for x in opts["leads"].split(",") if x not in STANDARD_12]
                if bad:
                    raise SignalError(f"unknown lead(s) {bad}; use names from {STANDARD_12}")
        except SignalError as exc:
            raise RecordError(f"dataset spec {spec!r}: {exc}") from None
        leads = tuple(opts["leads"].split(",")) if "leads" in opts else None
        loaders = [partial(_synth_record, e, seconds, fs, snr, sd, leads) for e in plan]
        desc = f"synth x{n}"
    elif body.startswith("mitdb:"):
        from edge_ecg.data.mitbih import record_loaders

        known |= {"seconds"}
        loaders = record_loaders(body[6:], classes,
                                 seconds=_option(opts, "seconds", float, None, spec))
        desc = "mitdb"
    elif body.endswith(".jsonl") or Path(body).is_file():
        from edge_ecg.data.enecg import record_loaders

        known |= {"root", "limit"}
        loaders = record_loaders(body, tasks, root=opts.get("root"),
                                 limit=_option(opts, "limit", int, None, spec))
        desc = Path(body).name
    elif Path(body).is_dir() and (Path(body) / "ptbxl_database.csv").is_file():
        from edge_ecg.data.ptbxl import record_loaders

        known |= {"rate", "limit"}
        loaders = record_loaders(body, classes, rate=opts.get("rate", "hr"),
                                 limit=_option(opts, "limit", int, None, spec))
        desc = "ptb-xl"
    else:
        raise RecordError(f"dataset spec {spec!r} not understood (or path missing): use "
                          + "; ".join(SPEC_FORMS))
    unknown = set(opts) - known
    if unknown:
        raise RecordError(f"dataset spec {spec!r}: unknown option(s) {sorted(unknown)}; "
                          f"known: {sorted(known)}")
    return loaders, hop, desc


def load_dataset(spec: str, contract: SignalContract, tasks: TaskSet, seed: int = 0,
                 progress: bool = True) -> WindowDataset:
    """Build the windowed data set a spec names (module docstring), with a progress bar."""
    loaders, hop, desc = resolve_spec(spec, contract, tasks, seed)
    return build_dataset(loaders, contract, tasks, hop_s=hop, progress=progress, desc=desc)
