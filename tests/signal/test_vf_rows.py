"""The VF detector's features of many segments at once (`vf.segment_features_rows`, issue 27)
are `segment_features`' floats, segment by segment, and the detector's decisions with it are
the one-segment form's on a real CUDB record."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.signal import vf as vfm


def _segments(rng, fs: float, n_seg: int) -> np.ndarray:
    n = int(round(vfm.SEGMENT_S * fs))
    t = np.arange(n) / fs
    rows = []
    for i in range(n_seg):
        kind = i % 5
        if kind == 0:       # VF-like: a 4-6 Hz wobble
            y = np.sin(2 * np.pi * rng.uniform(3.5, 6.5) * t + rng.uniform(0, 6))
        elif kind == 1:     # sinus-like spikes
            y = np.zeros(n)
            y[(np.arange(0, n, int(0.8 * fs)) + int(rng.integers(0, 20))) % n] = 1.5
        elif kind == 2:     # noise
            y = rng.normal(0, 0.3, n)
        elif kind == 3:     # flat: no slope, no spectrum
            y = np.full(n, rng.uniform(-1, 1))
        else:               # ties
            y = np.round(rng.normal(0, 1, n), 1)
        rows.append(y * rng.uniform(0.05, 3.0))
    return np.array(rows)


@pytest.mark.parametrize("fs", [128.0, 250.0, 360.0, 500.0])
def test_rows_equal_one_segment_at_a_time(fs):
    rng = np.random.default_rng(int(fs))
    for n_seg in (1, 2, 7, 16, 19):
        y = _segments(rng, fs, n_seg)
        got = vfm.segment_features_rows(y, fs)
        want = [vfm.segment_features(row, fs) for row in y]
        assert got == want                      # dicts of floats: equal, not close
    assert vfm.segment_features_rows(np.zeros((0, 10)), fs) == []


def test_vf_detect_on_a_cudb_record_decides_as_segment_by_segment(monkeypatch):
    rec = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cudb" / "cu11"
    if not rec.with_suffix(".hea").is_file():
        pytest.skip(f"no CUDB record at {rec}")
    import wfdb

    r = wfdb.rdrecord(str(rec), sampto=240 * 250)   # its first 4 min (NaN only later)
    fs = float(r.fs)
    x = r.p_signal[:, 0].astype(np.float64)
    bad = np.zeros(x.size, dtype=bool)
    bad[5000:5100] = True                        # an invalid stretch: its segments undecided

    def run() -> list[dict]:
        st, out = vfm.vf_initial(fs), []
        for a in range(0, x.size, 4000):         # 16-s chunks, as a max-speed replay
            segs, st = vfm.vf_detect(x[a:a + 4000], bad[a:a + 4000], st)
            out += [asdict(s) for s in segs]
        return out

    batched = run()
    monkeypatch.setattr(vfm, "segment_features_rows",
                        lambda y, fs: [vfm.segment_features(row, fs) for row in y])
    assert batched == run()
    assert sum(s["vf"] is None for s in batched) >= 1 and len(batched) > 200
