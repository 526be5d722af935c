"""The export stage end to end: checkpoint -> merged -> routed -> ONNX/OpenVINO (fp32, int8) ->
parity and metrics per variant -> REPORT.md, chart and a verified bundle.

`export_bundle(ExportRequest(...))` is what `edge-ecg export` calls; tests call it directly.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_ecg import DISCLAIMER
from edge_ecg.data.tasks import TaskSet
from edge_ecg.errors import BundleError
from edge_ecg.runtime.bundle import (
    Manifest,
    check_integrity,
    sha256_file,
    sign_bundle,
    verify_bundle,
    write_manifest,
)
from edge_ecg.signal.contract import INPUT_NAMES
from export.errors import ExportError, MetricDropError, ParityError
from export.parity import compare, max_abs_diff, n_windows, run_onnx, run_openvino, run_torch
from export.quantize import MIN_MACS

FP32_TOLERANCE = 1e-4        # fp32 engines vs torch, training units (regression / task scale)
PARITY_BATCHES = (1, 4)      # issue 4: onnxruntime parity at batch 1 and 4
FORMATS = ("onnx", "openvino")
# Module path prefixes kept fp32 in int8 variants. Heads: a quantized regression head clips to
# the calibration range. Gates: they pick the experts; a flipped top-k choice costs more than
# int8 saves on a few small Linear layers. Rhythm experts (RR in ms: an 8-bit step of ~8 ms
# lands straight in the RR output), the fusion layers (every task passes through them) and the
# lead embedding: little compute. Measured on the trained edge checkpoint (onnxruntime QDQ, 128
# unseen synthetic windows): heads+gates only: RR MAE 19.9 -> 25.6 ms, max RR diff 96 ms;
# with rhythm+fusion+lead fp32: RR MAE 19.6 ms, max RR diff 11 ms, every metric in tolerance.
FP32_MODULES = ("heads.", "gate_", "rhythm.", "fuse_", "lead_embed")
# Of those, the ones that store int8 weights (fp32 arithmetic, see export.weight_only).
# Gates stay fully fp32: their weights decide the top-k experts.
WEIGHT_ONLY_MODULES = ("heads.", "rhythm.", "fuse_")
# A per-beat task's morphology experts stay fp32 too (`beat_expert_modules`): a beat's class
# rests on a few of its features, and int8 on them moved the rare classes. Measured on the
# bundled checkpoint (ONNX QDQ, held-out fold 0 -- the export's own tolerance check; the rule
# is general, the experts are picked by routing on the calibration windows): beat macro F1
# -0.068 against torch with beat_mlp int8 (and -0.068 with the heads' weights fp32 as well),
# -0.004 with it fp32, 1.27 -> 1.37 MB, 1.69 -> 1.72 ms at batch 1.
BEAT_EXPERT_MIN_GATE = 0.01
# Experts whose convolution stack runs int8 from end to end (export.quantize CHAIN_OP_TYPES:
# ReLUs, residual Adds and pooling quantized too, so no DequantizeLinear -> QuantizeLinear
# between two convolutions), by path and expert name; the routed model's module paths come
# from `int8_chain_modules` (a per-beat task's experts stay fp32 all the same).
INT8_CHAIN_EXPERTS = {"scout": ("cnn", "fold"),
                      "morphology": ("beat_cnn", "beat_dilated", "beat_deviation")}
# Measured on the retrained edge checkpoint (beat_ctx), all six tasks, 12 of 12 experts kept,
# bench/int8_choices.py-style run on 800 held-out windows, 64 calibration windows; per call the
# calling thread's CPU time (the box was shared with a training run, so wall time was
# meaningless), median of 150 interleaved calls, batch 1, one thread; ONNX fp32 all experts 3.94 ms:
#   int8 as before (QDQ file)                      3.44 ms 1.14x  session start 1820 ms
#   int8, onnxruntime's optimised graph saved      3.26 ms 1.21x  session start  655 ms
#   + conv experts chained in int8                 3.24 ms 1.22x  (arrhythmia F1 -0.006, vs -0.002)
#   + the beat task's experts int8 as well         2.92 ms 1.35x  beat macro F1 +0.006 on these
#     800 windows; kept fp32 by default: -0.068 on the held-out fold with the older checkpoint
# and nodes under 1M / 250k MACs left fp32: 1.02-1.10x (slower than quantizing them: each fp32
# island adds a DequantizeLinear/QuantizeLinear pair back). Worst metric drop of each <= 0.006.
INT8_CHAINS = False
ORT_OPTIMIZED = True
LOWER_IS_BETTER = ("mae", "rmse", "mse")
# Sharper routings the export tries before `keep_mass` (export.routing, per_task_mass): each
# task keeps the experts carrying this much of its own gate row. The first (sharpest) whose
# metric drop against all experts, measured in torch on the evaluation windows, stays within
# ROUTE_SHARE of the tolerance is taken; int8 has the rest of it.
ROUTE_SEARCH = (0.8, 0.9, 0.95)
ROUTE_SHARE = 0.5
VARIANTS = ("onnx-fp32", "onnx-fp32-routed", "onnx-int8-routed", "openvino-fp32-routed",
            "openvino-int8-routed")
# Made only when `--variants` names them. OpenVINO int8 (NNCF) on the bundled checkpoint, held-
# out fold: age MAE +4.9 %, potassium F1 -0.019 (over the 0.01 tolerance) and 158 MB peak RSS
# against 72 MB for ONNX int8 (bench/export_variants.py), for no speed gain over ONNX int8.
OPT_IN_VARIANTS = ("openvino-int8-routed",)


@dataclass(frozen=True)
class ExportRequest:
    checkpoint: Path
    out: Path
    calib: str = "synth:64"
    tasks: tuple[str, ...] = ()          # () = every task of the checkpoint
    quantize: str = "int8"               # int8 | none
    formats: tuple[str, ...] = FORMATS
    variants: tuple[str, ...] = ()       # () = every variant made; else only these in the bundle
    keep_mass: float = 0.99
    route_search: tuple[float, ...] = ROUTE_SEARCH   # per-task keep masses tried first
    tolerance: float = 0.01
    allow_metric_drop: bool = False
    eval_spec: str = ""                  # data for metrics; "" = held-out half of the calib data
    seed: int = 0
    progress: bool = True
    overwrite: bool = False
    fp32_modules: tuple[str, ...] = FP32_MODULES
    weight_only_modules: tuple[str, ...] = WEIGHT_ONLY_MODULES
    min_macs: int = MIN_MACS              # smaller Conv/MatMul/Gemm nodes stay fp32 in int8
    int8_chains: bool = INT8_CHAINS       # INT8_CHAIN_EXPERTS' ReLU, Add, pools int8 too
    ort_optimized: bool = ORT_OPTIMIZED   # ship onnxruntime's optimised int8 graph
    command: str = ""                    # the command line that asked for this export (report)
    sign_key: Path | None = None         # Ed25519 private key: sign the manifest (manifest.sig)


@dataclass
class Built:
    """One variant while the bundle is being made."""

    name: str
    backend: str
    precision: str
    routed: bool
    file: str
    extra_files: tuple[str, ...] = ()
    outputs: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    latency_ms: float = float("nan")
    bytes: int = 0

    def manifest_entry(self) -> dict:
        return {"name": self.name, "file": self.file, "backend": self.backend,
                "precision": self.precision, "routed": self.routed,
                "extra_files": list(self.extra_files)}


def load_model(checkpoint: Path):
    """The checkpoint's model (safetensors, weights only), with its LoRA adapters attached
    unmerged when the folder holds peft adapter files (`adapter_config.json`)."""
    from edge_ecg.model.checkpoint import load_checkpoint

    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise BundleError(f"checkpoint {checkpoint} is not a directory "
                          "(model.safetensors + config.json)")
    model = load_checkpoint(checkpoint)
    if (checkpoint / "adapter_config.json").is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(checkpoint))
    return model


def model_version(checkpoint: Path) -> str:
    """Checkpoint folder name + the first 12 hex digits of its weights' sha256."""
    weights = Path(checkpoint) / "model.safetensors"
    digest = sha256_file(weights)[:12] if weights.is_file() else "unknown"
    return f"{Path(checkpoint).name}-{digest}"


