"""Weight-only int8 for the modules whose activations stay fp32: int8-stored weights, fp32
arithmetic, outputs within the weight rounding of the fp32 graph."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export.weight_only import (  # noqa: E402
    DQ_SUFFIX, WEIGHT_ONLY_MIN, fold_weight_only, model_for_session, weight_only_int8)


def _model(rng):
    w_gemm = rng.normal(size=(64, 48)).astype(np.float32)      # Gemm transB: (out, in)
    w_mm = rng.normal(size=(64, 40)).astype(np.float32)        # MatMul: (in, out)
    w_small = rng.normal(size=(40, 4)).astype(np.float32)      # below WEIGHT_ONLY_MIN
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "wg", "bg"], ["h"], name="gemm", transB=1),
         helper.make_node("MatMul", ["h", "wm"], ["h2"], name="matmul"),
         helper.make_node("MatMul", ["h2", "ws"], ["y"], name="small")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 48])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])],
        [numpy_helper.from_array(w_gemm, "wg"),
         numpy_helper.from_array(np.zeros(64, np.float32), "bg"),
         numpy_helper.from_array(w_mm, "wm"), numpy_helper.from_array(w_small, "ws")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(proto, x):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_weight_only_int8_stores_int8_and_keeps_outputs():
    rng = np.random.default_rng(0)
    ref_proto = _model(rng)
    x = rng.normal(size=(5, 48)).astype(np.float32)
    ref = _run(ref_proto, x)
    proto = _model(np.random.default_rng(0))
    assert 40 * 4 < WEIGHT_ONLY_MIN <= 40 * 64
    n = weight_only_int8(proto, {"gemm", "matmul", "small"})
    assert n == 2                                      # the small weight stays fp32
    dtypes = {i.name: i.data_type for i in proto.graph.initializer}
    assert dtypes["wg_wq"] == TensorProto.INT8 and dtypes["wm_wq"] == TensorProto.INT8
    assert dtypes["ws"] == TensorProto.FLOAT and "wg" not in dtypes
    got = _run(proto, x)
    rel = np.abs(got - ref).max() / np.abs(ref).max()
    assert 0 < rel < 0.02, rel                         # rounded weights, not a different model
    assert len(proto.SerializeToString()) < 0.5 * len(ref_proto.SerializeToString())


def test_weight_only_int8_leaves_other_nodes_alone():
    proto = _model(np.random.default_rng(1))
    before = proto.SerializeToString()
    assert weight_only_int8(proto, {"not_a_node"}) == 0
    assert proto.SerializeToString() == before


def test_folding_at_load_gives_the_same_outputs_without_the_dequantize_nodes(tmp_path):
    rng = np.random.default_rng(2)
    proto = _model(rng)
    assert weight_only_int8(proto, {"gemm", "matmul"}) == 2
    x = rng.normal(size=(7, 48)).astype(np.float32)
    # The file as written, run with basic optimisations only: DequantizeLinear, then fp32 ops.
    # (Extended ones fuse DequantizeLinear + MatMul into MatMulNBits, which quantizes the
    # activations too: what folding at load avoids.)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    stored = ort.InferenceSession(proto.SerializeToString(), so,
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    folded = onnx.load_from_string(model_for_session(path))
    assert [n.op_type for n in folded.graph.node] == ["Gemm", "MatMul", "MatMul"]
    assert not any(i.name.endswith(("_wq", "_wscale", "_wzero")) for i in folded.graph.initializer)
    sess = ort.InferenceSession(model_for_session(path), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], stored)   # bit for bit
    assert len(path.read_bytes()) < len(folded.SerializeToString())      # the file stays small


def test_folding_leaves_other_dequantize_nodes_and_plain_models_alone(tmp_path):
    plain = tmp_path / "plain.onnx"
    onnx.save(_model(np.random.default_rng(3)), str(plain))
    assert model_for_session(plain) == str(plain)          # no weight-only weights: the path
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["q", "s", "z"], ["w"], name="act_dq"),
         helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(np.ones((2, 2), np.int8), "q"),
         numpy_helper.from_array(np.float32(0.5), "s"),
         numpy_helper.from_array(np.int8(0), "z")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert not graph.node[0].name.endswith(DQ_SUFFIX)
    assert fold_weight_only(proto) == 0                    # not one of ours: left in place
    assert [n.op_type for n in proto.graph.node] == ["DequantizeLinear", "MatMul"]
