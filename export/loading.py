"""What an export reads: the checkpoint's model (LoRA adapters attached unmerged) and the
calibration and evaluation windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge_ecg.data.tasks import TaskSet
from edge_ecg.errors import BundleError
from export.errors import ExportError

if TYPE_CHECKING:
    from export.request import ExportRequest


def load_model(checkpoint: Path):
    """The checkpoint's model (safetensors, weights only), with its LoRA adapters attached
    unmerged when the folder holds peft adapter files (`adapter_config.json`)."""
    from edge_ecg.model.checkpoint import load_checkpoint

    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise BundleError(f"checkpoint {checkpoint} is not a directory "
                          "(model.safetensors + config.json)")
    model = load_checkpoint(checkpoint)
    if (checkpoint / "adapter_config.json").is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(checkpoint))
    return model


def load_data(spec: str, contract, tasks: TaskSet, seed: int, progress: bool):
    from edge_ecg.data.dataset import load_dataset

    return load_dataset(spec, contract, tasks, seed=seed, progress=progress)


def split_data(req: ExportRequest, contract, all_tasks: TaskSet, data=None, eval_data=None):
    """`(calib_set, eval_set)`: calibration (routing, int8) and evaluation (parity, metrics)
    data; without evaluation data, the calibration data split in halves."""
    if data is None:
        data = load_data(req.calib, contract, all_tasks, req.seed, req.progress)
    if eval_data is None and req.eval_spec:
        eval_data = load_data(req.eval_spec, contract, all_tasks, req.seed + 1, req.progress)
    if eval_data is not None:
        return data, eval_data
    if len(data) >= 8:
        return data.split(val_frac=0.5, seed=req.seed)
    raise ExportError(f"--calib {req.calib} gave {len(data)} windows; at least 8 are needed "
                      "(half calibrates, half measures metrics), e.g. synth:64")