def load_data(spec: str, contract, tasks: TaskSet, seed: int, progress: bool):
    from edge_ecg.data.dataset import load_dataset

    return load_dataset(spec, contract, tasks, seed=seed, progress=progress)


def metric_drops(ref: dict, got: dict, tasks: TaskSet) -> dict[str, float]:
    """Per task, how much worse the primary metric got (> 0 worse): absolute for fractions
    (F1, accuracy), relative to the reference for errors (MAE in task units)."""
    drops = {}
    for t in tasks:
        a, b = ref.get(t.name, {}).get(t.metric), got.get(t.name, {}).get(t.metric)
        if a is None or b is None or not np.isfinite(a) or not np.isfinite(b):
            continue
        if t.metric in LOWER_IS_BETTER:
            drops[t.name] = float((b - a) / max(abs(a), 1e-9))
        else:
            drops[t.name] = float(a - b)
    return drops


def _scales(tasks: TaskSet) -> dict[str, float]:
    return {t.name: float(t.scale) for t in tasks if t.kind == "regression"}


def _check_fp32(name: str, ref: dict, got: dict, tasks: TaskSet) -> float:
    diff = max_abs_diff({t.name: ref[t.name] for t in tasks}, got, _scales(tasks))
    if not diff <= FP32_TOLERANCE:
        raise ParityError(
            f"variant {name}: fp32 outputs differ from torch by {diff:.3g} (training units) > "
            f"{FP32_TOLERANCE:g}; the exported graph does not compute the model"
        )
    return diff


