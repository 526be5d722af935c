"""The scouts: encoder families over the raw window, each one expert of the scout path.

Every scout maps `x` `(B, L, T)` to a feature map (`features`) and a pooled vector `(B, D)`
(`pool`); pretraining reconstructs masked parts of the window from the feature map (see
`pretrain.py`). Layer leaf names are the LoRA targets (`lora.LORA_TARGETS`): dilated convs are
named `dconv` and left out, because peft's conv LoRA does not copy the dilation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edge_ecg.model.attention import Attention
from edge_ecg.model.config import ECGMoEConfig


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(d, heads)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 2 * d)
        self.fc2 = nn.Linear(2 * d, d)

    def forward(self, h: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        h = h + self.attn(self.ln1(h), bias)
        return h + self.fc2(F.relu(self.fc1(self.ln2(h))))


class PatchScout(nn.Module):
    """MOMENT/PatchTST-like: 100 ms patches of all leads -> tokens -> transformer."""

    def __init__(self, cfg: ECGMoEConfig):
        super().__init__()
        c = cfg.contract
        self.patch_len = cfg.patch_len
        self.n_patches = c.window_len // cfg.patch_len
        self.embed = nn.Linear(c.n_leads * cfg.patch_len, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(1, self.n_patches, cfg.d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.patch_heads)
                                    for _ in range(cfg.patch_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def features(self, x: torch.Tensor, period: torch.Tensor) -> torch.Tensor:
        b, n_leads, _ = x.shape
        p = x.reshape(b, n_leads, self.n_patches, self.patch_len).permute(0, 2, 1, 3)
        h = self.embed(p.reshape(b, self.n_patches, n_leads * self.patch_len)) + self.pos
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h)                                                  # (B, N, D)

    def pool(self, f: torch.Tensor) -> torch.Tensor:
        return f.mean(1)

    def forward(self, x, period):
        return self.pool(self.features(x, period))


class ResBlock1d(nn.Module):
    """Dilated residual block: dilated conv (not LoRA-adapted) -> BN -> ReLU -> 1x1 `pw`."""

    def __init__(self, ch: int, dilation: int, kernel: int = 5):
        super().__init__()
        self.dconv = nn.Conv1d(ch, ch, kernel, dilation=dilation,
                               padding=dilation * (kernel - 1) // 2)
        self.bn = nn.BatchNorm1d(ch)
        self.pw = nn.Conv1d(ch, ch, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.pw(F.relu(self.bn(self.dconv(h))))


class CNNScout(nn.Module):
    """ECG-FM-like dilated residual CNN: strided stem, dilations 1, 2, 4, 8, ..., pooling by 2."""

    def __init__(self, cfg: ECGMoEConfig):
        super().__init__()
        c, ch = cfg.contract, cfg.cnn_channels
        self.stem = nn.Conv1d(c.n_leads, ch, 7, stride=cfg.cnn_stem_stride, padding=3)
        self.bn = nn.BatchNorm1d(ch)
        self.blocks = nn.ModuleList(ResBlock1d(ch, 2 ** (i % 4)) for i in range(cfg.cnn_blocks))
        self.out = nn.Conv1d(ch, cfg.d_model, 1)

    def features(self, x, period):
        h = F.relu(self.bn(self.stem(x)))                   # (B, L, T) -> (B, C, T/stride)
        for i, blk in enumerate(self.blocks):
            h = blk(h)
            h = F.avg_pool1d(h, 2)
        return self.out(h)                                   # (B, D, T')

    def pool(self, f):
        return f.mean(-1)

    def forward(self, x, period):
        return self.pool(self.features(x, period))


class DLinearScout(nn.Module):
    """DLinear-like: moving-average trend and seasonal residual, each a linear map over time
    (shared by the leads), then a linear mix of leads x basis into D."""

    def __init__(self, cfg: ECGMoEConfig):
        super().__init__()
        c = cfg.contract
        self.pool_by = cfg.dlinear_pool
        self.kernel = cfg.dlinear_kernel
        t_low = c.window_len // cfg.dlinear_pool
        self.lin_trend = nn.Linear(t_low, cfg.dlinear_basis)
        self.lin_seasonal = nn.Linear(t_low, cfg.dlinear_basis)
        self.mix = nn.Linear(c.n_leads * cfg.dlinear_basis, cfg.d_model)

    def features(self, x, period):
        low = F.avg_pool1d(x, self.pool_by)                                  # (B, L, T/pool)
        half = self.kernel // 2
        padded = F.pad(low, (half, self.kernel - 1 - half), mode="replicate")
        trend = F.avg_pool1d(padded, self.kernel, stride=1)
        return self.lin_trend(trend) + self.lin_seasonal(low - trend)        # (B, L, K)

    def pool(self, f):
        return F.relu(self.mix(f.flatten(1)))

    def forward(self, x, period):
        return self.pool(self.features(x, period))


class PeriodFold(nn.Module):
    """Fold a window into a (cycles x points-per-cycle) grid by the detected period.

    Export-safe: the period only enters as float math on gather indices (linear interpolation),
    so every shape is static: `rows = ceil(window / min_period)` cycles of `points` samples each;
    positions past the window end are zero and flagged in a validity channel.
    """

    def __init__(self, cfg: ECGMoEConfig):
        super().__init__()
        c = cfg.contract
        self.T = c.window_len
        self.fs_hz = c.fs_hz
        self.rows = int(math.ceil(c.window_s / cfg.fold_min_period_s))
        self.points = cfg.fold_points
        self.min_period_s = cfg.fold_min_period_s
        self.window_s = c.window_s
        self.cycle_index = c.period_features.index("dominant_cycle_s")
        pos = torch.arange(self.rows, dtype=torch.float32)[:, None] + \
            torch.arange(self.points, dtype=torch.float32)[None, :] / self.points
        self.register_buffer("pos", pos.reshape(1, -1), persistent=False)   # (1, rows*points)

    def period_samples(self, period: torch.Tensor) -> torch.Tensor:
        cycle_s = period[:, self.cycle_index]
        # No detected cycle (fewer than two beats): fold at 0.8 s (75 bpm) rather than at zero.
        cycle_s = torch.where(cycle_s > 0, cycle_s, torch.full_like(cycle_s, 0.8))
        return cycle_s.clamp(self.min_period_s, self.window_s) * self.fs_hz  # (B,)

    def forward(self, x: torch.Tensor, period: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`x` `(B, C, T)` -> grid `(B, C, rows, points)` and validity `(B, 1, rows, points)`."""
        b, ch, _ = x.shape
        idx = self.pos * self.period_samples(period)[:, None]                # (B, rows*points)
        valid = (idx <= self.T - 1).to(x.dtype)
        idx = idx.clamp(0.0, self.T - 1.0)
        i0 = idx.floor()
        w = (idx - i0)[:, None, :]
        i0 = i0.long()
        i1 = (i0 + 1).clamp(max=self.T - 1)
        x0 = torch.gather(x, 2, i0[:, None, :].expand(b, ch, -1))
        x1 = torch.gather(x, 2, i1[:, None, :].expand(b, ch, -1))
        grid = (x0 * (1.0 - w) + x1 * w) * valid[:, None, :]
        return (grid.reshape(b, ch, self.rows, self.points),
                valid.reshape(b, 1, self.rows, self.points))


