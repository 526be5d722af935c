"""Shapes, masks and degenerate inputs of ECG-MoE (tiny preset)."""

from __future__ import annotations

import pytest
import torch

from edge_ecg.model.config import ECGMoEConfig
from edge_ecg.model.flops import count_flops, example_inputs
from edge_ecg.model.moe import ECGMoE
from edge_ecg.signal.contract import SignalContract


def test_outputs_are_named_shaped_and_ordered(tiny_cfg):
    m = ECGMoE(tiny_cfg).eval()
    out = m(*example_inputs(tiny_cfg, 3))
    names = list(tiny_cfg.task_names)
    assert list(out) == names + ["gate_scout", "gate_morphology", "gate_rhythm"]
    assert out["rr_interval"].shape == (3,) and out["sex"].shape == (3,)
    assert out["arrhythmia"].shape == (3, len(tiny_cfg.task_set["arrhythmia"].labels)) == (3, 4)
    torch.testing.assert_close(out["arrhythmia"].sum(-1), torch.ones(3))
    assert ((out["sex"] > 0) & (out["sex"] < 1)).all()
    for p in ("scout", "morphology", "rhythm"):
        assert out[f"gate_{p}"].shape == (3, len(names), 4)


def test_default_contract_shapes_and_preset_sizes():
    tiny = ECGMoE(ECGMoEConfig.preset("tiny")).eval()
    assert tiny.n_params() < 500_000
    out = tiny(*example_inputs(tiny.cfg, 2))
    assert out["age"].shape == (2,)
    edge = ECGMoE(ECGMoEConfig.preset("edge"))
    assert 1_000_000 <= edge.n_params() <= 3_000_000
    assert count_flops(tiny) > 0


def test_missing_leads_and_no_beats_give_finite_outputs(tiny_cfg):
    m = ECGMoE(tiny_cfg).eval()
    x, lead_mask, beats, beat_mask, rr, rr_mask, period, beat_rr, valid, beat_ctx = (
        example_inputs(tiny_cfg, 4))
    lead_mask[0] = 0.0
    lead_mask[0, 1] = 1.0                       # lead II only
    lead_mask[1, 2:] = 0.0                      # I and II
    beat_mask[2] = 0.0                          # no beats at all
    rr_mask[2] = 0.0
    rr[2] = 0.0
    period[2] = 0.0
    beat_mask[3, 1:] = 0.0                      # one beat, no RR interval
    rr_mask[3] = 0.0
    beat_rr[2:] = 0.0                           # no RR context
    out = m(x, lead_mask, beats, beat_mask, rr, rr_mask, period, beat_rr, valid, beat_ctx)
    for k, v in out.items():
        assert torch.isfinite(v).all(), k


def test_masked_leads_do_not_leak(tiny_cfg):
    """What a masked lead holds must not change the outputs (the mask zeroes it)."""
    m = ECGMoE(tiny_cfg).eval()
    inp = list(example_inputs(tiny_cfg, 2))
    inp[1][:, 3:] = 0.0
    a = m(*inp)
    inp[0] = inp[0].clone()
    inp[0][:, 3:] += 5.0
    inp[2] = inp[2].clone()
    inp[2][:, :, 3:] -= 3.0
    b = m(*inp)
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_period_fold_follows_the_period(tiny_cfg):
    """Folding a pure sine by its own period gives identical rows (cycles align)."""
    from edge_ecg.model.scouts import PeriodFold

    fold = PeriodFold(tiny_cfg)
    c = tiny_cfg.contract
    t = torch.arange(c.window_len) / c.fs_hz
    x = torch.sin(2 * torch.pi * t / 0.8)[None, None, :]
    period = torch.zeros(1, len(c.period_features))
    period[0, c.period_features.index("dominant_cycle_s")] = 0.8
    grid, valid = fold(x, period)
    rows = int(valid[0, 0, :, 0].sum())
    assert rows == 13          # 10 s / 0.8 s = 12.5 cycles: rows 0..12 start inside
    full = grid[0, 0, :12]
    assert float((full - full[0]).abs().max()) < 0.05
    assert float(grid[0, 0, 13:].abs().max()) == 0.0


