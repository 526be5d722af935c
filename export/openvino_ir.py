"""OpenVINO IR: converted from the ONNX file (fp32), and NNCF post-training int8.

Converting from ONNX, not from torch, keeps one traced graph for every backend (DESIGN.md:
OpenVINO's torch tracing bakes data-dependent branches in). Weights stay fp32 in the fp32 IR
(`compress_to_fp16=False`; `save_model` halves them by default). NNCF int8 with the heads
ignored was the fastest variant measured.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from export.errors import ExportError
from export.onnx_graph import nodes_in_modules
from export.parity import batches, n_windows

OP_TYPES = ("Convolution", "MatMul")   # OpenVINO names of Conv and MatMul/Gemm


def convert_openvino(onnx_path: str | Path, xml_path: str | Path) -> dict:
    """Write the fp32 IR (`.xml` + `.bin`) of an ONNX file."""
    import openvino as ov

    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return {"tool": f"openvino.convert_model {ov.__version__}", "weights": "fp32"}


def quantize_openvino_int8(onnx_path: str | Path, xml_path: str | Path,
                           calib: dict[str, np.ndarray], exclude_modules: tuple[str, ...],
                           progress: bool = True) -> dict:
    """Write the NNCF int8 IR of an ONNX file, the nodes of `exclude_modules` kept fp32."""
    import logging

    import nncf
    import openvino as ov

    nncf.set_log_level(logging.WARNING)     # per-node INFO lines drown the progress bars
    if n_windows(calib) < 1:
        raise ExportError("int8 calibration needs at least one window; pass --calib synth:64")
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(onnx_path))
    # OpenVINO keeps the ONNX node names as friendly names (a Gemm becomes
    # "<name>/WithoutBiases" MatMul + "<name>" Add), so ignore by name with any suffix.
    excluded = nodes_in_modules(onnx_path, exclude_modules)
    if exclude_modules and not excluded:
        raise ExportError(f"no ONNX node belongs to the modules {list(exclude_modules)}")
    patterns = [f"^{re.escape(n)}(/.*)?$" for n in excluded]
    # As for onnxruntime: quantize only the weight-bearing ops. NNCF's default also puts
    # FakeQuantize before pooling, gathers, MVN and elementwise ops; on the trained edge
    # checkpoint that moved the RR output by 715 ms (the gate inputs and the period fold).
    # Activation x activation MatMuls (the gate-weighted sum over experts, attention scores)
    # stay fp32 too: an int8 gate weight moves every task's output.
    ops = model.get_ordered_ops()
    other = sorted({op.get_type_name() for op in ops} - set(OP_TYPES))
    no_weights = [op.get_friendly_name() for op in ops if op.get_type_name() == "MatMul"
                  and not any(_is_constant(i.get_source_output().get_node()) for i in op.inputs())]
    ignored = nncf.IgnoredScope(patterns=patterns, types=other, names=no_weights, validate=False)
    data = nncf.Dataset(list(batches(calib, 1)))
    n = n_windows(calib)
    qmodel = nncf.quantize(model, data, subset_size=n, ignored_scope=ignored,
                           preset=nncf.QuantizationPreset.MIXED)
    ov.save_model(qmodel, str(xml_path), compress_to_fp16=False)
    return {"tool": f"nncf.quantize {nncf.__version__}", "preset": "mixed",
            "calibration_windows": n, "op_types": list(OP_TYPES),
            "fp32_modules": list(exclude_modules),
            "fp32_nodes": len(excluded)}


def _is_constant(node) -> bool:
    """A Constant, possibly behind a Convert (fp16 or int8 weights decompressed at load)."""
    while node.get_type_name() == "Convert":
        node = node.input(0).get_source_output().get_node()
    return node.get_type_name() == "Constant"
