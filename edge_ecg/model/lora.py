"""peft LoRA on ECG-MoE: adapters on the fusion, attention and expert leaf layers.

Targets are leaf module names (`LORA_TARGETS`); dilated convs (`dconv`) are left out because
peft's conv LoRA builds `lora_A` without the dilation. Heads, gates and the lead embedding are
trained whole (`modules_to_save`). BatchNorm stays in eval mode while adapters train (its
running statistics belong to the frozen base). `merge_and_unload` gives a plain `ECGMoE`.
"""

from __future__ import annotations

from torch import nn

LORA_TARGETS = ("qkv", "proj", "fc1", "fc2", "embed", "token", "stem", "pw", "out",
                "conv1", "conv2", "lin_trend", "lin_seasonal", "mix")
GATES = ("gate_scout", "gate_morphology", "gate_rhythm")


def target_names(model: nn.Module) -> list[str]:
    """The LORA_TARGETS leaf names that occur in `model` (peft matches them as name suffixes)."""
    found = set()
    for name, mod in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in LORA_TARGETS and isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if isinstance(mod, (nn.Conv1d, nn.Conv2d)) and any(d != 1 for d in mod.dilation):
                raise ValueError(f"{name}: a dilated conv cannot carry peft LoRA; rename it dconv")
            found.add(leaf)
    return sorted(found)


def modules_to_save(model: nn.Module) -> list[str]:
    heads = [f"heads.{t}" for t in model.cfg.task_names]
    gates = [g for g in GATES if hasattr(model, g)]
    return [*heads, *gates, "lead_embed"]


def add_lora(model: nn.Module, rank: int | None = None, alpha: int | None = None,
             init_lora_weights: bool = True):
    """Wrap `model` (an ECGMoE) in a peft model: base frozen, adapters + saved modules trainable."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=rank or model.cfg.lora_rank, lora_alpha=alpha or model.cfg.lora_alpha,
        lora_dropout=0.0, target_modules=target_names(model),
        modules_to_save=modules_to_save(model), init_lora_weights=init_lora_weights,
        bias="none")
    return get_peft_model(model, cfg)


def base_of(peft_model) -> nn.Module:
    """The ECGMoE inside a peft model (with adapters injected), or the model itself."""
    inner = getattr(peft_model, "base_model", None)
    return getattr(inner, "model", peft_model) if inner is not None else peft_model


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm in eval mode (call after each `model.train()`)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def merged(peft_model) -> nn.Module:
    """`merge_and_unload`: adapters folded into the base weights; a plain ECGMoE."""
    return peft_model.merge_and_unload()
