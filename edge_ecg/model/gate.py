"""Gates: per task and per path, from a cheap summary of the input, softmax then top-k.

The routing form exports and quantizes correctly: top-k values and indices, scatter into a zero
gate, renormalise, weighted sum over experts. No data-dependent Python branch: every expert is
computed and weighted (the export stage prunes experts by building a smaller model instead).

Two auxiliary routing losses (`ECGMoEConfig.balance` picks one):

- `load_balance_loss` ("switch"): the Switch Transformer one (Fedus et al. 2021, eq. 4-6), per
  task: `E * sum_e f_e * P_e`, 1.0 when balanced, up to E when one expert takes everything. It
  pushes EACH task to spread over all experts, so a deployment's tasks tend to need them all.
- `mutual_info_loss` ("mutual_info"): Mod-Squad's (Chen et al., CVPR 2023) negative mutual
  information between tasks and experts, `-(H(E) - H(E|T)) / log E`, in [-1, 0]: minimised when
  the experts are used evenly over all tasks together but each task concentrates on a few, which
  is what the export stage's per-deployment expert pruning wants.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edge_ecg.model.config import ECGMoEConfig


class InputSummary(nn.Module):
    """Parameter-free summary `(B, S)`: per-lead amplitude, spread and slope at 50 Hz, lead mask,
    period features, the fraction of beat slots filled and per lead the fraction of the window
    missing (filled, not measured: `valid`), so the gates and heads know how much of what they
    read was there. O(L*T) adds: cheap beside any expert."""

    def __init__(self, cfg: ECGMoEConfig):
        super().__init__()
        c = cfg.contract
        self.pool_by = max(1, int(round(c.fs_hz / 50)))
        self.dim = 5 * c.n_leads + len(c.period_features) + 1

    def forward(self, x, lead_mask, beat_mask, period, valid):
        low = F.avg_pool1d(x, self.pool_by)                                  # (B, L, T/10)
        amp = low.abs().mean(-1)
        spread = low.std(-1)
        slope = (low[..., 1:] - low[..., :-1]).abs().mean(-1) * 10.0
        filled = beat_mask.mean(1, keepdim=True)
        missing = lead_mask - valid.mean(-1)                                 # (B, L)
        return torch.cat([amp, spread, slope, lead_mask, period, filled, missing], 1)


class TopKGate(nn.Module):
    """Gate weights `(B, n_tasks, n_experts)` with exactly `k` non-zeros per row, summing to 1."""

    def __init__(self, summary_dim: int, hidden: int, n_tasks: int, n_experts: int, k: int):
        super().__init__()
        self.n_tasks, self.n_experts, self.k = n_tasks, n_experts, k
        self.g_in = nn.Linear(summary_dim, hidden)
        self.g_out = nn.Linear(hidden, n_tasks * n_experts)

    def forward(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns `(gate, probs)`: the sparse renormalised gate and the full softmax."""
        logits = self.g_out(F.relu(self.g_in(s))).reshape(-1, self.n_tasks, self.n_experts)
        probs = logits.softmax(-1)
        if self.k >= self.n_experts:          # config, not data: a dense (soft) gate
            return probs, probs
        vals, idx = probs.topk(self.k, dim=-1)
        gate = torch.zeros_like(probs).scatter(-1, idx, vals)
        return gate / gate.sum(-1, keepdim=True), probs

    def sliced(self, tasks: list[int], experts: list[int], k: int) -> TopKGate:
        """A gate over a subset of tasks and experts: rows of `g_out` picked, softmax and top-k
        renormalised over the kept experts."""
        g = TopKGate(self.g_in.in_features, self.g_in.out_features, len(tasks), len(experts), k)
        g.g_in.load_state_dict(self.g_in.state_dict())
        rows = torch.tensor([t * self.n_experts + e for t in tasks for e in experts])
        with torch.no_grad():
            g.g_out.weight.copy_(self.g_out.weight[rows])
            g.g_out.bias.copy_(self.g_out.bias[rows])
        return g


def load_balance_loss(gate: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Switch-style balance loss averaged over tasks: `E * sum_e f_e * P_e`, where `f_e` is the
    share of top-k slots routed to expert e (no gradient) and `P_e` its mean gate probability."""
    n_experts = probs.shape[-1]
    chosen = (gate > 0).to(probs.dtype)
    f = chosen.mean(0) / chosen.sum(-1).mean(0, keepdim=False)[..., None].clamp(min=1.0)
    p = probs.mean(0)                                                        # (n_tasks, E)
    return n_experts * (f.detach() * p).sum(-1).mean()


def mutual_info_loss(probs: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Mod-Squad's task-expert mutual-information loss, `-(H(E) - H(E|T)) / log E`, from the
    softmax probabilities `(B, n_tasks, E)` of one gate.

    Tasks are taken as uniform: `P(e|t)` is the batch mean of task t's probabilities, `P(e)` the
    mean of those over tasks; `H(E|T)` is the mean over tasks of `H(P(e|t))`. Dividing by
    `log E` (the largest `H(E)`) puts it in [-1, 0] whatever the number of experts: 0 when every
    task uses the same mixture (uniform or collapsed alike), -1 only when each task uses one
    expert alone and the experts are used evenly overall (so `n_tasks` a multiple of E; with
    5 tasks on 4 experts the floor is -(log 5 - 0.4 log 2) / log 4 = -0.96). Dense softmax,
    not the top-k gate: every expert gets a gradient. E == 1 gives 0 (nothing to route)."""
    n_experts = probs.shape[-1]
    if n_experts < 2:
        return probs.sum() * 0.0
    p_e_t = probs.mean(0)                                                   # (n_tasks, E)
    p_e = p_e_t.mean(0)                                                     # (E,)
    h_e = -(p_e * (p_e + eps).log()).sum()
    h_e_t = -(p_e_t * (p_e_t + eps).log()).sum(-1).mean()
    return -(h_e - h_e_t) / math.log(n_experts)
