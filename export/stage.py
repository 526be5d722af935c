"""The export stage end to end: checkpoint -> merged -> routed -> ONNX/OpenVINO (fp32, int8) ->
parity and metrics per variant -> REPORT.md, chart and a verified bundle.

`export_bundle(ExportRequest(...))` is what `edge-ecg export` calls; tests call it directly.
This module orchestrates; each concern has its module: `request` (what is asked, checked
first), `loading` (checkpoint and data), `merge`, `routed` (routing measured in torch),
`int8_scope` (what int8 quantizes), `variants` (each variant built, checked and timed),
`acceptance` (fp32 parity, metric tolerance), `timing`, `report`, `provenance` (manifest
fields), `staging` (files, manifest, signature, install). The names re-exported below are the
stage's public face, as they were before the split.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edge_ecg.data.tasks import TaskSet
from edge_ecg.runtime.bundle import Manifest
from export.acceptance import (
    FP32_TOLERANCE,
    LOWER_IS_BETTER,
    gate_metrics,
    metric_drops,
    scales,
)
from export.int8_scope import (
    BEAT_EXPERT_MIN_GATE,
    BEAT_EXPERTS_INT8,
    FP32_MODULES,
    INT8_CHAIN_EXPERTS,
    INT8_CHAINS,
    ORT_OPTIMIZED,
    TRIM_SLOTS,
    WEIGHT_ONLY_MODULES,
    beat_expert_modules,
    int8_chain_modules,
)
from export.loading import load_data, load_model, split_data
from export.parity import n_windows
from export.provenance import manifest_fields, model_version
from export.quantize import MIN_MACS
from export.request import (
    FORMATS,
    OPT_IN_VARIANTS,
    VARIANTS,
    ExportRequest,
    check_request,
)
from export.routed import Routed, route_and_measure, search_rows
from export.routing import ROUTE_HEADS, ROUTE_SEARCH, ROUTE_SHARE
from export.staging import install_bundle, installed, stage_files
from export.timing import StepTimer, torch_latencies
from export.variants import PARITY_BATCHES, Built, build_variants, select_variants

__all__ = [
    "BEAT_EXPERTS_INT8",
    "BEAT_EXPERT_MIN_GATE",
    "FORMATS",
    "FP32_MODULES",
    "FP32_TOLERANCE",
    "INT8_CHAINS",
    "INT8_CHAIN_EXPERTS",
    "LOWER_IS_BETTER",
    "MIN_MACS",
    "OPT_IN_VARIANTS",
    "ORT_OPTIMIZED",
    "PARITY_BATCHES",
    "ROUTE_HEADS",
    "ROUTE_SEARCH",
    "ROUTE_SHARE",
    "TRIM_SLOTS",
    "VARIANTS",
    "WEIGHT_ONLY_MODULES",
    "Built",
    "ExportRequest",
    "Routed",
    "beat_expert_modules",
    "check_request",
    "export_bundle",
    "gate_metrics",
    "int8_chain_modules",
    "load_data",
    "load_model",
    "metric_drops",
    "model_version",
    "route_and_measure",
    "select_variants",
]


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
    steps = StepTimer(total=8, progress=req.progress)
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

    model, merge_report = merge_with_parity(model, evalx, scales(all_tasks))
    steps("merge")

    r = route_and_measure(req, model, calib, evalx, tasks, labels)
    torch_latency = torch_latencies(r, evalx)
    steps("route")

    tmp = Path(tempfile.mkdtemp(prefix="edge-ecg-export-"))
    try:
        built = build_variants(req, tmp, r, calib, evalx, tasks, labels, steps)
        keep = select_variants(req, built)
        drops, over = gate_metrics(req, r, keep, tasks)
        steps("metrics")

        staging = tmp / "bundle"
        default = stage_files(tmp / "variants", staging, keep)
        summary = {
            "model_version": version, "checkpoint": str(req.checkpoint),
            "calib": req.calib, "eval": req.eval_spec or f"held-out half of {req.calib}",
            "n_calib": n_windows(calib), "n_eval": n_windows(evalx), "merge": merge_report,
            "routing": {**r.routing.to_dict(), "search": search_rows(r.search)},
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
    return installed(out, req.sign_key)
