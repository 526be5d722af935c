"""peft LoRA on ECG-MoE: targets, frozen base, BatchNorm in eval, merge parity."""

from __future__ import annotations

import torch
from torch import nn

from edge_ecg.model.flops import example_inputs
from edge_ecg.model.lora import LORA_TARGETS, add_lora, base_of, freeze_batchnorm, target_names
from edge_ecg.model.moe import ECGMoE


def test_lora_targets_leaf_layers_and_freezes_the_base(tiny_cfg):
    m = ECGMoE(tiny_cfg)
    names = target_names(m)
    assert {"qkv", "proj", "fc1", "fc2", "pw", "conv1"} <= set(names) <= set(LORA_TARGETS)
    pm = add_lora(m)
    trainable = [n for n, p in pm.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable)
    assert any("heads" in n and "modules_to_save" in n for n in trainable)
    assert not any("dconv" in n for n in trainable)
    base_frozen = [n for n, p in pm.named_parameters()
                   if "lora_" not in n and "modules_to_save" not in n]
    assert base_frozen and not any(p.requires_grad for n, p in pm.named_parameters()
                                   if n in base_frozen)
    pm.train()
    freeze_batchnorm(pm)
    bns = [mod for mod in pm.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
    assert bns and not any(b.training for b in bns)


def test_merge_and_unload_matches_unmerged(tiny_cfg):
    torch.manual_seed(0)
    m = ECGMoE(tiny_cfg).eval()
    pm = add_lora(m, init_lora_weights=False)     # random A and B: a non-zero update
    pm.eval()
    inp = example_inputs(tiny_cfg, 3)
    with torch.no_grad():
        before = {k: v.clone() for k, v in ECGMoE(tiny_cfg).eval()(*inp).items()}
        unmerged = pm(*inp)
        unmerged_logits, _ = base_of(pm).raw(*inp)
    merged = pm.merge_and_unload().eval()
    assert type(merged) is ECGMoE and not any("lora" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        out = merged(*inp)
        logits, _ = merged.raw(*inp)
    # parity in model units (head logits; regression = target / scale) and probabilities/gates
    diff = max(float((logits[k] - unmerged_logits[k]).abs().max()) for k in logits)
    assert diff <= 1e-5, diff
    probs = [k for k in out if k not in ("rr_interval", "age")]
    diff = max(float((out[k] - unmerged[k]).abs().max()) for k in probs)
    assert diff <= 1e-5, diff
    # the adapters did change the model (the parity above is not trivially true)
    assert max(float((unmerged[k] - before[k]).abs().max()) for k in out) > 1e-3
