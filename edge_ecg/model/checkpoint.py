"""Checkpoints: `model.safetensors` + `config.json` (+ `metrics.json`), read without pickle.

Tensor files are read with safetensors, or `torch.load(weights_only=True)` for `.pt`/`.pth`
state dicts; a pickle holding code is refused with `CheckpointError`, as is a config naming
fields this version does not know.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_ecg.errors import CheckpointError
from edge_ecg.model.weights import load_fitting_state, load_tensor_file

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"
FORMAT = "edge-ecg-checkpoint"


def save_checkpoint(model, out_dir: str | Path, metrics: dict | None = None,
                    extra: dict | None = None) -> Path:
    """Write `model.safetensors` and `config.json` (and `metrics.json` when given)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS), metadata={"format": FORMAT})
    doc = {"format": FORMAT, "model": model.cfg.to_dict(), **(extra or {})}
    (out / CONFIG).write_text(json.dumps(doc, indent=2))
    if metrics is not None:
        (out / METRICS).write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return out


def read_config(ckpt_dir: str | Path):
    from edge_ecg.model.config import ECGMoEConfig

    path = Path(ckpt_dir) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{ckpt_dir}: no {CONFIG}; pass a directory `edge-ecg train` wrote")
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "model" not in doc:
        raise CheckpointError(f"{path}: not an edge-ecg checkpoint config (format {FORMAT!r})")
    allowed = {"format", "model", "training"}
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise CheckpointError(f"{path}: unknown top-level field(s) {unknown}")
    return ECGMoEConfig.from_dict(doc["model"], where=str(path)), doc


def load_checkpoint(ckpt_dir: str | Path):
    """The `ECGMoE` stored in `ckpt_dir`, in eval mode. Weights must match the config exactly."""
    from edge_ecg.model.moe import ECGMoE

    ckpt_dir = Path(ckpt_dir)
    cfg, _ = read_config(ckpt_dir)
    weights = ckpt_dir / WEIGHTS
    if not weights.is_file():
        pt = [p for p in (ckpt_dir / "model.pt", ckpt_dir / "model.pth") if p.is_file()]
        if not pt:
            raise CheckpointError(f"{ckpt_dir}: no {WEIGHTS}")
        weights = pt[0]
    state = load_tensor_file(weights)
    model = ECGMoE(cfg, load_external=False)
    load_fitting_state(model, state, f"{weights} (with its {CONFIG})",
                       "the files were mixed from different checkpoints, or an older edge-ecg "
                       "wrote them (before the `valid` input of issue 17 the gates read 4 "
                       "features per lead, now 5): retrain with this version")
    return model.eval()


def read_metrics(ckpt_dir: str | Path) -> dict:
    path = Path(ckpt_dir) / METRICS
    return json.loads(path.read_text()) if path.is_file() else {}
