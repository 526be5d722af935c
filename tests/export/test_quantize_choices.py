"""What the int8 export quantizes and what it ships: MACs per node, tiny nodes left fp32, and
onnxruntime's optimised graph saved in place of the QDQ file with the same outputs."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper

from export.onnx_graph import save_ort_optimized
from export.quantize import macs_of, quantize_onnx_int8

T = 500


def _model(path, rng):
    """x (b, 12, 500) -> Conv 12->16 k9 s2 -> Relu -> Conv 16->32 k5 -> Relu -> mean over time
    -> MatMul 32->64 (tiny) -> Gemm 64->3 (tiny); opset 18, dynamic batch as the exporter writes."""
    w1 = (rng.normal(size=(16, 12, 9)) * 0.1).astype(np.float32)
    w2 = (rng.normal(size=(32, 16, 5)) * 0.1).astype(np.float32)
    wm = rng.normal(size=(32, 64)).astype(np.float32)
    wg = rng.normal(size=(3, 64)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[4, 4],
                          strides=[2]),
         helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
         helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[2, 2]),
         helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
         helper.make_node("ReduceMean", ["r2", "axes"], ["m"], name="mean", keepdims=0),
         helper.make_node("MatMul", ["m", "wm"], ["h"], name="matmul"),
         helper.make_node("Gemm", ["h", "wg", "bg"], ["y"], name="gemm", transB=1)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 12, T])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(np.zeros(16, np.float32), "b1"),
         numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.zeros(32, np.float32), "b2"),
         numpy_helper.from_array(np.array([2], np.int64), "axes"),
         numpy_helper.from_array(wm, "wm"), numpy_helper.from_array(wg, "wg"),
         numpy_helper.from_array(np.zeros(3, np.float32), "bg")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(proto, str(path))
    return path


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_macs_of_counts_each_weight_op(tmp_path):
    macs = macs_of(_model(tmp_path / "m.onnx", np.random.default_rng(0)))
    # conv1: 16 x 250 outputs x 12 x 9; conv2: 32 x 250 x 16 x 5; matmul 64 x 32; gemm 3 x 64
    assert macs == {"conv1": 16 * 250 * 12 * 9, "conv2": 32 * 250 * 16 * 5,
                    "matmul": 64 * 32, "gemm": 3 * 64}


def test_tiny_nodes_stay_fp32_and_outputs_hold(tmp_path):
    rng = np.random.default_rng(1)
    src = _model(tmp_path / "m.onnx", rng)
    calib = {"x": rng.normal(size=(16, 12, T)).astype(np.float32)}
    x = rng.normal(size=(8, 12, T)).astype(np.float32)
    ref = _run(src, x)
    dst = tmp_path / "q.onnx"
    info = quantize_onnx_int8(src, dst, calib, (), progress=False, min_macs=10_000)
    assert info["fp32_small_nodes"] == 2 and info["min_macs"] == 10_000
    proto = onnx.load(str(dst))
    # the two convs behind DequantizeLinear of int8 weights; matmul and gemm read fp32 inputs
    # (no DequantizeLinear), the matmul's weight restored from int8 storage (Cast + Mul, folded
    # at load); the gemm's 192 weights are under weight_only's minimum and stay fp32
    deq_into = {n.output[0]: n for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    ops = {n.name: n for n in proto.graph.node}
    assert ops["conv1"].input[1] in deq_into and ops["conv2"].input[1] in deq_into
    assert ops["matmul"].input[0] not in deq_into and ops["gemm"].input[0] not in deq_into
    assert [n.name for n in proto.graph.node if n.name.endswith("_weight_only_cast")] == [
        "wm_weight_only_cast"]
    got = _run(dst, x)
    # int8 activations and weights: within a few percent of the output range, not bit-equal
    assert not np.array_equal(got, ref)
    assert np.abs(got - ref).max() <= 0.05 * np.abs(ref).max()


def test_saved_ort_graph_is_smaller_and_computes_the_same(tmp_path):
    rng = np.random.default_rng(2)
    src = _model(tmp_path / "m.onnx", rng)
    calib = {"x": rng.normal(size=(16, 12, T)).astype(np.float32)}
    qdq = tmp_path / "q.onnx"
    quantize_onnx_int8(src, qdq, calib, (), progress=False)
    x = rng.normal(size=(4, 12, T)).astype(np.float32)
    for path in (src, qdq):
        opt = tmp_path / (path.stem + ".opt.onnx")
        info = save_ort_optimized(path, opt)
        assert info["nodes_after"] < info["nodes_before"]
        ops = {n.op_type for n in onnx.load(str(opt)).graph.node}
        # no layout-specific kernels (NCHWc) in a file meant for other CPUs
        assert not any("Nchwc" in o or "Reorder" in o for o in ops)
        if path == qdq:
            assert "QLinearConv" in ops and "QuantizeLinear" in ops
        np.testing.assert_allclose(_run(opt, x), _run(path, x), rtol=0, atol=1e-5)