def _latency_ms(fn, inputs: dict[str, np.ndarray], repeats: int = 20) -> float:
    """Median wall time (ms) of `fn` on one window, after one warm-up call."""
    one = {k: np.ascontiguousarray(inputs[k][:1]) for k in INPUT_NAMES}
    fn(one)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(one)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def check_request(req: ExportRequest) -> None:
    """Refuse a request the stage cannot carry out, before anything is loaded."""
    out = Path(req.out)
    if out.exists() and any(out.iterdir()) and not req.overwrite:
        raise ExportError(f"output folder {out} exists and is not empty; pass --overwrite or "
                          "another --out")
    bad = [f for f in req.formats if f not in FORMATS]
    if bad or not req.formats:
        raise ExportError(f"--formats takes a list of {FORMATS}, got {list(req.formats)}")
    if req.quantize not in ("int8", "none"):
        raise ExportError(f"--quantize takes int8 or none, got {req.quantize!r}")
    unknown = [v for v in req.variants if v not in VARIANTS]
    if unknown:
        raise ExportError(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    if req.sign_key is not None:
        # a missing or world-readable key fails now, not after minutes of export
        from edge_ecg.runtime.signing import load_private_key

        try:
            load_private_key(req.sign_key)
        except BundleError as exc:
            raise ExportError(f"--sign-key: {exc}") from exc


class _Steps:
    """The stage's progress bar and the wall time of each named step (`timings_s` in the
    report): `steps("merge")` closes the step that ends there."""

    def __init__(self, total: int, progress: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="export", unit="step", disable=not progress)
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, msg: str) -> None:
        now = time.perf_counter()
        self.timings[msg] = round(now - self._last, 2)
        self._last = now
        self.bar.set_postfix_str(msg)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def split_data(req: ExportRequest, contract, all_tasks: TaskSet, data=None, eval_data=None):
    """`(calib_set, eval_set)`: calibration (routing, int8) and evaluation (parity, metrics)
    data; without evaluation data, the calibration data split in halves."""
    if data is None:
        data = load_data(req.calib, contract, all_tasks, req.seed, req.progress)
    if eval_data is None and req.eval_spec:
        eval_data = load_data(req.eval_spec, contract, all_tasks, req.seed + 1, req.progress)
    if eval_data is not None:
        return data, eval_data
    if len(data) >= 8:
        return data.split(val_frac=0.5, seed=req.seed)
    raise ExportError(f"--calib {req.calib} gave {len(data)} windows; at least 8 are needed "
                      "(half calibrates, half measures metrics), e.g. synth:64")


