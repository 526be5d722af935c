"""Windowed, labelled data sets for training and evaluation, from a one-line spec.

Specs:
  `synth:N[?seconds=10&fs=500&seed=3&snr=20&conditions=a,b&potassium=normal,hyper&leads=I,II]`
      N synthetic patients, a balanced mix of conditions, potassium states, ages 18-90 and
      both sexes (`edge_ecg.data.synth.cohort_plan`); snr is dB, `none` (clean) or a range
      `lo-hi` drawn per record (default 10-30).
  `cinc2017:DIR`   the CinC 2017 AF challenge layout (REFERENCE.csv + single-lead records)
  `ptbxl:DIR[?rate=hr|lr]` (or a bare PTB-XL folder)   the records of ptbxl_database.csv
  `ludb:DIR`       LUDB's layout (ludb.csv, data/ with 12-lead records and wave annotations)
  `mitdb:DIR` or `mitdb:DIR/100,DIR/208[?seconds=300&leads=II,V1]`   MIT-BIH-style records with
      reference beats and rhythm annotations (optionally only the first `seconds` of each);
      `leads` assigns a standard lead to each channel, in order (- leaves one unused)
  `svdb:DIR[...]`, `cudb:DIR[...]`   the same for the MIT-BIH Supraventricular Arrhythmia and
      the Creighton University VT databases (their channels' default leads in databases.toml)
  `PATH.jsonl[?root=DIR&limit=N]`   an EnECG / MIMIC-IV-ECG label table
  a mixture: specs joined by `;`, or `recipe:PATH.toml[?data=DIR]` (a `[[source]]` table per
      spec with `spec`, `weight` and `tasks`; `{data}` in a spec is the data folder, default
      ../shared/data; PATH may name a recipe packaged in edge_ecg/data/recipes/)
Every spec takes `hop=SECONDS` (default: one window, i.e. non-overlapping windows: neighbouring
overlapping windows are near duplicates and would multiply memory), `limit=N` (first N
records), `folds=0,2&kfold=5` (only the subjects whose fold, `subject_fold`, is listed: a
split by patient that is the same on every machine), `tasks=a,b` (keep only these tasks' labels
from this source: the others are masked) and `weight=W` (the source's share of the draws in a
training epoch, relative to the other sources of a mixture).

Labels are per window (`NaN` = missing): record-level labels from the source's table, the RR
label from reference beats inside the window where the source has them (synthetic, MIT-BIH),
the rhythm of the window where it changes within a record. Splits are by subject, never by
record or window, so no patient is on both sides.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

try:
    import tomllib
except ModuleNotFoundError:      # Python 3.10: the same parser as the `tomli` package
    import tomli as tomllib

from edge_ecg.data.tasks import TaskSet, TaskSpec
from edge_ecg.data.windows import LabelledRecord, beat_slot_labels, make_windows, mean_rr_ms
from edge_ecg.errors import RecordError, SignalError
from edge_ecg.signal.contract import INPUT_NAMES, SignalContract, stack_inputs

SPEC_FORMS = ("synth:N[?seconds=..&fs=..&seed=..&snr=..]", "cinc2017:DIR", "ptbxl:DIR",
              "ludb:DIR", "mitdb:DIR or mitdb:DIR/100,DIR/208[?leads=II,V1]", "svdb:DIR",
              "cudb:DIR", "PATH.jsonl (EnECG)",
              "a mixture 'SPEC;SPEC' or recipe:PATH.toml")


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


# The database a window comes from, by its record id's prefix (each loader names its records).
_PREFIX = {"cinc-": "cinc2017", "ptbxl-": "ptbxl", "ludb-": "ludb", "mitdb-": "mitdb",
           "svdb-": "svdb", "cudb-": "cudb", "synth": "synth"}


def source_of(record_id: str) -> str:
    for prefix, name in _PREFIX.items():
        if record_id.startswith(prefix):
            return name
    return "other"


def label_provenance(ds: WindowDataset) -> dict[str, dict[str, int]]:
    """{task: {database: labelled windows}}: where each task's labels came from."""
    src = np.asarray([source_of(m["record"]) for m in ds.meta])
    out = {}
    for task, y in ds.labels.items():
        ok = np.isfinite(y) if y.ndim == 1 else np.isfinite(y).any(axis=1)   # per-beat: any slot
        names, counts = np.unique(src[ok], return_counts=True)
        out[task] = {str(n): int(c) for n, c in zip(names, counts)}
    return out


