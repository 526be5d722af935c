"""The deployment's model routed and measured in torch: the model with all experts and the one
computing only the experts that carry the chosen tasks' gate mass (sharper per-task routings
tried first, `export.routing.ROUTE_SEARCH`), their outputs on the evaluation windows, metrics
and cost; a routing that costs more metric than the tolerance is refused here, before the
slow conversions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from edge_ecg.data.tasks import TaskSet
from edge_ecg.signal.contract import INPUT_NAMES
from export.acceptance import metric_drops
from export.errors import MetricDropError
from export.parity import run_torch
from export.routing import ROUTE_SHARE

if TYPE_CHECKING:
    from export.request import ExportRequest


@dataclass
class Routed:
    """The model with all experts (`dense`) and routed to the experts carrying the gate mass
    (`routed`), both for the chosen tasks, with their torch outputs, metrics and cost."""

    routing: object
    dense: object
    routed: object
    ref_out: dict
    routed_out: dict
    ref_metrics: dict
    routed_metrics: dict
    cost: dict
    drop: dict                  # routing's metric drop per task against all experts
    # sharper routings tried: (per-task keep mass, experts kept, worst metric drop, the per-beat
    # heads' experts by name)
    search: list = field(default_factory=list)


def route_and_measure(req: ExportRequest, model, calib: dict, evalx: dict, tasks: TaskSet,
                      labels: dict) -> Routed:
    """Route, run both torch models on the evaluation windows, and refuse a routing whose
    metric drop is beyond the tolerance (before the slow conversions)."""
    import torch

    from edge_ecg.metrics.tasks import task_metrics
    from edge_ecg.model.flops import count_flops, count_params
    from export.graph_forms import route_beat_head
    from export.routing import measure_usage_per_task, route_from_usage

    names = list(tasks.names)
    per_task = measure_usage_per_task(model, calib, names, progress=req.progress)
    experts = {p: tuple(model.cfg.experts(p)) for p in per_task}
    per_beat = tuple(t.name for t in tasks if t.per_beat) if req.route_heads else ()
    routing = route_from_usage(per_task, names, req.keep_mass, experts, per_beat=per_beat)
    all_keep = {p: list(range(len(routing.usage[p]))) for p in routing.usage}
    dense = model.pruned(all_keep, names).eval()
    ref_out = run_torch(dense, evalx, progress=req.progress, desc="torch fp32")
    ref_metrics = task_metrics(tasks, {t.name: ref_out[t.name] for t in tasks}, labels)

    def measured(rt):
        m = model.pruned({p: list(k) for p, k in rt.keep.items()}, names).eval()
        m = route_beat_head(m, rt.heads_in_routed())
        out = run_torch(m, evalx, progress=req.progress, desc="torch fp32 routed")
        return m, out, task_metrics(tasks, {t.name: out[t.name] for t in tasks}, labels)

    tried = []     # (per-task keep mass, experts kept, worst drop): the report's search line
    for mass in sorted(req.route_search):
        # the sharpest routing first; each distinct one measured, the first within its share
        # of the tolerance taken (int8 needs the rest)
        rt = route_from_usage(per_task, names, mass, experts, per_task_mass=True,
                              per_beat=per_beat)
        if rt.sharpness >= routing.sharpness or any(
                (rt.keep, rt.heads) == (t[-1].keep, t[-1].heads) for t in tried):
            continue
        cand = measured(rt)
        worst = max(metric_drops(ref_metrics, cand[2], tasks).values(), default=0.0)
        tried.append((mass, rt.n_kept, round(worst, 4), _head_names(rt), rt))
        if worst <= ROUTE_SHARE * req.tolerance:
            routing, (routed, routed_out, routed_metrics) = rt, cand
            break
    else:
        routed, routed_out, routed_metrics = measured(routing)
    one = tuple(torch.from_numpy(np.ascontiguousarray(evalx[k][:1])) for k in INPUT_NAMES)
    cost = {
        "all_experts": {"params": count_params(dense), "flops": count_flops(dense, one)},
        "routed": {"params": count_params(routed), "flops": count_flops(routed, one)},
    }
    drop = metric_drops(ref_metrics, routed_metrics, tasks)
    over = {t: round(d, 4) for t, d in drop.items() if d > req.tolerance}
    kept = {p: list(k) for p, k in routing.keep.items()}
    if over and not req.allow_metric_drop:
        # Fail before the (slow) conversions: routing alone already costs too much.
        raise MetricDropError(
            f"routing to the experts {kept} (keep mass {req.keep_mass:g}) "
            f"drops task metrics beyond the tolerance {req.tolerance:g} (MAE relative, "
            f"F1/accuracy absolute): {over}; raise --keep-mass or pass --allow-metric-drop"
        )
    return Routed(routing, dense, routed, ref_out, routed_out, ref_metrics, routed_metrics,
                  cost, drop, [t[:4] for t in tried])


def _head_names(rt) -> dict[str, list[str]]:
    names = rt.experts.get("morphology", ())
    return {t: [names[i] if i < len(names) else str(i) for i in idx] for t, idx in rt.heads.items()}


def search_rows(search: list) -> list[dict]:
    """The sharper routings tried, as the report and manifest list them."""
    return [{"keep_mass_per_task": m, "experts_kept": n, "worst_drop": w, "heads": h}
            for m, n, w, h in search]
