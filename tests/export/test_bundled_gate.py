"""The shipped bundle passed its own export gate: every variant it carries is within the 0.01
tolerance of torch fp32 on the checkpoint's validation patients, as the export recorded it in
the manifest (the bundled command runs without --allow-metric-drop; a bundle re-exported with
it, over the tolerance, fails here instead of shipping quietly)."""

from __future__ import annotations

import json
from pathlib import Path

from edge_ecg.data.tasks import TaskSet, TaskSpec
from export.acceptance import metric_drops
from export.request import ExportRequest

BUNDLE = Path(__file__).resolve().parents[2] / "edge_ecg" / "assets" / "default_bundle"


def test_every_shipped_variant_is_within_the_metric_tolerance():
    m = json.loads((BUNDLE / "manifest.json").read_text())
    fields = TaskSpec.__dataclass_fields__      # the manifest adds `output`, `trained_on`
    tasks = TaskSet(tuple(TaskSpec.from_dict({k: v for k, v in t.items() if k in fields})
                          for t in m["tasks"]))
    metrics = m["metrics"]
    assert metrics["eval_data"].startswith("recipe:validation"), metrics["eval_data"]
    tolerance = ExportRequest(checkpoint=Path("x"), out=Path("y")).tolerance
    variants = list(m["variants"])
    assert "onnx-int8-routed" in variants
    for name in variants:
        drops = metric_drops(metrics["torch-fp32"], metrics[name], tasks)
        assert drops and max(drops.values()) <= tolerance, (name, drops)
