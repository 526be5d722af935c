"""ONNX Runtime and OpenVINO models opened and their outputs named: the one place that does
it, for the runtime's backends (edge_ecg.runtime.backends) and the export stage's parity
checks (export.parity), so what the export measured is what the device runs.

Both engines on the CPU, single stream: onnxruntime sequential with every graph optimisation
(its defaults, set explicitly), OpenVINO with an explicit precision hint (`f32` keeps CPUs with
bf16 from running fp32 graphs in bf16, which breaks fp32 parity; DESIGN.md, measured).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def onnx_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session of the ONNX file at `path`, `threads` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_input_names(sess) -> list[str]:
    return [i.name for i in sess.get_inputs()]


def onnx_output_names(sess) -> list[str]:
    return [o.name for o in sess.get_outputs()]


def openvino_compiled(xml: str | Path, threads: int = 1, precision: str = "f32",
                      batch: int | None = None, latency_hint: bool = False):
    """An OpenVINO CPU model of the IR (or ONNX file) at `xml`.

    `batch` fixes the batch axis (measured on the tiny preset: batch-1 static 3.2 ms vs 9.3 ms
    with the dynamic axis; a streaming device runs batch 1). `latency_hint` asks OpenVINO to
    schedule for one stream's latency (the runtime's backend) rather than throughput.
    """
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml))
    if batch is not None:
        model.reshape({p.get_any_name(): [batch, *list(p.get_partial_shape())[1:]]
                       for p in model.inputs})
    config = {"INFERENCE_NUM_THREADS": int(threads), "INFERENCE_PRECISION_HINT": precision}
    if latency_hint:
        config["PERFORMANCE_HINT"] = "LATENCY"
    return core.compile_model(model, "CPU", config)


def openvino_input_names(compiled) -> list[str]:
    return [p.get_any_name() for p in compiled.inputs]


def openvino_output_names(compiled, expected: Sequence[str] = ()) -> list[str]:
    """One name per output: the first of `expected` among the tensor's names, else any of them.

    After OpenVINO's fusions a tensor can carry several names, and `get_any_name` may present
    another than the ONNX graph's output name, so outputs are matched by name set.
    """
    out = []
    for port in compiled.outputs:
        names = port.get_names()
        hit = [n for n in expected if n in names]
        out.append(hit[0] if hit else port.get_any_name())
    return out


__all__ = ["onnx_input_names", "onnx_output_names", "onnx_session", "openvino_compiled",
           "openvino_input_names", "openvino_output_names"]
