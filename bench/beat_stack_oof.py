"""Out-of-fold networks for the per-beat stack's share (issue 25).

The beat stack fuses the network's per-beat classes with gradient-boosted trees on the patient
context; its share `w` must be chosen where neither has seen the patients. The shipped network
saw every training fold, so its outputs on them say nothing about new patients. This script
trains, for each training fold k (1-4, never fold 0), a network of the same architecture and
recipe on the bundled recipe's BEAT data (its MIT-BIH and SVDB sources, their tasks cut to
`rr_interval` and `beat`) of the other training folds, and exports it as an ONNX fp32 bundle:

    python bench/beat_stack_oof.py --out /tmp/oof --sign-key KEY   # ~8 min a fold, 2 threads
    edge-ecg stack --beats --bundle edge_ecg/assets/default_bundle \\
        --oof 1=/tmp/oof/b1 --oof 2=/tmp/oof/b2 --oof 3=/tmp/oof/b3 --oof 4=/tmp/oof/b4 \\
        --jobs 2 --cache /tmp/oof/rows.npz --sign-key KEY

Each fold's records then go through the network trained without them (edge_ecg.model.
beat_stacking). These networks are proxies: beat data only (the shipped one also learns
rhythm, age and sex from the other sources) and fp32 (the shipped one runs int8), so they say
how the recipe's network does on unseen patients, not the shipped network's exact outputs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

TRAIN_FOLDS = (1, 2, 3, 4)
PROXY_TASKS = "rr_interval,beat"
# the bundled model's own training settings (BENCHMARKS, "How the bundle is made")
TRAIN_ARGS = ["--preset", "edge", "--fs-hz", "250", "--epochs", "7", "--pretrain-epochs", "2",
              "--seed", "0", "--val-frac", "0.05"]


def proxy_spec(recipe: str, held: int) -> str:
    """The recipe's beat sources, on the training folds other than `held`."""
    from edge_ecg.cli.stack_beats import beat_sources, beat_specs

    beat_sources(recipe, allow_fold0=False)     # refuses a source that includes fold 0
    keep = ",".join(str(f) for f in TRAIN_FOLDS if f != held)
    parts = []
    for db, body, opts, over, _ in beat_specs(recipe):
        opts["folds"] = keep
        opts["tasks"] = PROXY_TASKS
        if "weight" in over:
            opts["weight"] = str(over["weight"])
        parts.append(f"{db}:{body}?{urlencode(opts, safe=',')}")
    return ";".join(parts)


def run(cmd: list[str], log: Path) -> None:
    with log.open("w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False)
    if r.returncode:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}; see {log}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Writes OUT/fK (checkpoint) and OUT/bK (bundle) per fold; "
                                        "a fold whose bundle exists is skipped.")
    ap.add_argument("--out", type=Path, required=True, help="folder for the checkpoints and bundles")
    ap.add_argument("--recipe", default="recipe:bundled", help="the recipe whose beat data to use")
    ap.add_argument("--folds", default="1,2,3,4", help="training folds to hold out in turn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sign-key", type=Path, default=None,
                    help="sign each bundle with this key (the stack command verifies them as "
                         "it verifies the bundle it fits: a key the deployment trusts)")
    args = ap.parse_args()
    folds = [int(f) for f in args.folds.split(",") if f.strip()]
    if not folds or any(f not in TRAIN_FOLDS for f in folds):
        ap.error(f"--folds: training folds only, from {TRAIN_FOLDS}")
    args.out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    for k in tqdm(folds, desc="folds", unit="fold", file=sys.stderr):
        ck, b = args.out / f"f{k}", args.out / f"b{k}"
        if (b / "manifest.json").is_file():
            continue
        t0 = time.monotonic()
        if not (ck / "model.safetensors").is_file():
            run(["edge-ecg", "train", "--data", proxy_spec(args.recipe, k), *TRAIN_ARGS,
                 "--threads", str(args.threads), "--no-progress", "--out", str(ck)],
                args.out / f"train_f{k}.log")
        t1 = time.monotonic()
        run(["edge-ecg", "export", "--checkpoint", str(ck), "--out", str(b), "--variants",
             "onnx-fp32", "--quantize", "none", "--calib", "synth:16", "--overwrite",
             "--no-progress", *(["--sign-key", str(args.sign_key)] if args.sign_key else [])],
            args.out / f"export_f{k}.log")
        print(f"fold {k}: trained in {t1 - t0:.0f} s, exported in {time.monotonic() - t1:.0f} s "
              f"-> {b}", file=sys.stderr)
    print("edge-ecg stack --beats --bundle BUNDLE "
          + " ".join(f"--oof {k}={args.out / f'b{k}'}" for k in folds) + " --jobs 2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
