"""Streaming QRS detection: chunking-invariant, accurate on synthetic and real records."""

import numpy as np
import pytest

from edge_ecg.errors import SignalError
from edge_ecg.signal.qrs import Beat, detect_beats, qrs_detect, qrs_flush, qrs_initial
from edge_ecg.signal.scoring import score_beats


def gaussian_beats(fs, seconds=20.0, seed=0, leads=1):
    """A beat train of Gaussian QRS (10 ms sd) and T waves with RR jitter, wander and noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    t = np.arange(n) / fs
    rr = np.clip(rng.normal(0.8, 0.08, int(seconds / 0.5)), 0.45, 1.3)
    r_s = 0.3 + np.cumsum(rr)
    r_s = r_s[r_s < seconds - 0.3]
    x = 0.3 * np.sin(2 * np.pi * 0.25 * t) + 0.02 * rng.standard_normal(n)
    for r in r_s:
        x += 1.2 * np.exp(-0.5 * ((t - r) / 0.010) ** 2)
        x += 0.3 * np.exp(-0.5 * ((t - r - 0.28) / 0.045) ** 2)
    gains = np.linspace(1.0, -0.6, leads)
    return (x[:, None] * gains[None, :]).astype(np.float32), np.round(r_s * fs).astype(np.int64)


def stream(x, fs, cuts):
    state = qrs_initial(fs)
    beats, start = [], 0
    for stop in list(cuts) + [len(x)]:
        found, state = qrs_detect(x[start:stop], state)
        beats += found
        start = stop
    last, _ = qrs_flush(state)
    return beats + last


@pytest.mark.parametrize("fs", [128.0, 250.0, 360.0, 500.0, 1000.0])
def test_gaussian_train_recovered_at_every_rate(fs):
    x, r = gaussian_beats(fs)
    det = detect_beats(x, fs)
    s = score_beats(r, det, fs)
    assert s.f1 >= 0.999, s.to_dict()
    assert s.median_abs_error_ms <= 1000.0 / fs + 1e-9        # on the peak sample


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_streaming_equals_offline_for_random_chunkings(seed):
    fs = 360.0
    x, _ = gaussian_beats(fs, seconds=12.0, seed=seed, leads=2)
    offline = stream(x, fs, [])
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, len(x)), size=rng.integers(5, 400), replace=False))
    chunked = stream(x, fs, cuts.tolist())
    assert [(b.index, b.decided_at) for b in chunked] == [(b.index, b.decided_at) for b in offline]
    one_by_one = stream(x[:1500], fs, list(range(1, 1500)))    # single-sample chunks
    assert [b.index for b in one_by_one] == [b.index for b in stream(x[:1500], fs, [])]


def test_beats_are_absolute_and_causal():
    fs = 500.0
    x, r = gaussian_beats(fs, seconds=10.0)
    state = qrs_initial(fs, start_index=1_000_000)
    beats, state = qrs_detect(x, state)
    assert state.next_index == 1_000_000 + len(x)
    idx = np.array([b.index for b in beats])
    s = score_beats(r + 1_000_000, idx, fs)
    assert s.f1 >= 0.99
    assert all(isinstance(b, Beat) and b.decided_at >= b.index for b in beats)
    delays = np.array([b.delay_ms for b in beats])
    assert np.all(delays > 0) and np.median(delays) <= 250.0


def test_state_is_not_modified():
    fs = 250.0
    x, _ = gaussian_beats(fs, seconds=6.0)
    s0 = qrs_initial(fs)
    _, s1 = qrs_detect(x[:800], s0)
    b2, _ = qrs_detect(x[800:], s1)
    b2_again, _ = qrs_detect(x[800:], s1)                     # s1 reused: same answer
    assert [b.index for b in b2] == [b.index for b in b2_again]
    assert s0.next_index == 0 and s1.next_index == 800


def test_multilead_sums_energy_and_survives_a_flat_lead():
    fs = 500.0
    x, r = gaussian_beats(fs, seconds=15.0, leads=3)
    x[:, 1] = 0.0                                             # electrode off on one lead
    s = score_beats(r, detect_beats(x, fs), fs)
    assert s.f1 >= 0.999


def test_synthetic_ecg_from_generator():
    synth = pytest.importorskip("edge_ecg.data.synth")
    for condition, seed in [("sinus_rhythm", 0), ("premature_ventricular_contractions", 1),
                            ("atrial_fibrillation", 2), ("left_bundle_branch_block", 3)]:
        rec = synth.synthesize(condition, seconds=20.0, fs_hz=500.0, seed=seed)
        det = detect_beats(rec.signal, rec.fs_hz)
        # the last beat of a finite record needs samples after it: edges excluded (150 ms)
        s = score_beats(rec.r_peaks, det, rec.fs_hz, exclude_edges_s=0.15,
                        n_samples=rec.signal.shape[0])
        assert s.f1 >= 0.999, (condition, s.to_dict())


def test_mitdb_100(shared_data):
    from edge_ecg.data.records import beat_annotations, read_record

    rec = read_record(shared_data / "mitdb" / "100", channels=[0])
    ref = beat_annotations(shared_data / "mitdb" / "100").sample
    det = detect_beats(rec.signal, rec.fs_hz)                # the whole 30 min, ~1 s
    s = score_beats(ref, det, rec.fs_hz)
    assert s.f1 >= 0.99, s.to_dict()
    assert s.median_abs_error_ms <= 10.0


def _quantised_noise(fs, seconds, rms_mv, seed=0):
    """A disconnected lead: amplifier noise rounded to a 200 adu/mV ADC (MIT-BIH's gain)."""
    rng = np.random.default_rng(seed)
    return np.round(rng.standard_normal(int(seconds * fs)) * rms_mv * 200.0) / 200.0


@pytest.mark.parametrize("rms_mv", [0.0, 0.002, 0.005, 0.02])
def test_flat_lead_gives_no_beats(rms_mv):
    fs = 360.0
    x = _quantised_noise(fs, 60.0, rms_mv)
    assert detect_beats(x, fs).size == 0
    beats, _ = qrs_flush(qrs_detect(x, qrs_initial(fs))[1])
    assert beats == []


def test_lead_going_flat_mid_stream_stops_the_beats():
    fs = 250.0
    x, r = gaussian_beats(fs, seconds=40.0)
    x = x[:, 0].astype(np.float64)
    cut = int(20 * fs)
    x[cut:] = _quantised_noise(fs, 20.0, 0.005)                # electrode off at 20 s
    det = detect_beats(x, fs)
    s = score_beats(r[r < cut - 0.5 * fs], det[det < cut], fs)
    assert s.f1 >= 0.999
    assert np.sum(det > cut + 0.5 * fs) == 0                    # nothing made up afterwards


def test_bad_input_raises():
    state = qrs_initial(360.0)
    with pytest.raises(SignalError, match="NaN"):
        qrs_detect(np.array([0.0, 1.0, np.nan, 0.0]), state)
    _, st = qrs_detect(np.zeros(100), state)
    with pytest.raises(SignalError, match="index 102"):
        qrs_detect(np.array([0.0, 0.0, np.inf]), st)
    with pytest.raises(SignalError):
        qrs_detect(np.zeros((10, 2)), st)                     # lead count changed
    with pytest.raises(SignalError):
        qrs_detect(np.zeros((2, 3, 4)), state)
    for fs in (50.0, 5000.0, float("nan"), float("inf"), None, "fast"):
        with pytest.raises(SignalError, match="sampling rate"):
            qrs_initial(fs)


def _mitdb(shared_data, name, seconds=None):
    from edge_ecg.data.records import (
        BEAT_SYMBOLS,
        find_beat_extension,
        read_annotations,
        read_record,
    )

    path = shared_data / "mitdb" / name
    rec = read_record(path, channels=[0])
    ann = read_annotations(path, find_beat_extension(path))
    sym = np.array(ann.symbol, dtype=object)
    ref = ann.sample[np.isin(sym, list(BEAT_SYMBOLS))]
    # EC57: ventricular flutter episodes ('[' to ']', record 207) are not scored
    vf = list(zip(ann.sample[sym == "["], ann.sample[sym == "]"]))
    x = rec.signal[:, 0].astype(np.float64)
    if seconds is not None:
        x = x[: int(seconds * rec.fs_hz)]
        ref = ref[ref < x.size]
    return x, rec.fs_hz, ref, vf


@pytest.mark.parametrize("name", ["108", "203", "201", "105"])
def test_streaming_equals_offline_on_hard_records(shared_data, name):
    """Held candidates, search back and noise: the hard records take every branch."""
    x, fs, _, _ = _mitdb(shared_data, name, seconds=300.0)
    offline = stream(x, fs, [])
    rng = np.random.default_rng(int(name))
    cuts = np.sort(rng.choice(np.arange(1, len(x)), size=2000, replace=False))
    chunked = stream(x, fs, cuts.tolist())
    assert [(b.index, b.decided_at) for b in chunked] == [(b.index, b.decided_at) for b in offline]


def test_every_mitdb_record(shared_data):
    """Regression guard for bench/beats.py's figures: lead 0 of the 28 MIT-BIH records, whole
    records, EC57 scoring (~10 s). Measured: gross F1 0.9984, worst record 0.9908."""
    from edge_ecg.signal.scoring import pool_scores

    names = sorted(p.stem for p in (shared_data / "mitdb").glob("*.hea"))
    assert len(names) >= 20
    scores = {}
    for name in names:
        x, fs, ref, vf = _mitdb(shared_data, name)
        det = detect_beats(x, fs)
        for a, b in vf:
            ref = ref[(ref < a) | (ref > b)]
            det = det[(det < a) | (det > b)]
        scores[name] = score_beats(ref, det, fs)
    gross = pool_scores(list(scores.values()))
    assert gross.sensitivity >= 0.998 and gross.ppv >= 0.998, gross.to_dict()
    worst = min(scores, key=lambda n: scores[n].f1)
    assert scores[worst].f1 >= 0.989, (worst, scores[worst].to_dict())
    assert gross.median_abs_error_ms <= 5.0


def test_beats_cli_scores_a_wfdb_record(tmp_path, capsys):
    import json

    import wfdb

    from edge_ecg.cli import main

    fs = 250.0
    x, r = gaussian_beats(fs, seconds=30.0, leads=2)
    wfdb.wrsamp("syn", fs=fs, units=["mV", "mV"], sig_name=["II", "V1"], p_signal=x.astype(float),
                fmt=["16", "16"], adc_gain=[1000.0, 1000.0], baseline=[0, 0],
                write_dir=str(tmp_path))
    wfdb.wrann("syn", "atr", r, symbol=["N"] * len(r), write_dir=str(tmp_path))
    assert main(["beats", str(tmp_path / "syn"), "--json", "--channel", "0", "--channel", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("n_ref", "tp", "fp", "fn", "sensitivity", "ppv", "f1", "median_delay_ms",
                "seconds", "wall_s"):
        assert key in out
    assert out["n_ref"] == len(r) and out["f1"] >= 0.999 and out["seconds"] == 30.0
    assert 0 < out["median_delay_ms"] <= 250.0
    assert main(["beats", str(tmp_path / "syn.hea")]) == 0
    text = capsys.readouterr().out
    assert "F1 1.0000" in text and "streaming" in text
    assert main(["beats", str(tmp_path / "missing")]) == 1
    assert "missing.hea" in capsys.readouterr().err
    assert main(["beats", str(tmp_path / "syn"), "--channel", "7"]) == 1
    assert "out of range" in capsys.readouterr().err
