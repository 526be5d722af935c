"""Data specs: the one-line names of data sources (and recipes, TOML files of them),
resolved to record loaders.

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
      ../shared/data; `?subjects=PATH` applies that option to every source; PATH may name a
      recipe packaged in edge_ecg/data/recipes/, e.g.
      `recipe:validation?subjects=CHECKPOINT`, the checkpoint's own validation patients)
Every spec takes `hop=SECONDS` (default: one window, i.e. non-overlapping windows: neighbouring
overlapping windows are near duplicates and would multiply memory), `limit=N` (first N
records), `folds=0,2&kfold=5` (only the subjects whose fold, `subject_fold`, is listed: a
split by patient that is the same on every machine), `subjects=PATH` (only the subjects PATH
names: a checkpoint folder or its metrics.json, whose `val_subjects` are the patients its
training held out for validation, or a text file with one subject id per line), `tasks=a,b` (keep only these tasks' labels
from this source: the others are masked) and `weight=W` (the source's share of the draws in a
training epoch, relative to the other sources of a mixture).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

try:
    import tomllib
except ModuleNotFoundError:      # Python 3.10: the same parser as the `tomli` package
    import tomli as tomllib

from edge_ecg.data.data_root import DATA_ROOT, default_data_root
from edge_ecg.data.folds import subject_fold
from edge_ecg.data.tasks import TaskSet
from edge_ecg.data.windows import LabelledRecord
from edge_ecg.errors import RecordError, SignalError
from edge_ecg.signal.contract import SignalContract

SPEC_FORMS = ("synth:N[?seconds=..&fs=..&seed=..&snr=..]", "cinc2017:DIR", "ptbxl:DIR",
              "ludb:DIR", "mitdb:DIR or mitdb:DIR/100,DIR/208[?leads=II,V1]", "svdb:DIR",
              "cudb:DIR", "PATH.jsonl (EnECG)",
              "a mixture 'SPEC;SPEC' or recipe:PATH.toml")


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
    unknown = set(opts) - {"data", "subjects"}
    if unknown:
        raise RecordError(f"recipe {target!r}: unknown option(s) {sorted(unknown)}; "
                          "known: data, subjects")
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
    missing = [o for o in doc.get("needs", []) if o not in opts]
    if missing:
        raise RecordError(f"{where} needs option(s) {missing}: "
                          + "; ".join(f"recipe:{body}?{o}=..." for o in missing)
                          + (" (subjects: the checkpoint whose validation patients to use)"
                             if "subjects" in missing else ""))
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
        if "subjects" in opts:
            over["subjects"] = opts["subjects"]
        out.append((src["spec"].replace("{data}", data), over))
    if not out:
        raise RecordError(f"{where}: no [[source]] entries")
    return out


def read_subject_list(path: str | Path, spec: str = "") -> frozenset[str]:
    """The subject ids a `subjects=` option names: a checkpoint folder or its metrics.json
    (its `val_subjects`) or a text file of ids, one per line (`#` starts a comment)."""
    import json

    path = Path(path)
    where = f"dataset spec {spec!r}: subjects={path}" if spec else f"subjects={path}"
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise RecordError(f"{where}: no such file; name a checkpoint folder (its metrics.json "
                          "lists val_subjects) or a text file of subject ids")
    if path.suffix == ".json":
        try:
            ids = json.loads(path.read_text()).get("val_subjects")
        except (ValueError, AttributeError):
            ids = None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise RecordError(f"{where}: {path.name} has no list of val_subjects (a checkpoint "
                              "written by `edge-ecg train` has one)")
    else:
        ids = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    ids = frozenset(i for i in ids if i)
    if not ids:
        raise RecordError(f"{where}: names no subjects")
    return ids


def _subjects_keep(opts: dict, spec: str):
    if "subjects" not in opts:
        return None
    ids = read_subject_list(opts["subjects"], spec)
    return lambda subject: subject in ids


def _both(a, b):
    if a is None or b is None:
        return a or b
    return lambda subject: a(subject) and b(subject)


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
    keep = _both(_fold_keep(opts, spec), _subjects_keep(opts, spec))
    known = {"hop", "limit", "folds", "kfold", "subjects", "tasks", "weight"}
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
        if keep is not None:
            # an EnECG table's rows are not split by patient here: a silent no-op would
            # hand back the patients the option meant to leave out
            raise RecordError(f"dataset spec {spec!r}: folds= and subjects= select patients "
                              "of the record databases, not rows of a .jsonl table; split "
                              "the table into files instead")
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
