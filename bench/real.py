"""ECG-MoE on real patients, cross-validated by patient, beside its baselines, classical peers
and the published figures.

For each test fold f (`subject_fold`: sha256 of the patient id mod 5, the folds the recipes use)
the three neural models are trained on the bundled model's recipe (edge_ecg/data/recipes/
bundled.toml) with every real source restricted to the folds != f (the synthetic source, which
teaches only potassium and RR, trains every fold), with the same data, settings and seed, and
scored on fold f of each real database; the classical peers (bench/classical_peers.py) are fitted
on the same training folds. Predictions of all test folds are pooled and scored once (`pooled`),
and each fold is scored on its own (`mean +- sd` over folds). Metrics are the field's, as
`edge-ecg evaluate` prints them (edge_ecg.metrics.field):

    CinC 2017          challenge F1 (mean F1 of N, A, O per recording; a recording shorter than
                       one 10-s window is a miss for the neural models, the peer calls it)
    PTB-XL + LUDB      age MAE (y), sex F1 and AUC, rhythm macro F1, one call per record
    MIT-BIH            RR MAE (ms, 10-s windows), AF episode Se / +P (EC57)

Published figures printed beside ours were measured on OTHER data: the CinC 2017 winners'
0.83 on the challenge's hidden test set; the ECG-MoE paper's age MAE 12.83 y, sex F1 0.69 and
RR MAE 76.37 ms on MIMIC-IV-ECG.

    python bench/real.py                                    # the full comparison (defaults)
    python bench/real.py --peers-only                       # classical peers, 5 folds, ~2 min
    python bench/real.py --folds 0 --epochs 2 --pretrain-epochs 1 --limit-cinc 1500 \
        --limit-mitdb-s 600                                 # a reduced run, ~15 min
    python bench/real.py --folds 0 --preset tiny --epochs 1 --limit-cinc 300   # smoke, ~5 min

Cost, measured on a 2-core x86 machine (AMD EPYC) beside another training job: --peers-only
1.8 min (0.6 GB); the reduced run above 14 min (3.1 GB; ECG-MoE 9.5 min, single scout 0.6 min,
dense ensemble 3 min on ~6 000 windows). Loading a fold's data takes ~1 min; one training of
the edge preset on a whole fold's training data (~19 000 windows, 4 pretraining + 10 LoRA
epochs, the bundled model's command) takes ~40 min for ECG-MoE and less for each baseline, so
the defaults (5 folds x 3 models) take ~5-7 hours and ~8 GB of memory. Any option that shrinks
the comparison (fewer folds, --limit-*, a smaller preset, fewer epochs than the bundled command,
--skip-baselines) is printed as a REDUCED line above the tables and stored in the JSON, which is
rewritten after every fold (`"partial": true` until the end). MIT-BIH's AF episodes lie in
folds 1 (record 203), 2 (217) and 4 (201): a run on fold 0 alone has none to score.

Patients: PTB-XL folds follow its patient id, LUDB and MIT-BIH hold one patient per record (201
and 202 share one), CinC 2017 publishes no patient ids, so its recordings are split by recording.

Not a test: prints tables; nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qsl

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from classical_peers import extract_units, peer_outputs

from profiles.machine import this_machine

SHARED = REPO.parent / "shared" / "data"
KFOLD = 5                       # the recipes' folds (bundled: 1-4, heldout: 0)
VARIANTS = ("moe", "single_scout", "dense_ensemble")
NAMES = {"moe": "ECG-MoE", "single_scout": "single scout (CNN)",
         "dense_ensemble": "dense ensemble (EnECG-like)",
         "peer": "classical peer", "peer_cinc": "classical peer, fit on CinC only"}
# The bundled model's training command (edge-ecg train --data recipe:bundled ...): the defaults.
BUNDLED = {"preset": "edge", "fs_hz": 250.0, "epochs": 10, "pretrain_epochs": 4, "lr": 3e-3,
           "batch_size": 32}

# (section, metric key, label, lower is better, published value, published source)
TABLES = (
    ("Rhythm, CinC 2017 (one call per recording)", (
        ("cinc2017.challenge_f1", "challenge F1 (mean of N, A, O)", False, 0.83,
         "CinC 2017 winners, hidden test set"),
        ("cinc2017.f1_N", "F1 normal", False, None, ""),
        ("cinc2017.f1_A", "F1 AF", False, None, ""),
        ("cinc2017.f1_O", "F1 other", False, None, ""),
    )),
    ("Age, PTB-XL + LUDB (one call per record)", (
        ("ptbxl+ludb.age_mae", "age MAE (y)", True, 12.83, "ECG-MoE paper, MIMIC-IV-ECG"),
        ("ptbxl.age_mae", "age MAE (y), PTB-XL", True, None, ""),
        ("ludb.age_mae", "age MAE (y), LUDB", True, None, ""),
    )),
    ("Sex, PTB-XL + LUDB (one call per record; positive class female)", (
        ("ptbxl+ludb.sex_f1", "sex F1", False, 0.69, "ECG-MoE paper, MIMIC-IV-ECG"),
        ("ptbxl+ludb.sex_auc", "sex AUC", False, None, ""),
    )),
    ("Rhythm, PTB-XL + LUDB (one call per record)", (
        ("ptbxl+ludb.rhythm_macro_f1", "rhythm macro F1", False, None, ""),
    )),
    ("RR interval, 10-s windows (reference: annotated beats)", (
        ("mitdb.rr_mae_ms", "RR MAE (ms), MIT-BIH", True, 76.37, "ECG-MoE paper, MIMIC-IV-ECG"),
        ("ludb.rr_mae_ms", "RR MAE (ms), LUDB", True, None, ""),
    )),
    ("AF episodes, MIT-BIH (EC57)", (
        ("mitdb.af_episode_se", "episode sensitivity", False, None, ""),
        ("mitdb.af_episode_ppv", "episode +P", False, None, ""),
        ("mitdb.af_duration_se", "duration sensitivity", False, None, ""),
    )),
)


# -- specs -------------------------------------------------------------------------------------
def recipe_parts(recipe: str, data_root: Path) -> list[tuple[str, dict, bool]]:
    """`(body, options, cross_validated)` of each recipe source; a source the recipe splits
    by folds is cross-validated, the others (synthetic) train every fold."""
    from edge_ecg.data.specs import read_recipe

    out = []
    for spec, over in read_recipe(f"{recipe}?data={data_root}"):
        body, _, query = spec.partition("?")
        opts = {**dict(parse_qsl(query)), **{k: str(v) for k, v in over.items()}}
        out.append((body, opts, "folds" in opts))
    return out


def _spec(body: str, opts: dict) -> str:
    return body + ("?" + "&".join(f"{k}={v}" for k, v in opts.items()) if opts else "")


def source_name(body: str) -> str:
    return body.split(":", 1)[0]


def block_opts(body: str, opts: dict, folds: list[int], args) -> dict:
    """Options of a cross-validated source restricted to `folds` (and the reductions)."""
    o = {k: v for k, v in opts.items() if k != "weight"}
    o["folds"] = ",".join(str(f) for f in folds)
    if source_name(body) == "cinc2017" and args.limit_cinc:
        o["limit"] = str(math.ceil(args.limit_cinc / KFOLD))
    if source_name(body) == "mitdb" and args.limit_mitdb_s:
        o["seconds"] = f"{args.limit_mitdb_s:g}"
    return o


def train_spec(parts, test_fold: int, args) -> str:
    """The mixture the models of `test_fold` train on: the recipe with folds swapped. With
    --limit-cinc the CinC part becomes one part per training fold (the first N/5 recordings
    of each, the same records the peers and the test use), sharing the recipe's weight."""
    train_folds = [f for f in range(KFOLD) if f != test_fold]
    specs = []
    for body, opts, cv in parts:
        if not cv:
            specs.append(_spec(body, opts))
            continue
        if source_name(body) == "cinc2017" and args.limit_cinc:
            w = float(opts.get("weight", 1.0)) / len(train_folds)
            specs += [_spec(body, {**block_opts(body, opts, [f], args), "weight": f"{w:g}"})
                      for f in train_folds]
            continue
        o = block_opts(body, opts, train_folds, args)
        if "weight" in opts:
            o["weight"] = opts["weight"]
        specs.append(_spec(body, o))
    return ";".join(specs)


