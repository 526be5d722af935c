"""Which parts of the routed model to quantize, and how to ship the graph: each choice of the
int8 export measured side by side, in one run, against ONNX fp32 with all experts.

    python bench/int8_choices.py                        # the bundled checkpoint, recipe data
    python bench/int8_choices.py --checkpoint DIR --calib recipe:calib --eval recipe:heldout

For one checkpoint: route as the export does (all tasks, or `--tasks`), export ONNX fp32 with
all experts and routed, then quantize the routed graph once per choice below and save each
int8 graph as onnxruntime optimises it (`export.onnx_graph.save_ort_optimized`). Every graph
is timed in this one process (batch 1, one thread, sessions interleaved round by round, so
load drift hits each alike; medians), with its session start time, and scored on `--eval`
against torch fp32 with all experts (the export's 0.01 tolerance: MAE relative, F1/accuracy
absolute). Not a test: prints a table, the machine named.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from profiles.machine import this_machine

DEFAULT_CKPT = REPO / "edge_ecg" / "assets" / "default_checkpoint"


def choices(stage, routed_cfg) -> dict[str, dict]:
    """name -> quantize_onnx_int8 keyword arguments; the export's default last."""
    base = {"weight_only_modules": stage.WEIGHT_ONLY_MODULES}
    chain = stage.int8_chain_modules(routed_cfg)
    return {
        "int8 Conv/MatMul/Gemm QDQ (before)": dict(base),
        "int8, nodes < 1M MACs fp32": dict(base, min_macs=1_000_000),
        "int8, conv experts chained": dict(base, chain_modules=chain),
        "int8, chained, nodes < 250k MACs fp32": dict(base, chain_modules=chain,
                                                      min_macs=250_000),
        "int8 export default": dict(base, min_macs=stage.MIN_MACS,
                                    chain_modules=chain if stage.INT8_CHAINS else ()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=DEFAULT_CKPT)
    ap.add_argument("--calib", default="recipe:calib")
    ap.add_argument("--eval", dest="eval_spec", default="recipe:heldout")
    ap.add_argument("--eval-limit", type=int, default=2000,
                    help="windows of --eval scored (a random subset, seed 0)")
    ap.add_argument("--calib-limit", type=int, default=256,
                    help="calibration windows for int8 (a random subset, seed 0)")
    ap.add_argument("--tasks", default="", help="comma-separated; empty = every task")
    ap.add_argument("--repeats", type=int, default=300)
    args = ap.parse_args()

    import onnxruntime as ort

    from edge_ecg import DISCLAIMER
    from edge_ecg.data.tasks import TaskSet
    from edge_ecg.metrics.tasks import task_metrics
    from edge_ecg.runtime.sessions import onnx_session
    from export import stage
    from export.onnx_graph import export_onnx, save_ort_optimized
    from export.parity import run_onnx
    from export.quantize import quantize_onnx_int8

    model = stage.load_model(args.checkpoint).eval()
    all_tasks = TaskSet(tuple(model.cfg.tasks))
    tasks = all_tasks.select([t for t in args.tasks.split(",") if t]) if args.tasks else all_tasks
    t0 = time.perf_counter()
    calib = stage.load_data(args.calib, model.cfg.contract, all_tasks, 0, False)
    ev = stage.load_data(args.eval_spec, model.cfg.contract, all_tasks, 1, False)
    rng = np.random.default_rng(0)
    calib = calib.subset(np.sort(rng.permutation(len(calib))[:args.calib_limit]))
    ev = ev.subset(np.sort(rng.permutation(len(ev))[:args.eval_limit]))
    labels = {t.name: ev.labels[t.name] for t in tasks if t.name in ev.labels}
    req = stage.ExportRequest(checkpoint=args.checkpoint, out=Path("unused"), progress=False,
                              allow_metric_drop=True)
    r = stage.route_and_measure(req, model, calib.inputs, ev.inputs, tasks, labels)
    print(f"# bench/int8_choices.py on {this_machine().summary()}; onnxruntime {ort.__version__}")
    print(f"# {args.checkpoint} tasks {','.join(tasks.names)}; routing keeps "
          f"{ {p: f'{len(k)}/{len(r.routing.usage[p])}' for p, k in r.routing.keep.items()} }; "
          f"calibration {len(calib)} windows of {args.calib}, metrics on {len(ev)} of "
          f"{args.eval_spec} (data {time.perf_counter() - t0:.0f} s)")
    fp32_modules = tuple(stage.FP32_MODULES) + stage.beat_expert_modules(r.routing, tasks)
    tmp = Path(tempfile.mkdtemp(prefix="edge-ecg-int8-choices-"))
    paths = {"ONNX fp32 all experts": tmp / "full.onnx", "ONNX fp32 routed": tmp / "routed.onnx"}
    export_onnx(r.dense, ev.inputs, paths["ONNX fp32 all experts"])
    export_onnx(r.routed, ev.inputs, paths["ONNX fp32 routed"])
    notes = {}
    for i, (name, kw) in enumerate(choices(stage, r.routed.cfg).items()):
        qdq = tmp / f"int8_{i}.onnx"
        info = quantize_onnx_int8(paths["ONNX fp32 routed"], qdq, calib.inputs, fp32_modules,
                                  False, **kw)
        paths[f"{name}, QDQ file"] = qdq
        opt = tmp / f"int8_{i}.ort.onnx"
        g = save_ort_optimized(qdq, opt)
        paths[f"{name}, ORT-optimised file"] = opt
        notes[name] = (f"{info['fp32_small_nodes']} tiny nodes fp32; graph "
                       f"{g['nodes_before']} -> {g['nodes_after']} nodes saved optimised")

    ref = task_metrics(tasks, {t.name: r.ref_out[t.name] for t in tasks}, labels)
    rows = {}
    for name, p in paths.items():
        out = run_onnx(p, ev.inputs)
        got = task_metrics(tasks, {t.name: out[t.name] for t in tasks}, labels)
        drops = stage.metric_drops(ref, got, tasks)
        rows[name] = {"drops": drops, "bytes": p.stat().st_size}
        starts = []
        for _ in range(3):
            t1 = time.perf_counter()
            onnx_session(p, 1)
            starts.append((time.perf_counter() - t1) * 1e3)
        rows[name]["start_ms"] = float(np.median(starts))

    one = {k: np.ascontiguousarray(v[:1]) for k, v in ev.inputs.items()}
    sessions = {n: onnx_session(p, 1) for n, p in paths.items()}
    for s in sessions.values():
        for _ in range(20):
            s.run(None, one)
    times = {n: [] for n in sessions}
    for _ in range(args.repeats):
        for n, s in sessions.items():
            t1 = time.perf_counter()
            s.run(None, one)
            times[n].append((time.perf_counter() - t1) * 1e3)
    base = float(np.median(times["ONNX fp32 all experts"]))
    print(f"{'graph':<58}{'MB':>6}{'start ms':>10}{'p50 ms':>8}{'x fp32 all':>11}"
          f"{'worst drop':>12}  task with it")
    for n, row in rows.items():
        p50 = float(np.median(times[n]))
        worst = max(row["drops"], key=row["drops"].get)
        print(f"{n:<58}{row['bytes'] / 1e6:>6.2f}{row['start_ms']:>10.1f}{p50:>8.3f}"
              f"{base / p50:>10.2f}x{row['drops'][worst]:>+12.4f}  {worst}")
    for n, note in notes.items():
        print(f"# {n}: {note}")
    print(f"# {DISCLAIMER}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
