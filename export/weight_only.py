"""Weight-only int8: weights stored as int8, arithmetic in fp32.

The modules whose activations must stay fp32 (heads, gates: export/quantize.py says why) may
still store int8 weights, per output channel, symmetric (rounding error at most 1/254 of the
channel's largest weight). On the edge checkpoint: bundle 1.83 -> 1.2 MB, metrics unchanged
within 0.002 (the activation clipping, not weight rounding, is what hurt the RR head).

In the file each such weight is an int8 initializer and a per-channel scale, joined by
`Cast(int8 -> float)` and `Mul(scale)`, not by a DequantizeLinear. onnxruntime constant-folds
Cast and Mul on initializers when a session opens (bit for bit `float(q) * scale`), so the
arithmetic is fp32 and a window pays nothing. A DequantizeLinear it would not fold (it keeps
QDQ for its int8 fusions): it ran on every window (14 on the bundled model, ~4% of an int8
window), and DequantizeLinear + MatMul became MatMulNBits, which quantizes the activations as
well (accuracy level 4 by default): the very thing these modules must not have.
"""

from __future__ import annotations

import numpy as np

WEIGHT_OPS = ("Conv", "MatMul", "Gemm")
WEIGHT_ONLY_MIN = 1024       # smaller weights stay fp32: the scale tensors would eat the saving


def weight_only_int8(proto, node_names: set[str]) -> int:
    """Store the weights of `node_names` (Conv/Gemm/MatMul with an initializer weight) as int8
    per-channel symmetric, restored by Cast and Mul that onnxruntime folds at load; returns the
    number converted."""
    import onnx
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    users: dict[str, int] = {}
    for node in proto.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    new_nodes, converted = [], 0
    for node in proto.graph.node:
        if (node.name in node_names and node.op_type in WEIGHT_OPS and len(node.input) > 1
                and node.input[1] in inits and users.get(node.input[1]) == 1):
            w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            # the output-channel axis: Conv and Gemm(transB) rows, MatMul/Gemm columns
            axis = 0 if node.op_type == "Conv" or trans_b else w.ndim - 1
            if w.size >= WEIGHT_ONLY_MIN and w.ndim >= 2:
                reduce = tuple(i for i in range(w.ndim) if i != axis)
                scale = np.abs(w).max(axis=reduce) / 127.0
                scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
                shape = [1] * w.ndim
                shape[axis] = -1
                q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
                base = node.input[1]
                proto.graph.initializer.remove(inits[base])
                proto.graph.initializer.extend([
                    numpy_helper.from_array(q, base + "_wq"),
                    numpy_helper.from_array(scale.reshape(shape), base + "_wscale")])
                new_nodes += [
                    helper.make_node("Cast", [base + "_wq"], [base + "_wcast"],
                                     to=onnx.TensorProto.FLOAT, name=base + "_weight_only_cast"),
                    helper.make_node("Mul", [base + "_wcast", base + "_wscale"], [base],
                                     name=base + "_weight_only_scale")]
                converted += 1
        new_nodes.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(new_nodes)
    onnx.checker.check_model(proto)
    return converted


def restore_weight_only(proto, source) -> int:
    """Store again as int8 the weight-only weights that onnxruntime's saved optimised graph
    (`proto`) holds as fp32: optimising folded each `Cast(int8) * scale` of `source` (the
    file it was made from) into one fp32 initializer of the same name. Each is put back as
    the source's own int8 tensor and scale behind the same Cast and Mul (bit for bit the
    folded values; onnxruntime folds them again when a session opens); one whose shape the
    optimiser changed stays fp32. Returns the number restored."""
    import onnx
    from onnx import helper

    src = {i.name: i for i in source.graph.initializer}
    inits = {i.name: i for i in proto.graph.initializer}
    added, n = [], 0
    for name, init in inits.items():
        q, scale = src.get(name + "_wq"), src.get(name + "_wscale")
        if q is None or scale is None or list(q.dims) != list(init.dims) \
                or init.data_type != onnx.TensorProto.FLOAT:
            continue
        proto.graph.initializer.remove(init)
        proto.graph.initializer.extend([q, scale])
        added += [helper.make_node("Cast", [q.name], [name + "_wcast"],
                                   to=onnx.TensorProto.FLOAT, name=name + "_weight_only_cast"),
                  helper.make_node("Mul", [name + "_wcast", scale.name], [name],
                                   name=name + "_weight_only_scale")]
        n += 1
    if added:
        nodes = list(proto.graph.node)
        del proto.graph.node[:]
        proto.graph.node.extend(added + nodes)
    return n
