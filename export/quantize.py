"""onnxruntime static int8 (QDQ) quantization, calibrated on real or synthetic windows.

Choices measured for this model family (DESIGN.md): static QDQ, unsigned 8-bit activations,
signed per-channel 8-bit weights, percentile calibration, and the task heads (and the gate,
which picks the experts) left in fp32: a regression head quantized with activations clips
its output to the calibration range. Dynamic int8 that includes Conv is slower than fp32.
MatMuls of two activations (attention scores, the gate-weighted sums over experts) stay fp32
(`activation_matmuls`: int8 there cost arrhythmia macro F1 -0.14), and fp32 nodes read the
fp32 value of a tensor quantized for another reader (`fp32_readers`); the figures are in
export/int8_scope.py.
`quant_pre_process(skip_symbolic_shape=True)`: symbolic shape inference fails on the dynamo
graph's dynamic batch, plain ONNX shape inference is enough.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from export.beat_slots import pin_slots
from export.errors import ExportError
from export.onnx_graph import nodes_in_modules
from export.parity import n_windows
from export.weight_only import weight_only_int8

PERCENTILE = 99.999   # onnxruntime's default for CalibrationMethod.Percentile
# Only the weight-bearing ops: QDQ pairs around every Mul/Add/Erf cost more than int8 saves.
# Measured on the edge preset, routed, batch 1, 1 thread: fp32 3.56 ms, all ops int8 3.44 ms,
# Conv/MatMul/Gemm only 2.21 ms.
# Fewer is not faster either (edge checkpoint, interleaved in one process, same calibration):
# every Conv/MatMul/Gemm 1.14x fp32, Conv only 1.12x, the 10 heaviest Convs only 1.10x, Conv
# only without onnxruntime's NHWC layout transformer 1.10x. On AVX2 without VNNI int8 Conv runs
# ~1.6-2x fp32 and Conv/MatMul are ~half a window's time, so the ceiling is ~1.3x (Amdahl).
# What the all-task int8 graph measures now, lever by lever: export/int8_scope.py.
OP_TYPES = ("Conv", "MatMul", "Gemm")
# Inside the modules named as int8 chains, these ops are quantized as well, so a stack of
# convolutions stays int8 from one to the next (QLinearAdd, QLinearAveragePool) instead of
# leaving for fp32 at every residual Add and pooling: each exit costs a DequantizeLinear, a
# QuantizeLinear and two NHWC Transposes around the QLinearConv.
CHAIN_OP_TYPES = ("Add", "AveragePool", "Relu", "MaxPool", "GlobalAveragePool")
# A weight-bearing node under this many multiply-accumulates per window stays fp32 (`macs_of`).
# 0: leaving the small ones fp32 measured slower, 1.02x (1M) and 1.10x (250k) against 1.21x for
# quantizing all of them (export/int8_scope.py; 2.22 against 1.89 ms at 250k now).
MIN_MACS = 0


def macs_of(path: str | Path) -> dict[str, int]:
    """Multiply-accumulates per window (batch 1) of each Conv/MatMul/Gemm node of the ONNX file
    at `path`, from ONNX shape inference (a symbolic dimension counts as 1); a node whose
    shapes are not inferred is left out."""
    import onnx

    proto = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    g = proto.graph
    shapes = {}
    for vi in (*g.input, *g.value_info, *g.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
    for init in g.initializer:
        shapes[init.name] = list(init.dims)
    out: dict[str, int] = {}
    for node in g.node:
        if node.op_type not in OP_TYPES or len(node.input) < 2:
            continue
        a, w, y = (shapes.get(node.input[0]), shapes.get(node.input[1]),
                   shapes.get(node.output[0]))
        if not a or not w or not y:
            continue
        n_out = int(np.prod(y))
        if node.op_type == "Conv":          # each output: C_in/group x kernel MACs
            out[node.name] = n_out * int(np.prod(w[1:]))
        elif node.op_type == "Gemm":
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            out[node.name] = n_out * int(a[0] if trans_a else a[-1])
        else:
            out[node.name] = n_out * int(a[-1])
    return out


def _reader(calib: dict[str, np.ndarray], names: list[str], progress: bool):
    from onnxruntime.quantization import CalibrationDataReader

    def one_by_one():
        for i in range(n_windows(calib)):
            yield {k: np.ascontiguousarray(calib[k][i:i + 1]) for k in names}

    class WindowReader(CalibrationDataReader):
        """Feeds calibration windows one at a time (batch 1, as the device runs)."""

        def __init__(self):
            self._it = one_by_one()
            self._bar = tqdm(total=n_windows(calib), desc="int8 calibration (onnxruntime)",
                             unit="win", leave=False, disable=not progress)

        def get_next(self):
            b = next(self._it, None)
            if b is None:
                self._bar.close()
            else:
                self._bar.update(1)
            return b

        def rewind(self):
            self._it = one_by_one()

    return WindowReader()


def activation_matmuls(graph) -> list[str]:
    """MatMul nodes whose inputs are both computed (no initializer): attention scores, the
    gate-weighted sums over experts."""
    inits = {i.name for i in graph.initializer}
    consts = {n.output[0] for n in graph.node if n.op_type == "Constant"}
    return [n.name for n in graph.node if n.op_type == "MatMul"
            and not any(i in inits or i in consts for i in n.input)]


def fp32_readers(proto, quantized: set[str]) -> int:
    """Let the fp32 consumers of a tensor the QDQ format quantized read the tensor itself.

    `quantize_static` puts one QuantizeLinear -> DequantizeLinear pair on a tensor that feeds a
    quantized node, and every other consumer reads its dequantized copy: the window `x` went
    through 8 bits on its way to the input summary (and so to the gates, which pick the
    experts) and to the fp32 pooling, and onnxruntime turned DQ -> AveragePool -> Q into a
    QLinearAveragePool slower than the fp32 one. Rewired here: consumers of DQ(Q(t)) that are
    not themselves quantized (`quantized`: node names), where `t` comes from an fp32 node or a
    graph input (the outputs of quantized nodes keep their readers, or onnxruntime could not
    fuse DQ -> op -> Q). Returns the number of inputs rewired."""
    g = proto.graph
    producer = {o: n for n in g.node for o in n.output}
    n = 0
    for node in g.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or node.name in quantized:
            continue
        for j, name in enumerate(node.input):
            dq = producer.get(name)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" \
                else None
            if q is None or q.op_type != "QuantizeLinear":
                continue                       # not an activation's QDQ (weights: DQ of an init)
            src = producer.get(q.input[0])
            if src is not None and src.name in quantized:
                continue
            node.input[j] = q.input[0]
            n += 1
    return n


def quantize_onnx_int8(src: str | Path, dst: str | Path, calib: dict[str, np.ndarray],
                       exclude_modules: tuple[str, ...], progress: bool = True,
                       weight_only_modules: tuple[str, ...] = (),
                       min_macs: int = MIN_MACS,
                       chain_modules: tuple[str, ...] = (),
                       quantize_activation_matmuls: bool = False,
                       fp32_reads: bool = True) -> dict:
    """Write the static QDQ int8 model of `src` to `dst`; returns the settings for the manifest.

    `exclude_modules` are torch module path prefixes whose nodes stay fp32 (heads, gates);
    those of them also in `weight_only_modules` keep fp32 arithmetic over int8-stored weights.
    Conv/MatMul/Gemm nodes under `min_macs` multiply-accumulates per window stay fp32 too
    (their QuantizeLinear/DequantizeLinear cost more than int8 saves), with int8-stored weights.
    In `chain_modules` the `CHAIN_OP_TYPES` are quantized too (elsewhere they stay fp32).
    MatMuls of two activations stay fp32 unless `quantize_activation_matmuls`; `fp32_reads`:
    fp32 consumers read a quantized tensor's fp32 value (`fp32_readers`).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if n_windows(calib) < 1:
        raise ExportError("int8 calibration needs at least one window; pass --calib synth:64")
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        # Pre-processing drops the exporter's module metadata but keeps node names: find the
        # nodes in the exported file, keep those still in the pre-processed graph.
        graph = onnx.load(str(pre), load_external_data=False).graph
        present = {n.name for n in graph.node}
        names = [i.name for i in graph.input]
        excluded = [n for n in nodes_in_modules(src, exclude_modules) if n in present]
        if exclude_modules and not excluded:
            raise ExportError(
                f"none of the graph's nodes belongs to the modules {list(exclude_modules)} meant "
                "to stay fp32; the exporter's module metadata is missing or the names changed"
            )
        small = [n for n, m in macs_of(pre).items() if m < min_macs and n not in excluded]
        excluded += small
        act_mm = [] if quantize_activation_matmuls else [
            n for n in activation_matmuls(graph) if n not in excluded]
        excluded += act_mm
        op_types = list(OP_TYPES)
        if chain_modules:
            chain = set(nodes_in_modules(src, chain_modules)) - set(excluded)
            if not chain:
                raise ExportError(f"no ONNX node belongs to the int8 chain modules "
                                  f"{list(chain_modules)}")
            op_types += list(CHAIN_OP_TYPES)
            excluded += [n.name for n in graph.node
                         if n.op_type in CHAIN_OP_TYPES and n.name not in chain]
        # a graph with trimmed beat slots calibrates with all of them (export.beat_slots)
        pre_proto = onnx.load(str(pre))
        low_slots = pin_slots(pre_proto, max(calib["beat_mask"].shape[1], 1)
                              if "beat_mask" in calib else None)
        if low_slots is not None:
            onnx.save(pre_proto, str(pre))
        del pre_proto
        quantize_static(str(pre), str(dst), _reader(calib, names, progress),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.Percentile,
                        nodes_to_exclude=excluded, op_types_to_quantize=op_types,
                        extra_options={"CalibPercentile": PERCENTILE})
        proto = onnx.load(str(dst))
        if low_slots is not None:
            pin_slots(proto, low_slots)
        skipped = set(excluded)
        quantized = {n.name for n in graph.node if n.op_type in op_types and n.name not in skipped}
        n_rewired = fp32_readers(proto, quantized) if fp32_reads else 0
        wo = (set(nodes_in_modules(src, weight_only_modules)) & skipped) | set(small)
        n_weight_only = weight_only_int8(proto, wo) if wo else 0
        onnx.save(proto, str(dst))
    return {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
            "activations": "QUInt8", "weights": "QInt8 per-channel",
            "calibration": f"Percentile {PERCENTILE}", "calibration_windows": n_windows(calib),
            "op_types": list(OP_TYPES), "fp32_modules": list(exclude_modules),
            "int8_chain_modules": list(chain_modules), "chain_op_types": list(CHAIN_OP_TYPES)
            if chain_modules else [],
            "fp32_nodes": len(excluded), "min_macs": int(min_macs), "fp32_small_nodes": len(small),
            "fp32_activation_matmuls": len(act_mm), "fp32_readers_rewired": n_rewired,
            "weight_only_modules": list(weight_only_modules),
            "weight_only_int8_weights": n_weight_only,
            "beat_slots_trimmed": low_slots is not None}
