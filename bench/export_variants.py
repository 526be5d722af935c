"""Export benchmark: the bundled model's deployment variants side by side, in one run.

    python bench/export_variants.py                               # default checkpoint + bundle
    python bench/export_variants.py --bundle DIR --checkpoint DIR --data synth:256 --repeats 300

Each variant runs in its own child process (batch 1, one thread, one window of `--data`: the
first with its median beat count, or `--timed-beats`, as the routed onnxruntime graphs compute
the beat slots in use), so its peak RSS is that of a process running only it (VmHWM, getrusage fallback; a torch
child pays for importing torch, as a device would). Variants:

- torch eager fp32, all experts (the checkpoint, as trained)
- ONNX fp32, all experts (bundle variant `onnx-fp32`)
- ONNX int8 routed (bundle `onnx-int8-routed`, onnxruntime static QDQ)
- OpenVINO int8 routed (bundle `openvino-int8-routed`, NNCF; static batch 1, f32 hint for
  the layers left in float)
- dense multi-task baseline: the same weights and size with every expert weighted by a soft
  gate (top-k = all experts: no routing, no sparsity), exported to ONNX fp32 in this run.

Deployments (`--deployments`): a device that needs fewer tasks gets a bundle routed for them
(`edge-ecg export --tasks ...`), which drops the experts those tasks' gates do not use. For each
deployment this run exports its ONNX fp32 (all experts, the same task heads) and its ONNX int8
routed variant with the export stage itself, and times both beside the rows above.

Task metrics come from running each variant (in this process) on `--data`. Targets (issue 4):
routed int8 >= 3x faster than torch eager and >= 1.5x faster than ONNX fp32 all experts,
>= 3x smaller than fp32, metrics within tolerance. The ECG-MoE paper claims 40 % faster
inference and 35 % less memory than multi-task baselines: the last lines say where we stand.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from profiles.machine import this_machine

ASSETS = REPO / "edge_ecg" / "assets"


def peak_rss_mb() -> float:
    """Peak resident set of this process. VmHWM, not getrusage's ru_maxrss: the latter survives
    exec, so a child forked from a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- child: run one variant only -------------------------------------------------------------
def child(kind: str, path: str, window: str, repeats: int, warmup: int) -> None:
    """Load one model, time `repeats` batch-1 calls, print JSON with p50/p99 and peak RSS."""
    data = dict(np.load(window))
    if kind == "torch":
        import torch

        torch.set_num_threads(1)
        from edge_ecg.model.checkpoint import load_checkpoint
        from edge_ecg.signal.contract import INPUT_NAMES

        model = load_checkpoint(path).eval()
        args = [torch.from_numpy(data[k]) for k in INPUT_NAMES]

        def call():
            with torch.no_grad():
                model(*args)
    elif kind == "onnx":
        from edge_ecg.runtime.sessions import onnx_session

        sess = onnx_session(path, threads=1)

        def call():
            sess.run(None, data)
    elif kind == "openvino":
        from edge_ecg.runtime.sessions import openvino_compiled

        req = openvino_compiled(path, threads=1, precision="f32", batch=1).create_infer_request()

        def call():
            req.infer(data)
    else:
        raise SystemExit(f"unknown kind {kind}")
    for _ in range(warmup):
        call()
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        call()
        times.append((time.perf_counter() - t0) * 1e3)
        # one intra-op thread runs on this (the calling) thread: its CPU time is what the
        # model costs, also on a shared box where wall time counts the waits for a core
        cpu.append((time.thread_time() - c0) * 1e3)
    rss_mb = peak_rss_mb()
    print(json.dumps({"times_ms": times, "cpu_ms": cpu, "rss_mb": rss_mb}))