@dataclass
class Routed:
    """The model with all experts (`dense`) and routed to the experts carrying the gate mass
    (`routed`), both for the chosen tasks, with their torch outputs, metrics and cost."""

    routing: object
    dense: object
    routed: object
    ref_out: dict
    routed_out: dict
    ref_metrics: dict
    routed_metrics: dict
    cost: dict
    drop: dict                  # routing's metric drop per task against all experts
    # sharper routings tried: (per-task keep mass, experts kept, worst metric drop)
    search: list = field(default_factory=list)


def route_and_measure(req: ExportRequest, model, calib: dict, evalx: dict, tasks: TaskSet,
                      labels: dict) -> Routed:
    """Route, run both torch models on the evaluation windows, and refuse a routing whose
    metric drop is beyond the tolerance (before the slow conversions)."""
    import torch

    from edge_ecg.model.flops import count_flops, count_params
    from edge_ecg.model.metrics import task_metrics
    from export.routing import measure_usage_per_task, route_from_usage

    names = list(tasks.names)
    per_task = measure_usage_per_task(model, calib, names, progress=req.progress)
    experts = {p: tuple(model.cfg.experts(p)) for p in per_task}
    routing = route_from_usage(per_task, names, req.keep_mass, experts)
    all_keep = {p: list(range(len(routing.usage[p]))) for p in routing.usage}
    dense = model.pruned(all_keep, names).eval()
    ref_out = run_torch(dense, evalx, progress=req.progress, desc="torch fp32")
    ref_metrics = task_metrics(tasks, {t.name: ref_out[t.name] for t in tasks}, labels)

    def measured(rt):
        m = model.pruned({p: list(k) for p, k in rt.keep.items()}, names).eval()
        out = run_torch(m, evalx, progress=req.progress, desc="torch fp32 routed")
        return m, out, task_metrics(tasks, {t.name: out[t.name] for t in tasks}, labels)

    tried = []     # (per-task keep mass, experts kept, worst drop): the report's search line
    for mass in sorted(req.route_search):
        # the sharpest routing first; each distinct one measured, the first within its share
        # of the tolerance taken (int8 needs the rest)
        rt = route_from_usage(per_task, names, mass, experts, per_task_mass=True)
        if rt.n_kept >= routing.n_kept or any(rt.keep == t[3].keep for t in tried):
            continue
        cand = measured(rt)
        worst = max(metric_drops(ref_metrics, cand[2], tasks).values(), default=0.0)
        tried.append((mass, rt.n_kept, round(worst, 4), rt))
        if worst <= ROUTE_SHARE * req.tolerance:
            routing, (routed, routed_out, routed_metrics) = rt, cand
            break
    else:
        routed, routed_out, routed_metrics = measured(routing)
    one = tuple(torch.from_numpy(np.ascontiguousarray(evalx[k][:1])) for k in INPUT_NAMES)
    cost = {
        "all_experts": {"params": count_params(dense), "flops": count_flops(dense, one)},
        "routed": {"params": count_params(routed), "flops": count_flops(routed, one)},
    }
    drop = metric_drops(ref_metrics, routed_metrics, tasks)
    over = {t: round(d, 4) for t, d in drop.items() if d > req.tolerance}
    kept = {p: list(k) for p, k in routing.keep.items()}
    if over and not req.allow_metric_drop:
        # Fail before the (slow) conversions: routing alone already costs too much.
        raise MetricDropError(
            f"routing to the experts {kept} (keep mass {req.keep_mass:g}) "
            f"drops task metrics beyond the tolerance {req.tolerance:g} (MAE relative, "
            f"F1/accuracy absolute): {over}; raise --keep-mass or pass --allow-metric-drop"
        )
    return Routed(routing, dense, routed, ref_out, routed_out, ref_metrics, routed_metrics,
                  cost, drop, [t[:3] for t in tried])