def provenance_kind(by: dict[str, int]) -> str | None:
    """"real", "synthetic" or "real+synthetic" for one task's {database: windows}; None if
    it had no labels."""
    if not by:
        return None
    synth, real = "synth" in by, any(k != "synth" for k in by)
    return "real+synthetic" if synth and real else "synthetic" if synth else "real"


def subject_fold(subject: str, k: int = 5) -> int:
    """The cross-validation fold of a subject: sha256 of its id, modulo k. Depends on nothing
    but the id, so every machine, run and data subset puts a patient in the same fold."""
    return int(hashlib.sha256(subject.encode()).hexdigest()[:12], 16) % k


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
    if skipped:
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


@dataclass(frozen=True)
class SourcePlan:
    """What one spec of a (possibly mixed) data spec resolves to."""

    loaders: list
    hop_s: float | None
    desc: str
    keep_tasks: tuple[str, ...] | None = None
    weight: float = 1.0


DATA_ROOT = "../shared/data"


def default_data_root() -> str:
    """Where a recipe's `{data}` points when neither the recipe's `?data=` nor its `data` key
    is given: $EDGE_ECG_DATA, else ../shared/data from the current folder, else the shared/data
    beside the repository this package runs from (so commands work from any folder)."""
    import os

    env = os.environ.get("EDGE_ECG_DATA")
    if env:
        return env
    if Path(DATA_ROOT).is_dir():
        return DATA_ROOT
    beside_repo = Path(__file__).resolve().parents[3] / "shared" / "data"
    return str(beside_repo) if beside_repo.is_dir() else DATA_ROOT


def split_specs(spec: str) -> list[tuple[str, dict]]:
    """The parts of a mixture as `(spec, overrides)`: `a;b` or a `recipe:` TOML file."""
    spec = spec.strip()
    if spec.startswith("recipe:"):
        return read_recipe(spec[7:])
    parts = [p.strip() for p in spec.split(";") if p.strip()]
    if not parts:
        raise RecordError("empty dataset spec")
    return [(p, {}) for p in parts]


def read_recipe(target: str) -> list[tuple[str, dict]]:
    """`[[source]]` entries of a recipe: spec (with `{data}`), weight, tasks."""
    from importlib import resources

    body, _, query = target.partition("?")
    opts = dict(parse_qsl(query))
    unknown = set(opts) - {"data"}
    if unknown:
        raise RecordError(f"recipe {target!r}: unknown option(s) {sorted(unknown)}; known: data")
    path = Path(body)
    if path.is_file():
        text, where = path.read_text(), str(path)
    else:
        packaged = resources.files("edge_ecg.data").joinpath("recipes", body)
        if not body.endswith(".toml"):
            packaged = resources.files("edge_ecg.data").joinpath("recipes", body + ".toml")
        if not packaged.is_file():
            raise RecordError(f"recipe {body!r}: no such file, nor a packaged recipe of that "
                              "name in edge_ecg/data/recipes/")
        text, where = packaged.read_text(), f"edge_ecg/data/recipes/{packaged.name}"
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecordError(f"{where}: not valid TOML: {exc}") from None
    # ?data= wins; a recipe's own `data` other than the default is used as written
    data = opts.get("data") or doc.get("data", DATA_ROOT)
    if data == DATA_ROOT:
        data = default_data_root()
    out = []
    for i, src in enumerate(doc.get("source", [])):
        if not isinstance(src, dict) or not isinstance(src.get("spec"), str):
            raise RecordError(f"{where}: source {i + 1} needs a 'spec' string")
        extra = set(src) - {"spec", "weight", "tasks", "note"}
        if extra:
            raise RecordError(f"{where}: source {i + 1}: unknown key(s) {sorted(extra)}")
        over = {}
        if "weight" in src:
            over["weight"] = float(src["weight"])
        if "tasks" in src:
            over["tasks"] = ",".join(src["tasks"])
        out.append((src["spec"].replace("{data}", data), over))
    if not out:
        raise RecordError(f"{where}: no [[source]] entries")
    return out


