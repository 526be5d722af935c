"""Top-k sparsity of the gates and the auxiliary routing losses (Switch load balance, Mod-Squad
mutual information) and the `balance` config switch."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from edge_ecg.errors import CheckpointError
from edge_ecg.model.config import ECGMoEConfig
from edge_ecg.model.flops import example_inputs
from edge_ecg.model.gate import TopKGate, load_balance_loss, mutual_info_loss
from edge_ecg.model.moe import ECGMoE


def test_gates_have_exactly_k_nonzeros_summing_to_one(tiny_cfg):
    m = ECGMoE(tiny_cfg).eval()
    out = m(*example_inputs(tiny_cfg, 5))
    for p in ("scout", "morphology", "rhythm"):
        g = out[f"gate_{p}"]
        assert ((g > 0).sum(-1) == tiny_cfg.k(p)).all()
        torch.testing.assert_close(g.sum(-1), torch.ones(g.shape[:2]))


def test_topk_keeps_the_largest_probabilities():
    torch.manual_seed(0)
    gate = TopKGate(6, 8, n_tasks=3, n_experts=5, k=2)
    g, p = gate(torch.randn(7, 6))
    top = p.topk(2, -1).indices
    chosen = torch.zeros_like(p).scatter(-1, top, 1.0)
    assert torch.equal((g > 0).float(), chosen)
    expected = (p * chosen) / (p * chosen).sum(-1, keepdim=True)
    torch.testing.assert_close(g, expected)


def test_load_balance_loss_is_one_when_balanced_and_large_when_collapsed():
    b, t, e = 64, 2, 4
    uniform = torch.full((b, t, e), 1.0 / e)
    # balanced routing: each expert takes the top slot for a quarter of the windows
    idx = torch.arange(b) % e
    gate = torch.zeros(b, t, e)
    gate[torch.arange(b), :, idx] = 1.0
    assert abs(float(load_balance_loss(gate, uniform)) - 1.0) < 1e-6
    collapsed_p = torch.zeros(b, t, e)
    collapsed_p[..., 0] = 1.0
    assert abs(float(load_balance_loss(collapsed_p, collapsed_p)) - e) < 1e-6


def test_load_balance_gradient_spreads_a_collapsing_gate():
    torch.manual_seed(0)
    gate = TopKGate(4, 8, n_tasks=1, n_experts=4, k=1)
    with torch.no_grad():
        gate.g_out.bias.copy_(torch.tensor([3.0, 0.0, 0.0, 0.0]))
    opt = torch.optim.SGD(gate.parameters(), lr=0.5)
    s = torch.randn(128, 4)
    first = None
    for _ in range(60):
        g, p = gate(s)
        loss = load_balance_loss(g, p)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    g, p = gate(s)
    assert float(load_balance_loss(g, p).detach()) < first - 0.5
    assert int((g > 0).any(0).sum()) >= 2      # more than one expert in use


def test_training_mode_records_aux_loss(tiny_cfg):
    from dataclasses import replace

    m = ECGMoE(replace(tiny_cfg, balance="switch")).train()    # Switch: 1 balanced .. E
    m.raw(*example_inputs(tiny_cfg, 4))
    assert m.last_aux_loss.requires_grad and 1.0 <= float(m.last_aux_loss) <= 4.0


# -- Mod-Squad mutual information -------------------------------------------------------------
def _per_task(rows: list[list[float]], b: int = 8) -> torch.Tensor:
    """`(b, n_tasks, E)` probabilities, every window giving task t the distribution `rows[t]`."""
    return torch.tensor(rows)[None].expand(b, -1, -1).clone()


def test_mutual_info_is_zero_when_every_task_is_uniform():
    assert abs(float(mutual_info_loss(_per_task([[0.25] * 4] * 3)))) < 1e-6


def test_mutual_info_is_minus_one_for_one_expert_per_task_all_distinct():
    eye = torch.eye(4).tolist()                        # E == n_tasks: task t on expert t alone
    assert abs(float(mutual_info_loss(_per_task(eye))) + 1.0) < 1e-6


def test_mutual_info_is_zero_when_all_tasks_collapse_on_one_expert():
    # H(E) = H(E|T) = 0: no information, however concentrated (Switch would give E here)
    assert abs(float(mutual_info_loss(_per_task([[1.0, 0, 0, 0]] * 3)))) < 1e-6


def test_mutual_info_by_hand_two_tasks_on_disjoint_pairs():
    # P(e|t) uniform on 2 of 4 experts, disjoint: H(E) = log 4, H(E|T) = log 2 -> -(1/2)
    rows = [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]]
    assert abs(float(mutual_info_loss(_per_task(rows))) + 0.5) < 1e-6
    # 5 tasks one-hot on 4 experts (2, 1, 1, 1): the floor is above -1
    five = [[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]
    expected = -(math.log(5) - 0.4 * math.log(2)) / math.log(4)
    assert abs(float(mutual_info_loss(_per_task(five))) - expected) < 1e-6


def test_mutual_info_uses_batch_means_not_per_window_concentration():
    # Each window one-hot, but every task sees all experts equally over the batch: P(e|t) is
    # uniform for each task, so there is no task-expert information.
    probs = torch.zeros(8, 2, 4)
    probs[torch.arange(8), :, torch.arange(8) % 4] = 1.0
    assert abs(float(mutual_info_loss(probs))) < 1e-6


def test_mutual_info_lies_in_minus_one_zero_for_random_gates():
    torch.manual_seed(0)
    for t, e in ((1, 4), (3, 4), (5, 4), (4, 2), (2, 6)):
        v = float(mutual_info_loss(torch.randn(16, t, e).mul(3).softmax(-1)))
        assert -1.0 - 1e-6 <= v <= 1e-6
    assert float(mutual_info_loss(torch.ones(4, 3, 1))) == 0.0     # one expert: nothing to route


def test_mutual_info_gradient_concentrates_tasks_on_distinct_experts():
    torch.manual_seed(0)
    gate = TopKGate(4, 8, n_tasks=4, n_experts=4, k=2)
    opt = torch.optim.Adam(gate.parameters(), lr=0.05)
    s = torch.randn(64, 4)
    first = float(mutual_info_loss(gate(s)[1]).detach())
    for _ in range(40):
        loss = mutual_info_loss(gate(s)[1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    p = gate(s)[1]
    last = float(mutual_info_loss(p).detach())
    assert first > -0.1 and last < first - 0.5
    p_e_t = p.mean(0).detach()
    assert (p_e_t.max(-1).values > 0.9).all()          # each task concentrated on one expert
    assert len(set(p_e_t.argmax(-1).tolist())) >= 3    # and the tasks spread over experts


def test_balance_config_picks_the_aux_loss(tiny_cfg):
    assert tiny_cfg.balance == "mutual_info"                   # the default
    batch = example_inputs(tiny_cfg, 4)
    torch.manual_seed(0)
    m = ECGMoE(replace(tiny_cfg, balance="mutual_info")).train()
    m.raw(*batch)
    assert m.last_aux_loss.requires_grad
    assert -1.0 <= float(m.last_aux_loss.detach()) <= 0.0
    m.last_aux_loss.backward()
    assert m.gate_rhythm.g_out.weight.grad is not None
    expected = torch.stack([mutual_info_loss(getattr(m, f"gate_{p}")(m.summary(
        batch[0] * batch[1][:, :, None], batch[1], batch[3], batch[6],
        batch[8] * batch[1][:, :, None]))[1])
        for p in ("scout", "morphology", "rhythm")]).mean()
    torch.testing.assert_close(m.last_aux_loss.detach(), expected.detach())


def test_balance_config_is_validated_and_old_configs_load_as_switch(tiny_cfg):
    with pytest.raises(CheckpointError, match="balance must be one of"):
        replace(tiny_cfg, balance="mod_squad")
    d = replace(tiny_cfg, balance="mutual_info").to_dict()
    assert ECGMoEConfig.from_dict(d).balance == "mutual_info"
    del d["balance"]                                   # written before the field existed
    assert ECGMoEConfig.from_dict(d).balance == "switch"