def _search_rows(search: list) -> list[dict]:
    return [{"keep_mass_per_task": m, "experts_kept": n, "worst_drop": w} for m, n, w in search]


def torch_latencies(r: Routed, evalx: dict) -> dict[str, float]:
    """Single-thread median latency (ms) of one window through both torch models."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def torch_fn(m):
        def fn(b):
            with torch.no_grad():
                return m(*(torch.from_numpy(b[k]) for k in INPUT_NAMES))
        return fn

    lat = {"torch-fp32": _latency_ms(torch_fn(r.dense), evalx),
           "torch-fp32-routed": _latency_ms(torch_fn(r.routed), evalx)}
    torch.set_num_threads(threads)
    return lat


def select_variants(req: ExportRequest, built: list[Built]) -> list[Built]:
    """The variants the bundle keeps: those `--variants` asks for (every one made by default;
    the `OPT_IN_VARIANTS` are made only when asked for)."""
    keep = [b for b in built if not req.variants or b.name in req.variants]
    missing = [v for v in req.variants if v not in {b.name for b in built}]
    if missing:
        raise ExportError(f"--variants asks for {missing}, the export made "
                          f"{[b.name for b in built]}")
    return keep


def gate_metrics(req: ExportRequest, r: Routed, keep: list[Built],
                 tasks: TaskSet) -> tuple[dict, dict]:
    """`(drops, over)`: routing and every kept variant against torch fp32 with all experts;
    refuses drops beyond the tolerance unless `allow_metric_drop`."""
    drops = {"torch-fp32-routed": r.drop}
    for b in keep:
        drops[b.name] = metric_drops(r.ref_metrics, b.metrics, tasks)
    over = {v: {t: round(d, 4) for t, d in ds.items() if d > req.tolerance}
            for v, ds in drops.items()}
    over = {v: d for v, d in over.items() if d}
    if over and not req.allow_metric_drop:
        raise MetricDropError(
            f"task metrics dropped beyond the tolerance {req.tolerance:g} (MAE relative, "
            f"F1/accuracy absolute) against torch fp32 with all experts: {over}; raise "
            "--keep-mass, use more --calib windows, or pass --allow-metric-drop"
        )
    return drops, over


def stage_files(variants_dir: Path, staging: Path, keep: list[Built]) -> str:
    """Copy the kept variants' files into `staging` (counting their bytes); returns the
    default variant (int8 routed first, then fp32)."""
    staging.mkdir()
    for b in keep:
        for rel in (b.file, *b.extra_files):
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(variants_dir / rel, staging / rel)
            b.bytes += (staging / rel).stat().st_size
    return next((n for n in ("onnx-int8-routed", "openvino-int8-routed",
                             "onnx-fp32-routed", "onnx-fp32")
                 if n in {b.name for b in keep}), keep[0].name)


def manifest_fields(req: ExportRequest, contract, tasks: TaskSet, keep: list[Built],
                    r: Routed, summary: dict, over: dict) -> dict:
    """The bundle manifest's fields (edge_ecg.runtime.bundle writes and hashes them)."""
    notes = DISCLAIMER
    if over:
        notes += f" Exported with --allow-metric-drop; over tolerance: {json.dumps(over)}."
    return {
        "model_version": summary["model_version"],
        "signal": contract.to_dict(),
        "tasks": [{**t.to_dict(), "output": t.name,
                   **_trained_on(req.checkpoint, t.name)} for t in tasks],
        "inputs": list(INPUT_NAMES),
        "variants": {b.name: b.manifest_entry() for b in keep},
        "default_variant": summary["default_variant"],
        "routing": {**r.routing.to_dict(), "cost": r.cost, "merge": summary["merge"],
                    "search": summary["routing"]["search"]},
        "quantization": {b.name: b.parity.get("quantization", {"precision": b.precision})
                         for b in keep},
        "parity": {b.name: {k: v for k, v in b.parity.items() if k != "quantization"}
                   for b in keep},
        "metrics": {"torch-fp32": r.ref_metrics, "torch-fp32-routed": r.routed_metrics,
                    **{b.name: b.metrics for b in keep},
                    "eval_windows": summary["n_eval"], "eval_data": summary["eval"]},
        "training_data": _training_data(req.checkpoint),
        "notes": notes,
    }


