"""Records to model windows: the same chain as the runtime (resample, filter, detect, cut)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.data.synth import synthesize
from edge_ecg.data.windows import make_windows, mean_rr_ms, window_starts
from edge_ecg.errors import SignalError
from edge_ecg.signal.contract import SignalContract
from edge_ecg.signal.filters import filter_offline
from edge_ecg.signal.qrs import detect_beats

C = SignalContract()


def test_windows_of_a_synth_record_carry_its_beats():
    rec = synthesize("sinus_rhythm", seconds=14, seed=1)
    starts, items = make_windows(rec.signal, rec.fs_hz, rec.leads, C, hop_s=2.0)
    np.testing.assert_array_equal(starts, [0, 1000, 2000])
    assert len(items) == 3
    it = items[0]
    assert it.x.shape == (12, 5000) and it.lead_mask.all()
    assert it.beats.shape == (C.max_beats, 12, C.beat_len)
    for s, it in zip(starts, items):
        ref = rec.r_peaks[(rec.r_peaks >= s) & (rec.r_peaks < s + C.window_len)]
        # every reference beat found; the RR inputs agree with the ground truth to 10 ms
        assert int(it.rr_mask.sum()) == ref.size - 1
        rr = it.rr_ms[it.rr_mask]
        np.testing.assert_allclose(rr, np.diff(ref) * 2.0, atol=10.0)
        assert it.period[0] * 1000 == pytest.approx(np.diff(ref).mean() * 2.0, abs=5.0)


def test_windows_match_a_manual_run_of_the_chain():
    rec = synthesize("atrial_fibrillation", seconds=12, seed=2, snr_db=20)
    starts, items = make_windows(rec.signal, rec.fs_hz, rec.leads, C, hop_s=1.0)
    y = filter_offline(C.filter, rec.signal, C.fs_hz)
    r = detect_beats(y, C.fs_hz)
    s = int(starts[2])
    ref = r[(r >= s) & (r < s + C.window_len)] - s
    whole = (ref >= C.beat_pre) & (ref + C.beat_len - C.beat_pre <= C.window_len)
    assert int(items[2].beat_mask.sum()) == int(whole.sum())
    x = y[s:s + C.window_len].T
    np.testing.assert_allclose(items[2].x, np.clip(x - np.median(x, axis=1, keepdims=True), -8, 8),
                               atol=1e-5)


def test_fewer_leads_are_masked_and_limb_leads_derived():
    rec = synthesize("sinus_rhythm", seconds=10, seed=3, leads=("I", "II", "V2"))
    _, items = make_windows(rec.signal, rec.fs_hz, rec.leads, C)
    mask = items[0].lead_mask
    assert mask.tolist() == [True] * 6 + [False, True] + [False] * 4
    assert np.all(items[0].x[~mask] == 0)


def test_short_record_gives_no_window_and_bad_input_is_refused():
    rec = synthesize("sinus_rhythm", seconds=6, seed=1)
    starts, items = make_windows(rec.signal, rec.fs_hz, rec.leads, C)
    assert starts.size == 0 and items == []
    bad = rec.signal.copy()
    bad[:, 3] = np.nan               # a lead with no valid sample cannot be filled
    with pytest.raises(SignalError, match="no valid sample"):
        make_windows(bad, rec.fs_hz, rec.leads, C)
    with pytest.raises(SignalError, match="leads"):
        make_windows(rec.signal, rec.fs_hz, rec.leads[:5], C)


def test_window_starts_and_mean_rr():
    np.testing.assert_array_equal(window_starts(6000, C, hop_s=0.5), np.arange(0, 1001, 250))
    assert window_starts(4999, C).size == 0
    assert mean_rr_ms(np.array([0, 400, 800, 1300]), 0, 1000, 500.0) == pytest.approx(800.0)
    assert np.isnan(mean_rr_ms(np.array([0, 4000]), 100, 3000, 500.0))


def test_resampled_source_lands_on_the_contract_rate():
    rec = synthesize("sinus_tachycardia", seconds=11, fs_hz=360.0, seed=4)
    starts, items = make_windows(rec.signal, rec.fs_hz, rec.leads, C, hop_s=1.0)
    assert starts.tolist() == [0, 500]
    ref = rec.r_peaks * (C.fs_hz / rec.fs_hz)
    ref = ref[ref < C.window_len]
    assert int(items[0].rr_mask.sum()) == ref.size - 1
    np.testing.assert_allclose(items[0].rr_ms[items[0].rr_mask], np.diff(ref) * 2.0, atol=12.0)
