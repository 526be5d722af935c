"""The external-encoder scout: weights-only checkpoints loaded, code refused."""

from __future__ import annotations

import os
import pickle
from dataclasses import replace

import pytest
import torch

from edge_ecg.errors import CheckpointError
from edge_ecg.model.external import ConvEncoder1d
from edge_ecg.model.flops import example_inputs
from edge_ecg.model.moe import ECGMoE


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _encoder(cfg, seed=3):
    torch.manual_seed(seed)
    return ConvEncoder1d(cfg.contract.n_leads, cfg.external_width)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_external_scout_loads_weights(tmp_path, tiny_cfg, suffix):
    enc = _encoder(tiny_cfg)
    path = tmp_path / f"enc{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file({f"encoder.{k}": v.contiguous() for k, v in enc.state_dict().items()}, str(path))
    else:
        torch.save({"state_dict": enc.state_dict()}, path)
    cfg = replace(tiny_cfg, scouts=(*tiny_cfg.scouts, "external"), external_checkpoint=str(path))
    m = ECGMoE(cfg).eval()
    ext = m.scouts[cfg.scouts.index("external")]
    for k, v in enc.state_dict().items():
        torch.testing.assert_close(ext.encoder.state_dict()[k], v)
    assert not any(p.requires_grad for p in ext.encoder.parameters())
    out = m(*example_inputs(cfg, 2))
    assert out["gate_scout"].shape[-1] == 5


def test_pickle_with_code_is_refused(tmp_path, tiny_cfg):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"layers.0.weight": _Evil()}, f)
    cfg = replace(tiny_cfg, scouts=("cnn", "external"), external_checkpoint=str(path))
    with pytest.raises(CheckpointError, match="refused"):
        ECGMoE(cfg)


def test_wrong_shapes_and_missing_file_are_refused(tmp_path, tiny_cfg):
    enc = ConvEncoder1d(tiny_cfg.contract.n_leads, tiny_cfg.external_width * 2)
    path = tmp_path / "wide.pt"
    torch.save(enc.state_dict(), path)
    cfg = replace(tiny_cfg, scouts=("cnn", "external"), external_checkpoint=str(path))
    with pytest.raises(CheckpointError, match="shape"):
        ECGMoE(cfg)
    with pytest.raises(CheckpointError, match="no such"):
        ECGMoE(replace(cfg, external_checkpoint=str(tmp_path / "absent.pt")))
    with pytest.raises(CheckpointError, match="external_checkpoint"):
        ECGMoE(replace(cfg, external_checkpoint=""))
