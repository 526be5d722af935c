"""The model as exported: exact forms compute what the model computes from fewer ops, the
per-beat head routed to its own experts, and the int8 graph's fp32 readers, activation MatMuls
and int8-stored weights (export.graph_forms, export.quantize, export.weight_only)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper

from edge_ecg.signal.contract import INPUT_NAMES


def tiny(seed: int = 0):
    from edge_ecg.model.config import ECGMoEConfig
    from edge_ecg.model.moe import ECGMoE

    torch.manual_seed(seed)
    model = ECGMoE(ECGMoEConfig.preset("tiny"), load_external=False).eval()
    with torch.no_grad():        # BatchNorm statistics away from the identity, so folds show
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


def inputs(model, n: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    from edge_ecg.model.flops import example_inputs

    x = {k: v.numpy() for k, v in zip(INPUT_NAMES, example_inputs(model.cfg, n, seed=seed))}
    x["valid"][0, :2, 3:7] = 0.0                  # a lost stretch on two leads
    return x


def run(model, x) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = model(*(torch.from_numpy(x[k]) for k in INPUT_NAMES))
    return {k: v.numpy() for k, v in out.items()}


def test_export_forms_compute_the_model():
    from edge_ecg.model import moe
    from export.graph_forms import export_forms

    model = tiny()
    x = inputs(model)
    ref = run(model, x)
    saved = moe.expand_valid, moe.beat_shape_features
    with export_forms(model) as m:
        kinds = {type(s).__name__ for s in m.scouts}
        assert {"PooledFoldScout", "PooledCNNScout", "FusedDLinearScout"} <= kinds
        # the deviation expert's template and beat-minus-template: the shape features' ops
        assert "SharedTemplateDeviation" in {type(e).__name__ for e in m.morphology}
        got = run(m, x)
    assert (moe.expand_valid, moe.beat_shape_features) == saved      # restored on exit
    assert {type(s).__name__ for s in model.scouts} == {"PatchScout", "CNNScout",
                                                        "DLinearScout", "FoldScout"}
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_valid_upsample_and_beat_shape_features_match_the_model():
    from edge_ecg.model.moe import expand_valid
    from edge_ecg.model.period_expert import beat_shape_features as model_shape
    from export.graph_forms import beat_shape_features, valid_upsample

    g = torch.Generator().manual_seed(0)
    valid = (torch.rand(2, 3, 7, generator=g) > 0.3).float()
    assert torch.equal(valid_upsample(valid, 5, 33), expand_valid(valid, 5, 33))
    beats = torch.randn(2, 6, 3, 11, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.float32)
    np.testing.assert_allclose(beat_shape_features(beats, mask).numpy(),
                               model_shape(beats, mask).numpy(), rtol=1e-5, atol=1e-6)


def test_onnx_export_writes_the_forms_and_no_einsum(tmp_path):
    from export.onnx_graph import export_onnx, node_module_path
    from export.parity import run_onnx

    model = tiny()
    x = inputs(model, 4)
    path = tmp_path / "m.onnx"
    export_onnx(model, x, path)
    proto = onnx.load(str(path))
    assert "Einsum" not in [n.op_type for n in proto.graph.node]
    # the MatMuls that replaced the beat head's Einsum keep its module (module-based choices)
    assert any(node_module_path(n).startswith("heads.beat") and n.op_type == "MatMul"
               for n in proto.graph.node)
    got, ref = run_onnx(path, x), run(model, x)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=k)
    plain = tmp_path / "plain.onnx"
    export_onnx(model, x, plain, forms=False)
    assert "Einsum" in [n.op_type for n in onnx.load(str(plain)).graph.node]


def _lean_beat_gate(model):
    """The morphology gate's beat row on every window: 0.98 on expert 3, 0.02 on expert 0
    (top-2 of a softmax over biases), nothing on experts 1 and 2."""
    g = model.gate_morphology
    i = model.cfg.task_names.index("beat")
    rows = slice(i * g.n_experts, (i + 1) * g.n_experts)
    with torch.no_grad():
        g.g_out.weight[rows] = 0.0
        g.g_out.bias[rows] = torch.tensor([2.0, -30.0, -30.0, 6.0])


def test_a_routed_beat_head_reads_only_its_experts():
    """With the beat row's top-2 on experts 0 and 3, a head routed to them gives the model's
    outputs exactly, and the experts it does not read run on the pooled beats only; routed to
    expert 3 alone, only the beat output moves."""
    import copy

    from export.graph_forms import route_beat_head

    model = tiny(1)
    _lean_beat_gate(model)
    x = inputs(model)
    ref = run(model, x)
    both = route_beat_head(copy.deepcopy(model), {"beat": (0, 3)})
    assert [type(e).__name__ for e in both.morphology] == [
        "MorphologyExpert", "WindowOnlyMorphology", "WindowOnlyMorphology", "MorphologyExpert"]
    got = run(both, x)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6, err_msg=k)
    alone = route_beat_head(copy.deepcopy(model), {"beat": (3,)})
    got = run(alone, x)
    for k in ref:
        if k != "beat":
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert not np.allclose(got["beat"], ref["beat"]) and np.isfinite(got["beat"]).all()


def test_routing_names_the_per_beat_heads_experts_and_the_search_sees_them():
    from export.routing import route_from_usage

    per_task = {"morphology": {"beat": np.array([0.012, 0.0, 0.0, 0.988]),
                               "age": np.array([1.0, 0.0, 0.0, 0.0]),
                               "sex": np.array([0.0, 1.0, 0.0, 0.0]),
                               "rr": np.array([0.0, 0.0, 1.0, 0.0])}}
    tasks = ["beat", "age", "sex", "rr"]
    base = route_from_usage(per_task, tasks, 0.99, per_beat=("beat",))
    sharp = route_from_usage(per_task, tasks, 0.9, per_task_mass=True, per_beat=("beat",))
    assert base.keep["morphology"] == sharp.keep["morphology"] == (0, 1, 2, 3)
    assert base.heads == {"beat": (0, 3)} and sharp.heads == {"beat": (3,)}
    assert sharp.sharpness < base.sharpness
    assert sharp.to_dict()["heads"]["beat"]["kept"] == [3]
    # without per-beat tasks named, or with every kept expert read, no head routing
    assert route_from_usage(per_task, tasks, 0.99).heads == {}
    assert route_from_usage({"morphology": {"beat": np.array([0.0, 0.4, 0.0, 0.6])}},
                            ["beat"], 0.99, per_beat=("beat",)).heads == {}


def _two_readers(path):
    """x -> Conv (quantized) -> MatMul by its own transpose (activation x activation), and
    x -> ReduceMean (fp32) -> output: x's QDQ pair must not reach the fp32 reader."""
    rng = np.random.default_rng(0)
    w = (rng.normal(size=(8, 4, 5)) * 0.3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[2, 2]),
         helper.make_node("Transpose", ["c"], ["ct"], name="tr", perm=[0, 2, 1]),
         helper.make_node("MatMul", ["c", "ct"], ["cc"], name="actmm"),
         helper.make_node("ReduceMean", ["x", "axes"], ["m"], name="mean", keepdims=0)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4, 64])],
        [helper.make_tensor_value_info("cc", TensorProto.FLOAT, ["b", 8, 8]),
         helper.make_tensor_value_info("m", TensorProto.FLOAT, ["b"])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([1, 2]), "axes")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_fp32_readers_read_fp32_and_activation_matmuls_stay_fp32(tmp_path):
    from export.quantize import quantize_onnx_int8

    src = _two_readers(tmp_path / "m.onnx")
    calib = {"x": np.random.default_rng(1).normal(size=(8, 4, 64)).astype(np.float32)}
    dst = tmp_path / "q.onnx"
    info = quantize_onnx_int8(src, dst, calib, (), progress=False)
    nodes = {n.name: n for n in onnx.load(str(dst)).graph.node}
    producers = {o: n.op_type for n in nodes.values() for o in n.output}
    assert nodes["mean"].input[0] == "x"                       # the fp32 value, no 8-bit copy
    assert producers[nodes["conv"].input[0]] == "DequantizeLinear"
    assert producers.get(nodes["actmm"].input[1]) != "DequantizeLinear"
    assert info["fp32_activation_matmuls"] == 1 and info["fp32_readers_rewired"] >= 1
    x = calib["x"][:2]
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(["m"], {"x": x})[0], x.mean(axis=(1, 2)), rtol=1e-6)
    before = tmp_path / "before.onnx"
    info = quantize_onnx_int8(src, before, calib, (), progress=False, fp32_reads=False,
                              quantize_activation_matmuls=True)
    nodes = {n.name: n for n in onnx.load(str(before)).graph.node}
    assert nodes["mean"].input[0] != "x" and info["fp32_activation_matmuls"] == 0


def test_saved_ort_graph_keeps_weight_only_weights_int8(tmp_path):
    from export.onnx_graph import save_ort_optimized
    from export.weight_only import weight_only_int8

    rng = np.random.default_rng(3)
    w = rng.normal(size=(64, 48)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
         helper.make_node("Relu", ["h"], ["y"], name="relu")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 48])],
        [numpy_helper.from_array(w, "w")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert weight_only_int8(proto, {"mm"}) == 1
    src, dst = tmp_path / "wo.onnx", tmp_path / "opt.onnx"
    onnx.save(proto, str(src))
    info = save_ort_optimized(src, dst)
    assert info["weight_only_restored"] == 1
    inits = {i.name: i.data_type for i in onnx.load(str(dst)).graph.initializer}
    assert inits["w_wq"] == TensorProto.INT8 and "w" not in inits
    x = rng.normal(size=(5, 64)).astype(np.float32)
    out = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
           for p in (src, dst)]
    np.testing.assert_array_equal(out[0], out[1])
