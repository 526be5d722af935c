"""Where a bundle came from, as its manifest says: the model version (checkpoint name and
weights digest), the data each task learned from (real or synthetic), and the manifest's
fields (routing, quantization, parity, metrics, notes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from edge_ecg import DISCLAIMER
from edge_ecg.data.tasks import TaskSet
from edge_ecg.runtime.bundle import sha256_file
from edge_ecg.signal.contract import INPUT_NAMES

if TYPE_CHECKING:
    from export.request import ExportRequest
    from export.routed import Routed
    from export.variants import Built


def model_version(checkpoint: Path) -> str:
    """Checkpoint folder name + the first 12 hex digits of its weights' sha256."""
    weights = Path(checkpoint) / "model.safetensors"
    digest = sha256_file(weights)[:12] if weights.is_file() else "unknown"
    return f"{Path(checkpoint).name}-{digest}"


def manifest_fields(req: ExportRequest, contract, tasks: TaskSet, keep: list[Built],
                    r: Routed, summary: dict, over: dict) -> dict:
    """The bundle manifest's fields (edge_ecg.runtime.bundle writes and hashes them)."""
    notes = DISCLAIMER
    if over:
        notes += f" Exported with --allow-metric-drop; over tolerance: {json.dumps(over)}."
    return {
        "model_version": summary["model_version"],
        "signal": contract.to_dict(),
        "tasks": [{**t.to_dict(), "output": t.name,
                   **trained_on(req.checkpoint, t.name)} for t in tasks],
        "inputs": list(INPUT_NAMES),
        "variants": {b.name: b.manifest_entry() for b in keep},
        "default_variant": summary["default_variant"],
        "routing": {**r.routing.to_dict(), "cost": r.cost, "merge": summary["merge"],
                    "search": summary["routing"]["search"]},
        "quantization": {b.name: b.parity.get("quantization", {"precision": b.precision})
                         for b in keep},
        "parity": {b.name: {k: v for k, v in b.parity.items() if k != "quantization"}
                   for b in keep},
        "metrics": {"torch-fp32": r.ref_metrics, "torch-fp32-routed": r.routed_metrics,
                    **{b.name: b.metrics for b in keep},
                    "eval_windows": summary["n_eval"], "eval_data": summary["eval"]},
        "training_data": training_data(req.checkpoint),
        "notes": notes,
    }


def trained_on(checkpoint: Path, task: str) -> dict:
    """`{"trained_on": "real" | "synthetic" | "real+synthetic"}` for a task, from the
    databases its labels came from (metrics.json `task_training_data`); {} where unknown.
    The runtime repeats it beside the task's output, so a synthetic-only output says so."""
    try:
        doc = json.loads((Path(checkpoint) / "metrics.json").read_text())
        by = doc.get("task_training_data", {}).get(task) if isinstance(doc, dict) else None
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    if not isinstance(by, dict):
        return {}
    from edge_ecg.data.provenance import provenance_kind

    kind = provenance_kind(by)
    return {"trained_on": kind} if kind else {}


def training_data(checkpoint: Path) -> str:
    """"synthetic" unless the checkpoint's metrics.json names its training data otherwise."""
    p = Path(checkpoint) / "metrics.json"
    try:
        doc = json.loads(p.read_text())
        value = doc.get("training_data", "synthetic") if isinstance(doc, dict) else "synthetic"
        return value if isinstance(value, str) else "synthetic"
    except (OSError, json.JSONDecodeError):
        return "synthetic"
