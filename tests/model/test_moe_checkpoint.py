"""Checkpoint round trip and refusal of unknown config fields or pickled code."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from edge_ecg.errors import CheckpointError
from edge_ecg.model.checkpoint import load_checkpoint, save_checkpoint
from edge_ecg.model.config import ECGMoEConfig
from edge_ecg.model.flops import example_inputs
from edge_ecg.model.moe import ECGMoE


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_round_trip_gives_identical_outputs(tmp_path, tiny_cfg):
    torch.manual_seed(1)
    m = ECGMoE(tiny_cfg).eval()
    save_checkpoint(m, tmp_path, metrics={"age": {"mae": 1.0}})
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc["model"]["contract"]["fs_hz"] == 100.0
    assert doc["model"]["tasks"][0]["name"] == "rr_interval"
    back = load_checkpoint(tmp_path)
    assert back.cfg == m.cfg
    inp = example_inputs(tiny_cfg, 2)
    a, b = m(*inp), back(*inp)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert ECGMoEConfig.from_dict(m.cfg.to_dict()) == m.cfg


def test_unknown_config_field_is_refused(tmp_path, tiny_cfg):
    save_checkpoint(ECGMoE(tiny_cfg), tmp_path)
    doc = json.loads((tmp_path / "config.json").read_text())
    doc["model"]["flux_capacitor"] = 1
    (tmp_path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="flux_capacitor"):
        load_checkpoint(tmp_path)


def test_pickled_code_instead_of_weights_is_refused(tmp_path, tiny_cfg):
    save_checkpoint(ECGMoE(tiny_cfg), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with open(tmp_path / "model.pt", "wb") as f:
        pickle.dump(_Evil(), f)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path)


def test_weights_of_another_config_are_refused(tmp_path, tiny_cfg):
    save_checkpoint(ECGMoE(tiny_cfg), tmp_path)
    other = ECGMoEConfig.preset("tiny", contract=tiny_cfg.contract, d_model=24)
    (tmp_path / "config.json").write_text(json.dumps(
        {"format": "edge-ecg-checkpoint", "model": other.to_dict()}))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(tmp_path)


def test_evaluate_cli_prints_json_metrics(tmp_path, tiny_cfg, capsys):
    from edge_ecg.cli import main

    save_checkpoint(ECGMoE(tiny_cfg), tmp_path)
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--data", "synth:3?seed=9",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    win = doc["windows"]
    assert set(win) == set(tiny_cfg.task_names)
    assert win["rr_interval"]["n"] == 3 and win["rr_interval"]["mae"] >= 0
    assert "macro_f1" in win["arrhythmia"]
    assert doc["n_windows"] == 3 and doc["synth"]["windows"] == 3
