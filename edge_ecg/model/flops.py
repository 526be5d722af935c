"""Parameter counts and FLOPs, counted (torch.utils.flop_counter), never guessed."""

from __future__ import annotations

import torch

from edge_ecg.signal.patient_context import N_CONTEXT


def example_inputs(cfg, batch: int = 1, n_leads_present: int | None = None,
                   seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs of the contract's shapes (INPUT_NAMES order), 12 beats at 72 bpm."""
    g = torch.Generator().manual_seed(seed)
    c = cfg.contract
    n_present = c.n_leads if n_leads_present is None else n_leads_present
    x = torch.randn(batch, c.n_leads, c.window_len, generator=g) * 0.3
    lead_mask = torch.zeros(batch, c.n_leads)
    lead_mask[:, :n_present] = 1.0
    beats = torch.randn(batch, c.max_beats, c.n_leads, c.beat_len, generator=g) * 0.3
    beat_mask = torch.zeros(batch, c.max_beats)
    beat_mask[:, :12] = 1.0
    rr = (830.0 + 30.0 * torch.randn(batch, c.max_beats, generator=g)) * beat_mask
    rr_mask = beat_mask.clone()
    rr_mask[:, 11:] = 0.0
    period = torch.zeros(batch, len(c.period_features))
    period[:, :2] = 0.83
    period[:, 7] = 1.2
    period[:, 8] = 0.83
    beat_rr = torch.zeros(batch, c.max_beats, 3)
    beat_rr[:, 1:11, 0] = rr[:, :10]
    beat_rr[:, :11, 1] = rr[:, :11]
    beat_rr[:, :12, 2] = 830.0
    valid = lead_mask[:, :, None].expand(batch, c.n_leads, c.n_valid_seg).clone()
    beat_ctx = torch.zeros(batch, c.max_beats, N_CONTEXT)
    return x, lead_mask, beats, beat_mask, rr, rr_mask, period, beat_rr, valid, beat_ctx


def count_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_flops(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...] | None = None) -> int:
    """FLOPs (multiply-add = 2) of one forward pass on one 10-s window (batch 1)."""
    from torch.utils.flop_counter import FlopCounterMode

    was = model.training
    model.eval()
    inputs = inputs if inputs is not None else example_inputs(model.cfg, 1)
    with FlopCounterMode(display=False) as counter:
        model(*inputs)
    model.train(was)
    return int(counter.get_total_flops())
