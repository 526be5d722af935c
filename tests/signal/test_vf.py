"""VF/flutter detection from the signal: VF-like oscillation called, sinus not, invalid
samples give no decision, and any chunking gives the segments of one offline call."""

import numpy as np
import pytest

from edge_ecg.data.synth.generator import synthesize
from edge_ecg.errors import SignalError
from edge_ecg.signal.vf import HOP_S, SEGMENT_S, segment_features, vf_detect, vf_initial

FS = 250.0


def _vf_like(seconds: float, seed: int = 0) -> np.ndarray:
    """A coarse VF-like signal: a 4-6 Hz oscillation whose frequency and amplitude wander
    (no isoelectric line, no QRS), ~0.5 mV, plus a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    f = 5.0 + 0.8 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6))      # 4.2-5.8 Hz
    phase = 2 * np.pi * np.cumsum(f) / FS
    amp = 0.5 * (1.0 + 0.3 * np.sin(2 * np.pi * 0.2 * t))
    return amp * np.sin(phase) + 0.02 * rng.standard_normal(n)


def _sinus(seconds: float, seed: int = 1) -> np.ndarray:
    rec = synthesize("sinus_rhythm", seconds=seconds, fs_hz=FS, seed=seed)
    return rec.signal[:, list(rec.leads).index("II")].astype(np.float64)


def test_vf_like_signal_is_vf_and_sinus_is_not():
    segs, _ = vf_detect(_vf_like(20.0), None, vf_initial(FS))
    # 20 s, 4-s segments every second: 17 segments, every one called
    assert len(segs) == int((20.0 - SEGMENT_S) / HOP_S) + 1
    assert all(s.vf for s in segs)
    assert all(4.0 <= s.dominant_hz <= 6.0 for s in segs)
    segs, _ = vf_detect(_sinus(20.0), None, vf_initial(FS))
    assert len(segs) == 17 and not any(s.vf for s in segs)
    # the features point the way the literature says: VF crosses more, leaks less
    vf = segment_features(_vf_like(4.0), FS)
    sr = segment_features(_sinus(4.0), FS)
    assert vf["tcsc_pct"] > 2 * sr["tcsc_pct"]
    assert vf["leakage"] < 0.5 < sr["leakage"]


def test_flat_line_and_invalid_samples_get_no_vf_call():
    rng = np.random.default_rng(3)
    noise = 0.005 * rng.standard_normal(int(10 * FS))       # ADC noise on a flat lead
    segs, _ = vf_detect(noise, None, vf_initial(FS))
    assert not any(s.vf for s in segs)
    x = _vf_like(12.0)
    x[int(6.0 * FS)] = np.nan                               # one NaN at 6 s
    segs, _ = vf_detect(x, None, vf_initial(FS))
    undecided = [s.start / FS for s in segs if s.vf is None]
    # the segments holding sample 6.0 s start at 3, 4, 5 and 6 s
    assert undecided == [3.0, 4.0, 5.0, 6.0]
    assert all(s.vf for s in segs if s.vf is not None)
    inv = np.zeros(x.size, bool)
    inv[int(9.5 * FS):int(9.6 * FS)] = True
    # the NaN zeroed (a spike, still a call) and 9.5-9.6 s marked invalid instead: the
    # segments [6, 10), [7, 11) and [8, 12) s get no decision
    segs2, _ = vf_detect(np.nan_to_num(x), inv, vf_initial(FS))
    assert [s.start / FS for s in segs2 if s.vf is None] == [6.0, 7.0, 8.0]


def test_streaming_equals_offline_on_random_chunkings():
    x = np.concatenate([_sinus(15.0), _vf_like(15.0)])
    x[int(20 * FS):int(20 * FS) + 30] = np.nan
    whole, _ = vf_detect(x, None, vf_initial(FS))
    rng = np.random.default_rng(7)
    for _ in range(4):
        cuts = np.sort(rng.choice(np.arange(1, x.size), size=rng.integers(5, 60), replace=False))
        st = vf_initial(FS)
        got = []
        for part in np.split(x, cuts):
            segs, st = vf_detect(part, None, st)
            got += segs
        assert [(s.start, s.vf) for s in got] == [(s.start, s.vf) for s in whole]
        a = np.array([[s.tcsc_pct, s.leakage, s.concentration] for s in got if s.vf is not None])
        b = np.array([[s.tcsc_pct, s.leakage, s.concentration] for s in whole if s.vf is not None])
        np.testing.assert_array_equal(a, b)
    # sinus first, VF after: the calls switch where the rhythm does
    calls = [s.vf for s in whole]
    assert not any(calls[:8]) and all(c for c in calls[-6:])     # (NaN at 20 s: 17-20 none)


def test_rate_too_low_is_refused():
    with pytest.raises(SignalError):
        vf_initial(50.0)


@pytest.mark.needs_data("cudb/cu03")
def test_cudb_vf_episode_is_called_and_its_sinus_is_not(shared_data):
    wfdb = pytest.importorskip("wfdb")
    path = shared_data / "cudb" / "cu03"
    if not path.with_suffix(".hea").exists():
        pytest.skip(f"{path}.hea not found (CUDB not in ../shared/data)")
    ann = wfdb.rdann(str(path), "atr")
    on = int(ann.sample[list(ann.symbol).index("[")])     # cu03: VF from ~7 min 45 s
    calls = {}
    for name, (a, b) in {"first 2 min": (0, 120 * 250), "VF": (on, on + 40 * 250)}.items():
        rec = wfdb.rdrecord(str(path), sampfrom=a, sampto=b)
        segs, _ = vf_detect(rec.p_signal[:, 0], None, vf_initial(rec.fs))
        calls[name] = np.mean([s.vf for s in segs if s.vf is not None])
    assert calls["VF"] >= 0.8                # measured 1.0 (37 segments)
    assert calls["first 2 min"] <= 0.1       # measured 0.0 (117 segments)
