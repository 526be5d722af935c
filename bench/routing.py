"""What each deployment keeps: the experts and FLOPs routing leaves for every 1- and 2-task
deployment (and all tasks), from the gates on calibration windows, for one or more checkpoints
side by side.

    python bench/routing.py                                        # the bundled checkpoint
    python bench/routing.py --checkpoints A,B --calib 'synth:64?seed=500' --keep-mass 0.99
    python bench/routing.py --per-task --keep-mass 0.8     # each task's own 80 % (sharper)

The same decision `edge-ecg export --tasks ...` makes (export.routing: the gates' usage per
task measured once on the calibration windows, then `route_from_usage` per deployment and
`model.pruned`); FLOPs counted with torch's FlopCounterMode at batch 1. A checkpoint trained
with `--balance switch` next to the default (mutual_info) shows what the routing loss buys.
Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

from profiles.machine import this_machine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_CKPT = REPO / "edge_ecg" / "assets" / "default_checkpoint"


def deployments(task_names: tuple[str, ...]) -> list[tuple[str, ...]]:
    return ([(t,) for t in task_names] + list(itertools.combinations(task_names, 2))
            + [tuple(task_names)])


def kept_fractions(checkpoint: Path, calib: str, keep_mass: float,
                   per_task: bool = False) -> dict:
    """`{deployment: (experts kept per path, FLOPs fraction)}` for one checkpoint."""
    import torch

    from edge_ecg.data.tasks import TaskSet
    from edge_ecg.model.flops import count_flops, example_inputs
    from export.routing import measure_usage_per_task, route_from_usage
    from export.stage import load_data, load_model

    model = load_model(checkpoint).eval()
    data = load_data(calib, model.cfg.contract, TaskSet(tuple(model.cfg.tasks)), 0, False)
    one = tuple(example_inputs(model.cfg, 1))
    with torch.no_grad():
        full = count_flops(model, one)
    per_task_usage = measure_usage_per_task(model, data.inputs, list(model.cfg.task_names),
                                            progress=False)
    out = {}
    for tasks in deployments(model.cfg.task_names):
        r = route_from_usage(per_task_usage, list(tasks), keep_mass, per_task_mass=per_task)
        pruned = model.pruned({p: list(k) for p, k in r.keep.items()}, list(tasks)).eval()
        with torch.no_grad():
            out[tasks] = ({p: len(k) for p, k in r.keep.items()}, count_flops(pruned, one) / full)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoints", default=str(DEFAULT_CKPT),
                    help="comma-separated checkpoint folders, one column each")
    ap.add_argument("--calib", default="recipe:calib",
                    help="calibration windows (default: the bundled export's, a slice of the "
                         "training folds)")
    ap.add_argument("--keep-mass", type=float, default=0.99)
    ap.add_argument("--per-task", action="store_true",
                    help="keep mass of each task's own gate row, the union per path (the "
                         "export's routing search), instead of the mean over the tasks")
    args = ap.parse_args()
    ckpts = [Path(c) for c in args.checkpoints.split(",") if c]
    print(f"# bench/routing.py on {this_machine().summary()}")
    print(f"# routing on {args.calib}, keep mass {args.keep_mass}"
          f"{' of each task' if args.per_task else ''}; per checkpoint: experts kept "
          "scout/morphology/rhythm and the share of the all-expert FLOPs")
    cols = {c: kept_fractions(c, args.calib, args.keep_mass, args.per_task) for c in ckpts}
    rows = list(next(iter(cols.values())))
    print(f"{'deployment':<48}" + "".join(f"{c.name[:24]:>26}" for c in ckpts))
    for tasks in rows:
        cells = []
        for c in ckpts:
            kept, frac = cols[c][tasks]
            cells.append(f"{'/'.join(str(v) for v in kept.values())}  {frac:6.0%}")
        print(f"{','.join(tasks):<48}" + "".join(f"{x:>26}" for x in cells))
    for label, size in (("mean, 1 task", 1), ("mean, 2 tasks", 2)):
        print(f"{label:<48}" + "".join(
            f"{np.mean([f for t, (_, f) in cols[c].items() if len(t) == size]):>26.0%}"
            for c in ckpts))
    from edge_ecg import DISCLAIMER
    print(f"# {DISCLAIMER}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