def test_baseline_variants_build():
    cfg = ECGMoEConfig.preset("tiny", contract=SignalContract(fs_hz=100.0))
    single = ECGMoE(cfg.baseline("single_scout")).eval()
    dense = ECGMoE(cfg.baseline("dense_ensemble")).eval()
    out_s = single(*example_inputs(single.cfg, 2))
    out_d = dense(*example_inputs(dense.cfg, 2))
    assert "gate_morphology" not in out_s and out_s["gate_scout"].shape[-1] == 1
    assert (out_d["gate_scout"] > 0).all()      # dense: soft gate over every scout


def test_rr_head_is_a_residual_over_the_measured_mean_rr(tiny_cfg):
    """With the head's own layers zeroed, the RR output is exactly the period feature's mean RR
    (the prior); a config without priors (an older checkpoint) does not add it."""
    from dataclasses import replace

    from edge_ecg.errors import CheckpointError

    fi = tiny_cfg.contract.period_features.index("mean_rr_s")
    inputs = example_inputs(tiny_cfg, 3)
    inputs[6][:, fi] = torch.tensor([0.6, 0.8, 1.25])             # period
    for priors, want, summary in (({"rr_interval": "mean_rr_s"}, [600.0, 800.0, 1250.0], True),
                                  ({"rr_interval": "mean_rr_s"}, [600.0, 800.0, 1250.0], False),
                                  ({}, [0.0, 0.0, 0.0], True)):
        m = ECGMoE(replace(tiny_cfg, period_priors=priors, head_summary=summary)).eval()
        head = m.heads["rr_interval"]
        with torch.no_grad():
            head.logits.weight.zero_()
            head.logits.bias.zero_()
        torch.testing.assert_close(m(*inputs)["rr_interval"], torch.tensor(want))
    d = tiny_cfg.to_dict()
    assert ECGMoEConfig.from_dict(d).period_priors == {"rr_interval": "mean_rr_s"}
    d.pop("period_priors")
    d.pop("head_summary")
    old = ECGMoEConfig.from_dict(d)      # a checkpoint written before either existed
    assert old.period_priors == {} and old.head_summary is False
    with pytest.raises(CheckpointError, match="period prior"):
        replace(tiny_cfg, period_priors={"rr_interval": "heart_rate"})


def test_heads_read_the_input_summary_and_init_fits_it(tiny_cfg):
    """With `head_summary`, a regression target that is a linear function of a summary feature
    (lead I amplitude, as voltage carries sex and age) is fitted exactly by `init_heads`' probe
    through the head's skip; without it, the probe cannot see that feature."""
    import numpy as np

    from edge_ecg.model.training import head_skip_inputs, init_heads
    from edge_ecg.signal.contract import INPUT_NAMES

    torch.manual_seed(0)
    inputs = list(example_inputs(tiny_cfg, 160))
    inputs[0] = inputs[0] * torch.rand(160, 1, 1) * 2.0  # amplitudes that differ per window
    named = {k: v.numpy() for k, v in zip(INPUT_NAMES, inputs)}
    errors = {}
    for summary in (True, False):
        m = ECGMoE(replace_cfg(tiny_cfg, head_summary=summary)).eval()
        mask = inputs[1]
        s = m.summary(inputs[0] * mask[:, :, None], mask, inputs[3], inputs[6],
                      inputs[8] * mask[:, :, None])
        age = 40.0 + 30.0 * s[:, 0].numpy()              # lead I mean |x|
        skip = head_skip_inputs(m, named)
        n_period = len(tiny_cfg.contract.period_features)
        assert skip.shape == (160, (m.summary.dim if summary else 0) + n_period)
        init_heads(m, named, {"age": age})
        with torch.no_grad():
            pred = m(*inputs)["age"].numpy()
        errors[summary] = float(np.abs(pred - age).max())
    assert errors[True] < 0.5, errors          # years; ridge 1e-3 shrinks a little
    assert errors[False] > 2.0, errors


def replace_cfg(cfg, **kw):
    from dataclasses import replace
    return replace(cfg, **kw)
