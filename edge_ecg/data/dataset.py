"""Windowed, labelled data sets for training and evaluation: the container, built from record
loaders or from a data spec (`edge_ecg.data.specs`: the spec forms and their options).

Labels are per window (`NaN` = missing): record-level labels from the source's table, the RR
label from reference beats inside the window where the source has them (synthetic, MIT-BIH),
the rhythm of the window where it changes within a record. Splits are by subject, never by
record or window, so no patient is on both sides.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from edge_ecg.data.labels import task_value, window_labels
from edge_ecg.data.specs import resolve_spec, split_specs
from edge_ecg.data.tasks import TaskSet
from edge_ecg.data.windows import beat_slot_labels, make_windows
from edge_ecg.errors import RecordError, SignalError
from edge_ecg.signal.contract import INPUT_NAMES, SignalContract, stack_inputs

log = logging.getLogger(__name__)


@dataclass
class WindowDataset:
    """Model inputs of N windows (stack_inputs form), per-task labels, subjects and metadata."""

    inputs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]        # task -> (N,) float32, NaN = missing
    subjects: np.ndarray                 # (N,) str
    meta: list[dict]
    skipped: list[str] = field(default_factory=list)   # records that could not be used, why
    weights: np.ndarray | None = None    # (N,) sampling weight per window (None: uniform)
    records: dict = field(default_factory=dict)   # record id -> record-level meta (episodes...)

    def __len__(self) -> int:
        return int(self.subjects.shape[0])

    def subset(self, idx) -> WindowDataset:
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        kept = set(self.subjects[idx].tolist())
        return WindowDataset(
            inputs={k: v[idx] for k, v in self.inputs.items()},
            labels={k: v[idx] for k, v in self.labels.items()},
            subjects=self.subjects[idx],
            meta=[self.meta[i] for i in idx],
            skipped=list(self.skipped),
            weights=None if self.weights is None else self.weights[idx],
            # record-level meta of the subset's records only (a record too short for a window
            # has none in any subset: score such records on the data set as loaded)
            records={r: info for r, info in self.records.items()
                     if info.get("subject") in kept and not info.get("unscored")},
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
            meta=self.meta + other.meta, skipped=self.skipped + other.skipped,
            weights=_cat_weights(self, other), records={**self.records, **other.records})

    def sampling_p(self) -> np.ndarray | None:
        """Per-window draw probabilities for training, or None for a uniform permutation."""
        if self.weights is None or np.allclose(self.weights, self.weights[0]):
            return None
        w = np.asarray(self.weights, dtype=np.float64)
        return w / w.sum()


def _cat_weights(a: WindowDataset, b: WindowDataset) -> np.ndarray | None:
    if a.weights is None and b.weights is None:
        return None
    wa = np.ones(len(a), np.float32) if a.weights is None else a.weights
    wb = np.ones(len(b), np.float32) if b.weights is None else b.weights
    return np.concatenate([wa, wb])


def build_dataset(loaders, contract: SignalContract, tasks: TaskSet, hop_s: float | None = None,
                  progress: bool = True, desc: str = "windows", keep_tasks=None,
                  compact: bool = False) -> WindowDataset:
    """Window every record the `loaders` (zero-argument callables -> LabelledRecord) give.

    A record that cannot be read or used (RecordError/SignalError) is skipped and listed in
    `skipped` with a warning; no usable record at all is an error. `keep_tasks`: only these
    tasks keep their labels (the rest masked). `compact`: the window and beat tensors are
    stored as float16 (half the memory of ~80 h of real signal; batches are cast back to
    float32, and the normalised signal's float16 step, ~0.1 % of a QRS, is below its noise).
    """
    from tqdm import tqdm

    hop_s = contract.window_s if hop_s is None else hop_s
    parts: list[dict[str, np.ndarray]] = []
    labels: dict[str, list] = {t.name: [] for t in tasks}
    per_beat = [t for t in tasks if t.per_beat]
    no_beat_labels = np.full(contract.max_beats, np.nan, dtype=np.float32)
    subjects: list[str] = []
    meta: list[dict] = []
    skipped: list[str] = []
    records: dict[str, dict] = {}
    for load in tqdm(loaders, desc=desc, unit="rec", disable=not progress):
        try:
            rec = load()
            starts, items, *slots = make_windows(rec.signal, rec.fs_hz, rec.leads, contract,
                                                 hop_s=hop_s, with_beats=bool(per_beat))
        except (RecordError, SignalError) as exc:
            skipped.append(str(exc))
            continue
        if not items:
            skipped.append(f"{rec.record_id}: {rec.signal.shape[0] / rec.fs_hz:.1f} s is shorter "
                           f"than one {contract.window_s} s window")
            # Kept so per-recording scores count it (a recording with no call is a miss).
            records[rec.record_id] = {"unscored": True, "subject": rec.subject,
                                      "labels": {t.name: task_value(t, rec.labels.get(
                                          t.label_field)) for t in tasks}}
            continue
        part = stack_inputs(items)
        if compact:
            part = {k: v.astype(np.float16) if k in ("x", "beats") else v
                    for k, v in part.items()}
        parts.append(part)
        records[rec.record_id] = {
            "fs_hz": rec.fs_hz, "seconds": rec.signal.shape[0] / rec.fs_hz,
            "subject": rec.subject, "leads": list(rec.leads),
            **({"path": rec.meta["path"]} if "path" in rec.meta else {}),
            **{f"{k}_s": [(a / rec.fs_hz, b / rec.fs_hz) for a, b in rec.meta[k]]
               for k in ("af_episodes", "vf_episodes") if k in rec.meta}}
        ratio = rec.fs_hz / contract.fs_hz
        span = int(round(contract.window_s * rec.fs_hz))
        beat_classes = rec.meta.get("beat_classes")          # per reference beat, -1 = none
        for j, s in enumerate(starts):
            s_src = int(round(s * ratio))
            lab = window_labels(rec, s_src, s_src + span)
            for t in tasks:
                keep = keep_tasks is None or t.name in keep_tasks
                if t.per_beat:
                    labels[t.name].append(
                        beat_slot_labels(slots[0][j], int(s), ratio, rec.ref_beats, beat_classes,
                                         rec.fs_hz, contract.max_beats)
                        if keep and beat_classes is not None else no_beat_labels)
                    continue
                labels[t.name].append(task_value(t, lab.get(t.label_field)) if keep else math.nan)
            subjects.append(rec.subject)
            meta.append({"record": rec.record_id, "start": int(s), "start_s": s / contract.fs_hz,
                         **{k: v for k, v in rec.meta.items() if k == "condition"}})
    if skipped:   # the count and the first reason to the caller, every reason to the log
        for why in skipped:
            log.info("record skipped: %s", why)
        warnings.warn(f"{len(skipped)} record(s) skipped; first: {skipped[0]}", stacklevel=2)
    if not parts:
        raise RecordError("no usable windows: " + (skipped[0] if skipped else "no records"))
    if keep_tasks is not None:
        for info in records.values():
            if "labels" in info:
                info["labels"] = {k: (v if k in keep_tasks else math.nan)
                                  for k, v in info["labels"].items()}
    inputs = {k: np.concatenate([p[k] for p in parts]) for k in INPUT_NAMES}
    return WindowDataset(
        inputs=inputs,
        labels={k: np.asarray(v, dtype=np.float32).reshape(len(subjects), -1)
                if k in {t.name for t in per_beat} else np.asarray(v, dtype=np.float32)
                for k, v in labels.items()},
        subjects=np.asarray(subjects, dtype=str), meta=meta, skipped=skipped, records=records)


def load_dataset(spec: str, contract: SignalContract, tasks: TaskSet, seed: int = 0,
                 progress: bool = True, compact: bool = False) -> WindowDataset:
    """Build the windowed data set a spec (or a mixture of specs) names, with a progress bar.

    In a mixture each source's windows get the sampling weight `weight / n_source_windows`
    (times the number of sources, so equal weights give each SOURCE an equal share)."""
    parts = split_specs(spec)
    out = None
    for body, over in parts:
        plan = resolve_spec(body, contract, tasks, seed, over)
        ds = build_dataset(plan.loaders, contract, tasks, hop_s=plan.hop_s, progress=progress,
                           desc=plan.desc, keep_tasks=plan.keep_tasks, compact=compact)
        if len(parts) > 1:
            ds.weights = np.full(len(ds), plan.weight / len(ds), dtype=np.float64)
        out = ds if out is None else out.concat(ds)
    return out
