"""Expert routing for a deployment: measure gate mass on calibration data, keep what carries it.

A deployment names the tasks it needs. The gate of each path gives, per window and task, a
weight per expert (top-k, zero elsewhere). The mean weight an expert gets over the chosen
tasks' rows and the calibration windows is its usage; the experts that together carry
`keep_mass` of it are kept (the fewest, largest first), the rest leave the graph
(`model.pruned(keep, tasks)`).

Sharper, per task (`per_task=True`): each task keeps the fewest experts carrying `keep_mass` of
its own row, and the path keeps their union. A task that leans 0.91 on one scout and 0.09 on
another then drops the second at a keep mass of 0.9, which the mean over tasks cannot see
when another task needs it. The export tries such routings from the sharpest
(`ROUTE_SEARCH`) and takes the first whose metric drop, measured, stays within
its share of the tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_ecg.errors import BundleError

KEEP_MASS = 0.99
# Sharper routings the export tries before `keep_mass` (export.routing, per_task_mass): each
# task keeps the experts carrying this much of its own gate row. The first (sharpest) whose
# metric drop against all experts, measured in torch on the evaluation windows, stays within
# ROUTE_SHARE of the tolerance is taken; int8 has the rest of it.
ROUTE_SEARCH = (0.8, 0.9, 0.95)
ROUTE_SHARE = 0.5
# A per-beat task's head reads only the morphology experts carrying keep_mass of its own gate
# row (Routing.heads); the other morphology experts compute the beats the window tasks pool
# (the first morph_beats) instead of every slot. Bundled checkpoint, all six tasks (12 of 12
# experts kept either way): the beat head leans 0.988 on beat_mlp, so at a per-task keep mass
# of 0.8 three of the four beat encoders run on 16 beats instead of 32; torch beat macro F1
# -0.0012 on the held-out fold, ONNX int8 2.19 -> 1.95 ms (export/int8_scope.py has the run).
# But the macro hid a trade between classes: V F1 -0.049 (held-out fold 0), S F1 -0.009 on
# the network's validation patients (mitdb 106, 208, svdb 848, 884, 887), beyond ROUTE_SHARE
# of the tolerance; the route search now gates each beat class (export.acceptance), so it
# keeps such a routing only where every class holds. The bundled export passes
# --no-route-heads, chosen on those validation patients (BENCHMARKS.md).
ROUTE_HEADS = True


@dataclass(frozen=True)
class Routing:
    tasks: tuple[str, ...]
    keep_mass: float
    usage: dict[str, tuple[float, ...]]    # path -> mean gate weight per expert (sums to ~1)
    keep: dict[str, tuple[int, ...]]       # path -> kept expert indices, ascending
    experts: dict[str, tuple[str, ...]] = field(default_factory=dict)   # path -> expert names
    # path -> task -> mean gate weight per expert: which experts each task uses on its own
    per_task: dict[str, dict[str, tuple[float, ...]]] = field(default_factory=dict)
    per_task_mass: bool = False            # keep_mass applied to each task's row, not the mean
    # per-beat task -> the morphology experts its head reads (those carrying keep_mass of its
    # own gate row; export.graph_forms.route_beat_head): the others run on the window's
    # first morph_beats beats only
    heads: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def n_kept(self) -> int:
        return sum(len(k) for k in self.keep.values())

    @property
    def sharpness(self) -> tuple[int, int]:
        """What a routing computes, fewer first: experts kept, then experts the per-beat heads
        read on every beat slot."""
        return self.n_kept, sum(len(k) for k in self.heads.values())

    def heads_in_routed(self) -> dict[str, tuple[int, ...]]:
        """`heads` numbered as in the routed model (its morphology experts renumbered)."""
        kept = list(self.keep.get("morphology", ()))
        return {t: tuple(kept.index(i) for i in idx) for t, idx in self.heads.items()}

    def to_dict(self) -> dict:
        return {
            "tasks": list(self.tasks),
            "keep_mass": self.keep_mass,
            "keep_mass_per_task": self.per_task_mass,
            "paths": {p: {"kept": list(self.keep[p]), "total": len(self.usage[p]),
                          "experts": list(self.experts.get(p, ())),
                          "kept_names": [self.experts[p][i] for i in self.keep[p]]
                          if p in self.experts else [],
                          "usage": [round(u, 6) for u in self.usage[p]],
                          "mass_kept": round(float(sum(self.usage[p][i] for i in self.keep[p])), 6),
                          "usage_per_task": {t: [round(u, 6) for u in row]
                                             for t, row in self.per_task.get(p, {}).items()}}
                      for p in self.usage},
            "heads": {t: {"path": "morphology", "kept": list(idx),
                          "kept_names": [self.experts["morphology"][i] for i in idx]
                          if "morphology" in self.experts else []}
                      for t, idx in self.heads.items()},
        }


def measure_usage_per_task(model, inputs: dict[str, np.ndarray], tasks: list[str],
                           batch_size: int = 16, progress: bool = True
                           ) -> dict[str, dict[str, np.ndarray]]:
    """`{path: {task: mean gate weight per expert}}` over the windows `inputs` (the model's
    `expert_usage`, which averages `gate_<path>` outputs per task)."""
    from tqdm import tqdm

    from export.parity import batches, n_windows

    unknown = [t for t in tasks if t not in model.cfg.task_names]
    if unknown:
        raise BundleError(f"the model has no task(s) {unknown}; it predicts "
                          f"{list(model.cfg.task_names)}")
    total = -(-n_windows(inputs) // batch_size)
    it = tqdm(batches(inputs, batch_size), total=total, desc="expert usage", unit="batch",
              leave=False, disable=not progress)
    per_task = model.expert_usage(it)                  # {path: {task: {expert: mass}}}
    if not per_task:
        raise BundleError("the model reports no gate usage: nothing to route")
    return {path: {t: np.array(list(rows[t].values())) for t in tasks}
            for path, rows in per_task.items()}


def select_experts(usage: dict[str, np.ndarray],
                   keep_mass: float = KEEP_MASS) -> dict[str, tuple[int, ...]]:
    """Per path, the fewest experts (largest usage first) whose usage sums to >= keep_mass of
    the path's total. Experts that never get weight are never kept."""
    if not 0.0 < keep_mass <= 1.0:
        raise BundleError(f"--keep-mass must be in (0, 1], got {keep_mass}")
    keep = {}
    for path, u in usage.items():
        u = np.asarray(u, np.float64)
        total = float(u.sum())
        if total <= 0:
            raise BundleError(f"path {path!r}: the gate gives no expert any weight")
        order = np.argsort(-u, kind="stable")
        cum = np.cumsum(u[order]) / total
        n = int(np.searchsorted(cum, keep_mass - 1e-9) + 1)  # first prefix reaching keep_mass
        n = min(n, int((u > 0).sum()))
        keep[path] = tuple(sorted(int(i) for i in order[:n]))
    return keep


