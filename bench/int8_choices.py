"""The int8 deployment's choices, each lever with its figure: which parts are quantized, how the
graph is written and shipped, and what routing keeps, side by side in one run against ONNX fp32
with all experts and the dense multi-task baseline.

    python bench/int8_choices.py                        # the bundled checkpoint, recipe data
    python bench/int8_choices.py --calib-limit 0        # calibrate on all of it, as the export
    python bench/int8_choices.py --tasks arrhythmia     # a deployment of fewer tasks
    python bench/int8_choices.py --checkpoint DIR --calib recipe:calib --eval SPEC

For one checkpoint: route as the export does (all tasks, or `--tasks`; `export.routed`), export
the references -- ONNX fp32 with all experts written plainly (as before) and in the export's
exact forms (`export.graph_forms`; the bundle's `onnx-fp32`), the dense baseline (every
expert weighted by a soft gate, same weights, same forms) -- and the int8 candidates: the
levers added one at a time from the int8 export as it was to the export's default, then
alternatives to the default. Every graph is timed in this one process (batch 1, one thread,
sessions interleaved call by call in a fresh random order each round, so load drift and
cache effects hit each alike; p50 of the calling thread's CPU time, which a shared machine
inflates less than wall time, and wall time), with its session start, and scored on `--eval`
(default: the checkpoint's validation patients, `recipe:validation?subjects=CHECKPOINT`: the
levers are chosen here, so never on the held-out fold) against torch fp32 with all experts (the export's 0.01 tolerance: MAE relative, F1/accuracy
absolute; > 0 is worse). Not a test: prints a table, the machine named.
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
PLAIN = "ONNX fp32 all experts, plain export"
FP32 = "ONNX fp32 all experts (bundle onnx-fp32)"
DENSE = "dense baseline fp32 (soft gates)"
DEFAULT = "int8 export default"


def int8_candidates(stage, r, tasks) -> dict[str, dict]:
    """name -> how the int8 graph is made: `src` (which fp32 graph: "plain" routed without the
    graph forms, "forms" routed in the forms, "heads" routed with the per-beat head routed too,
    as the export does; "trim" that graph with its beat slots trimmed, export.beat_slots), `ort`
    (ship onnxruntime's optimised graph), `fp32_modules` and the
    other quantize_onnx_int8 keywords. The levers are cumulative down to the export's
    default, then alternatives to it."""
    beat_fp32 = tuple(stage.FP32_MODULES) + stage.beat_expert_modules(r.routing, tasks)
    chain = stage.int8_chain_modules(r.routed.cfg)
    before = {"src": "plain", "ort": False, "fp32_modules": beat_fp32,
              "weight_only_modules": stage.WEIGHT_ONLY_MODULES, "fp32_reads": False,
              "quantize_activation_matmuls": True}
    steps = {
        "int8 as before (QDQ file, beat experts fp32)": before,
        "+ onnxruntime's optimised graph saved": dict(before, ort=True),
        "+ fp32 readers read fp32, not an 8-bit copy": dict(before, ort=True, fp32_reads=True),
        "+ activation x activation MatMuls fp32": dict(before, ort=True, fp32_reads=True,
                                                        quantize_activation_matmuls=False),
        "+ beat experts int8": dict(before, ort=True, fp32_reads=True,
                                    quantize_activation_matmuls=False,
                                    fp32_modules=tuple(stage.FP32_MODULES)),
    }
    default = {"src": "trim" if stage.TRIM_SLOTS else "heads", "ort": stage.ORT_OPTIMIZED,
               "fp32_modules": tuple(stage.FP32_MODULES) + (
                   () if stage.BEAT_EXPERTS_INT8 else stage.beat_expert_modules(r.routing, tasks)),
               "weight_only_modules": stage.WEIGHT_ONLY_MODULES, "min_macs": stage.MIN_MACS,
               "chain_modules": chain if stage.INT8_CHAINS else ()}
    no_chain = dict(default, chain_modules=(), src="heads")
    steps["+ exact graph forms"] = dict(no_chain, src="forms")
    steps["+ per-beat head routed (--route-heads)"] = no_chain
    steps["+ conv experts chained in int8"] = dict(default, src="heads")
    steps["+ beat slots trimmed: " + DEFAULT] = default
    alternatives = {
        "default, beat experts fp32": dict(default, fp32_modules=beat_fp32),
        "default, conv experts not chained": dict(no_chain, src=default["src"]),
        "default, nodes < 250k MACs fp32": dict(default, min_macs=250_000),
        "default, activation MatMuls int8": dict(default, quantize_activation_matmuls=True),
        "default, QDQ file shipped": dict(default, ort=False),
    }
    return {**steps, **{"  alt: " + k: v for k, v in alternatives.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=DEFAULT_CKPT)
    ap.add_argument("--calib", default="recipe:calib")
    ap.add_argument("--eval", dest="eval_spec", default="",
                    help="data the choices are scored on (default: the checkpoint's "
                         "validation patients, recipe:validation?subjects=CHECKPOINT)")
    ap.add_argument("--eval-limit", type=int, default=0,
                    help="windows of --eval scored (a random subset, seed 0); 0 = all")
    ap.add_argument("--calib-limit", type=int, default=256,
                    help="calibration windows for int8 (a random subset, seed 0); 0 = all")
    ap.add_argument("--tasks", default="", help="comma-separated; empty = every task")
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--no-alternatives", action="store_true", help="the cumulative levers only")
    ap.add_argument("--route-heads", action=argparse.BooleanOptionalAction, default=None,
                    help="route the per-beat head to its own experts (default: the stage's; "
                         "the bundle is exported --no-route-heads)")
    args = ap.parse_args()
    args.eval_spec = args.eval_spec or f"recipe:validation?subjects={args.checkpoint}"

    import onnxruntime as ort
    from export_variants import dense_baseline

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
    names = list(tasks.names)
    t0 = time.perf_counter()
    calib = stage.load_data(args.calib, model.cfg.contract, all_tasks, 0, False)
    ev = stage.load_data(args.eval_spec, model.cfg.contract, all_tasks, 1, False)
    rng = np.random.default_rng(0)
    if args.calib_limit:
        calib = calib.subset(np.sort(rng.permutation(len(calib))[:args.calib_limit]))
    if args.eval_limit:
        ev = ev.subset(np.sort(rng.permutation(len(ev))[:args.eval_limit]))
    labels = {t.name: ev.labels[t.name] for t in tasks if t.name in ev.labels}
    req = stage.ExportRequest(checkpoint=args.checkpoint, out=Path("unused"), progress=False,
                              allow_metric_drop=True,
                              **({} if args.route_heads is None
                                 else {"route_heads": args.route_heads}))
    r = stage.route_and_measure(req, model, calib.inputs, ev.inputs, tasks, labels)
    routing = r.routing
    print(f"# bench/int8_choices.py on {this_machine().summary()}; onnxruntime {ort.__version__}")
    heads = routing.to_dict()["heads"]
    print(f"# {args.checkpoint} tasks {','.join(names)}; routing keeps "
          f"{ {p: f'{len(k)}/{len(routing.usage[p])}' for p, k in routing.keep.items()} }"
          + (f"; per-beat heads read { {t: h['kept_names'] for t, h in heads.items()} }"
             if heads else "")
          + f" (per-task keep mass {routing.keep_mass:g}); calibration {len(calib)} windows of "
          f"{args.calib}, metrics on {len(ev)} of {args.eval_spec} (data and routing "
          f"{time.perf_counter() - t0:.0f} s)")
    tmp = Path(tempfile.mkdtemp(prefix="edge-ecg-int8-choices-"))
    paths = {PLAIN: tmp / "plain.onnx", FP32: tmp / "full.onnx", DENSE: tmp / "dense.onnx"}
    export_onnx(r.dense, ev.inputs, paths[PLAIN], forms=False)
    export_onnx(r.dense, ev.inputs, paths[FP32])
    export_onnx(dense_baseline(r.dense), ev.inputs, paths[DENSE])
    # The routed fp32 graphs the int8 candidates start from: without the per-beat head routed
    # (`model.pruned` alone), plainly and in the forms; and the export's own (`r.routed`).
    plain_routed = model.pruned({p: list(k) for p, k in routing.keep.items()}, names).eval()
    src = {"plain": tmp / "routed_plain.onnx", "forms": tmp / "routed_forms.onnx",
           "heads": tmp / "routed.onnx", "trim": tmp / "routed_trim.onnx"}
    export_onnx(plain_routed, ev.inputs, src["plain"], forms=False)
    export_onnx(plain_routed, ev.inputs, src["forms"])
    export_onnx(r.routed, ev.inputs, src["heads"])
    export_onnx(r.routed, ev.inputs, src["trim"], trim_slots=True)
    paths["ONNX fp32 routed (forms)"] = src["heads"]
    paths["ONNX fp32 routed (forms, beat slots trimmed)"] = src["trim"]
    cands = int8_candidates(stage, r, tasks)
    if args.no_alternatives:
        cands = {k: v for k, v in cands.items() if not k.startswith("  alt")}
    for i, (name, spec) in enumerate(cands.items()):
        spec = dict(spec)
        which, use_ort = spec.pop("src"), spec.pop("ort")
        fp32_modules = spec.pop("fp32_modules")
        qdq = tmp / f"int8_{i}.qdq.onnx"
        quantize_onnx_int8(src[which], qdq, calib.inputs, fp32_modules, False, **spec)
        if use_ort:
            paths[name] = tmp / f"int8_{i}.onnx"
            save_ort_optimized(qdq, paths[name])
        else:
            paths[name] = qdq

    rows = {}
    for name, p in paths.items():
        out = run_onnx(p, ev.inputs, batch_size=32)
        got = task_metrics(tasks, {t.name: out[t.name] for t in tasks}, labels)
        rows[name] = {"drops": stage.metric_drops(r.ref_metrics, got, tasks),
                      "bytes": p.stat().st_size}
        starts = []
        for _ in range(3):
            t1 = time.perf_counter()
            onnx_session(p, 1)
            starts.append((time.perf_counter() - t1) * 1e3)
        rows[name]["start_ms"] = float(np.median(starts))

    # the timed window: the first with the median beat count of --eval (the trimmed graphs
    # compute the slots in use, so the count matters; the eval sets hold 14 at the median)
    counts = ev.inputs["beat_mask"].sum(1)
    at = int(np.argmin(np.abs(counts - np.median(counts))))
    one = {k: np.ascontiguousarray(v[at:at + 1]) for k, v in ev.inputs.items()}
    print(f"# timed window {at} of --eval: {int(counts[at])} beats (median {np.median(counts):g})")
    sessions = {n: onnx_session(p, 1) for n, p in paths.items()}
    for s in sessions.values():
        for _ in range(20):
            s.run(None, one)
    cpu = {n: [] for n in sessions}
    wall = {n: [] for n in sessions}
    order = np.random.default_rng(0)
    items = list(sessions.items())
    for _ in range(args.repeats):
        # a fresh order every round: the session run after another graph is not always the
        # same one (a fixed order favoured some positions by ~5 %, measured)
        for i in order.permutation(len(items)):
            n, s = items[i]
            t1, c1 = time.perf_counter(), time.thread_time()
            s.run(None, one)
            cpu[n].append((time.thread_time() - c1) * 1e3)
            wall[n].append((time.perf_counter() - t1) * 1e3)
    p50 = {n: float(np.median(v)) for n, v in cpu.items()}
    ref = {k: p50[k] for k in (PLAIN, FP32, DENSE)}
    print(f"{'graph':<58}{'MB':>6}{'start':>7}{'CPU p50':>9}{'wall p50':>9}{'x plain':>8}"
          f"{'x fp32':>7}{'x dense':>8}{'worst drop':>11}  task with it; every task's drop")
    for n, row in rows.items():
        d = row["drops"]
        worst = max(d, key=d.get)
        print(f"{n:<58}{row['bytes'] / 1e6:>6.2f}{row['start_ms']:>7.0f}{p50[n]:>9.3f}"
              f"{float(np.median(wall[n])):>9.3f}{ref[PLAIN] / p50[n]:>7.2f}x"
              f"{ref[FP32] / p50[n]:>6.2f}x{ref[DENSE] / p50[n]:>7.2f}x{d[worst]:>+11.4f}  "
              f"{worst}; " + " ".join(f"{t} {v:+.4f}" for t, v in d.items()))
    name = next(k for k in rows if k.endswith(DEFAULT))
    worst = max(rows[name]["drops"].values())
    checks = [("ONNX fp32 all experts", ref[FP32] / p50[name], 1.5),
              ("its plain export", ref[PLAIN] / p50[name], 1.5),
              ("the dense baseline", ref[DENSE] / p50[name], 1.4)]
    print(f"# {DEFAULT}: " + "; ".join(
        f"vs {what} {got:.2f}x (target >= {want}x: {'met' if got >= want else 'MISSED'})"
        for what, got, want in checks)
        + f"; worst metric drop {worst:+.4f} (tolerance {req.tolerance:g}: "
          f"{'met' if worst <= req.tolerance else 'MISSED'})")
    print("# start: session start ms; MB: the file; CPU / wall p50 ms of one window; "
          "x: CPU p50 ratio against that reference")
    print(f"# {DISCLAIMER}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
