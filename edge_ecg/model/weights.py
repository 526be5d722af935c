"""Tensor files and strict loading: the reading below both checkpoints and external encoders.

Its own module so that `checkpoint` (which builds an `ECGMoE`) and `external` (an encoder the
model's scouts wrap) share it without importing each other: checkpoint -> moe -> scouts ->
external no longer closes back on checkpoint.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from edge_ecg.errors import CheckpointError


def load_tensor_file(path: str | Path) -> dict:
    """A flat dict of tensors from a safetensors file or a weights-only torch file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused: the file holds code or objects other than tensors (weights_only "
            "load failed). Save a state_dict, ideally with safetensors.torch.save_file") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a torch weights file ({exc})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


def load_fitting_state(module, state: dict, where: str, hint: str) -> None:
    """Load `state` into `module` only if every key and shape fits; else CheckpointError.

    Strict on purpose: a partially loaded model would run and give silently wrong outputs.
    """
    import torch

    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise CheckpointError(f"{where}: does not fit: missing keys {missing[:5]}, unexpected "
                              f"keys {extra[:5]}; {hint}")
    for k, v in state.items():
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(
                f"{where}: tensor {k!r} has shape {tuple(getattr(v, 'shape', ()))}, expected "
                f"{tuple(own[k].shape)}; {hint}")
    module.load_state_dict({k: v.float() if v.is_floating_point() else v
                            for k, v in state.items()})