def route(model, inputs: dict[str, np.ndarray], tasks: list[str],
          keep_mass: float = KEEP_MASS, progress: bool = True) -> Routing:
    """The routing decision for `tasks` from the model's gates on the calibration windows."""
    per_task = measure_usage_per_task(model, inputs, tasks, progress=progress)
    return route_from_usage(per_task, tasks, keep_mass,
                            {p: tuple(model.cfg.experts(p)) for p in per_task})


def route_from_usage(per_task: dict[str, dict[str, np.ndarray]], tasks: list[str],
                     keep_mass: float = KEEP_MASS,
                     experts: dict[str, tuple[str, ...]] | None = None,
                     per_task_mass: bool = False,
                     per_beat: tuple[str, ...] = ()) -> Routing:
    """The routing decision for `tasks` from per-task usage already measured (it may hold more
    tasks than `tasks`: one measurement serves many deployments). `per_task_mass`: the union
    of each task's own experts carrying `keep_mass` of its row, not `keep_mass` of the mean.
    `per_beat`: the per-beat tasks, whose heads read only the morphology experts carrying
    `keep_mass` of their own row (`Routing.heads`; none where that is every kept expert)."""
    usage, unread = {}, []
    for p, rows in per_task.items():
        # A task that does not read a path (a per-beat task reads only the morphology path)
        # has no usage there: it neither dilutes the path's usage nor needs any of its experts.
        read = [np.asarray(rows[t], np.float64) for t in tasks if float(np.sum(rows[t])) > 0]
        if read:
            usage[p] = np.mean(read, 0)
        else:
            unread.append(p)
            usage[p] = np.zeros(len(next(iter(rows.values()))))
    if per_task_mass:
        keep = {}
        for p in usage:
            if p in unread:
                continue
            rows = [np.asarray(per_task[p][t], np.float64) for t in tasks
                    if float(np.sum(per_task[p][t])) > 0]
            keep[p] = tuple(sorted({i for row in rows
                                    for i in select_experts({p: row}, keep_mass)[p]}))
    else:
        keep = select_experts({p: u for p, u in usage.items() if p not in unread}, keep_mass)
    # a path none of the tasks reads keeps one expert (a model keeps >= 1 per path; it computes
    # no path its tasks do not read, so that expert costs nothing at run time)
    keep.update({p: (0,) for p in unread})
    heads = {}
    if "morphology" in per_task and "morphology" in keep:
        for t in (t for t in tasks if t in per_beat):
            row = np.asarray(per_task["morphology"][t], np.float64)
            if float(row.sum()) > 0:
                # within the experts the path keeps (a head reads no pruned expert)
                mine = select_experts({"morphology": row}, keep_mass)["morphology"]
                mine = tuple(i for i in mine if i in keep["morphology"])
                if mine and mine != tuple(keep["morphology"]):
                    heads[t] = mine
    return Routing(tasks=tuple(tasks), keep_mass=keep_mass,
                   usage={p: tuple(float(x) for x in u) for p, u in usage.items()}, keep=keep,
                   experts=experts or {},
                   per_task={p: {t: tuple(float(x) for x in rows[t]) for t in tasks}
                             for p, rows in per_task.items()},
                   per_task_mass=per_task_mass, heads=heads)
