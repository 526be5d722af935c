"""Time spent: each named step of the stage (`StepTimer`, the report's `timings_s`) and the
single-thread batch-1 latency of each engine measured during export (the report's column).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_ecg.signal.contract import INPUT_NAMES

if TYPE_CHECKING:
    from export.routed import Routed


class StepTimer:
    """The stage's progress bar and the wall time of each named step (`timings_s` in the
    report): `steps("merge")` closes the step that ends there."""

    def __init__(self, total: int, progress: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="export", unit="step", disable=not progress)
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, msg: str) -> None:
        now = time.perf_counter()
        self.timings[msg] = round(now - self._last, 2)
        self._last = now
        self.bar.set_postfix_str(msg)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def latency_ms(fn, inputs: dict[str, np.ndarray], repeats: int = 20) -> float:
    """Median wall time (ms) of `fn` on one window, after one warm-up call."""
    one = {k: np.ascontiguousarray(inputs[k][:1]) for k in INPUT_NAMES}
    fn(one)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(one)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def session_latency(path: Path, inputs: dict[str, np.ndarray]) -> float:
    from edge_ecg.runtime.sessions import onnx_session

    sess = onnx_session(path, threads=1)
    return latency_ms(lambda b: sess.run(None, b), inputs)


def openvino_latency(xml: Path, inputs: dict[str, np.ndarray]) -> float:
    from edge_ecg.runtime.sessions import openvino_compiled

    req = openvino_compiled(xml, threads=1, precision="f32", batch=1).create_infer_request()
    return latency_ms(lambda b: req.infer(b), inputs)


def torch_latencies(r: Routed, evalx: dict) -> dict[str, float]:
    """Single-thread median latency (ms) of one window through both torch models."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def torch_fn(m):
        def fn(b):
            with torch.no_grad():
                return m(*(torch.from_numpy(b[k]) for k in INPUT_NAMES))
        return fn

    lat = {"torch-fp32": latency_ms(torch_fn(r.dense), evalx),
           "torch-fp32-routed": latency_ms(torch_fn(r.routed), evalx)}
    torch.set_num_threads(threads)
    return lat
