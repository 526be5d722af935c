"""bench/beat_stack_folds.py: Se and +P pooled from the folds' counts (not averaged over folds),
NaN counts skipped, a figure with nothing to count NaN. (bench/ is not a package: imported by
path.)"""

from __future__ import annotations

import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import beat_stack_folds  # noqa: E402


def _fold(v_tp, v_fn, v_fp, runs_tp, runs_ref, det_tp, det, false_vt, hours):
    ec57 = {"v_tp": v_tp, "v_fn": v_fn, "v_fp": v_fp, "s_tp": 0, "s_fn": 0, "s_fp": float("nan")}
    alarms = {"vt_run_tp_ref": runs_tp, "vt_run_ref": runs_ref, "vt_run_tp_det": det_tp,
              "vt_run_det": det, "false_vt_alarms": false_vt, "hours": hours}
    return {"beat_classes": {"ec57": {"by_database": {"mitdb": ec57}}},
            "alarms": {"mitdb": alarms}}


def test_counts_are_pooled_over_the_folds():
    a = _fold(90, 10, 10, 1, 2, 1, 4, 1, 1.0)
    b = _fold(10, 30, 0, 3, 3, 3, 4, 2, 2.0)
    p = beat_stack_folds.pooled([a, b])
    assert p["mitdb V Se"] == 100 / 140                  # not the mean of 0.9 and 0.25
    assert p["mitdb V +P"] == 100 / 110
    assert p["mitdb vt_run Se"] == 4 / 5 and p["mitdb vt_run +P"] == 4 / 8
    assert p["mitdb false VT /h"] == 1.0
    assert math.isnan(p["mitdb S Se"]) and math.isnan(p["mitdb S +P"])   # nothing to count
    assert math.isnan(p["svdb V Se"])                    # a database the folds lack