def install_bundle(staging: Path, out: Path, fields: dict, sign_key: Path | None = None) -> None:
    """Write and verify the manifest in `staging` (the check the runtime will make), sign it
    with `sign_key` where given, then move the bundle to `out`, replacing what was there."""
    write_manifest(staging, fields)
    if sign_key is not None:
        sign_bundle(staging, sign_key)      # checks the files, signs, verifies with that key
    else:
        check_integrity(staging)            # unsigned: `edge-ecg bundle sign` it before use
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), out)


def export_bundle(req: ExportRequest, model=None, data=None, eval_data=None) -> Manifest:
    """Make the bundle `req.out`; raise an `ExportError` (nothing left at `out`) on failure.

    `model` (an ECGMoE, possibly with unmerged adapters) and `data` / `eval_data`
    (WindowDatasets) replace loading them from `req.checkpoint` / `req.calib` / `req.eval_spec`
    (tests pass a tiny model built in memory). The steps: data, merge LoRA, route, the
    variants (ONNX, int8, OpenVINO), the metric gate, the bundle.
    """
    import torch

    from export.merge import merge_with_parity
    from export.onnx_graph import OPSET
    from export.report import write_chart, write_report

    check_request(req)
    out = Path(req.out)
    steps = _Steps(total=8, progress=req.progress)
    torch.manual_seed(req.seed)
    version = model_version(req.checkpoint)
    model = (model if model is not None else load_model(req.checkpoint)).eval()
    all_tasks = TaskSet(tuple(model.cfg.tasks))
    tasks = all_tasks.select(list(req.tasks)) if req.tasks else all_tasks
    contract = model.cfg.contract
    calib_set, eval_set = split_data(req, contract, all_tasks, data, eval_data)
    calib, evalx = calib_set.inputs, eval_set.inputs
    labels = {t.name: eval_set.labels[t.name] for t in tasks if t.name in eval_set.labels}
    steps("data")

    model, merge_report = merge_with_parity(model, evalx, _scales(all_tasks))
    steps("merge")

    r = route_and_measure(req, model, calib, evalx, tasks, labels)
    torch_latency = torch_latencies(r, evalx)
    steps("route")

    tmp = Path(tempfile.mkdtemp(prefix="edge-ecg-export-"))
    try:
        built = _build_variants(req, tmp, r, calib, evalx, tasks, labels, steps)
        keep = select_variants(req, built)
        drops, over = gate_metrics(req, r, keep, tasks)
        steps("metrics")

        staging = tmp / "bundle"
        default = stage_files(tmp / "variants", staging, keep)
        summary = {
            "model_version": version, "checkpoint": str(req.checkpoint),
            "calib": req.calib, "eval": req.eval_spec or f"held-out half of {req.calib}",
            "n_calib": n_windows(calib), "n_eval": n_windows(evalx), "merge": merge_report,
            "routing": {**r.routing.to_dict(), "search": _search_rows(r.search)},
            "cost": r.cost, "tolerance": req.tolerance,
            "reference_metrics": r.ref_metrics, "routed_metrics": r.routed_metrics,
            "drops": drops, "over_tolerance": over, "torch_latency_ms": torch_latency,
            "default_variant": default, "opset": OPSET, "timings_s": steps.timings,
            "command": req.command,
        }
        write_chart(staging / "chart.png", keep, summary)
        write_report(staging / "REPORT.md", keep, summary, tasks)
        install_bundle(staging, out, manifest_fields(req, contract, tasks, keep, r, summary,
                                                     over), req.sign_key)
        steps("bundle")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        steps.close()
    return _installed(out, req.sign_key)


def _installed(out: Path, sign_key: Path | None) -> Manifest:
    """The bundle at `out` checked again after the move (it may have been copied across file
    systems): its files, and its signature by `sign_key` where one was asked for."""
    if sign_key is None:
        return check_integrity(out)[0]
    from edge_ecg.runtime.signing import TrustPolicy, public_key_of

    pinned = TrustPolicy((public_key_of(sign_key),), source=f"the signing key {sign_key}")
    return verify_bundle(out, trust=pinned)[0]


