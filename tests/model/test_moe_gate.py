"""Top-k sparsity of the gates and the load-balancing loss."""

from __future__ import annotations

import torch

from edge_ecg.model.flops import example_inputs
from edge_ecg.model.gate import TopKGate, load_balance_loss
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
    m = ECGMoE(tiny_cfg).train()
    m.raw(*example_inputs(tiny_cfg, 4))
    assert m.last_aux_loss.requires_grad and 0.0 < float(m.last_aux_loss) <= 4.0
