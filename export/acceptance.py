"""What a variant must meet to enter a bundle: an fp32 graph computes the torch model
(`check_fp32`), and no task metric drops beyond the tolerance against torch fp32 with all
experts (`gate_metrics`; `metric_drops` measures the drop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge_ecg.data.tasks import TaskSet
from export.errors import MetricDropError, ParityError
from export.parity import max_abs_diff

if TYPE_CHECKING:
    from export.request import ExportRequest

FP32_TOLERANCE = 1e-4        # fp32 engines vs torch, training units (regression / task scale)
LOWER_IS_BETTER = ("mae", "rmse", "mse")


def metric_drops(ref: dict, got: dict, tasks: TaskSet) -> dict[str, float]:
    """Per task, how much worse the primary metric got (> 0 worse): absolute for fractions
    (F1, accuracy), relative to the reference for errors (MAE in task units)."""
    drops = {}
    for t in tasks:
        a, b = ref.get(t.name, {}).get(t.metric), got.get(t.name, {}).get(t.metric)
        if a is None or b is None or not np.isfinite(a) or not np.isfinite(b):
            continue
        if t.metric in LOWER_IS_BETTER:
            drops[t.name] = float((b - a) / max(abs(a), 1e-9))
        else:
            drops[t.name] = float(a - b)
    return drops


def scales(tasks: TaskSet) -> dict[str, float]:
    """Each regression task's scale: its outputs divided by it are in training units."""
    return {t.name: float(t.scale) for t in tasks if t.kind == "regression"}


def check_fp32(name: str, ref: dict, got: dict, tasks: TaskSet) -> float:
    """The largest difference of an fp32 variant's outputs from torch's (training units);
    `ParityError` beyond `FP32_TOLERANCE`."""
    diff = max_abs_diff({t.name: ref[t.name] for t in tasks}, got, scales(tasks))
    if not diff <= FP32_TOLERANCE:
        raise ParityError(
            f"variant {name}: fp32 outputs differ from torch by {diff:.3g} (training units) > "
            f"{FP32_TOLERANCE:g}; the exported graph does not compute the model"
        )
    return diff


def gate_metrics(req: ExportRequest, r, keep: list, tasks: TaskSet) -> tuple[dict, dict]:
    """`(drops, over)`: routing (`r`, an `export.routed.Routed`) and every kept variant
    (`export.variants.Built`) against torch fp32 with all experts; refuses drops beyond the
    tolerance unless `allow_metric_drop`."""
    drops = {"torch-fp32-routed": r.drop}
    for b in keep:
        drops[b.name] = metric_drops(r.ref_metrics, b.metrics, tasks)
    over = {v: {t: round(d, 4) for t, d in ds.items() if d > req.tolerance}
            for v, ds in drops.items()}
    over = {v: d for v, d in over.items() if d}
    if over and not req.allow_metric_drop:
        raise MetricDropError(
            f"task metrics dropped beyond the tolerance {req.tolerance:g} (MAE relative, "
            f"F1/accuracy absolute) against torch fp32 with all experts: {over}; raise "
            "--keep-mass, use more --calib windows, or pass --allow-metric-drop"
        )
    return drops, over
