"""Per-task metrics (numpy): MAE, F1, accuracy and macro F1, missing labels skipped."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np

from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.metrics.tasks import macro_f1, task_metrics


def test_known_values_and_missing_labels():
    outputs = {
        "rr_interval": np.array([800.0, 900.0, 1000.0]),
        "sex": np.array([0.9, 0.2, 0.7, 0.4]),
        "arrhythmia": np.eye(15)[[0, 1, 1, 4]],
    }
    labels = {
        "rr_interval": np.array([810.0, math.nan, 970.0], dtype=np.float32),
        "sex": np.array([1, 0, 0, 1], dtype=np.float32),
        "arrhythmia": np.array([0, 1, 4, 4], dtype=np.float32),
    }
    m = task_metrics(DEFAULT_TASKS, outputs, labels)
    assert m["rr_interval"] == {"mae": 20.0, "n": 2}
    assert m["sex"]["f1"] == 0.5 and m["sex"]["accuracy"] == 0.5
    assert m["arrhythmia"]["accuracy"] == 0.75
    # classes 0 (F1 1), 1 (F1 2/3), 4 (F1 2/3)
    assert abs(m["arrhythmia"]["macro_f1"] - (1 + 2 / 3 + 2 / 3) / 3) < 1e-12
    assert "age" not in m
    assert macro_f1(np.array([2, 2]), np.array([2, 2])) == 1.0


def test_metrics_modules_import_without_torch():
    code = ("import sys, edge_ecg.model, edge_ecg.metrics.tasks, edge_ecg.metrics.field, "
            "edge_ecg.metrics.beats, edge_ecg.metrics.rhythm\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'torch']\n")
    res = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
