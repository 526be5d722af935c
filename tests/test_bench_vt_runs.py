"""bench/vt_runs.py: reference ventricular runs (V and E, EC57's V class) found among the beat
annotations with non-beat marks skipped, and each run's beats read off the runtime's calls
with EC57's match window. (bench/ is not a package: imported by path.)"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import vt_runs  # noqa: E402


def test_runs_are_consecutive_ventricular_beats_and_rhythm_marks_do_not_break_them():
    samples = list(range(0, 1300, 100))
    symbols = ["N", "V", "V", "+", "E", "N", "V", "V", "N", "V", "V", "V", "V"]
    runs = vt_runs.reference_runs(samples, symbols, 3)
    assert runs == [[100, 200, 400], [900, 1000, 1100, 1200]]
    assert vt_runs.reference_runs(samples, symbols, 5) == []


def test_calls_read_the_nearest_detection_within_the_window():
    det = np.array([100, 205, 520])
    calls = vt_runs.calls_of([100, 200, 400, 500], det, ["V", None, "N"], tol=54)
    assert calls == "V?-N"            # 400: no detection within 54 samples
    assert vt_runs.calls_of([100], np.array([], dtype=np.int64), [], tol=54) == "-"
