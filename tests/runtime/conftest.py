"""Runtime test fixtures: a small but real ONNX bundle with the exported bundle's interface,
and a chunked stream of a replay source.

The graph takes the ten contract inputs (`valid` and `beat_ctx` are read by no output: tests
capture them) and computes each task output from them (rr_interval = mean of the masked
rr_ms, so a test can check the number), plus gate outputs; it is written with
`edge_ecg.runtime.bundle.write_manifest`, so the runtime verifies it exactly like an exported
one. End-to-end tests use the bundled default bundle once it exists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.signal.contract import INPUT_NAMES, SignalContract
from edge_ecg.signal.patient_context import N_CONTEXT

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BUNDLE = REPO / "edge_ecg" / "assets" / "default_bundle"
N_EXPERTS = 4
PATHS = ("morphology", "rhythm")


def chunked_beat_events(backend, src, rng=None, cut=None, max_chunk: int = 1200):
    """The classified beat events of replay source `src` fed to a `StreamProcessor` in random
    chunks of 1..`max_chunk` samples (`rng`; 1-s chunks without), the processor restored from
    a ward snapshot at sample `cut`; and the last processor. What the rules that read the
    beats in order (run continuation, tachycardia episodes) are tested with: any chunking and
    a snapshot must give the same classes."""
    from edge_ecg.runtime.stream_processor import StreamProcessor
    from edge_ecg.signal.chunk import Chunk
    from edge_ecg.ward import snapshot

    proc, out, pos, n = StreamProcessor(backend), [], 0, src.n_samples
    while pos < n:
        if cut is not None and pos >= cut:
            proc, _ = snapshot.load(snapshot.dump(proc), backend)
            cut = None
        k = int(rng.integers(1, max_chunk)) if rng is not None else int(src.fs_hz)
        c = Chunk(index=pos, seq=0, device_time_us=0, samples=src.adc[pos:pos + k],
                  gain=src.gain, baseline=src.baseline, leads=src.leads, fs_hz=src.fs_hz)
        out += [e for e in proc.feed(c) if getattr(e, "beat_class", None) is not None]
        pos += k
    return out, proc


def rule_on_and_off(backend, src, event_field: str, stack_field: str, cut: int,
                    max_chunk: int):
    """A beat stack's rule that reads the beats in order (`stack_field` of `backend.stack`,
    on), streamed over `src`: its (index, class, `event_field`) per classified beat, asserted
    the same under two random chunkings and across a ward snapshot at sample `cut`; the same
    stream with the rule off (the same beats); and the two processors (on, off)."""
    from dataclasses import replace

    def run(rng=None, at=None):
        events, proc = chunked_beat_events(backend, src, rng, at, max_chunk)
        return [(e.index, e.beat_class, getattr(e, event_field)) for e in events], proc

    on, p_on = run(np.random.default_rng(0))
    assert run(np.random.default_rng(1))[0] == on
    assert run(None, cut)[0] == on
    saved = backend.stack
    backend.stack = replace(saved, **{stack_field: None})
    try:
        off, p_off = run()
    finally:
        backend.stack = saved
    assert [e[0] for e in off] == [e[0] for e in on]
    return on, off, p_on, p_off


def build_fixture_bundle(out: Path, contract: SignalContract = SignalContract()) -> Path:
    """Write a bundle whose ONNX graph computes simple, checkable functions of the inputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edge_ecg.runtime.bundle import write_manifest

    rng = np.random.default_rng(0)
    L, T, B, BL = contract.n_leads, contract.window_len, contract.max_beats, contract.beat_len
    P = len(contract.period_features)
    tasks = list(DEFAULT_TASKS)
    n_cls = DEFAULT_TASKS["arrhythmia"].n_outputs
    n_beat = DEFAULT_TASKS["beat"].n_outputs
    f = TensorProto.FLOAT
    inputs = [
        helper.make_tensor_value_info("x", f, ["N", L, T]),
        helper.make_tensor_value_info("lead_mask", f, ["N", L]),
        helper.make_tensor_value_info("beats", f, ["N", B, L, BL]),
        helper.make_tensor_value_info("beat_mask", f, ["N", B]),
        helper.make_tensor_value_info("rr_ms", f, ["N", B]),
        helper.make_tensor_value_info("rr_mask", f, ["N", B]),
        helper.make_tensor_value_info("period", f, ["N", P]),
        helper.make_tensor_value_info("beat_rr", f, ["N", B, 3]),
        helper.make_tensor_value_info("valid", f, ["N", L, contract.n_valid_seg]),
        helper.make_tensor_value_info("beat_ctx", f, ["N", B, N_CONTEXT]),
    ]
    assert [i.name for i in inputs] == list(INPUT_NAMES)
    inits = [
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "ax12"),
        numpy_helper.from_array(np.array([1, 2, 3], np.int64), "ax123"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(40.0, np.float32), "age0"),
        numpy_helper.from_array(np.array(20.0, np.float32), "age_k"),
        numpy_helper.from_array(rng.normal(size=(P, 1)).astype(np.float32), "w_k"),
        numpy_helper.from_array(rng.normal(size=(P, n_cls)).astype(np.float32), "w_cls"),
        numpy_helper.from_array(np.array([-1], np.int64), "flat"),
        # beat: class V (index 2) where 0.8 x mean RR - pre-RR > 0 (a beat 20 % premature),
        # else N; S, F and Q never
        numpy_helper.from_array(np.array([[0, 0, -1, 0, 0], [0] * 5, [0, 0, 0.8, 0, 0]],
                                         np.float32)[:, :n_beat] * 0.05, "w_beat"),
        numpy_helper.from_array(np.array([0, -100, 0, -100, -100], np.float32)[:n_beat],
                                "b_beat"),
    ]
    nodes = [
        # rr_interval: mean of rr_ms over rr_mask
        helper.make_node("Mul", ["rr_ms", "rr_mask"], ["rr_m"]),
        helper.make_node("ReduceSum", ["rr_m", "ax1"], ["rr_sum"], keepdims=0),
        helper.make_node("ReduceSum", ["rr_mask", "ax1"], ["rr_n"], keepdims=0),
        helper.make_node("Max", ["rr_n", "one"], ["rr_nc"]),
        helper.make_node("Div", ["rr_sum", "rr_nc"], ["rr_interval"]),
        # age: 40 + 20 * mean |x|
        helper.make_node("Abs", ["x"], ["ax"]),
        helper.make_node("ReduceMean", ["ax", "ax12"], ["ax_m"], keepdims=0),
        helper.make_node("Mul", ["ax_m", "age_k"], ["age_s"]),
        helper.make_node("Add", ["age_s", "age0"], ["age"]),
        # sex: sigmoid of the mean beat amplitude
        helper.make_node("ReduceMean", ["beats", "ax123"], ["bm"], keepdims=0),
        helper.make_node("Sigmoid", ["bm"], ["sex"]),
        # potassium: sigmoid(period @ w_k)
        helper.make_node("MatMul", ["period", "w_k"], ["pk"]),
        helper.make_node("Reshape", ["pk", "flat"], ["pk1"]),
        helper.make_node("Sigmoid", ["pk1"], ["potassium"]),
        # arrhythmia: softmax(period @ w_cls)
        helper.make_node("MatMul", ["period", "w_cls"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["arrhythmia"], axis=-1),
        helper.make_node("MatMul", ["beat_rr", "w_beat"], ["zb"]),
        helper.make_node("Add", ["zb", "b_beat"], ["zb1"]),
        helper.make_node("Softmax", ["zb1"], ["beat"], axis=-1),
    ]
    outputs = [
        helper.make_tensor_value_info("rr_interval", f, ["N"]),
        helper.make_tensor_value_info("age", f, ["N"]),
        helper.make_tensor_value_info("sex", f, ["N"]),
        helper.make_tensor_value_info("potassium", f, ["N"]),
        helper.make_tensor_value_info("arrhythmia", f, ["N", n_cls]),
        helper.make_tensor_value_info("beat", f, ["N", B, n_beat]),
    ]
    for path in PATHS:   # gates: relu(period @ W) reshaped (N, n_tasks, n_experts)
        w = rng.normal(size=(P, len(tasks) * N_EXPERTS)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"wg_{path}"),
                  numpy_helper.from_array(np.array([-1, len(tasks), N_EXPERTS], np.int64),
                                          f"gs_{path}")]
        nodes += [helper.make_node("MatMul", ["period", f"wg_{path}"], [f"g_{path}"]),
                  helper.make_node("Relu", [f"g_{path}"], [f"gr_{path}"]),
                  helper.make_node("Reshape", [f"gr_{path}", f"gs_{path}"], [f"gate_{path}"])]
        outputs.append(helper.make_tensor_value_info(f"gate_{path}", f,
                                                     ["N", len(tasks), N_EXPERTS]))
    graph = helper.make_graph(nodes, "fixture", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out / "model.onnx"))
    write_manifest(out, {
        "model_version": "fixture-0",
        "signal": contract.to_dict(),
        "tasks": [dict(t.to_dict(), output=t.name) for t in tasks],
        "inputs": list(INPUT_NAMES),
        "variants": {"onnx-fp32": {"name": "onnx-fp32", "file": "model.onnx",
                                   "backend": "onnxruntime", "precision": "fp32",
                                   "routed": False}},
        "default_variant": "onnx-fp32",
        "routing": {p: {"experts": [f"{p}{i}" for i in range(N_EXPERTS)]} for p in PATHS},
        "notes": "runtime test fixture",
    })
    return out


@pytest.fixture(scope="session")
def fixture_bundle(tmp_path_factory) -> Path:
    return build_fixture_bundle(tmp_path_factory.mktemp("bundle") / "fixture")


@pytest.fixture(scope="session")
def e2e_bundle(fixture_bundle) -> Path:
    """The bundled default bundle for end-to-end tests; the fixture until it is exported."""
    if (DEFAULT_BUNDLE / "manifest.json").is_file():
        return DEFAULT_BUNDLE
    return fixture_bundle
