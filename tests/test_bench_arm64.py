"""bench/arm64.py's comparison of two event streams (the emulated run itself is not in CI):
beats exact, model numbers within the stated tolerance, labels exact, wall-clock fields
ignored."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "bench_arm64", Path(__file__).resolve().parents[1] / "bench" / "arm64.py")
arm64 = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(arm64)


def events():
    return [
        {"type": "status", "index": 0, "state": "start", "info": {"source": "x"}},
        {"type": "beat", "index": 79, "delay_ms": 1780.0, "beat_class": "N", "qrs_ms": 88.0},
        {"type": "beat", "index": 370, "delay_ms": 1780.0, "beat_class": "V", "qrs_ms": 140.0},
        {"type": "prediction", "index": 3600, "latency_ms": 40.7,
         "outputs": {"rr_interval": {"value": 805.616, "unit": "ms"},
                     "arrhythmia": {"label": "normal_sinus", "prob": 0.9994}}},
    ]


def test_identical_streams_compare_equal():
    r = arm64.compare(events(), events())
    assert r["beats_equal"] and r["events_matched"] and r["mismatches"] == []
    assert r["beats"] == (2, 2) and r["predictions"] == (1, 1) and r["numbers"] == 3


def test_wall_clock_fields_are_ignored_and_small_float_noise_passes():
    arm = events()
    arm[3]["latency_ms"] = 900.0                                   # emulation is slow
    arm[3]["outputs"]["arrhythmia"]["prob"] = 0.9994 - 1.5e-3     # inside ATOL
    arm[3]["outputs"]["rr_interval"]["value"] = 805.616 * (1 + 9e-4)   # inside RTOL
    r = arm64.compare(events(), arm)
    assert r["mismatches"] == [] and r["max_abs_diff"] == pytest.approx(805.616 * 9e-4)


@pytest.mark.parametrize("change", ["beat_index", "beat_class", "prob", "label", "missing"])
def test_each_kind_of_difference_is_caught(change):
    arm = copy.deepcopy(events())
    if change == "beat_index":
        arm[1]["index"] = 80
    elif change == "beat_class":
        arm[2]["beat_class"] = "N"
    elif change == "prob":
        arm[3]["outputs"]["arrhythmia"]["prob"] = 0.9994 - 5e-3
    elif change == "label":
        arm[3]["outputs"]["arrhythmia"]["label"] = "af_or_flutter"
    else:
        del arm[3]
    r = arm64.compare(events(), arm)
    if change.startswith("beat"):
        assert not r["beats_equal"]
        assert r["beat_indices_equal"] == (change != "beat_index" and True)
    elif change == "missing":
        assert not r["events_matched"]
    else:
        assert len(r["mismatches"]) == 1