def _trained_on(checkpoint: Path, task: str) -> dict:
    """`{"trained_on": "real" | "synthetic" | "real+synthetic"}` for a task, from the
    databases its labels came from (metrics.json `task_training_data`); {} where unknown.
    The runtime repeats it beside the task's output, so a synthetic-only output says so."""
    try:
        doc = json.loads((Path(checkpoint) / "metrics.json").read_text())
        by = doc.get("task_training_data", {}).get(task) if isinstance(doc, dict) else None
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    if not isinstance(by, dict):
        return {}
    from edge_ecg.data.dataset import provenance_kind

    kind = provenance_kind(by)
    return {"trained_on": kind} if kind else {}


def _training_data(checkpoint: Path) -> str:
    """"synthetic" unless the checkpoint's metrics.json names its training data otherwise."""
    p = Path(checkpoint) / "metrics.json"
    try:
        doc = json.loads(p.read_text())
        value = doc.get("training_data", "synthetic") if isinstance(doc, dict) else "synthetic"
        return value if isinstance(value, str) else "synthetic"
    except (OSError, json.JSONDecodeError):
        return "synthetic"


def beat_expert_modules(routing, tasks: TaskSet) -> tuple[str, ...]:
    """Module prefixes, in the routed model, of the morphology experts a per-beat task reads
    (at least `BEAT_EXPERT_MIN_GATE` of its mean gate row on the calibration windows)."""
    rows = routing.per_task.get("morphology", {})
    kept = routing.keep.get("morphology", ())
    out: list[str] = []
    for t in tasks:
        row = rows.get(t.name) if t.per_beat else None
        if row is None:
            continue
        for new, old in enumerate(kept):          # the routed model renumbers its experts
            name = f"morphology.{new}."
            if row[old] >= BEAT_EXPERT_MIN_GATE and name not in out:
                out.append(name)
    return tuple(out)


def int8_chain_modules(model_cfg, experts: dict = INT8_CHAIN_EXPERTS) -> tuple[str, ...]:
    """Module prefixes, in the (routed) model, of the experts named in `experts`."""
    module = {"scout": "scouts", "morphology": "morphology", "rhythm": "rhythm"}
    out = []
    for path, names in experts.items():
        if path == "scout" or model_cfg.use_period:
            out += [f"{module[path]}.{i}." for i, n in enumerate(model_cfg.experts(path))
                    if n in names]
    return tuple(out)