class FoldScout(nn.Module):
    """TimesNet-like: 2-D convs over the period-folded window (inter- and intra-cycle)."""

    def __init__(self, cfg: ECGMoEConfig):
        super().__init__()
        c, ch = cfg.contract, cfg.fold_channels
        self.fold = PeriodFold(cfg)
        self.conv1 = nn.Conv2d(c.n_leads + 1, ch, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, 2 * ch, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * ch)
        self.out = nn.Conv2d(2 * ch, cfg.d_model, 1)

    def features(self, x, period):
        grid, valid = self.fold(x, period)                   # (B, L, R, P), (B, 1, R, P)
        h = F.relu(self.bn1(self.conv1(torch.cat([grid, valid], 1))))
        h = F.relu(self.bn2(self.conv2(h)))
        return self.out(h) * valid                           # (B, D, R, P)

    def pool(self, f):
        return f.mean((-2, -1))

    def forward(self, x, period):
        return self.pool(self.features(x, period))


def build_scout(name: str, cfg: ECGMoEConfig, load_external: bool = True) -> nn.Module:
    if name == "patch":
        return PatchScout(cfg)
    if name == "cnn":
        return CNNScout(cfg)
    if name == "dlinear":
        return DLinearScout(cfg)
    if name == "fold":
        return FoldScout(cfg)
    if name == "external":
        from edge_ecg.model.external import ExternalScout
        return ExternalScout(cfg, load=load_external)
    raise ValueError(f"unknown scout {name!r}")
