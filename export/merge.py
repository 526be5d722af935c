"""Merge LoRA adapters into the base weights before export (peft `merge_and_unload`).

A merged model has plain Linear layers: the exported graph holds no adapter branches, and
quantization sees one weight per layer. Parity against the unmerged model is measured on the
calibration windows (DESIGN.md measured ~1e-6).
"""

from __future__ import annotations

import copy

import numpy as np

from export.errors import ParityError
from export.parity import max_abs_diff, run_torch

MERGE_TOLERANCE = 1e-5   # issue 4: merged vs unmerged, in training units (regression / scale)


def has_adapters(model) -> bool:
    """True when `model` holds unmerged peft adapter layers (PeftModel or injected LoRA)."""
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    if isinstance(model, PeftModel):
        return True
    return any(isinstance(m, BaseTunerLayer) for m in model.modules())


def merge_adapters(model):
    """A copy of `model` with every LoRA adapter merged into its base layer (the original is kept).

    Handles a `PeftModel` (merge_and_unload) and adapters injected into a plain module
    (`peft.inject_adapter_in_model`): each tuner layer merges, then is replaced by its base layer.
    """
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    model = copy.deepcopy(model)
    if isinstance(model, PeftModel):
        return model.merge_and_unload()
    tuners = [(name, m) for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
    for name, layer in tuners:
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.get_base_layer())
    return model


def merge_with_parity(model, inputs: dict[str, np.ndarray], scales: dict[str, float],
                      tolerance: float = MERGE_TOLERANCE) -> tuple[object, dict]:
    """Merge adapters (when there are any) and check the merged model against the unmerged one.

    Returns `(merged_model, report)` with report `{"merged": bool, "max_abs_diff": float}`; the
    difference is taken over every output, regressions divided by their task scale so that
    one tolerance fits outputs in ms and probabilities alike. Raises `ParityError` beyond it.
    """
    if not has_adapters(model):
        return model, {"merged": False, "max_abs_diff": 0.0}
    merged = merge_adapters(model).eval()
    ref = run_torch(model.eval(), inputs, progress=False)
    got = run_torch(merged, inputs, progress=False)
    diff = max_abs_diff(ref, got, scales)
    if not diff <= tolerance:
        raise ParityError(
            f"merging the LoRA adapters changed the outputs by {diff:.3g} (> {tolerance:g}); "
            "the checkpoint's adapters do not merge cleanly, check its adapter files"
        )
    return merged, {"merged": True, "max_abs_diff": float(diff)}