def _build_variants(req: ExportRequest, tmp: Path, r: Routed, calib: dict, evalx: dict,
                    tasks: TaskSet, labels: dict, step) -> list[Built]:
    """Write every variant under `tmp/variants/<name>/`, with parity and metrics."""
    from edge_ecg.model.metrics import task_metrics
    from export.onnx_graph import export_onnx, save_ort_optimized
    from export.openvino_ir import convert_openvino, quantize_openvino_int8
    from export.quantize import quantize_onnx_int8

    dense, routed, ref_out, routed_out = r.dense, r.routed, r.ref_out, r.routed_out
    fp32_modules = tuple(req.fp32_modules) + beat_expert_modules(r.routing, tasks)

    root = tmp / "variants"
    built: list[Built] = []

    def finish(b: Built, ref: dict, outputs: dict, fp32: bool, extra: dict | None = None):
        b.outputs = outputs
        b.parity = compare(ref, outputs, tasks)
        if fp32:
            b.parity["max_abs_diff_training_units"] = _check_fp32(b.name, ref, outputs, tasks)
        if extra:
            b.parity.update(extra)
        b.metrics = task_metrics(tasks, {t.name: outputs[t.name] for t in tasks}, labels)
        built.append(b)

    # ONNX fp32: all experts, and routed (the source of every routed variant).
    onnx_full = root / "onnx-fp32" / "model.onnx"
    onnx_routed = root / "onnx-fp32-routed" / "model.onnx"
    # The all-experts graph is exported only when the bundle keeps it (an export takes ~30 s).
    full_wanted = "onnx" in req.formats and (not req.variants or "onnx-fp32" in req.variants)
    todo = [("onnx-fp32-routed", onnx_routed, routed_out, True)]
    if full_wanted:
        export_onnx(dense, evalx, onnx_full)
        todo.insert(0, ("onnx-fp32", onnx_full, ref_out, False))
    export_onnx(routed, evalx, onnx_routed)
    step("onnx")
    expected = list(ref_out)
    for name, path, ref, is_routed in todo:
        by_batch = {}
        outs = None
        for bs in PARITY_BATCHES:
            o = run_onnx(path, evalx, batch_size=bs)
            by_batch[f"batch_{bs}"] = max_abs_diff({t.name: ref[t.name] for t in tasks}, o,
                                                    _scales(tasks))
            outs = outs or o
        b = Built(name, "onnxruntime", "fp32", is_routed, f"{name}/model.onnx")
        b.latency_ms = _session_latency(path, evalx)
        if "onnx" in req.formats:
            finish(b, ref, outs, True, {"max_abs_diff_by_batch": by_batch})
        else:
            _check_fp32(name, ref, outs, tasks)
    if req.quantize == "int8" and "onnx" in req.formats:
        dst = root / "onnx-int8-routed" / "model.onnx"
        dst.parent.mkdir(parents=True, exist_ok=True)
        chain = int8_chain_modules(routed.cfg) if req.int8_chains else ()
        qdq = dst.with_name("qdq.onnx") if req.ort_optimized else dst
        qinfo = quantize_onnx_int8(onnx_routed, qdq, calib, fp32_modules, req.progress,
                                   req.weight_only_modules, min_macs=req.min_macs,
                                   chain_modules=chain)
        if req.ort_optimized:
            # the bundle ships the graph onnxruntime makes of the QDQ file (QLinear* kernels,
            # fused activations); parity and metrics below are measured on that file
            qinfo.update(save_ort_optimized(qdq, dst))
            qdq.unlink()
        b = Built("onnx-int8-routed", "onnxruntime", "int8", True, "onnx-int8-routed/model.onnx")
        b.latency_ms = _session_latency(dst, evalx)
        finish(b, routed_out, run_onnx(dst, evalx), False, {"quantization": qinfo})
    step("onnx int8")
    if "openvino" in req.formats:
        xml = root / "openvino-fp32-routed" / "model.xml"
        info = convert_openvino(onnx_routed, xml)
        b = Built("openvino-fp32-routed", "openvino", "fp32", True,
                  "openvino-fp32-routed/model.xml", ("openvino-fp32-routed/model.bin",))
        b.latency_ms = _openvino_latency(xml, evalx)
        finish(b, routed_out, run_openvino(xml, evalx, expected=expected), True,
               {"quantization": info, "inference_precision_hint": "f32"})
        if req.quantize == "int8" and "openvino-int8-routed" in req.variants:
            xml = root / "openvino-int8-routed" / "model.xml"
            qinfo = quantize_openvino_int8(onnx_routed, xml, calib, fp32_modules,
                                           req.progress)
            b = Built("openvino-int8-routed", "openvino", "int8", True,
                      "openvino-int8-routed/model.xml", ("openvino-int8-routed/model.bin",))
            b.latency_ms = _openvino_latency(xml, evalx)
            finish(b, routed_out, run_openvino(xml, evalx, expected=expected), False,
                   {"quantization": qinfo, "inference_precision_hint": "f32"})
    step("openvino")
    return built


def _session_latency(path: Path, inputs: dict[str, np.ndarray]) -> float:
    from edge_ecg.runtime.sessions import onnx_session

    sess = onnx_session(path, threads=1)
    return _latency_ms(lambda b: sess.run(None, b), inputs)


def _openvino_latency(xml: Path, inputs: dict[str, np.ndarray]) -> float:
    from edge_ecg.runtime.sessions import openvino_compiled

    req = openvino_compiled(xml, threads=1, precision="f32", batch=1).create_infer_request()
    return _latency_ms(lambda b: req.infer(b), inputs)

