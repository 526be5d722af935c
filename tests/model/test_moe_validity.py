"""The validity mask (issue 17): the model never reads a sample marked filled, and training
loses frames and leads the way monitors do."""

from __future__ import annotations

import torch

from edge_ecg.model.flops import example_inputs
from edge_ecg.model.moe import ECGMoE, expand_valid
from edge_ecg.model.training import augment, gap_dropout, lead_off


def test_expand_valid_repeats_each_segment():
    v = torch.tensor([[[1.0, 0.0, 1.0]]])
    assert expand_valid(v, 4, 10).tolist() == [[[1, 1, 1, 1, 0, 0, 0, 0, 1, 1]]]


def test_outputs_do_not_depend_on_samples_marked_filled(tiny_cfg):
    m = ECGMoE(tiny_cfg).eval()
    inp = list(example_inputs(tiny_cfg, 3))
    c = tiny_cfg.contract
    seg = c.valid_seg
    inp[8][:, :, 20:23] = 0.0                              # 3 segments lost on every lead
    inp[8][1, 4, :] = 0.0                                  # and one lead invalid throughout
    other = [t.clone() for t in inp]
    other[0][:, :, 20 * seg:23 * seg] = 5.0 * torch.randn(3, c.n_leads, 3 * seg)
    other[0][1, 4] = torch.randn(c.window_len)
    with torch.no_grad():
        a, b = m(*inp), m(*other)
        ref = m(*example_inputs(tiny_cfg, 3))               # nothing filled
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    # and the mask is read: the same samples marked measured give other outputs
    assert any(not torch.equal(a[k], ref[k]) for k in a if not k.startswith("gate"))


def test_summary_reports_the_missing_fraction_per_lead(tiny_cfg):
    m = ECGMoE(tiny_cfg).eval()
    x, lead_mask, _, beat_mask, _, _, period, _, valid, _ = example_inputs(tiny_cfg, 2)
    valid[0, :, :25] = 0.0                                 # 10 % of the window
    s = m.summary(x, lead_mask, beat_mask, period, valid * lead_mask[:, :, None])
    missing = s[:, -tiny_cfg.contract.n_leads:]
    n_seg = tiny_cfg.contract.n_valid_seg
    torch.testing.assert_close(missing[0], torch.full((tiny_cfg.contract.n_leads,), 25 / n_seg))
    assert float(missing[1].abs().max()) == 0.0


def test_gap_dropout_loses_runs_of_one_to_three_segments_on_every_lead(tiny_cfg):
    batch = example_inputs(tiny_cfg, 400)
    g = torch.Generator().manual_seed(0)
    out = gap_dropout(batch, 0.5, g)
    valid = out[8]
    assert all(torch.equal(a, b) for a, b in zip(out[:8], batch[:8]))    # only `valid` changes
    lost = valid == 0
    assert torch.equal(lost, lost[:, :1].expand_as(lost))                 # all leads alike
    hit = lost[:, 0].any(1)
    assert 0.35 < float(hit.float().mean()) < 0.5          # p = 0.5, a few windows draw rate ~0
    frac = lost[:, 0].float().mean(1)
    assert float(frac.max()) < 0.2 and 0.01 < float(frac[hit].mean()) < 0.06
    runs = []
    for row in lost[:, 0]:
        n = 0
        for v in row.tolist() + [False]:
            if v:
                n += 1
            elif n:
                runs.append(n)
                n = 0
    assert max(runs) >= 3 and sum(r <= 3 for r in runs) / len(runs) > 0.9  # runs can touch


def test_lead_off_keeps_at_least_one_lead(tiny_cfg):
    batch = example_inputs(tiny_cfg, 300)
    g = torch.Generator().manual_seed(1)
    x, mask, beats, *_ = lead_off(batch, 1.0, g)
    assert bool((mask.sum(1) >= 1).all()) and 0.3 < float(mask.mean()) < 0.7
    off = mask == 0
    assert float(x[off].abs().max()) == 0.0 and float(beats.permute(0, 2, 1, 3)[off].abs().max()) == 0.0


def test_augment_is_deterministic_per_generator(tiny_cfg):
    batch = example_inputs(tiny_cfg, 16)
    a = augment(batch, tiny_cfg, torch.Generator().manual_seed(5))
    b = augment(batch, tiny_cfg, torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
