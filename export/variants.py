"""The bundle's variants, each written, checked and measured: ONNX fp32 with all experts and
routed, ONNX int8 routed, OpenVINO fp32 (and, asked for, int8) routed, every one with its
parity against torch, task metrics and single-thread latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edge_ecg.data.tasks import TaskSet
from export.acceptance import check_fp32, scales
from export.errors import ExportError
from export.int8_scope import beat_expert_modules, int8_chain_modules
from export.parity import compare, max_abs_diff, run_onnx, run_openvino
from export.timing import openvino_latency, session_latency

if TYPE_CHECKING:
    from export.request import ExportRequest
    from export.routed import Routed

PARITY_BATCHES = (1, 4)      # issue 4: onnxruntime parity at batch 1 and 4


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


def build_variants(req: ExportRequest, tmp: Path, r: Routed, calib: dict, evalx: dict,
                    tasks: TaskSet, labels: dict, step) -> list[Built]:
    """Write every variant under `tmp/variants/<name>/`, with parity and metrics."""
    from edge_ecg.metrics.tasks import task_metrics
    from export.onnx_graph import export_onnx, save_ort_optimized
    from export.openvino_ir import convert_openvino, quantize_openvino_int8
    from export.quantize import quantize_onnx_int8

    dense, routed, ref_out, routed_out = r.dense, r.routed, r.ref_out, r.routed_out
    fp32_modules = tuple(req.fp32_modules) + (
        () if req.beat_experts_int8 else beat_expert_modules(r.routing, tasks))

    root = tmp / "variants"
    built: list[Built] = []

    def finish(b: Built, ref: dict, outputs: dict, fp32: bool, extra: dict | None = None):
        b.outputs = outputs
        b.parity = compare(ref, outputs, tasks)
        if fp32:
            b.parity["max_abs_diff_training_units"] = check_fp32(b.name, ref, outputs, tasks)
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
    # onnxruntime's routed graphs compute the beat slots in use only (export.beat_slots);
    # OpenVINO runs that data-dependent shape slower, so it converts an untrimmed export
    export_onnx(routed, evalx, onnx_routed, trim_slots=req.trim_slots)
    ov_src = onnx_routed
    if "openvino" in req.formats and req.trim_slots:
        ov_src = tmp / "openvino-source" / "model.onnx"
        export_onnx(routed, evalx, ov_src)
    step("onnx")
    expected = list(ref_out)
    for name, path, ref, is_routed in todo:
        by_batch = {}
        outs = None
        for bs in PARITY_BATCHES:
            o = run_onnx(path, evalx, batch_size=bs)
            by_batch[f"batch_{bs}"] = max_abs_diff({t.name: ref[t.name] for t in tasks}, o,
                                                    scales(tasks))
            outs = outs or o
        b = Built(name, "onnxruntime", "fp32", is_routed, f"{name}/model.onnx")
        b.latency_ms = session_latency(path, evalx)
        if "onnx" in req.formats:
            finish(b, ref, outs, True, {"max_abs_diff_by_batch": by_batch})
        else:
            check_fp32(name, ref, outs, tasks)
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
        b.latency_ms = session_latency(dst, evalx)
        finish(b, routed_out, run_onnx(dst, evalx), False, {"quantization": qinfo})
    step("onnx int8")
    if "openvino" in req.formats:
        xml = root / "openvino-fp32-routed" / "model.xml"
        info = convert_openvino(ov_src, xml)
        b = Built("openvino-fp32-routed", "openvino", "fp32", True,
                  "openvino-fp32-routed/model.xml", ("openvino-fp32-routed/model.bin",))
        b.latency_ms = openvino_latency(xml, evalx)
        finish(b, routed_out, run_openvino(xml, evalx, expected=expected), True,
               {"quantization": info, "inference_precision_hint": "f32"})
        if req.quantize == "int8" and "openvino-int8-routed" in req.variants:
            xml = root / "openvino-int8-routed" / "model.xml"
            qinfo = quantize_openvino_int8(ov_src, xml, calib, fp32_modules,
                                           req.progress)
            b = Built("openvino-int8-routed", "openvino", "int8", True,
                      "openvino-int8-routed/model.xml", ("openvino-int8-routed/model.bin",))
            b.latency_ms = openvino_latency(xml, evalx)
            finish(b, routed_out, run_openvino(xml, evalx, expected=expected), False,
                   {"quantization": qinfo, "inference_precision_hint": "f32"})
    step("openvino")
    return built


def select_variants(req: ExportRequest, built: list[Built]) -> list[Built]:
    """The variants the bundle keeps: those `--variants` asks for (every one made by default;
    the `OPT_IN_VARIANTS` are made only when asked for)."""
    keep = [b for b in built if not req.variants or b.name in req.variants]
    missing = [v for v in req.variants if v not in {b.name for b in built}]
    if missing:
        raise ExportError(f"--variants asks for {missing}, the export made "
                          f"{[b.name for b in built]}")
    return keep
