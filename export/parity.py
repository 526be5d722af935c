"""Run one set of windows through torch, onnxruntime or OpenVINO, and compare the outputs.

Every runner takes inputs in `stack_inputs` form (name -> batched float32 array) and returns
name -> array in graph output order, so the export stage compares engines output by output.
Sessions are opened and outputs named by `edge_ecg.runtime.sessions`, the runtime's own code,
so parity is measured on what the device runs; torch batches through the model's `predict`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_ecg.data.tasks import TaskSet
from edge_ecg.runtime.sessions import (
    onnx_output_names,
    onnx_session,
    openvino_compiled,
    openvino_output_names,
)
from edge_ecg.signal.contract import INPUT_NAMES


def n_windows(inputs: dict[str, np.ndarray]) -> int:
    return int(next(iter(inputs.values())).shape[0])


def batches(inputs: dict[str, np.ndarray], batch_size: int):
    n = n_windows(inputs)
    for lo in range(0, n, batch_size):
        yield {k: np.ascontiguousarray(inputs[k][lo:lo + batch_size]) for k in INPUT_NAMES}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _progress(it, total: int, desc: str, progress: bool):
    return tqdm(it, total=total, desc=desc, unit="batch", leave=False, disable=not progress)


def run_torch(model, inputs: dict[str, np.ndarray], batch_size: int = 16,
              progress: bool = True, desc: str = "torch") -> dict[str, np.ndarray]:
    """The torch model's outputs (left in eval mode, no grad), batched by the model's own
    `edge_ecg.model.evaluation.predict`."""
    from edge_ecg.model.evaluation import predict

    model.eval()
    return predict(model, inputs, batch_size, progress=progress, desc=desc)


def run_onnx(path: str | Path, inputs: dict[str, np.ndarray], threads: int = 1,
             batch_size: int = 16, progress: bool = False) -> dict[str, np.ndarray]:
    """onnxruntime (CPU) outputs of the ONNX file at `path`."""
    sess = onnx_session(path, threads)
    names = onnx_output_names(sess)
    parts = []
    total = -(-n_windows(inputs) // batch_size)
    for b in _progress(batches(inputs, batch_size), total, f"onnxruntime {Path(path).name}", progress):
        parts.append(dict(zip(names, sess.run(names, b))))
    return _concat(parts)


def run_openvino(xml: str | Path, inputs: dict[str, np.ndarray], threads: int = 1,
                 precision: str = "f32", batch_size: int = 16, expected: list[str] | None = None,
                 progress: bool = False) -> dict[str, np.ndarray]:
    """OpenVINO (CPU) outputs of the IR at `xml`, named as the ONNX graph named them."""
    compiled = openvino_compiled(xml, threads, precision)
    names = openvino_output_names(compiled, expected)
    req = compiled.create_infer_request()
    parts = []
    total = -(-n_windows(inputs) // batch_size)
    for b in _progress(batches(inputs, batch_size), total, f"openvino {Path(xml).name}", progress):
        res = req.infer(b)
        parts.append({n: np.array(res[port]) for n, port in zip(names, compiled.outputs)})
    return _concat(parts)


def max_abs_diff(ref: dict[str, np.ndarray], got: dict[str, np.ndarray],
                 scales: dict[str, float] | None = None) -> float:
    """Largest absolute difference over all outputs `ref` has; outputs in `scales` are divided
    by their scale first (regressions in training units)."""
    scales = scales or {}
    worst = 0.0
    for k, a in ref.items():
        if k not in got:
            raise KeyError(f"output {k!r} missing from the compared engine")
        s = float(scales.get(k, 1.0))
        d = np.abs(np.asarray(a, np.float64) - np.asarray(got[k], np.float64)) / s
        worst = max(worst, float(d.max()) if d.size else 0.0)
    return worst


def compare(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], tasks: TaskSet) -> dict:
    """Parity of one engine against the reference, per task.

    regression: max abs difference in task units; binary: agreement of the 0.5 decision and
    max abs probability difference; multiclass: argmax agreement and max abs probability
    difference. Plus `max_abs_gate` over the gate outputs both engines have.
    """
    rep: dict = {"tasks": {}}
    for t in tasks:
        a = np.asarray(ref[t.name], np.float64)
        b = np.asarray(got[t.name], np.float64)
        if t.kind == "regression":
            rep["tasks"][t.name] = {"max_abs_diff": float(np.abs(a - b).max()), "unit": t.unit}
        elif t.kind == "binary":
            rep["tasks"][t.name] = {"max_abs_prob_diff": float(np.abs(a - b).max()),
                                    "class_agreement": float(np.mean((a >= 0.5) == (b >= 0.5)))}
        else:
            rep["tasks"][t.name] = {"max_abs_prob_diff": float(np.abs(a - b).max()),
                                    "class_agreement": float(np.mean(a.argmax(-1) == b.argmax(-1)))}
    gates = [k for k in ref if k.startswith("gate_") and k in got and ref[k].shape == got[k].shape]
    if gates:
        rep["max_abs_gate_diff"] = max(float(np.abs(ref[k] - got[k]).max()) for k in gates)
    rep["n_windows"] = n_windows_of(ref)
    return rep


def n_windows_of(outputs: dict[str, np.ndarray]) -> int:
    return int(next(iter(outputs.values())).shape[0])
