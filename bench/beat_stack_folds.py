"""The beat stack's figures through the runtime, out of fold on the TRAINING folds: how a stack
fitting choice does on patients neither the network nor the trees saw, runs and alarms included,
without reading fold 0.

    python bench/beat_stack_folds.py --cache ROWS.npz --oof 1=B1 --oof 2=B2 --oof 3=B3 \\
        --oof 4=B4 [--runs 0,2] [--adaptation off,on] [--continuation off,on] \
        [--weight 0.75] [--sign-key KEY] [--out DIR]

ROWS.npz: the rows `edge-ecg stack --beats --cache` saved (the records through the shipped and
the out-of-fold networks). For each `--runs` setting (synthetic runs per record,
edge_ecg.runtime.beat_stack_runs; 0 = none) and each training fold k: trees fitted on the
other folds' rows (and their synthetic runs) with share `--weight`, installed beside the
network trained without fold k (a copy of its bundle under `--out`), and fold k's MIT-BIH and
SVDB records scored by `edge-ecg evaluate`; `--adaptation on` gives the fold's stack the
patient's veto of V calls after its learning period (edge_ecg.runtime.patient_adaptation,
its default setting), `--continuation on` its run continuation
(edge_ecg.runtime.run_continuation); `off,on` measures both (the runtime's stream, its
per-beat classes and alarms). Unsigned fold bundles need EDGE_ECG_ALLOW_UNSIGNED=1 (or
`--sign-key`). Counts are pooled over the folds: EC57 V and S Se / +P, VT runs and couplets (Se /
+P), the VT alarm's Se on reference runs of >= 5 V beats at >= 100 /min, false VT and
non-sustained VT alarms per hour. ~2 min a fold and setting here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LABELS = ("N", "S", "V", "F", "Q")
DATA = REPO.parent / "shared" / "data"
CLI = "import sys; from edge_ecg.cli import main; sys.exit(main(sys.argv[1:]))"


def pooled(results: list[dict]) -> dict:
    """Se / +P from counts summed over the folds' evaluate JSONs."""
    def s(*path):
        tot = 0.0
        for d in results:
            v = d
            for p in path:
                v = v.get(p, {}) if isinstance(v, dict) else {}
            tot += float(v) if isinstance(v, (int, float)) and np.isfinite(v) else 0.0
        return tot

    def ratio(a, b):
        return a / b if b else float("nan")

    out = {}
    for db in ("mitdb", "svdb"):
        b = ("beat_classes", "ec57", "by_database", db)
        for c in ("v", "s"):
            tp, fn, fp = s(*b, f"{c}_tp"), s(*b, f"{c}_fn"), s(*b, f"{c}_fp")
            out[f"{db} {c.upper()} Se"] = ratio(tp, tp + fn)
            out[f"{db} {c.upper()} +P"] = ratio(tp, tp + fp)
        a = ("alarms", db)
        for k in ("vt_run", "couplet"):
            out[f"{db} {k} Se"] = ratio(s(*a, f"{k}_tp_ref"), s(*a, f"{k}_ref"))
            out[f"{db} {k} +P"] = ratio(s(*a, f"{k}_tp_det"), s(*a, f"{k}_det"))
        out[f"{db} runs >= 5 V at >= 100/min"] = s(*a, "vt_alarm_ref")
        out[f"{db} VT alarm Se"] = ratio(s(*a, "vt_alarm_tp"), s(*a, "vt_alarm_ref"))
        out[f"{db} VT or NSVT alarm Se"] = ratio(s(*a, "vt_alarm_tp_any"), s(*a, "vt_alarm_ref"))
        out[f"{db} false VT /h"] = ratio(s(*a, "false_vt_alarms"), s(*a, "hours"))
        out[f"{db} false NSVT /h"] = ratio(s(*a, "false_nsvt_alarms"), s(*a, "hours"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True, type=Path)
    ap.add_argument("--oof", action="append", default=[], metavar="FOLD=BUNDLE", required=True)
    ap.add_argument("--runs", default="0,2", help="synthetic runs per record, one setting each")
    ap.add_argument("--weight", type=float, default=0.75, help="the trees' share (w)")
    ap.add_argument("--adaptation", default="off",
                    help="off, on or off,on: the stack's patient adaptation, one setting each")
    ap.add_argument("--continuation", default="off",
                    help="off, on or off,on: the stack continues a called ventricular run while "
                         "its beats stay wide and unlike the dominant beat "
                         "(edge_ecg.runtime.run_continuation, its default setting)")
    ap.add_argument("--vt-run", type=int, default=None,
                    help="passed to edge-ecg evaluate: V beats for the red VT alarm")
    ap.add_argument("--sign-key", type=Path, default=None,
                    help="key the fold bundles were signed with (else they are left unsigned)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/beat_stack_folds"))
    ap.add_argument("--jobs", type=int, default=1,
                    help="folds evaluated at once (default 1: one evaluation already uses two "
                         "threads; two at once on 2 cores were no faster here)")
    args = ap.parse_args()

    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from edge_ecg.cli.stack_beats import _runs_job, load_rows, parse_oof
    from edge_ecg.cli.stack_install import install_stack
    from edge_ecg.data.folds import subject_fold
    from edge_ecg.model.beat_stacking import _xy, document, fit_trees
    from edge_ecg.runtime.beat_stack import BEAT_STACK, FEATURES, parse_beat_stack
    from edge_ecg.runtime.bundle import check_integrity
    from edge_ecg.runtime.patient_adaptation import AdaptationConfig
    from edge_ecg.runtime.run_continuation import ContinuationConfig

    oof = parse_oof(args.oof)
    with np.load(args.cache, allow_pickle=False) as z:
        key = str(z["key"])
    rows = load_rows(args.cache, key, ["net"])["net"]
    records = json.loads(key)["records"]
    signal = check_integrity(next(iter(oof.values())))[0].signal
    table = {}
    adapt_settings = [a.strip() for a in args.adaptation.split(",")]
    cont_settings = [a.strip() for a in args.continuation.split(",")]
    if not set(adapt_settings) <= {"off", "on"} or not set(cont_settings) <= {"off", "on"}:
        raise SystemExit("--adaptation and --continuation take off, on or off,on")
    for n_runs, adapt, cont in ((int(v), a, c) for v in args.runs.split(",")
                                for a in adapt_settings for c in cont_settings):
        runs = []
        if n_runs:
            jobs = [(signal, LABELS, Path(p).parent.name, Path(p), n_runs, 0) for p in records]
            with ProcessPoolExecutor(2) as pool:
                runs = list(pool.map(_runs_job, jobs))
        specs = []
        for k, bundle in sorted(oof.items()):
            train = [r for r in rows + runs if subject_fold(r.subject) != k and r.y.size]
            model = fit_trees(*_xy(train))
            doc = document(model, "beat", LABELS, FEATURES, args.weight,
                           {"bench": f"fold {k} held out, {n_runs} synthetic runs a record"})
            if adapt == "on":
                doc["patient_adaptation"] = AdaptationConfig().to_dict()
            if cont == "on":
                doc["run_continuation"] = ContinuationConfig().to_dict()
            stack = parse_beat_stack(doc, "fold stack")
            dst = args.out / f"runs{n_runs}-{adapt}-cont-{cont}" / f"f{k}"
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(bundle, dst)
            install_stack(dst, check_integrity(dst)[0], BEAT_STACK, stack.write, "beat_stack",
                          {"kind": stack.kind, "weight": stack.weight}, args.sign_key)
            specs.append((k, dst, f"mitdb:{DATA}/mitdb?folds={k};svdb:{DATA}/svdb?folds={k}"))

        def evaluate(item):
            k, dst, spec = item
            extra = [] if args.vt_run is None else ["--vt-run", str(args.vt_run)]
            out = subprocess.run([sys.executable, "-c", CLI, "evaluate", "--bundle", str(dst),
                                  "--data", spec, "--json", *extra],
                                 capture_output=True, text=True, check=True).stdout
            print(f"runs {n_runs}, adaptation {adapt}, continuation {cont}, fold {k}: "
                  "evaluated", file=sys.stderr,
                  flush=True)
            (dst / "evaluate.json").write_text(out)     # the fold's counts, kept beside it
            return json.loads(out)

        # one process per fold, `--jobs` at a time
        with ThreadPoolExecutor(max(int(args.jobs), 1)) as pool:
            results = list(pool.map(evaluate, specs))
        table[f"runs={n_runs},{adapt},{cont}"] = pooled(results)
    names = list(next(iter(table.values())))
    print(f"{'pooled over folds ' + ','.join(map(str, sorted(oof))):28s}"
          + "".join(f"  {n:>12s}" for n in table))
    for name in names:
        print(f"{name:28s}" + "".join(f"  {table[n][name]:12.4f}" for n in table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
