"""Each reference ventricular run, beat by beat, as the runtime calls it.

    python bench/vt_runs.py [--bundle edge_ecg/assets/default_bundle] [--folds 0]
                            [--data ../shared/data/mitdb] [--min-run 3]

Every MIT-BIH record of the given folds is streamed whole through the runtime
(`stream_beat_classes`: its detector, windows, patient context and per-beat classes, the
bundle's beat stack fused in). For each reference run of >= `--min-run` ventricular beats (EC57
class V: symbols V and E) it prints the run's start, its length, the runtime's call for each of
its beats (`-` where no detection lies within EC57's 150 ms) and whether >= 3 of them in a row
were called V (what the VT alarm needs). A diagnosis, not a score: `edge-ecg evaluate` scores
runs as EC57 does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_ecg.data.folds import subject_fold  # noqa: E402
from edge_ecg.data.mitbih import record_paths, subject_of  # noqa: E402
from edge_ecg.signal.scoring import MATCH_TOLERANCE_S  # noqa: E402

V_SYMBOLS = {"V", "E"}                       # EC57's V class
BEAT_SYMBOLS = set("NLRejAaJSVEFQ/fu")


def reference_runs(samples, symbols, min_run: int) -> list[list[int]]:
    """Runs of >= `min_run` consecutive ventricular beats (sample indices) among the beats."""
    runs, cur = [], []
    for s, sym in zip(samples, symbols):
        if sym not in BEAT_SYMBOLS:
            continue
        if sym in V_SYMBOLS:
            cur.append(int(s))
            continue
        if len(cur) >= min_run:
            runs.append(cur)
        cur = []
    if len(cur) >= min_run:
        runs.append(cur)
    return runs


def calls_of(run: list[int], samples: np.ndarray, classes: list, tol: int) -> str:
    """One character per reference beat: the runtime's class, `?` unclassified, `-` missed."""
    out = []
    for s in run:
        j = int(np.argmin(np.abs(samples - s))) if samples.size else -1
        if j < 0 or abs(int(samples[j]) - s) > tol:
            out.append("-")
        else:
            out.append(classes[j] or "?")
    return "".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=str(REPO / "edge_ecg" / "assets" / "default_bundle"))
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mitdb"))
    ap.add_argument("--folds", default="0", help="folds whose records to stream (0: held out)")
    ap.add_argument("--min-run", type=int, default=3)
    args = ap.parse_args()

    import wfdb

    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.record_beats import stream_beat_classes

    folds = {int(f) for f in args.folds.split(",") if f.strip()}
    backend = open_backend(args.bundle)
    found = total = 0
    for path in record_paths(args.data, "mitdb"):
        if subject_fold(subject_of(path, "mitdb")) not in folds:
            continue
        ann = wfdb.rdann(str(path), "atr")
        runs = reference_runs(ann.sample, ann.symbol, args.min_run)
        if not runs:
            continue
        samples, classes, _ = stream_beat_classes(backend, str(path))
        tol = int(round(MATCH_TOLERANCE_S * ann.fs))
        for run in runs:
            calls = calls_of(run, samples, classes, tol)
            hit = "VVV" in calls
            found += hit
            total += 1
            print(f"{path.name} {run[0] / ann.fs:8.1f} s  {len(run):4d} beats  "
                  f"{'found ' if hit else 'MISSED'}  {calls}", flush=True)
    print(f"runs with >= 3 beats in a row called V: {found} of {total}")
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
