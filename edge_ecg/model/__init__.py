"""ECG-MoE in torch: config, model, LoRA fine-tuning, checkpoints (the numpy-only metrics are
`edge_ecg.metrics`).

This package file imports no torch; the torch parts load on first use of their names.
"""

from __future__ import annotations

_LAZY = {
    "ECGMoEConfig": "edge_ecg.model.config",
    "ECGMoE": "edge_ecg.model.moe",
    "load_checkpoint": "edge_ecg.model.checkpoint",
    "save_checkpoint": "edge_ecg.model.checkpoint",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edge_ecg.model' has no attribute {name!r}")


__all__ = list(_LAZY)