def test_spec(parts, test_fold: int, args) -> str:
    return ";".join(_spec(body, block_opts(body, opts, [test_fold], args))
                    for body, opts, cv in parts if cv)


# -- scoring -----------------------------------------------------------------------------------
def score(tasks, outputs: dict, view, window_s: float) -> dict[str, float]:
    """Flat `{"source.metric": value}` of the field's metrics, plus PTB-XL + LUDB pooled."""
    from edge_ecg.data.provenance import source_of
    from edge_ecg.metrics.field import field_metrics, record_scores

    res = field_metrics(tasks, outputs, view, window_s)
    flat: dict[str, float] = {}
    for src, ms in res.items():
        if src == "windows" or not isinstance(ms, dict):
            continue
        for k, v in ms.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                flat[f"{src}.{k}"] = float(v)
        rr = ms.get("tasks", {}).get("rr_interval", {})
        if src == "ludb" and "mae" in rr:
            flat["ludb.rr_mae_ms"] = float(rr["mae"])
    idx = [i for i, m in enumerate(view.meta) if source_of(m["record"]) in ("ptbxl", "ludb")]
    if idx:
        both = record_scores(tasks, outputs, view.labels, view.meta, idx)
        flat.update({f"ptbxl+ludb.{k}": float(v) for k, v in both.items()})
    return flat