def _fold_keep(opts: dict, spec: str):
    if "folds" not in opts:
        return None
    k = _option(opts, "kfold", int, 5, spec)
    try:
        folds = {int(f) for f in opts["folds"].split(",") if f.strip()}
    except ValueError:
        raise RecordError(f"dataset spec {spec!r}: folds must be integers, e.g. folds=1,2,3,4")
    if k < 2 or not folds or not all(0 <= f < k for f in folds):
        raise RecordError(f"dataset spec {spec!r}: folds must lie in 0..{k - 1} (kfold={k})")
    return lambda subject: subject_fold(subject, k) in folds


def resolve_spec(spec: str, contract: SignalContract, tasks: TaskSet, seed: int = 0,
                 overrides: dict | None = None) -> SourcePlan:
    """The `SourcePlan` of ONE dataset spec (see the module docstring)."""
    from edge_ecg.data.tasks import DEFAULT_TASKS

    classes = (tasks["arrhythmia"].labels if "arrhythmia" in tasks.names
               else DEFAULT_TASKS["arrhythmia"].labels)
    body, _, query = spec.partition("?")
    opts = {**dict(parse_qsl(query)), **(overrides or {})}
    hop = _option(opts, "hop", float, None, spec)
    limit = _option(opts, "limit", int, None, spec)
    keep = _fold_keep(opts, spec)
    known = {"hop", "limit", "folds", "kfold", "tasks", "weight"}
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
        plan = [e for e in plan if keep is None or keep(e.subject_id)]
        loaders = [partial(_synth_record, e, seconds, fs, snr, sd, leads) for e in plan]
        desc = f"synth x{n}"
    elif body.partition(":")[0] in ("mitdb", "svdb", "cudb"):
        from edge_ecg.data.mitbih import record_loaders
        from edge_ecg.signal.leads import parse_lead_assignment

        db, _, target = body.partition(":")
        known |= {"seconds", "leads"}
        try:
            leads = parse_lead_assignment(opts.get("leads"), spec)
        except SignalError as exc:
            raise RecordError(str(exc)) from None
        loaders = record_loaders(target, classes,
                                 seconds=_option(opts, "seconds", float, None, spec), keep=keep,
                                 db=db, leads=leads)
        desc = db
    elif body.startswith("cinc2017:"):
        from edge_ecg.data.cinc2017 import record_loaders

        loaders = record_loaders(body[9:], classes, keep=keep)
        desc = "cinc2017"
    elif body.startswith("ludb:"):
        from edge_ecg.data.ludb import record_loaders

        loaders = record_loaders(body[5:], classes, keep=keep)
        desc = "ludb"
    elif body.startswith("ptbxl:") or (
            Path(body).is_dir() and (Path(body) / "ptbxl_database.csv").is_file()):
        from edge_ecg.data.ptbxl import record_loaders

        known |= {"rate"}
        folder = body.removeprefix("ptbxl:")
        loaders = record_loaders(folder, classes, rate=opts.get("rate", "hr"), keep=keep)
        desc = "ptb-xl"
    elif body.endswith(".jsonl") or Path(body).is_file():
        from edge_ecg.data.enecg import record_loaders

        known |= {"root"}
        loaders = record_loaders(body, tasks, root=opts.get("root"), limit=limit)
        desc = Path(body).name
    else:
        raise RecordError(f"dataset spec {spec!r} not understood (or path missing): use "
                          + "; ".join(SPEC_FORMS))
    unknown = set(opts) - known
    if unknown:
        raise RecordError(f"dataset spec {spec!r}: unknown option(s) {sorted(unknown)}; "
                          f"known: {sorted(known)}")
    if limit is not None:
        loaders = loaders[:limit]
    keep_tasks = None
    if "tasks" in opts:
        keep_tasks = tuple(t for t in opts["tasks"].split(",") if t)
        bad = [t for t in keep_tasks if t not in tasks.names and t not in DEFAULT_TASKS.names]
        if bad:
            raise RecordError(f"dataset spec {spec!r}: unknown task(s) {bad}")
    weight = _option(opts, "weight", float, 1.0, spec)
    if not weight > 0:
        raise RecordError(f"dataset spec {spec!r}: weight must be > 0")
    if not loaders:
        raise RecordError(f"dataset spec {spec!r}: selects no records")
    return SourcePlan(loaders, hop, desc, keep_tasks, weight)


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
