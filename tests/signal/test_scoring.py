"""The beat matcher counts as wfdb.processing.compare_annotations does (the WFDB bxb rule).

`match_beats` pairs closest-first; wfdb walks the reference beats in order and settles a
contested detection by distance. Where beats and detections are each at least 100 ms apart
(every real annotation; our detector's refractory period is 200 ms) the two give the same
TP, FP and FN: checked here on random sequences and on MIT-BIH records with our detector.
wfdb's window is exclusive (`diff < window_width`), ours inclusive: window = tolerance + 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_ecg.signal.scoring import MATCH_TOLERANCE_S, score_beats

wfdb_processing = pytest.importorskip("wfdb.processing")

REPO = Path(__file__).resolve().parents[2]
MITDB = REPO.parent / "shared" / "data" / "mitdb"
BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
FS = 360.0
TOL = int(round(MATCH_TOLERANCE_S * FS))


def _wfdb_counts(ref, det, tol):
    c = wfdb_processing.compare_annotations(np.asarray(ref), np.asarray(det), tol + 1)
    return c.tp, c.fp, c.fn


def _spaced(rng, n, gap, hi=20000):
    x = np.cumsum(rng.integers(gap, gap * 4, n))
    return x[x < hi]


def test_counts_equal_wfdb_on_random_beat_like_sequences():
    rng = np.random.default_rng(0)
    gap = int(0.100 * FS)                         # 100 ms between beats, and between detections
    checked = 0
    for _ in range(2000):
        ref = _spaced(rng, int(rng.integers(1, 40)), gap)
        det = _spaced(rng, int(rng.integers(1, 40)), gap)
        if rng.random() < 0.7:                    # near the beats, some missed, some extra
            keep = rng.random(ref.size) < 0.9
            det = np.sort(np.concatenate([ref[keep] + rng.integers(-60, 60, keep.sum()),
                                          det[rng.random(det.size) < 0.2]]))
            if det.size:
                det = det[np.concatenate([[True], np.diff(det) >= gap])]
        if ref.size == 0 or det.size == 0:        # wfdb's comparator fails on an empty side
            continue
        s = score_beats(ref, det, FS)
        assert (s.tp, s.fp, s.fn) == _wfdb_counts(ref, det, TOL)
        checked += 1
    assert checked > 1500


@pytest.mark.skipif(not MITDB.is_dir(), reason=f"MIT-BIH not found at {MITDB}")
def test_counts_equal_wfdb_on_mitbih_with_our_detector():
    import wfdb

    from edge_ecg.signal.qrs import detect_beats

    records = sorted(p.with_suffix("") for p in MITDB.glob("*.atr"))[:3]
    if not records:
        pytest.skip(f"no MIT-BIH annotations in {MITDB}")
    for rec in records:
        r = wfdb.rdrecord(str(rec), channels=[0])
        a = wfdb.rdann(str(rec), "atr")
        ref = np.array([s for s, sym in zip(a.sample, a.symbol) if sym in BEAT_SYMBOLS])
        det = np.asarray(detect_beats(r.p_signal, r.fs))
        s = score_beats(ref, det, r.fs)
        tol = int(round(MATCH_TOLERANCE_S * r.fs))
        assert (s.tp, s.fp, s.fn) == _wfdb_counts(ref, det, tol), rec.name
