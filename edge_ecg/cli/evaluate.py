"""`edge-ecg evaluate`: per-task metrics of a checkpoint (torch) or an exported bundle (no torch).

    edge-ecg evaluate --checkpoint DIR --data SPEC [--json]
    edge-ecg evaluate --bundle DIR [--variant NAME] --data SPEC [--json]

Prints the field's standard metrics for each database in the data (edge_ecg.model.field_metrics):
CinC 2017 challenge F1 per recording, age MAE / sex AUC and F1 / rhythm macro F1 per PTB-XL or
LUDB record, RR MAE and AF-episode Se/+P on MIT-BIH, and every task's window metrics. With
--json, stdout is one JSON object: {"windows": {task: {metric: value}}, "<database>": {...}}.
"""

from __future__ import annotations

import argparse
import json
import sys

from edge_ecg import DISCLAIMER


def configure(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="checkpoint directory (`edge-ecg train --out`)")
    src.add_argument("--bundle", help="exported bundle directory (`edge-ecg export`)")
    p.add_argument("--variant", default=None, help="bundle variant (default: the manifest's)")
    p.add_argument("--data", required=True, help="data spec, as for `edge-ecg train`")
    p.add_argument("--json", action="store_true", help="print one JSON object of metrics")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="seed of a synthetic data spec")


def _checkpoint_outputs(args, progress: bool):
    import torch

    from edge_ecg.data.dataset import load_dataset
    from edge_ecg.model.checkpoint import load_checkpoint
    from edge_ecg.model.evaluation import predict

    torch.set_num_threads(max(1, args.threads))
    model = load_checkpoint(args.checkpoint)
    cfg = model.cfg
    ds = load_dataset(args.data, cfg.contract, cfg.task_set, seed=args.seed, progress=progress)
    return cfg.task_set, predict(model, ds.inputs, args.batch_size), ds, cfg.contract.window_s


def _bundle_outputs(args, progress: bool):
    import numpy as np

    from edge_ecg.data.dataset import load_dataset
    from edge_ecg.data.tasks import TaskSet, TaskSpec
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.signal.contract import SignalContract

    backend = open_backend(args.bundle, args.variant, threads=max(1, args.threads))
    try:
        m = backend.manifest
        contract = SignalContract.from_dict(m.signal)
        specs = [TaskSpec.from_dict({k: v for k, v in t.items()
                                     if k not in ("output", "trained_on")})
                 for t in m.tasks]
        tasks = TaskSet(tuple(specs))
        output_of = {t["name"]: t["output"] for t in m.tasks}
        ds = load_dataset(args.data, contract, tasks, seed=args.seed, progress=progress)
        n = len(ds)
        parts: dict[str, list] = {}
        for s in range(0, n, args.batch_size):
            res = backend.run({k: v[s:s + args.batch_size] for k, v in ds.inputs.items()})
            for task, name in output_of.items():
                parts.setdefault(task, []).append(np.asarray(res[name]))
    finally:
        backend.close()
    return tasks, {k: np.concatenate(v) for k, v in parts.items()}, ds, contract.window_s


def run(args: argparse.Namespace) -> int:
    from edge_ecg.model.field_metrics import field_metrics
    from edge_ecg.model.metrics import format_metrics

    progress = not args.json
    if args.checkpoint:
        tasks, outputs, ds, window_s = _checkpoint_outputs(args, progress)
    else:
        tasks, outputs, ds, window_s = _bundle_outputs(args, progress)
    metrics = field_metrics(tasks, outputs, ds, window_s)
    metrics["n_windows"] = len(ds)
    metrics["data"] = args.data
    if args.json:
        print(json.dumps(metrics, sort_keys=True, default=float))
        print(DISCLAIMER, file=sys.stderr)
        return 0
    src = args.checkpoint or args.bundle
    print(f"{src} on {args.data} ({len(ds)} windows):")
    print(format_metrics(metrics["windows"], {t.name: t.unit for t in tasks}))
    for name, res in metrics.items():
        if name in ("windows", "n_windows", "data") or not isinstance(res, dict):
            continue
        fields = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                  for k, v in res.items() if k not in ("tasks", "confusion")]
        print(f"  {name:<10} " + "  ".join(fields))
        if "confusion" in res:
            print(f"  {'':<10} confusion (rows: reference, cols: call): {res['confusion']}")
    print(DISCLAIMER)
    return 0
