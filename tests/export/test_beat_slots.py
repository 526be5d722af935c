"""Trimmed beat slots (export.beat_slots): the graph computes the per-beat part on the slots in
use plus one empty slot, and gives the model's outputs at every slot, for every beat count;
int8 calibration sees every slot, so the trimmed int8 graph gives the untrimmed one's outputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edge_ecg.signal.contract import INPUT_NAMES
from tests.export.test_graph_forms import tiny     # the tiny model, BatchNorm away from identity


def windows(model, counts, seed: int = 0) -> dict[str, np.ndarray]:
    """One window per beat count: the first `count` slots hold beats, the others are empty
    (mask 0, all zeros), as the runtime and the data loaders fill them."""
    from edge_ecg.model.flops import example_inputs

    x = {k: v.numpy().copy() for k, v in
         zip(INPUT_NAMES, example_inputs(model.cfg, len(counts), seed=seed))}
    for i, c in enumerate(counts):
        x["beat_mask"][i] = 0.0
        x["beat_mask"][i, :c] = 1.0
        for k in ("beats", "beat_rr", "beat_ctx"):
            x[k][i, c:] = 0.0
    return x


def run(model, x) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = model(*(torch.from_numpy(x[k]) for k in INPUT_NAMES))
    return {k: v.numpy() for k, v in out.items()}


def slots_computed(path, x) -> list[int]:
    """The number of slots the trimmed graph at `path` computes for each window alone."""
    proto = onnx.load(str(path))
    proto.graph.output.extend([onnx.helper.make_tensor_value_info(
        "beat_slots_n0", onnx.TensorProto.INT64, [])])
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    out = []
    for i in range(len(x["x"])):
        one = {k: v[i:i + 1] for k, v in x.items()}
        out.append(int(sess.run(["beat_slots_n0"], one)[0]))
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from export.onnx_graph import export_onnx

    model = tiny()
    tmp = tmp_path_factory.mktemp("slots")
    path = tmp / "trim.onnx"
    export_onnx(model, windows(model, [5, 9]), path, trim_slots=True)
    export_onnx(model, windows(model, [5, 9]), tmp / "full.onnx")
    return model, path


def test_trimmed_graph_gives_the_models_outputs_for_every_beat_count(exported):
    from export.beat_slots import slot_range
    from export.parity import run_onnx

    model, path = exported
    lo, hi = slot_range(model.cfg)
    assert (lo, hi) == (17, 32)
    counts = [0, 1, 7, 15, 16, 17, 20, 31, 32]
    x = windows(model, counts, seed=1)
    ref = run(model, x)
    # each window alone (batch 1, as the device runs) and all in one batch (the longest wins)
    for bs in (1, len(counts)):
        got = run_onnx(path, x, batch_size=bs)
        for k in ref:
            assert got[k].shape == ref[k].shape, k
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=f"{k} {bs}")
    # and it does trim: the slots in use plus an empty one, at least morph_beats + 1
    assert slots_computed(path, x) == [17, 17, 17, 17, 17, 18, 21, 32, 32]
    proto = onnx.load(str(path))
    dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim][1]
            for i in proto.graph.input}
    assert dims["beats"] == dims["beat_mask"] == 32
    outs = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in proto.graph.output}
    assert outs["beat"][1:] == [32, model.cfg.tasks[-1].n_outputs]


def test_slot_summary_equals_the_models_summary():
    from export.beat_slots import slot_form

    model = tiny()
    x = windows(model, [0, 3, 19])
    args = [torch.from_numpy(x[k]) for k in ("x", "lead_mask", "beat_mask", "period", "valid")]
    with torch.no_grad():
        ref = model.summary(*args)
        got = slot_form(copy.deepcopy(model)).summary(*args)
        # the same number from the slots in use and an empty one (those cut off are zero)
        args[2] = args[2][:, :20]
        cut = slot_form(copy.deepcopy(model)).summary(*args)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=0, atol=1e-7)
    np.testing.assert_allclose(cut.numpy(), ref.numpy(), rtol=0, atol=1e-7)


def test_trimmed_graph_quantizes_with_every_slot_calibrated(exported, tmp_path):
    from export.beat_slots import LOW_SLOTS, pin_slots
    from export.parity import run_onnx
    from export.quantize import quantize_onnx_int8

    model, path = exported
    calib = windows(model, [3, 12, 25, 8, 17, 30, 0, 14], seed=2)
    dst = tmp_path / "q.onnx"
    info = quantize_onnx_int8(path, dst, calib, ("heads.", "gate_"), progress=False)
    assert info["beat_slots_trimmed"] is True
    proto = onnx.load(str(dst))
    assert pin_slots(proto, None) == 17.0               # restored after calibration
    assert LOW_SLOTS in {i.name for i in proto.graph.initializer}
    # the same scales as the untrimmed graph's int8 (calibrated on every slot), so the same
    # outputs: the bundled checkpoint's were bit-identical on 1214 validation windows
    full = tmp_path / "full_q.onnx"
    quantize_onnx_int8(path.with_name("full.onnx"), full, calib, ("heads.", "gate_"),
                       progress=False)
    x = windows(model, [2, 19, 32], seed=3)
    got, ref = run_onnx(dst, x, batch_size=1), run_onnx(full, x, batch_size=1)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-5, err_msg=k)
    assert slots_computed(dst, x) == [17, 20, 32]
