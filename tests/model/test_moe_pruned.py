"""pruned(): only the kept experts and the chosen heads, equal where the gate used only them."""

from __future__ import annotations

import torch

from edge_ecg.model.flops import count_flops, example_inputs
from edge_ecg.model.moe import ECGMoE


def _route_to(m: ECGMoE, path: str, experts: list[int]) -> None:
    """Make a gate prefer `experts` for every task and input (large bias, other logits small)."""
    g = getattr(m, f"gate_{path}")
    with torch.no_grad():
        g.g_out.weight.mul_(0.01)
        bias = torch.full((g.n_tasks, g.n_experts), -5.0)
        for rank, e in enumerate(experts):
            bias[:, e] = 5.0 - rank
        g.g_out.bias.copy_(bias.reshape(-1))


def test_pruned_equals_full_when_gate_uses_only_kept_experts(tiny_cfg):
    torch.manual_seed(0)
    m = ECGMoE(tiny_cfg).eval()
    keep = {"scout": [1, 3], "morphology": [0, 2], "rhythm": [1, 3]}
    for p, e in keep.items():
        _route_to(m, p, e)
    inp = example_inputs(tiny_cfg, 3)
    full = m(*inp)
    small = m.pruned(keep, ["age", "arrhythmia"]).eval()
    assert small.cfg.scouts == ("cnn", "fold") and len(small.morphology) == 2
    out = small(*inp)
    assert list(out)[:2] == ["age", "arrhythmia"] and "sex" not in out
    for t in ("age", "arrhythmia"):
        torch.testing.assert_close(out[t], full[t], atol=1e-5, rtol=1e-5)
    i = [tiny_cfg.task_names.index(t) for t in ("age", "arrhythmia")]
    for p, e in keep.items():
        torch.testing.assert_close(out[f"gate_{p}"], full[f"gate_{p}"][:, i][:, :, e])
    assert count_flops(small) < count_flops(m)


def test_pruned_renormalises_over_kept_experts(tiny_cfg):
    torch.manual_seed(0)
    m = ECGMoE(tiny_cfg).eval()
    small = m.pruned({"scout": [0]}).eval()
    out = small(*example_inputs(tiny_cfg, 2))
    torch.testing.assert_close(out["gate_scout"], torch.ones(2, len(tiny_cfg.tasks), 1))


def test_expert_usage_is_mean_gate_mass(tiny_cfg):
    m = ECGMoE(tiny_cfg).eval()
    batches = [example_inputs(tiny_cfg, 2, seed=s) for s in range(2)]
    usage = m.expert_usage(batches)
    for p in ("scout", "morphology", "rhythm"):
        for t in tiny_cfg.tasks:
            # a per-beat task reads the morphology path only: no usage elsewhere
            want = 0.0 if t.per_beat and p != "morphology" else 1.0
            assert abs(sum(usage[p][t.name].values()) - want) < 1e-5
    g = torch.cat([m(*b)["gate_scout"] for b in batches]).mean(0)
    assert abs(usage["scout"]["age"]["patch"] - float(g[1, 0])) < 1e-6


def test_beat_only_deployment_computes_only_the_morphology_experts_it_routes_to(tiny_cfg):
    """A deployment naming only `beat` keeps the morphology experts its gate row uses and
    computes no scout, rhythm expert or fusion: the routing keeps one (never run) expert on
    the paths the beat task does not read, and the per-beat output equals the full model's."""
    from export.routing import route_from_usage

    torch.manual_seed(0)
    m = ECGMoE(tiny_cfg).eval()
    _route_to(m, "morphology", [1, 3])
    inp = example_inputs(tiny_cfg, 2)
    usage = m.expert_usage([inp])
    per_task = {p: {t: torch.tensor(list(row.values())).numpy() for t, row in rows.items()}
                for p, rows in usage.items()}
    r = route_from_usage(per_task, ["beat"], 0.99)
    assert r.keep["morphology"] == (1, 3)
    assert r.keep["scout"] == (0,) and r.keep["rhythm"] == (0,)
    small = m.pruned({p: list(k) for p, k in r.keep.items()}, ["beat"]).eval()

    def refuse(*a, **k):
        raise AssertionError("a beat-only model must not run this expert")
    for mod in [*small.scouts, *small.rhythm]:
        mod.forward = refuse
    torch.testing.assert_close(small(*inp)["beat"], m(*inp)["beat"])
    assert count_flops(small) < 0.5 * count_flops(m)
