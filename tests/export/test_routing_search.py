"""Sharper routing: each task's own experts (per-task keep mass), and the export's search that
takes the sharpest routing whose measured metric drop stays within its share of the tolerance."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export.routing import route_from_usage


def test_per_task_mass_drops_a_minor_expert_the_mean_keeps():
    per_task = {"scout": {"a": np.array([0.91, 0.09, 0.0, 0.0]),
                          "b": np.array([0.0, 0.0, 0.0, 1.0]),
                          "beat": np.zeros(4)}}          # a task that does not read the path
    mean = route_from_usage(per_task, ["a", "b", "beat"], 0.99)
    # mean usage (0.455, 0.045, 0, 0.5): 0.955 without expert 1, under 0.99
    assert mean.keep["scout"] == (0, 1, 3) and not mean.per_task_mass
    sharp = route_from_usage(per_task, ["a", "b", "beat"], 0.9, per_task_mass=True)
    assert sharp.keep["scout"] == (0, 3) and sharp.n_kept == 2
    assert sharp.to_dict()["keep_mass_per_task"] is True
    # at 0.95, task a needs its second expert again
    assert route_from_usage(per_task, ["a", "b"], 0.95, per_task_mass=True).keep["scout"] == (0, 1, 3)


def _model_leaning(minor: float):
    """Tiny ECG-MoE whose scout gate gives every task scout 0 and, with weight `minor`,
    scout 2 (top-2 of a softmax over biases; the other scouts get nothing)."""
    from edge_ecg.model.config import ECGMoEConfig
    from edge_ecg.model.moe import ECGMoE

    torch.manual_seed(0)
    model = ECGMoE(ECGMoEConfig.preset("tiny"), load_external=False).eval()
    g = model.gate_scout
    with torch.no_grad():
        g.g_out.weight.zero_()
        bias = torch.full((g.n_tasks, g.n_experts), -30.0)
        bias[:, 0] = 0.0
        bias[:, 2] = float(np.log(minor / (1 - minor)))
        g.g_out.bias.copy_(bias.reshape(-1))
    return model


@pytest.mark.parametrize("tolerance, expect", [(0.01, [0, 2]), (float("inf"), [0])])
def test_the_search_takes_the_sharpest_routing_within_the_tolerance(tmp_path, tolerance, expect):
    from edge_ecg.data.dataset import load_dataset
    from export.parity import run_torch
    from export.stage import ExportRequest, route_and_measure

    model = _model_leaning(0.15)
    data = load_dataset("synth:8?seed=5", model.cfg.contract, model.cfg.task_set, progress=False)
    # Labels the model with all experts gets exactly: any change of output is a metric drop
    # (a regression's MAE from 0, relative).
    out = run_torch(model, data.inputs, progress=False)
    for t in model.cfg.tasks:
        y = out[t.name]
        data.labels[t.name] = (y.argmax(-1) if t.kind == "multiclass" else
                               (y >= 0.5) * 1.0 if t.kind == "binary" else y
                               ).astype(np.float32)
    tasks = model.cfg.task_set
    labels = {t.name: data.labels[t.name] for t in tasks}
    req = ExportRequest(checkpoint=tmp_path / "none", out=tmp_path / "b", tolerance=tolerance,
                        allow_metric_drop=True, progress=False)
    r = route_and_measure(req, model, data.inputs, data.inputs, tasks, labels)
    assert list(r.routing.keep["scout"]) == expect
    # the sharpest routing tried first: per-task keep mass 0.8 drops scout 2 (0.15 of each row)
    assert r.search[0][0] == 0.8
    worst = r.search[0][2]
    if expect == [0, 2]:
        assert worst > 0.5 * tolerance and not r.routing.per_task_mass
    else:
        assert r.routing.per_task_mass and max(r.drop.values()) == pytest.approx(worst, abs=1e-4)
