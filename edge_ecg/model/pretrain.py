"""Self-supervised pretraining: masked reconstruction, no labels.

- Scouts: 200 ms blocks of the window are zeroed (30 %); each scout reconstructs the window at
  50 Hz from its feature map, scored on the masked blocks (masked-patch modelling as in MOMENT
  and PatchTST). The period-fold scout reconstructs in its own folded grid.
- Morphology experts: 50 ms segments of each beat are zeroed; each reconstructs the beat at
  100 Hz from its per-beat features (the deviation expert: the beat minus the window template).
- Rhythm experts: a quarter of the RR intervals are hidden; each predicts the whole RR series.
The external scout is pretrained elsewhere and stays frozen. Decoders live here, not in the
model, and are thrown away after pretraining.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_ecg.model.moe import ECGMoE, expand_valid
from edge_ecg.model.scouts import CNNScout, DLinearScout, FoldScout, PatchScout

MASK_BLOCK_S = 0.2
MASK_RATIO = 0.3


class ScoutDecoder(nn.Module):
    """Decoder from a scout's feature map to the window at the reconstruction rate."""

    def __init__(self, scout: nn.Module, cfg):
        super().__init__()
        c = cfg.contract
        self.n_leads, self.t_low = c.n_leads, c.window_len // cfg.recon_pool
        if isinstance(scout, PatchScout):
            self.kind = "patch"
            self.lin = nn.Linear(cfg.d_model, c.n_leads * (cfg.patch_len // cfg.recon_pool))
        elif isinstance(scout, CNNScout):
            self.kind = "cnn"
            self.conv = nn.Conv1d(cfg.d_model, c.n_leads, 1)
        elif isinstance(scout, DLinearScout):
            self.kind = "dlinear"
            self.lin = nn.Linear(cfg.dlinear_basis, self.t_low)
        elif isinstance(scout, FoldScout):
            self.kind = "fold"
            self.conv = nn.Conv2d(cfg.d_model, c.n_leads, 1)
        else:
            self.kind = "none"

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if self.kind == "patch":                                    # (B, N, D) -> (B, L, T_low)
            b, n, _ = f.shape
            return self.lin(f).reshape(b, n, self.n_leads, -1).permute(0, 2, 1, 3).reshape(
                b, self.n_leads, -1)
        if self.kind == "cnn":                                      # (B, D, T') -> (B, L, T_low)
            return self.conv(F.interpolate(f, size=self.t_low, mode="linear"))
        if self.kind == "dlinear":                                  # (B, L, K) -> (B, L, T_low)
            return self.lin(f)
        return self.conv(f)                                         # (B, D, R, P) -> (B, L, R, P)


class PretrainHeads(nn.Module):
    def __init__(self, model: ECGMoE):
        super().__init__()
        cfg, c = model.cfg, model.cfg.contract
        self.scouts = nn.ModuleList(ScoutDecoder(s, cfg) for s in model.scouts)
        if cfg.use_period:
            n_low = c.beat_len // cfg.beat_pool
            self.morphology = nn.ModuleList(nn.Linear(m.dim, c.n_leads * n_low)
                                            for m in model.morphology)
            self.rhythm = nn.ModuleList(nn.Linear(cfg.d_model, c.max_beats)
                                        for _ in model.rhythm)


def _masked_mse(pred, target, weight):
    return ((pred - target) ** 2 * weight).sum() / weight.sum().clamp(min=1.0)


def block_mask(b: int, n: int, block: int, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """`(B, 1, n)` float mask, 1 = hidden, in blocks of `block` samples."""
    n_blocks = -(-n // block)
    m = (torch.rand(b, 1, n_blocks, generator=gen) < ratio).float()
    return m.repeat_interleave(block, -1)[..., :n]


class PretrainStep(nn.Module):
    """The pretraining loss as one module (so DDP can wrap it)."""

    def __init__(self, model: ECGMoE, heads: PretrainHeads):
        super().__init__()
        self.model, self.heads = model, heads

    def forward(self, x, lead_mask, beats, beat_mask, rr_ms, rr_mask, period, beat_rr, valid,
                beat_ctx, masks):
        m, cfg = self.model, self.model.cfg
        time_mask, beat_hide, rr_keep = masks
        pool = cfg.recon_pool
        # as the model reads it: filled samples zeroed, and never a reconstruction target
        present = expand_valid(valid * lead_mask[:, :, None], cfg.contract.valid_seg,
                               x.shape[-1])
        x = x * present
        xm = x * (1.0 - time_mask)
        target = F.avg_pool1d(x, pool)
        weight = F.max_pool1d(time_mask, pool) * lead_mask[:, :, None] * (
            -F.max_pool1d(-present, pool))                                       # (B, L, T_low)
        losses = []
        for scout, dec in zip(m.scouts, self.heads.scouts):
            if dec.kind == "none":
                continue
            pred = dec(scout.features(xm, period))
            if dec.kind == "fold":
                grid, valid = scout.fold(x, period)
                hidden, _ = scout.fold(time_mask, period)
                w = (hidden > 0).float() * valid * lead_mask[:, :, None, None]
                losses.append(_masked_mse(pred, grid, w))
            else:
                losses.append(_masked_mse(pred, target, weight))
        if cfg.use_period:
            nb = min(cfg.morph_beats, cfg.contract.max_beats)
            beats, beat_mask, beat_hide = beats[:, :nb], beat_mask[:, :nb], beat_hide[:, :nb]
            b, n_m, n_l, n = beats.shape
            beats = beats * lead_mask[:, None, :, None]
            hidden_beats = beats * (1.0 - beat_hide[:, :, None, :])
            w = beat_mask[:, :, None, None] * lead_mask[:, None, :, None]
            tmpl = (beats * beat_mask[:, :, None, None]).sum(1, keepdim=True) / \
                beat_mask.sum(1).clamp(min=1.0)[:, None, None, None]
            for expert, dec in zip(m.morphology, self.heads.morphology):
                tgt = beats - tmpl if expert.kind == "beat_deviation" else beats
                tgt = F.avg_pool1d(tgt.reshape(b * n_m, n_l, n), cfg.beat_pool).reshape(
                    b, n_m, n_l, -1)
                pred = dec(expert.beat_features(hidden_beats, beat_mask)).reshape(tgt.shape)
                losses.append(_masked_mse(pred, tgt, w.expand_as(tgt)))
            rr_m = rr_mask * rr_keep
            for expert, dec in zip(m.rhythm, self.heads.rhythm):
                pred = dec(expert(rr_ms * rr_m, rr_m, period))
                losses.append(_masked_mse(pred, rr_ms * 1e-3, rr_mask))
        return torch.stack(losses).mean()


def make_masks(batch: tuple[torch.Tensor, ...], cfg, gen: torch.Generator):
    x, beats, rr_mask = batch[0], batch[2], batch[5]
    c = cfg.contract
    tm = block_mask(x.shape[0], x.shape[-1], int(round(MASK_BLOCK_S * c.fs_hz)), MASK_RATIO, gen)
    b, n_m = beats.shape[:2]
    bh = block_mask(b * n_m, beats.shape[-1], int(round(0.05 * c.fs_hz)), 0.25, gen)
    bh = bh.reshape(b, n_m, -1)
    keep = (torch.rand(rr_mask.shape, generator=gen) >= 0.25).float()
    return tm, bh, keep
