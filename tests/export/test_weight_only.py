"""Weight-only int8 for the modules whose activations stay fp32: int8-stored weights, fp32
arithmetic, outputs within the weight rounding of the fp32 graph."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper

from export.weight_only import WEIGHT_ONLY_MIN, weight_only_int8


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



def test_onnxruntime_folds_the_int8_weights_at_load_bit_for_bit(tmp_path):
    """No per-window cost and fp32 arithmetic: the optimised graph holds only the Gemm/MatMul
    nodes, and its outputs equal those of the fp32 graph whose weights are `float(q) * scale`."""
    rng = np.random.default_rng(2)
    proto = _model(rng)
    assert weight_only_int8(proto, {"gemm", "matmul"}) == 2
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    rounded = _model(np.random.default_rng(2))
    for w in ("wg", "wm"):
        for init in rounded.graph.initializer:
            if init.name == w:
                init.CopyFrom(numpy_helper.from_array(
                    inits[w + "_wq"].astype(np.float32) * inits[w + "_wscale"], w))
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    assert [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node] == [
        "Gemm", "MatMul", "MatMul"]
    x = rng.normal(size=(7, 48)).astype(np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], _run(rounded, x))


def test_a_per_beat_tasks_morphology_experts_stay_fp32_by_their_routed_names():
    """`beat_expert_modules`: the experts carrying >= 1 % of the beat task's morphology gate
    row, named as the routed model numbers them (it keeps experts 1 and 3 of 4: 3 is its 1)."""
    from edge_ecg.data.tasks import DEFAULT_TASKS
    from export.routing import Routing
    from export.stage import beat_expert_modules

    tasks = DEFAULT_TASKS.select(["beat", "age"])
    routing = Routing(tasks=("beat", "age"), keep_mass=0.99,
                      usage={"morphology": (0.0, 0.5, 0.0, 0.5)},
                      keep={"morphology": (1, 3)},
                      per_task={"morphology": {"beat": (0.0, 0.005, 0.0, 0.995),
                                               "age": (0.0, 1.0, 0.0, 0.0)}})
    assert beat_expert_modules(routing, tasks) == ("morphology.1.",)
    # no per-beat task deployed: nothing added
    assert beat_expert_modules(routing, DEFAULT_TASKS.select(["age"])) == ()
