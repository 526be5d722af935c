"""Multi-head self-attention, shared by the patch scout and the rhythm path's RR attention."""

from __future__ import annotations

import math

import torch
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention with plain Linear layers (LoRA targets `qkv`, `proj`)."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, h: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = h.shape
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // self.heads))  # (B, H, N, N)
        if bias is not None:
            att = att + bias
        y = att.softmax(-1) @ v                                              # (B, H, N, d/H)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))
