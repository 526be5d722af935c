"""Batched inference of a torch ECG-MoE over a data set, and its per-task metrics."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from edge_ecg.metrics.tasks import task_metrics
from edge_ecg.signal.contract import INPUT_NAMES


def batches(inputs: dict[str, np.ndarray], batch_size: int, idx: np.ndarray | None = None):
    """Tuples of float32 tensors in INPUT_NAMES order."""
    n = len(next(iter(inputs.values())))
    idx = np.arange(n) if idx is None else idx
    for s in range(0, len(idx), batch_size):
        sel = idx[s:s + batch_size]
        yield tuple(torch.from_numpy(np.ascontiguousarray(inputs[k][sel], dtype=np.float32))
                    for k in INPUT_NAMES)


@torch.no_grad()
def predict(model, inputs: dict[str, np.ndarray], batch_size: int = 64, progress: bool = False,
            desc: str = "torch") -> dict[str, np.ndarray]:
    """All graph outputs as numpy arrays over the whole input set (eval mode; the model's
    mode is restored after). The one place torch inference is batched (export.parity too)."""
    was = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    n = len(next(iter(inputs.values())))
    for batch in tqdm(batches(inputs, batch_size), total=-(-n // batch_size), desc=desc,
                      unit="batch", leave=False, disable=not progress):
        for k, v in model(*batch).items():
            parts.setdefault(k, []).append(v.detach().cpu().numpy())
    model.train(was)
    return {k: np.concatenate(v) for k, v in parts.items()}


def evaluate(model, dataset, batch_size: int = 64) -> dict[str, dict[str, float]]:
    out = predict(model, dataset.inputs, batch_size)
    return task_metrics(model.cfg.task_set, out, dataset.labels)
