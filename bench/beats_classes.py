"""Beat classes (AAMI EC57 N/S/V/F/Q) on patients not trained on: cross-validated by record
within the shared DS1 records, the classical peer (de Chazal et al. 2004) and the neural models,
scored as EC57 does, beside the published inter-patient figures.

Records: the 22 records of DS1 of the de Chazal inter-patient split (101 106 108 109 112 114
115 116 118 119 122 124 201 203 205 207 208 209 215 220 223 230), all in ../shared/data/mitdb.
Kept to DS1 for a clean comparison: the paced records (102 104 107 217) carry no beat classes,
and 100 and 105, also in the share, are DS2 records of that split: left out, even as
training-only records. 201 and 202 are one patient; only 201 is here.

Folds: record i (in number order) is in test fold i mod k (default k = 5: 5, 5, 4, 4, 4 test
records); each fold's models are fitted on the other folds' records only, never a record in
both. Test records of all folds are pooled and scored once (gross: beats summed); each fold's
own gross figures are printed too.

Beats: every model classifies OUR DETECTOR's beats (resample to the contract rate, the
contract's 0.5-40 Hz band-pass, `detect_beats`: the chain the model's windows come from),
matched to the reference within 150 ms; a reference beat the detector missed is a missed beat of
its class (edge_ecg/model/beat_metrics.py states the Se / +P definitions). `--reference-beats`
adds the peer run on the reference beat positions, the setting the paper reports.

    python bench/beats_classes.py                          # the peer, 5 folds, ~20 s
    python bench/beats_classes.py --reference-beats --out beats_classes.json
    python bench/beats_classes.py --models peer,moe,single_scout,dense_ensemble \
        --epochs 2 --pretrain-epochs 1 --limit-s 600       # + the neural models, reduced

NEURAL MODELS (`--models moe,single_scout,dense_ensemble`): each is trained per fold on the
training records' windows (data spec `mitdb:DIR/101,DIR/106,...?tasks=beat,rr_interval`,
through the functions bench/real.py calls: load_dataset, train, predict) and classifies each
test record's detections from its `beat` output (B, max_beats, 5): windows every
`--classify-hop-s` from `make_windows(with_beats=True)`, each beat's class the argmax of its
probabilities averaged over the windows holding it; a detection in no window's beat slots
(the record's last seconds) is unclassified, i.e. missed. See `neural_runs`.

The published figures (de Chazal et al. 2004, IEEE TBME 51(7):1196-1206) were measured by
training on DS1 and testing on DS2 (22 other records), on the reference beat positions: other
records, another protocol. Any option that shrinks the comparison (fewer test folds,
--limit-s, neural settings below the bundled model's) is printed as a REDUCED line and stored
in the JSON. Not a test: prints tables; nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from beat_peers import BeatRecord, DeChazalPeer, load_beat_record

from edge_ecg.model.beat_metrics import (
    SCORED,
    BeatClassScore,
    confusion_table,
    pool_class_scores,
    record_table,
    score_beat_classes,
)
from profiles.machine import this_machine

SHARED = REPO.parent / "shared" / "data"
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124",
       "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")
KFOLD = 5
NEURAL = ("moe", "single_scout", "dense_ensemble")
NAMES = {"peer": "de Chazal peer (LDA)", "peer_ref": "de Chazal peer, reference beats",
         "moe": "ECG-MoE", "single_scout": "single scout (CNN)",
         "dense_ensemble": "dense ensemble (EnECG-like)"}
# de Chazal et al. 2004, Table (inter-patient, DS1 -> DS2, reference beat positions), %.
PUBLISHED = {"v_se": 77.7, "v_ppv": 81.9, "s_se": 75.9, "s_ppv": 38.5}
PUBLISHED_SOURCE = "de Chazal et al. 2004, trained DS1, tested DS2 (other records)"
# The bundled model's training command (bench/real.py's BUNDLED): the neural defaults here are
# smaller (a beat task on 22 records), and printed as REDUCED when below it.
BUNDLED = {"preset": "edge", "epochs": 10, "pretrain_epochs": 4}


def fold_of(records: tuple[str, ...], k: int) -> dict[str, int]:
    """Record -> test fold: the i-th record (number order) in fold i mod k."""
    return {r: i % k for i, r in enumerate(sorted(records))}


# -- the peer ----------------------------------------------------------------------------------
def peer_runs(recs: dict[str, BeatRecord], folds: dict[str, int], test_folds: list[int]
              ) -> dict[int, list[BeatClassScore]]:
    """{fold: per-record scores of its test records}, the peer fitted on the other folds."""
    out = {}
    for f in test_folds:
        train = [recs[r] for r in recs if folds[r] != f]
        peer = DeChazalPeer().fit(train)
        out[f] = [score_beat_classes(recs[r].ref_samples, recs[r].ref_classes,
                                     recs[r].det_samples, peer.predict(recs[r]),
                                     recs[r].fs_hz, record=r)
                  for r in recs if folds[r] == f]
    return out


# -- the neural models -------------------------------------------------------------------------
def neural_missing(tasks) -> str | None:
    """None when the models can classify beats; else what is missing (the per-beat head)."""
    import inspect

    from edge_ecg.data.windows import make_windows

    if "beat" not in tasks.names or not getattr(tasks["beat"], "per_beat", False):
        return "no per-beat task `beat` in edge_ecg/data/tasks.toml"
    if "with_beats" not in inspect.signature(make_windows).parameters:
        return "make_windows cannot report the beat slots' R peaks (with_beats)"
    return None


def classify_record(model, path: Path, det_samples: np.ndarray, contract, hop_s: float,
                    batch: int = 64) -> np.ndarray:
    """Class index per detection (-1 = in no window's beat slots: counted as missed) from the
    model's `beat` output, averaged over the windows that hold the beat. The windows come from
    `make_windows` (the model's own chain), whose detector is the one `det_samples` came from,
    so a slot's R peak is one of `det_samples` exactly."""
    from edge_ecg.data.records import read_record
    from edge_ecg.data.windows import make_windows
    from edge_ecg.model.evaluation import predict
    from edge_ecg.signal.contract import stack_inputs

    rec = read_record(path)
    starts, items, slots = make_windows(rec.signal, rec.fs_hz, rec.leads, contract, hop_s=hop_s,
                                        with_beats=True)
    n_cls = 5
    total = np.zeros((det_samples.size, n_cls))
    seen = np.zeros(det_samples.size)
    for a in range(0, len(items), 256):              # a 30-min record's windows in blocks
        prob = predict(model, stack_inputs(items[a:a + 256]), batch)["beat"]   # (W, M, 5)
        for w in range(prob.shape[0]):
            peaks = np.asarray(slots[a + w], dtype=np.int64) + starts[a + w]
            k = np.searchsorted(det_samples, peaks)
            ok = (k < det_samples.size) & (det_samples[np.minimum(k, det_samples.size - 1)]
                                          == peaks)
            total[k[ok]] += prob[w, : peaks.size][ok]
            seen[k[ok]] += 1
    out = np.full(det_samples.size, -1, dtype=np.int64)
    has = seen > 0
    out[has] = np.argmax(total[has], axis=1)
    return out


def neural_runs(variants, recs, paths, folds, test_folds, args, contract, log) -> dict:
    """{variant: {fold: per-record scores}}: each model trained per fold on the training
    records (data spec `mitdb:DIR/101,...?tasks=...`, the functions bench/real.py calls),
    then classifying the test records' detections from its `beat` output."""
    import torch

    from edge_ecg.data.dataset import load_dataset
    from edge_ecg.data.tasks import DEFAULT_TASKS
    from edge_ecg.model.config import ECGMoEConfig
    from edge_ecg.model.training import TrainSettings, train

    missing = neural_missing(DEFAULT_TASKS)
    if missing:
        raise NotImplementedError(f"the neural models cannot classify beats yet: {missing}")
    torch.set_num_threads(max(1, args.threads))
    tasks = DEFAULT_TASKS.select(args.tasks.split(","))
    base = ECGMoEConfig.preset(args.preset, tasks, contract)
    settings = TrainSettings(epochs=args.epochs, pretrain_epochs=args.pretrain_epochs,
                             batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                             progress=args.progress)
    out: dict = {v: {} for v in variants}
    facts: dict = {v: {} for v in variants}
    for f in test_folds:
        train_recs = [r for r in sorted(recs) if folds[r] != f]
        test_recs = [r for r in sorted(recs) if folds[r] == f]
        opts = f"tasks={args.tasks}" + (f"&seconds={args.limit_s:g}" if args.limit_s else "")
        spec = "mitdb:" + ",".join(str(paths[r]) for r in train_recs) + "?" + opts
        t0 = time.perf_counter()
        train_ds = load_dataset(spec, contract, tasks, seed=args.seed, progress=args.progress,
                                compact=True)
        empty = train_ds.subset(np.zeros(0, dtype=int))    # no validation split
        log(f"fold {f}: {len(train_ds)} training windows from {len(train_recs)} records "
            f"({time.perf_counter() - t0:.0f} s); test records {' '.join(test_recs)}")
        for v in variants:
            t0 = time.perf_counter()
            torch.manual_seed(args.seed)
            res = train(base.baseline(v), train_ds, empty, settings,
                        log=lambda s, v=v: log(f"  [{v}] {s}"))
            t_train = time.perf_counter() - t0
            res.model.eval()
            scores = []
            for r in test_recs:
                pred = classify_record(res.model, paths[r], recs[r].det_samples, contract,
                                       args.classify_hop_s)
                scores.append(score_beat_classes(recs[r].ref_samples, recs[r].ref_classes,
                                                 recs[r].det_samples, pred, recs[r].fs_hz,
                                                 record=r))
            out[v][f] = scores
            g = pool_class_scores(scores)
            facts[v][f] = {"params": res.n_params, "mflops": res.flops / 1e6,
                           "train_s": t_train, "n_train_windows": len(train_ds),
                           "classify_s": time.perf_counter() - t0 - t_train}
            log(f"  [{v}] fold {f}: trained in {t_train:.0f} s, classified in "
                f"{facts[v][f]['classify_s']:.0f} s; V Se {g.se('V'):.3f} +P {g.ppv('V'):.3f}, "
                f"S Se {g.se('S'):.3f} +P {g.ppv('S'):.3f}")
            del res
        del train_ds
    args.neural_facts = facts
    return out


# -- report ------------------------------------------------------------------------------------
def _pct(v: float) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def summarise(runs: dict[str, dict[int, list[BeatClassScore]]]) -> dict:
    out = {}
    for name, by_fold in runs.items():
        if not by_fold:
            continue
        per_record = [s for f in sorted(by_fold) for s in by_fold[f]]
        out[name] = {
            "gross": pool_class_scores(per_record),
            "per_fold": {f: pool_class_scores(s, record=f"fold {f}") for f, s in by_fold.items()},
            "per_record": sorted(per_record, key=lambda s: s.record),
        }
    return out


def print_tables(summary: dict, test_folds: list[int], per_record: bool) -> None:
    keys = [(c, m) for c in SCORED for m in ("se", "ppv")]
    head = "".join(f"{c + (' Se' if m == 'se' else ' +P'):>8}" for c, m in keys)
    print(f"\n## Gross EC57 figures, % (test records of folds {','.join(map(str, test_folds))} "
          f"pooled)")
    print(f"  {'model':<34}{head}{'acc':>8}{'beats':>8}{'missed':>8}")
    for name, s in summary.items():
        g = s["gross"]
        vals = "".join(f"{_pct(g.se(c) if m == 'se' else g.ppv(c)):>8}" for c, m in keys)
        print(f"  {NAMES.get(name, name):<34}{vals}{_pct(g.accuracy):>8}{g.n_ref:>8}"
              f"{g.n_missed:>8}")
    pub = "".join(f"{PUBLISHED.get(f'{c.lower()}_{m}', '-')!s:>8}" for c, m in keys)
    print(f"  {'published (other records)':<34}{pub}    {PUBLISHED_SOURCE}")
    for name, s in summary.items():
        print(f"\n## {NAMES.get(name, name)}: per test fold (gross), %")
        print(f"  {'fold':<10}{head}{'beats':>8}")
        for f in sorted(s["per_fold"]):
            g = s["per_fold"][f]
            vals = "".join(f"{_pct(g.se(c) if m == 'se' else g.ppv(c)):>8}" for c, m in keys)
            print(f"  {f:<10}{vals}{g.n_ref:>8}  ({' '.join(s['fold_records'][f])})")
        print(f"  V +P with fusion called V excused (EC57's allowance): "
              f"{_pct(s['gross'].v_ppv_fusion_excused)} %")
        print("\n  confusion (rows reference, columns called; 'no beat' = false detections)")
        print("  " + confusion_table(s["gross"]).replace("\n", "\n  "))
        if per_record:
            print("\n  " + record_table(s["per_record"]).replace("\n", "\n  "))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=str(SHARED), help="the shared data folder")
    p.add_argument("--kfold", type=int, default=KFOLD, help="folds (records split by number)")
    p.add_argument("--folds", type=lambda v: [int(x) for x in v.split(",") if x.strip()],
                   default=None, help="test folds to run (default all)")
    p.add_argument("--models", default="peer",
                   help=f"comma list of peer and the neural models {','.join(NEURAL)}")
    p.add_argument("--reference-beats", action="store_true",
                   help="also the peer on the reference beat positions (the paper's setting)")
    p.add_argument("--fs-hz", type=float, default=250.0, help="the contract rate (bundled: 250)")
    p.add_argument("--per-record", action="store_true", help="print the per-record tables")
    p.add_argument("--out", default="", help="write every figure to this JSON file")
    # neural models
    p.add_argument("--preset", default="edge", choices=["tiny", "edge", "base"])
    p.add_argument("--epochs", type=int, default=3, help="LoRA epochs (bundled: 10)")
    p.add_argument("--pretrain-epochs", type=int, default=1, help="(bundled: 4)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--limit-s", type=float, default=0,
                   help="neural models: train on the first S seconds of each training record")
    p.add_argument("--tasks", default="beat,rr_interval",
                   help="neural models: the tasks trained (labels kept) per fold")
    p.add_argument("--classify-hop-s", type=float, default=5.0,
                   help="neural models: window hop when classifying (each beat's class is the "
                        "mean over the windows holding it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = set(models) - {"peer", *NEURAL}
    if unknown:
        p.error(f"unknown model(s) {sorted(unknown)}; choose from peer,{','.join(NEURAL)}")
    test_folds = args.folds if args.folds is not None else list(range(args.kfold))
    if not test_folds or not all(0 <= f < args.kfold for f in test_folds):
        p.error(f"--folds must lie in 0..{args.kfold - 1}")

    from edge_ecg import DISCLAIMER
    from edge_ecg.signal.contract import SignalContract

    t_start = time.perf_counter()
    machine = this_machine()
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(
        sys.argv[1:] if argv is None else argv)])
    print(f"# bench/beats_classes.py on {machine.summary()} ({platform.platform()})")
    print(f"# command: {command}")
    mitdb = Path(args.data_root).resolve() / "mitdb"
    missing = [r for r in DS1 if not (mitdb / f"{r}.hea").is_file()]
    if missing:
        print(f"DS1 records not found in {mitdb} ({', '.join(missing)}): nothing to measure")
        return 1
    neural = [m for m in models if m in NEURAL]
    reduced = []
    if sorted(test_folds) != list(range(args.kfold)):
        reduced.append(f"test folds {','.join(map(str, test_folds))} of {args.kfold}")
    if neural:
        for k, v in BUNDLED.items():
            if getattr(args, k) != v:
                reduced.append(f"neural {k} {getattr(args, k)} (bundled model: {v})")
        if args.limit_s:
            reduced.append(f"neural models train on the first {args.limit_s:g} s of each "
                           f"training record (of 1805 s)")
    for r in reduced:
        print(f"# REDUCED: {r}")
    contract = SignalContract(fs_hz=args.fs_hz)
    folds = fold_of(DS1, args.kfold)
    fold_records = {f: [r for r in DS1 if folds[r] == f] for f in range(args.kfold)}
    for f in range(args.kfold):
        print(f"# fold {f}: {' '.join(fold_records[f])}")

    t0 = time.perf_counter()
    paths = {r: mitdb / r for r in DS1}
    recs = {r: load_beat_record(paths[r], contract) for r in DS1}
    print(f"# {len(recs)} records read, detected and featurised in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)

    runs: dict = {}
    if "peer" in models:
        t0 = time.perf_counter()
        runs["peer"] = peer_runs(recs, folds, test_folds)
        print(f"# peer: fitted and scored in {time.perf_counter() - t0:.1f} s", flush=True)
    if args.reference_beats:
        ref = {r: load_beat_record(paths[r], contract, positions="reference") for r in DS1}
        runs["peer_ref"] = peer_runs(ref, folds, test_folds)
    if neural:
        def log(s: str) -> None:
            print(s, flush=True)

        runs.update(neural_runs(neural, recs, paths, folds, test_folds, args, contract, log))

    summary = summarise(runs)
    for s in summary.values():
        s["fold_records"] = fold_records
    wall = time.perf_counter() - t_start
    print(f"\n# Cross-validated by record within DS1 ({args.kfold} folds, record i in fold i mod "
          f"{args.kfold}); {machine.summary()}; contract {args.fs_hz:g} Hz; our detector's beats"
          + (" (peer_ref: the reference beats)" if args.reference_beats else ""))
    for r in reduced:
        print(f"# REDUCED: {r}")
    print_tables(summary, test_folds, args.per_record)
    print(f"\n# wall time {wall:.0f} s; command: {command}")
    if args.out:
        doc = {"command": command, "machine": machine.to_dict(), "platform": platform.platform(),
               "wall_s": wall, "reduced": reduced, "kfold": args.kfold,
               "test_folds": test_folds, "fold_records": fold_records,
               "settings": {k: v for k, v in vars(args).items()
                            if k not in ("out", "neural_facts")},
               "published": {"source": PUBLISHED_SOURCE, **PUBLISHED},
               "results": {n: {"gross": s["gross"].to_dict(),
                               "per_fold": {str(f): g.to_dict()
                                            for f, g in s["per_fold"].items()},
                               "per_record": [x.to_dict() for x in s["per_record"]]}
                           for n, s in summary.items()}}
        doc["training"] = {v: {str(f): x for f, x in by.items()}
                           for v, by in getattr(args, "neural_facts", {}).items()}
        Path(args.out).write_text(json.dumps(doc, indent=1, default=float))
        print(f"# figures written to {args.out}")
    print(DISCLAIMER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
