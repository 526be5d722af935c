"""The external-encoder scout: a pretrained torch encoder read from a local weights file.

Weights only: a `.safetensors` file or a `torch.save`d state dict read with
`torch.load(weights_only=True)`. A file that holds code (a pickled module, a lambda) is refused
with `CheckpointError`; nothing is ever fetched from a hub. The architecture is named in the
config (`external_arch`, a key of `ARCHITECTURES`), so the file only needs to carry tensors.
The encoder is frozen; a trainable `proj` maps its features into the model width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_ecg.errors import CheckpointError
from edge_ecg.model.config import ECGMoEConfig
from edge_ecg.model.weights import load_fitting_state, load_tensor_file


class ConvEncoder1d(nn.Module):
    """A plain strided 1-D conv encoder `(B, L, T) -> (B, 2*width, T/80)`: the layout the
    adapter expects of an external checkpoint named `conv1d` (keys `layers.{0,2,4}.*`)."""

    def __init__(self, n_leads: int, width: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv1d(n_leads, width, 15, stride=5, padding=7), nn.GELU(),
            nn.Conv1d(width, width, 9, stride=4, padding=4), nn.GELU(),
            nn.Conv1d(width, 2 * width, 9, stride=4, padding=4), nn.GELU(),
        )
        self.out_dim = 2 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


ARCHITECTURES = {"conv1d": ConvEncoder1d}


def build_encoder(cfg: ECGMoEConfig) -> nn.Module:
    if cfg.external_arch not in ARCHITECTURES:
        raise CheckpointError(
            f"config: unknown external_arch {cfg.external_arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[cfg.external_arch](cfg.contract.n_leads, cfg.external_width)


def load_encoder_weights(encoder: nn.Module, path: str) -> None:
    """Load a weights-only file into `encoder`; key or shape mismatches raise CheckpointError."""
    state = load_tensor_file(path)
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    for prefix in ("module.", "encoder."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    load_fitting_state(encoder, state, f"{path} ({type(encoder).__name__} encoder)",
                       "check external_arch/external_width")


class ExternalScout(nn.Module):
    """Adapter: frozen external encoder -> mean over time -> trainable projection `proj`."""

    def __init__(self, cfg: ECGMoEConfig, load: bool = True):
        super().__init__()
        self.encoder = build_encoder(cfg)
        if load:
            if not cfg.external_checkpoint:
                raise CheckpointError(
                    "config: scout 'external' needs external_checkpoint (a local .safetensors "
                    "or weights-only .pt file)")
            load_encoder_weights(self.encoder, cfg.external_checkpoint)
        self.encoder.requires_grad_(False)
        self.proj = nn.Linear(self.encoder.out_dim, cfg.d_model)

    def features(self, x, period):
        return self.encoder(x)                                # (B, C, T')

    def pool(self, f):
        return F.gelu(self.proj(f.mean(-1)))

    def forward(self, x, period):
        return self.pool(self.features(x, period))
