"""A short pretrain + LoRA fine-tune run lowers the loss and beats chance; DDP on 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from edge_ecg.model.config import ECGMoEConfig
from edge_ecg.model.training import MONITOR_LEADS, TrainSettings, lead_dropout, train


def test_short_training_lowers_loss_and_beats_chance(small_data, small_contract):
    torch.set_num_threads(2)
    train_ds, val_ds = small_data.split(0.25, seed=0)
    cfg = ECGMoEConfig.preset("tiny", contract=small_contract)
    res = train(cfg, train_ds, val_ds, TrainSettings(epochs=4, pretrain_epochs=1, batch_size=8,
                                                     lr=1e-2, progress=False), log=lambda s: None)
    h = res.history
    assert h.pretrain_loss and np.isfinite(h.pretrain_loss[0])
    assert h.train_loss[-1] < 0.95 * h.first_loss, (h.first_loss, h.train_loss)
    assert h.train_loss[-1] < h.train_loss[0]
    m = res.metrics
    # chance: predicting the training mean RR (the head's initial bias) gives the spread
    rr = val_ds.labels["rr_interval"]
    chance_rr = float(np.nanmean(np.abs(rr - np.nanmean(train_ds.labels["rr_interval"]))))
    assert m["rr_interval"]["mae"] < 0.6 * chance_rr, (m["rr_interval"], chance_rr)
    assert abs(sum(res.usage["scout"]["age"].values()) - 1.0) < 1e-5
    assert res.n_trainable < res.n_params


def test_lead_dropout_keeps_monitor_lead_sets(tiny_cfg):
    from edge_ecg.model.flops import example_inputs

    g = torch.Generator().manual_seed(0)
    batch = example_inputs(tiny_cfg, 64)
    x, lm, beats, *_ = lead_dropout(batch, 1.0, tiny_cfg.contract.leads, g)
    leads = tiny_cfg.contract.leads
    allowed = {tuple(sorted(leads.index(n) for n in s if n in leads)) for s in MONITOR_LEADS}
    for row in lm:
        assert tuple(int(i) for i in torch.nonzero(row).flatten()) in allowed
    assert float(x[lm == 0].abs().max()) == 0.0
    assert float(beats.permute(0, 2, 1, 3)[lm == 0].abs().max()) == 0.0


@pytest.mark.slow
def test_ddp_two_process_gloo_training(tmp_path):
    out = tmp_path / "ckpt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", "29577", "-m", "edge_ecg", "train", "--data", "synth:12?snr=25",
           "--preset", "tiny", "--fs-hz", "100", "--epochs", "1", "--pretrain-epochs", "1",
           "--batch-size", "4", "--threads", "1", "--no-progress", "--out", str(out)]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert np.isfinite(metrics["loss"]["finetune"][0])
    from edge_ecg.model.checkpoint import load_checkpoint
    assert load_checkpoint(out).cfg.contract.fs_hz == 100.0


def test_train_cli_sets_the_routing_loss(tmp_path):
    from edge_ecg.cli import main
    from edge_ecg.model.checkpoint import read_config

    out = tmp_path / "ckpt"
    rc = main(["train", "--data", "synth:12?snr=25", "--preset", "tiny", "--fs-hz", "100",
               "--epochs", "1", "--pretrain-epochs", "1", "--batch-size", "4", "--threads", "1",
               "--no-progress", "--balance", "switch", "--balance-weight", "0.02",
               "--out", str(out)])
    assert rc == 0
    cfg = read_config(out)[0]
    assert (cfg.balance, cfg.balance_weight) == ("switch", 0.02)


def test_weighted_epochs_draw_by_the_mixture_weights():
    from edge_ecg.model.training import shard

    p = np.r_[np.full(10, 0.9 / 10), np.full(90, 0.1 / 90)]    # 10 windows hold 90 % of draws
    idx = np.concatenate(shard(100, 0, 0, 10, 0, 1, p))
    assert idx.size == 100 and 80 <= int((idx < 10).sum()) <= 98
    same = np.concatenate(shard(100, 0, 0, 10, 0, 1, p))
    np.testing.assert_array_equal(idx, same)                       # seeded
    assert sorted(np.concatenate(shard(100, 0, 0, 10, 0, 1)).tolist()) == list(range(100))


def test_presets_scale_their_sample_counts_with_the_rate():
    from edge_ecg.signal.contract import SignalContract

    edge500 = ECGMoEConfig.preset("edge")
    edge250 = ECGMoEConfig.preset("edge", contract=SignalContract(fs_hz=250.0))
    for key in ("patch_len", "cnn_stem_stride", "dlinear_pool", "recon_pool"):
        assert getattr(edge250, key) * 2 == getattr(edge500, key), key
    tiny100 = ECGMoEConfig.preset("tiny", contract=SignalContract(fs_hz=100.0))
    assert tiny100.patch_len == ECGMoEConfig.preset("tiny").patch_len   # the test model keeps