def run_child(kind: str, path: Path, window: Path, repeats: int, warmup: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--path", str(path),
           "--window", str(window), "--repeats", str(repeats), "--warmup", str(warmup)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"child {kind} {path} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- parent ----------------------------------------------------------------------------------
def dense_baseline(model):
    """Same weights, same size, no routing: every gate a soft softmax over all its experts."""
    from dataclasses import replace

    from edge_ecg.model.moe import ECGMoE

    cfg = model.cfg
    top_k = tuple(len(cfg.experts(p)) for p in ("scout", "morphology", "rhythm"))
    dense = ECGMoE(replace(cfg, top_k=top_k), load_external=False)
    dense.load_state_dict(model.state_dict())
    return dense.eval()


# A rhythm monitor, a potassium screen (dialysis clinic), heart rate + rhythm at the bedside.
DEPLOYMENTS = "arrhythmia;potassium;rr_interval,arrhythmia"


def export_deployment(checkpoint: Path, tasks: list[str], calib: str, out: Path,
                      data=None, eval_data=None):
    """The export stage's own ONNX fp32 (all experts) and int8 routed variants for `tasks`
    (`data` / `eval_data`: the calibration and evaluation sets, loaded once for every
    deployment; without `eval_data`, the held-out half of the calibration windows). Written
    whatever the metric gate says: the table shows the drop the gate measured."""
    from export.stage import ExportRequest, export_bundle

    req = ExportRequest(checkpoint=checkpoint, out=out, calib=calib, tasks=tuple(tasks),
                        formats=("onnx",), variants=("onnx-fp32", "onnx-int8-routed"),
                        progress=False, overwrite=True, allow_metric_drop=True)
    return export_bundle(req, data=data, eval_data=eval_data)


def files_bytes(bundle: Path, m, variant: str) -> int:
    v = m.variants[variant]
    return sum(m.files[f]["bytes"] for f in (v["file"], *v.get("extra_files", ())))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=ASSETS / "default_bundle")
    ap.add_argument("--checkpoint", type=Path, default=ASSETS / "default_checkpoint")
    # 256 windows: one flipped decision moves an F1 by ~0.005, under the 0.01 tolerance (with 48
    # a single window moved it by 0.02, so the tolerance could not be resolved at all).
    ap.add_argument("--data", default="synth:256?seed=101", help="windows for task metrics")
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--timed-beats", type=int, default=0,
                    help="time the first window of --data with this many beats, or the nearest "
                         "count (default 0: its median count); the routed onnxruntime graphs "
                         "compute the beat slots in use, so a fast heart costs more")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3,
                    help="child runs per variant, interleaved across variants")
    ap.add_argument("--deployments", default=DEPLOYMENTS,
                    help="';'-separated task lists, each exported routed for just those tasks "
                         f"(default {DEPLOYMENTS!r}; '' for none)")
    ap.add_argument("--deploy-eval", default="",
                    help="evaluation data of the deployment exports (their metric gate, "
                         "e.g. the checkpoint's validation patients, recipe:validation?subjects="
                         "CHECKPOINT; never a test fold); empty = the held-out half of --calib")
    ap.add_argument("--calib", default="synth:64?seed=500",
                    help="calibration windows for the deployment exports (routing and int8)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--window", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.path, args.window, args.repeats, args.warmup)
        return 0

    from edge_ecg import DISCLAIMER
    from edge_ecg.data.dataset import load_dataset
    from edge_ecg.data.tasks import TaskSet
    from edge_ecg.metrics.tasks import task_metrics
    from edge_ecg.model.checkpoint import load_checkpoint
    from edge_ecg.runtime.bundle import load_bundle
    from export.onnx_graph import export_onnx
    from export.parity import run_onnx, run_openvino, run_torch
    from export.stage import metric_drops

    m = load_bundle(args.bundle)
    model = load_checkpoint(args.checkpoint).eval()
    tasks = TaskSet(tuple(model.cfg.tasks)).select([t["name"] for t in m.tasks])
    data = load_dataset(args.data, model.cfg.contract, TaskSet(tuple(model.cfg.tasks)), seed=7,
                        progress=False)
    labels = {t.name: data.labels[t.name] for t in tasks}
    print(f"# edge-ecg export bench: {this_machine().summary()}; CPU ms = the calling thread's CPU "
          "time per call (p50), robust to a shared machine")
    print(f"# bundle {args.bundle} ({m.model_version}); metrics on {args.data} "
          f"({len(data)} windows); latency: batch 1, 1 thread, {args.repeats} runs per variant "
          f"in {args.rounds} interleaved rounds, each run in its own process")
    tmp = Path(tempfile.mkdtemp(prefix="edge-ecg-bench-"))
    window = tmp / "window.npz"
    # the timed window: the first with the median beat count of --data, or --timed-beats (the
    # routed onnxruntime graphs compute the beat slots in use, export.beat_slots, so the count
    # matters)
    counts = data.inputs["beat_mask"].sum(1)
    at = int(np.argmin(np.abs(counts - (args.timed_beats or np.median(counts)))))
    np.savez(window, **{k: np.ascontiguousarray(v[at:at + 1]) for k, v in data.inputs.items()})
    print(f"# timed window: {at} of --data, {int(counts[at])} beats (median "
          f"{np.median(counts):g}, {int(counts.min())}-{int(counts.max())})")
    dense = dense_baseline(model)
    dense_onnx = tmp / "dense.onnx"
    export_onnx(dense, data.inputs, dense_onnx)

    rows = []   # name, kind, path, bytes, outputs

    def add(name, kind, path, nbytes, outputs):
        rows.append({"name": name, "kind": kind, "path": path, "bytes": nbytes,
                     "metrics": task_metrics(tasks, outputs, labels)})

    add("torch eager fp32 (all experts)", "torch", args.checkpoint,
        (args.checkpoint / "model.safetensors").stat().st_size,
        run_torch(model, data.inputs, progress=False))
    wanted = [("onnx-fp32", "ONNX fp32 (all experts)"),
              ("onnx-int8-routed", "ONNX int8 routed"),
              ("openvino-int8-routed", "OpenVINO int8 routed"),
              ("openvino-fp32-routed", "OpenVINO fp32 routed")]
    for variant, label in wanted:
        if variant not in m.variants:
            print(f"# bundle lacks {variant}: skipped")
            continue
        v = m.variants[variant]
        path = args.bundle / v["file"]
        if v["backend"] == "onnxruntime":
            out, kind = run_onnx(path, data.inputs), "onnx"
        else:
            out, kind = run_openvino(path, data.inputs, expected=[t.name for t in tasks]), "openvino"
        add(label, kind, path, files_bytes(args.bundle, m, variant), out)
    add("dense multi-task baseline fp32 (ONNX)", "onnx", dense_onnx, dense_onnx.stat().st_size,
        run_onnx(dense_onnx, data.inputs))

    deployments = []   # tasks, manifest, fp32 row, int8 row
    specs = list(filter(None, (d.strip() for d in args.deployments.split(";"))))
    dep_sets = ()
    if specs:          # calibration (and evaluation) windows loaded once for every deployment
        all_tasks = TaskSet(tuple(model.cfg.tasks))
        dep_sets = (load_dataset(args.calib, model.cfg.contract, all_tasks, seed=0,
                                 progress=False),
                    load_dataset(args.deploy_eval, model.cfg.contract, all_tasks, seed=1,
                                 progress=False) if args.deploy_eval else None)
    for spec in specs:
        names = [t.strip() for t in spec.split(",") if t.strip()]
        print(f"# exporting the deployment {','.join(names)} ...", flush=True)
        dep_tasks = TaskSet(tuple(model.cfg.tasks)).select(names)
        dep_labels = {t.name: data.labels[t.name] for t in dep_tasks}
        dep_dir = tmp / "-".join(names)
        dm = export_deployment(args.checkpoint, names, args.calib, dep_dir, *dep_sets)
        pair = []
        for variant in ("onnx-fp32", "onnx-int8-routed"):
            path = dep_dir / dm.variants[variant]["file"]
            out = run_onnx(path, data.inputs)
            pair.append({"name": f"{','.join(names)} {variant}", "kind": "onnx", "path": path,
                         "bytes": files_bytes(dep_dir, dm, variant),
                         "metrics": task_metrics(dep_tasks, out, dep_labels)})
        deployments.append((dep_tasks, dm, *pair))

    # Rounds, variants interleaved: on a shared machine, load drifts; every variant sees it.
    per_round = max(1, args.repeats // args.rounds)
    timed = rows + [r for d in deployments for r in d[2:]]
    for r in timed:
        r["times_ms"], r["cpu_ms"], r["rss_mb"] = [], [], 0.0
    for _ in range(args.rounds):
        for r in timed:
            res = run_child(r["kind"], r["path"], window, per_round, args.warmup)
            r["times_ms"] += res["times_ms"]
            r["cpu_ms"] += res["cpu_ms"]
            r["rss_mb"] = max(r["rss_mb"], res["rss_mb"])
    for r in timed:
        r["p50_ms"] = float(np.percentile(r["times_ms"], 50))
        r["p99_ms"] = float(np.percentile(r["times_ms"], 99))
        r["cpu_p50_ms"] = float(np.percentile(r["cpu_ms"], 50))

    ref = rows[0]
    head = (f"{'variant':<40}{'size MB':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms':>9}{'RSS MB':>9}"
            f"{'x torch':>9}  metrics (" + ", ".join(f"{t.name} {t.metric}" for t in tasks) + ")")
    print(head)
    for r in rows:
        # a task without labels in --data (e.g. potassium on real records) has no metric
        mets = ", ".join(f"{r['metrics'][t.name][t.metric]:.4g}"
                         if t.metric in r["metrics"].get(t.name, {}) else "-" for t in tasks)
        print(f"{r['name']:<40}{r['bytes'] / 1e6:>9.2f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
              f"{r['cpu_p50_ms']:>9.2f}{r['rss_mb']:>9.1f}{ref['p50_ms'] / r['p50_ms']:>9.2f}  {mets}")

    by = {r["name"]: r for r in rows}
    full = by.get("ONNX fp32 (all experts)")
    dense_r = by["dense multi-task baseline fp32 (ONNX)"]
    tol = 0.01
    print()
    for name in ("ONNX int8 routed", "OpenVINO int8 routed"):
        r = by.get(name)
        if r is None:
            continue
        fp32_bytes = full["bytes"] if full else ref["bytes"]
        drops = metric_drops(ref["metrics"], r["metrics"], tasks)
        worst = max(drops.values()) if drops else 0.0
        checks = [
            ("vs torch eager", ref["p50_ms"] / r["p50_ms"], 3.0),
            ("vs ONNX fp32 all experts", (full["p50_ms"] / r["p50_ms"]) if full else float("nan"), 1.5),
            ("in CPU time", (full["cpu_p50_ms"] / r["cpu_p50_ms"]) if full else float("nan"), 1.5),
            ("smaller than fp32", fp32_bytes / r["bytes"], 3.0),
        ]
        parts = [f"{what} {got:.2f}x (target >= {want}x: {'met' if got >= want else 'MISSED'})"
                 for what, got, want in checks]
        parts.append(f"worst metric drop vs torch {worst:+.4f} (tolerance {tol}: "
                     f"{'met' if worst <= tol else 'MISSED'})")
        print(f"{name}: " + "; ".join(parts))
        faster = 1.0 - r["p50_ms"] / dense_r["p50_ms"]
        leaner = 1.0 - r["rss_mb"] / dense_r["rss_mb"]
        print(f"  paper claim (40% faster, 35% less memory than multi-task baselines): "
              f"{name} vs dense baseline: {100 * faster:.0f}% faster, {100 * leaner:.0f}% less "
              f"peak RSS")
    if full:
        faster = 1.0 - full["p50_ms"] / dense_r["p50_ms"]
        print("  (the dense baseline reuses the checkpoint's weights with a soft gate: its "
              "metrics are not those of a separately trained dense model)")
        print(f"  (routing alone at fp32 is not in the bundle; ONNX fp32 all experts with top-k "
              f"gating vs dense: {100 * faster:.0f}% faster)")
    if deployments:
        print_deployments(deployments, full, tol)
    print(f"# {DISCLAIMER}")
    return 0


def print_deployments(deployments, full_all_tasks, tol) -> None:
    """One line per deployment: what routing kept, and the routed int8 model against the same
    tasks' ONNX fp32 with all experts (the issue's comparison) and the all-task bundle's."""
    from export.stage import metric_drops

    print()
    print("Deployments: routed for the tasks each names (ONNX int8 routed vs ONNX fp32 with all "
          "experts and the same task heads; 'vs bundle' = vs the all-task ONNX fp32 above)")
    print(f"{'tasks':<24}{'experts kept s/m/r':>20}{'FLOPs':>7}{'size MB':>9}{'fp32 ms':>9}"
          f"{'int8 ms':>9}{'speed-up':>10}{'vs bundle':>11}{'worst drop':>12}"
          f"{'gate drop':>11}")
    for dep_tasks, dm, fp32, int8 in deployments:
        routing = dm.routing
        paths = [routing["paths"][p] for p in ("scout", "morphology", "rhythm")
                 if p in routing["paths"]]
        kept = (f"{'/'.join(str(len(d['kept'])) for d in paths)} of "
                f"{'/'.join(str(d['total']) for d in paths)}")
        flops = routing["cost"]["routed"]["flops"] / routing["cost"]["all_experts"]["flops"]
        speed = fp32["p50_ms"] / int8["p50_ms"]
        vs_bundle = (full_all_tasks["p50_ms"] / int8["p50_ms"]) if full_all_tasks else float("nan")
        worst = max(metric_drops(fp32["metrics"], int8["metrics"], dep_tasks).values(),
                    default=float("nan"))
        # the export's own metric gate: int8 routed against torch fp32 with all experts on
        # its evaluation windows (--deploy-eval, or the held-out half of --calib)
        gate = max(metric_drops(dm.metrics["torch-fp32"], dm.metrics["onnx-int8-routed"],
                                dep_tasks).values(), default=float("nan"))
        verdict = "met" if speed >= 1.5 else "MISSED"
        print(f"{','.join(dep_tasks.names):<24}{kept:>20}{flops:>7.2f}"
              f"{int8['bytes'] / 1e6:>9.2f}{fp32['p50_ms']:>9.2f}{int8['p50_ms']:>9.2f}"
              f"{speed:>9.2f}x{vs_bundle:>10.2f}x{worst:>+12.4f}{gate:>+11.4f}  (>= 1.5x: "
              f"{verdict}; drop tolerance {tol}; gate on {dm.metrics['eval_windows']} windows)")


if __name__ == "__main__":
    sys.exit(main())
