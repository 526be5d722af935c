"""What a variant must meet to enter a bundle: an fp32 graph computes the torch model
(`check_fp32`), and no task metric (nor, for a per-beat task, any class's F1) drops beyond the
tolerance against torch fp32 with all experts (`gate_metrics`; `metric_drops` measures it).
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
# A per-beat task is gated on each class's F1 as well as its macro F1 (key "beat.V_f1"), for
# every class with at least this many reference beats in the evaluation windows. The macro
# hides a trade between classes: with the per-beat head routed to its own experts, the bundled
# checkpoint on held-out fold 0 kept beat macro F1 within 0.0012 while V F1 fell 0.049 (V +P
# 0.584 -> 0.509) and S F1 rose 0.047; through the runtime, 200 more normal beats called V.
CLASS_GATE_MIN_BEATS = 50


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
        if t.per_beat:
            drops.update(class_f1_drops(t, ref.get(t.name, {}), got.get(t.name, {})))
    return drops


def class_f1(metrics: dict, name: str) -> float:
    """F1 of one class of a per-beat task from its Se and +P (0 when it is never called)."""
    se, ppv = metrics.get(f"{name}_se"), metrics.get(f"{name}_ppv", 0.0)
    if se is None:
        return float("nan")
    return 2 * se * ppv / (se + ppv) if se + ppv > 0 else 0.0


def class_f1_drops(task, ref: dict, got: dict) -> dict[str, float]:
    """`{"<task>.<class>_f1": drop}` for each class of a per-beat task with at least
    `CLASS_GATE_MIN_BEATS` reference beats."""
    out = {}
    for name in task.labels:
        if ref.get(f"{name}_n", 0) < CLASS_GATE_MIN_BEATS:
            continue
        a, b = class_f1(ref, name), class_f1(got, name)
        if np.isfinite(a) and np.isfinite(b):
            out[f"{task.name}.{name}_f1"] = float(a - b)
    return out


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
            f"--keep-mass, use more --calib windows{_beat_hint(req, over, tasks)}, or pass "
            "--allow-metric-drop"
        )
    return drops, over


def _beat_hint(req: ExportRequest, over: dict, tasks: TaskSet) -> str:
    """The lever for a per-beat task over the tolerance in an int8 variant whose morphology
    experts were quantized: keeping them fp32 (what the bundled model's export needed)."""
    beat = {t.name for t in tasks.tasks if t.kind == "beat"}
    hit = any("int8" in v and any(k.split(".")[0] in beat for k in d) for v, d in over.items())
    return ", keep the per-beat experts fp32 (--no-beat-experts-int8)" \
        if hit and req.beat_experts_int8 else ""