def view_of(parts: list) -> SimpleNamespace:
    """One scoring view (labels, meta, records) over several test folds' views."""
    labels = {k: np.concatenate([p.labels[k] for p in parts]) for k in parts[0].labels}
    meta = [m for p in parts for m in p.meta]
    records: dict = {}
    for p in parts:
        records.update(p.records)
    return SimpleNamespace(labels=labels, meta=meta, records=records)


def cat_outputs(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def peer_view(units) -> SimpleNamespace:
    """The scoring view of peer units: one 'window' per unit."""
    labels = {k: np.asarray([u.labels[k] for u in units], dtype=np.float64)
              for k in units[0].labels}
    meta = [{"record": u.record, "start_s": u.start_s} for u in units]
    records = {u.record: u.record_info for u in units if u.record_info}
    return SimpleNamespace(labels=labels, meta=meta, records=records)


# -- runs --------------------------------------------------------------------------------------
def run_peers(parts, args, contract, tasks, folds, log) -> dict:
    """{peer name: {fold: (outputs, view)}}: the peers fitted on the training folds."""
    specs = []
    for body, opts, cv in parts:
        if not cv:
            continue
        for f in range(KFOLD):
            specs.append((source_name(body), _spec(body, block_opts(body, opts, [f], args))))
    t0 = time.perf_counter()
    units, skipped = extract_units(specs, contract, tasks, KFOLD, progress=args.progress)
    log(f"peers: features of {len(units)} units (recordings, records, MIT-BIH windows) in "
        f"{time.perf_counter() - t0:.0f} s" + (f"; {len(skipped)} skipped, first: {skipped[0]}"
                                               if skipped else ""))
    out: dict[str, dict] = {"peer": {}, "peer_cinc": {}}
    for f in folds:
        test, pred = peer_outputs(units, f, tasks, seed=args.seed)
        out["peer"][f] = (pred, peer_view(test))
        cinc = [i for i, u in enumerate(test) if u.source == "cinc2017"]
        if cinc:
            t_c, p_c = peer_outputs(units, f, tasks, seed=args.seed,
                                    rhythm_sources=("cinc2017",))
            keep = [i for i, u in enumerate(t_c) if u.source == "cinc2017"]
            out["peer_cinc"][f] = ({"arrhythmia": p_c["arrhythmia"][keep]},
                                   peer_view([t_c[i] for i in keep]))
    return out


HEADLINE = ("cinc2017.challenge_f1", "ptbxl+ludb.age_mae", "ptbxl+ludb.sex_f1",
            "ptbxl+ludb.sex_auc", "mitdb.rr_mae_ms", "mitdb.af_episode_se")


def run_models(parts, args, contract, tasks, folds, variants, log,
               on_fold=None) -> tuple[dict, dict]:
    """{variant: {fold: (outputs, view)}} and {variant: {fold: training facts}}; `on_fold`
    (results, facts) is called after each fold (a long run keeps what it has measured)."""
    import torch

    from edge_ecg.data.dataset import load_dataset
    from edge_ecg.model.config import ECGMoEConfig
    from edge_ecg.model.evaluation import predict
    from edge_ecg.model.training import TrainSettings, train

    base = ECGMoEConfig.preset(args.preset, tasks, contract)
    settings = TrainSettings(epochs=args.epochs, pretrain_epochs=args.pretrain_epochs,
                             batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                             progress=args.progress)
    results: dict = {v: {} for v in variants}
    facts: dict = {v: {} for v in variants}
    for f in folds:
        spec_tr, spec_te = train_spec(parts, f, args), test_spec(parts, f, args)
        log(f"fold {f}: train on {spec_tr}")
        log(f"fold {f}: test on {spec_te}")
        t0 = time.perf_counter()
        test = load_dataset(spec_te, contract, tasks, seed=args.seed, progress=args.progress,
                            compact=True)
        train_ds = load_dataset(spec_tr, contract, tasks, seed=args.seed,
                                progress=args.progress, compact=True)
        log(f"fold {f}: {len(train_ds)} training / {len(test)} test windows, loaded in "
            f"{time.perf_counter() - t0:.0f} s")
        empty = train_ds.subset(np.zeros(0, dtype=int))   # no validation split: all folds train
        view = SimpleNamespace(labels=test.labels, meta=test.meta, records=test.records)
        for v in variants:
            t0 = time.perf_counter()
            torch.manual_seed(args.seed)
            res = train(base.baseline(v), train_ds, empty, settings,
                        log=lambda s, v=v: log(f"  [{v}] {s}"))
            results[v][f] = (predict(res.model, test.inputs, 64), view)
            facts[v][f] = {"params": res.n_params, "mflops": res.flops / 1e6,
                           "train_s": time.perf_counter() - t0, "n_train": len(train_ds),
                           "n_test": len(test), "pretrain_loss": res.history.pretrain_loss,
                           "finetune_loss": res.history.train_loss}
            m = score(tasks, *results[v][f], contract.window_s)
            log(f"  [{v}] fold {f}: trained and scored in {facts[v][f]['train_s']:.0f} s; "
                + ", ".join(f"{k} {m[k]:.3f}" for k in HEADLINE if k in m))
            del res
        del train_ds, test
        if on_fold is not None:
            on_fold(results, facts)
    return results, facts


def summarise(tasks, runs: dict, window_s: float) -> dict:
    """{model: {"per_fold": {fold: metrics}, "pooled": metrics}}."""
    out = {}
    for name, by_fold in runs.items():
        if not by_fold:
            continue
        per = {f: score(tasks, o, v, window_s) for f, (o, v) in by_fold.items()}
        pooled = score(tasks, cat_outputs([o for o, _ in by_fold.values()]),
                       view_of([v for _, v in by_fold.values()]), window_s)
        out[name] = {"per_fold": per, "pooled": pooled}
    return out


def _fmt(v: float | None, key: str) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    return f"{v:.2f}" if ("mae" in key) else f"{v:.3f}"


def print_tables(summary: dict, folds: list[int]) -> None:
    models = list(summary)
    fold_w = 8
    for title, metrics in TABLES:
        keys = [m[0] for m in metrics]
        if not any(k in summary[n]["pooled"] for n in models for k in keys):
            continue
        print(f"\n## {title}")
        for key, label, lower, pub, pub_src in metrics:
            if not any(key in summary[n]["pooled"] for n in models):
                continue
            better = "lower" if lower else "higher"
            print(f"{label} ({better} is better)")
            print(f"  {'model':<36}" + "".join(f"{f'fold {f}':>{fold_w}}" for f in folds)
                  + f"{'mean +- sd':>16}{'pooled':>9}  n (pooled)")
            for n in models:
                per = [summary[n]["per_fold"][f].get(key, math.nan) for f in folds]
                pooled = summary[n]["pooled"].get(key)
                if pooled is None:
                    continue
                vals = np.asarray([x for x in per if np.isfinite(x)])
                ms = "-" if vals.size == 0 else _fmt(vals.mean(), key) + (
                    f" +- {_fmt(vals.std(ddof=1), key)}" if vals.size > 1 else "")
                count = _count(summary[n]["pooled"], key)
                print(f"  {NAMES.get(n, n):<36}" + "".join(f"{_fmt(x, key):>{fold_w}}" for x in per)
                      + f"{ms:>16}{_fmt(pooled, key):>9}  {count}")
            if pub is not None:
                print(f"  {'published: ' + pub_src:<{36 + fold_w * len(folds) + 16}}"
                      f"{_fmt(pub, key):>9}  (other data)")


COUNTS = {"challenge_f1": "recordings", "f1_N": "recordings", "f1_A": "recordings",
          "f1_O": "recordings", "age_mae": "age_n", "sex_f1": "sex_n", "sex_auc": "sex_n",
          "rhythm_macro_f1": "rhythm_n", "rr_mae_ms": "windows", "af_episode_se": "af_episodes",
          "af_episode_ppv": "af_detected_episodes", "af_duration_se": "af_minutes"}


def _count(pooled: dict, key: str) -> str:
    """How many calls the pooled figure rests on (recordings, records, windows, episodes)."""
    src, metric = key.split(".", 1)
    k = f"{src}.{COUNTS.get(metric, '')}"
    if k not in pooled:
        return ""
    return f"{pooled[k]:.0f} min" if k.endswith("af_minutes") else f"{pooled[k]:.0f}"


def reductions(args) -> list[str]:
    out = []
    if sorted(args.folds) != list(range(KFOLD)):
        out.append(f"test folds {','.join(map(str, args.folds))} of {KFOLD}")
    if args.limit_cinc:
        out.append(f"CinC 2017: the first {math.ceil(args.limit_cinc / KFOLD)} recordings of "
                   f"each fold (of 6822 in all)")
    if args.limit_mitdb_s:
        out.append(f"MIT-BIH: the first {args.limit_mitdb_s:g} s of each record (of 1805 s)")
    if not args.peers_only:
        for k in ("preset", "epochs", "pretrain_epochs", "lr", "batch_size"):
            if getattr(args, k) != BUNDLED[k]:
                out.append(f"{k} {getattr(args, k)} (bundled model: {BUNDLED[k]})")
        if args.skip_baselines:
            out.append("no baselines (--skip-baselines)")
    else:
        out.append("classical peers only (--peers-only)")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folds", type=lambda v: [int(x) for x in v.split(",") if x.strip()],
                   default=list(range(KFOLD)), help="test folds (default 0,1,2,3,4)")
    p.add_argument("--recipe", default="bundled",
                   help="training recipe whose fold-split sources are cross-validated")
    p.add_argument("--data-root", default=str(SHARED), help="the shared data folder")
    p.add_argument("--preset", default=BUNDLED["preset"], choices=["tiny", "edge", "base"])
    p.add_argument("--epochs", type=int, default=BUNDLED["epochs"], help="LoRA epochs")
    p.add_argument("--pretrain-epochs", type=int, default=BUNDLED["pretrain_epochs"])
    p.add_argument("--lr", type=float, default=BUNDLED["lr"])
    p.add_argument("--batch-size", type=int, default=BUNDLED["batch_size"])
    p.add_argument("--fs-hz", type=float, default=BUNDLED["fs_hz"], help="model rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--skip-baselines", action="store_true", help="ECG-MoE only (and peers)")
    p.add_argument("--peers-only", action="store_true", help="classical peers only (no torch)")
    p.add_argument("--limit-cinc", type=int, default=0,
                   help="quick runs: about N CinC recordings (the first N/5 of each fold)")
    p.add_argument("--limit-mitdb-s", type=float, default=0,
                   help="quick runs: only the first S seconds of each MIT-BIH record")
    p.add_argument("--json", default="", help="write every figure to this JSON file")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    bad = [f for f in args.folds if not 0 <= f < KFOLD]
    if bad or not args.folds:
        p.error(f"--folds must lie in 0..{KFOLD - 1}")
    args.fs_hz = float(args.fs_hz)
    BUNDLED["fs_hz"] = args.fs_hz

    from edge_ecg import DISCLAIMER
    from edge_ecg.data.tasks import DEFAULT_TASKS
    from edge_ecg.signal.contract import SignalContract

    t_start = time.perf_counter()
    machine = this_machine()
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(
        sys.argv[1:] if argv is None else argv)])
    print(f"# bench/real.py on {machine.summary()} ({platform.platform()})")
    print(f"# command: {command}")
    data_root = Path(args.data_root).resolve()
    if not data_root.is_dir():
        print(f"real records not found at {data_root}: nothing to measure")
        return 1
    contract = SignalContract(fs_hz=args.fs_hz)
    tasks = DEFAULT_TASKS
    parts = recipe_parts(args.recipe, data_root)
    reduced = reductions(args)
    for r in reduced:
        print(f"# REDUCED: {r}")
    if not reduced:
        print("# the full comparison: 5 test folds, all data, the bundled model's settings")

    def log(s: str) -> None:
        print(s, flush=True)

    def write_json(path, summary, facts, wall, partial):
        doc = {"command": command, "machine": machine.to_dict(), "platform": platform.platform(),
               "wall_s": wall, "partial": partial, "reduced": reduced, "folds": args.folds,
               "kfold": KFOLD, "settings": {k: v for k, v in vars(args).items() if k != "json"},
               "published": {key: {"value": pub, "source": src} for _, ms in TABLES
                             for key, _, _, pub, src in ms if pub is not None},
               "training": {v: {str(f): x for f, x in by.items()} for v, by in facts.items()},
               "results": {n: {"per_fold": {str(f): m for f, m in s["per_fold"].items()},
                               "pooled": s["pooled"]} for n, s in summary.items()}}
        Path(path).write_text(json.dumps(doc, indent=1, sort_keys=True, default=float))

    def on_fold(results, facts):
        if args.json:       # the folds done so far, models only, marked partial
            write_json(args.json, summarise(tasks, results, contract.window_s), facts,
                       time.perf_counter() - t_start, partial=True)

    runs: dict = {}
    facts: dict = {}
    if not args.peers_only:
        import torch

        torch.set_num_threads(max(1, args.threads))
        variants = ("moe",) if args.skip_baselines else VARIANTS
        model_runs, facts = run_models(parts, args, contract, tasks, args.folds, variants, log,
                                       on_fold)
        runs.update(model_runs)
    runs.update(run_peers(parts, args, contract, tasks, args.folds, log))
    summary = summarise(tasks, runs, contract.window_s)
    wall = time.perf_counter() - t_start

    print(f"\n# Cross-validated by patient (subject_fold = sha256(id) mod {KFOLD}), test folds "
          f"{','.join(map(str, args.folds))}; per fold, then mean +- sd (n - 1) over folds, then all "
          f"test folds pooled; {machine.summary()}")
    if facts:
        print(f"# neural models: preset {args.preset} at {args.fs_hz:g} Hz, "
              f"{args.pretrain_epochs} pretrain + {args.epochs} LoRA epochs, lr {args.lr:g}, "
              f"batch {args.batch_size}, seed {args.seed}, {args.threads} torch thread(s), "
              f"recipe {args.recipe} with the test fold's patients taken out")
        for v, by in facts.items():
            fs = list(by.values())
            print(f"#   {NAMES[v]:<30} {fs[0]['params']:>10,} parameters "
                  f"{fs[0]['mflops']:>7.1f} MFLOPs/window, training "
                  f"{np.median([x['train_s'] for x in fs]):.0f} s per fold (median), "
                  f"{fs[0]['n_train']} training windows (fold {args.folds[0]})")
    for r in reduced:
        print(f"# REDUCED: {r}")
    print_tables(summary, args.folds)
    print(f"\n# wall time {wall:.0f} s ({wall / 60:.1f} min); command: {command}")
    if args.json:
        write_json(args.json, summary, facts, wall, partial=False)
        print(f"# figures written to {args.json}")
    print(DISCLAIMER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
