"""The signal contract and the modules it composes: leads, beat windows, RR/period features."""

import numpy as np
import pytest

from edge_ecg.errors import SignalError
from edge_ecg.signal.beats import beat_windows
from edge_ecg.signal.contract import (
    INPUT_NAMES,
    ModelInputs,
    SignalContract,
    prepare_inputs,
    stack_inputs,
)
from edge_ecg.signal.leads import STANDARD_12, canonical_lead, derive_limb_leads, to_standard_leads
from edge_ecg.signal.normalize import CLIP_MV, normalize
from edge_ecg.signal.period import (
    PERIOD_FEATURES,
    dominant_cycle_samples,
    period_features,
    rr_intervals_ms,
    rr_series,
)


def test_contract_lengths_and_round_trip():
    c = SignalContract()
    assert (c.window_len, c.hop_len, c.beat_pre, c.beat_len, c.n_leads) == (5000, 500, 125, 350, 12)
    assert SignalContract.from_dict(c.to_dict()) == c
    with pytest.raises(SignalError, match="unknown"):
        SignalContract.from_dict({**c.to_dict(), "colour": "red"})


def test_lead_names_and_einthoven():
    assert canonical_lead("MLII") == "II" and canonical_lead(" avf ") == "aVF"
    assert canonical_lead("V5") == "V5" and canonical_lead("ECG") is None
    i, ii = np.array([0.2, 1.0]), np.array([1.0, 0.4])
    d = derive_limb_leads(i, ii)
    np.testing.assert_allclose(d["III"], ii - i)
    np.testing.assert_allclose(d["aVR"] + d["aVL"] + d["aVF"], 0.0, atol=1e-12)  # Goldberger


def test_to_standard_leads_places_masks_and_derives():
    x = np.stack([np.full(10, 0.5), np.full(10, 1.5), np.full(10, 2.0)], 1)
    y, mask = to_standard_leads(x, ("I", "MLII", "V2"))
    assert y.shape == (10, 12)
    present = [n for n, m in zip(STANDARD_12, mask) if m]
    assert present == ["I", "II", "III", "aVR", "aVL", "aVF", "V2"]
    np.testing.assert_allclose(y[:, STANDARD_12.index("III")], 1.0)
    assert not y[:, STANDARD_12.index("V1")].any()
    with pytest.raises(ValueError):
        to_standard_leads(x, ("I", "II"))


def test_beat_windows_keep_only_whole_beats():
    x = np.arange(2 * 100, dtype=np.float32).reshape(2, 100)
    beats, mask = beat_windows(x, np.array([5, 30, 60, 98]), pre=10, post=20, max_beats=4)
    assert mask.tolist() == [True, True, False, False]
    np.testing.assert_array_equal(beats[0, 1], x[1, 20:50])
    np.testing.assert_array_equal(beats[1, 0], x[0, 50:80])
    assert not beats[2:].any()


def test_rr_and_period_features():
    fs = 500.0
    r = np.array([100, 600, 1100, 1500, 2000])               # RR 1000, 1000, 800, 1000 ms
    np.testing.assert_allclose(rr_intervals_ms(r, fs), [1000, 1000, 800, 1000])
    rr, m = rr_series(r, fs, 6)
    assert m.tolist() == [True] * 4 + [False] * 2 and rr[4:].sum() == 0
    f = dict(zip(PERIOD_FEATURES, period_features(r, fs, 10.0)))
    assert f["mean_rr_s"] == pytest.approx(0.95) and f["median_rr_s"] == pytest.approx(1.0)
    assert f["rmssd_s"] == pytest.approx(np.sqrt((0 + 0.04 + 0.04) / 3), rel=1e-5)
    assert f["pnn50"] == pytest.approx(2 / 3) and f["beats_per_s"] == pytest.approx(0.5)
    assert f["irregular_frac"] == pytest.approx(2 / 3)        # 200 ms > 12.5 % of 1000/800 ms
    assert dominant_cycle_samples(r, fs) == 500
    assert dominant_cycle_samples(r[:1], fs) == 400
    assert not period_features(r[:1], fs, 10.0)[:7].any()


def test_normalize():
    x = np.array([[1.0, 2.0, 3.0, 50.0]])
    y = normalize(x, "median_mv")
    assert y.dtype == np.float32 and y[0, 0] == -1.5 and y[0, 3] == CLIP_MV
    z = normalize(np.random.default_rng(0).normal(3, 2, (2, 1000)), "zscore")
    np.testing.assert_allclose(z.std(axis=-1), 1.0, atol=1e-5)
    with pytest.raises(SignalError):
        normalize(x, "minmax")


def _window(c, fs=500.0):
    t = np.arange(c.window_len) / fs
    r_s = np.arange(0.4, 10.0, 0.8)
    ii = sum(np.exp(-0.5 * ((t - r) / 0.01) ** 2) for r in r_s)
    x = np.stack([0.5 * ii, ii, 0.3 * ii], 1).astype(np.float32)   # I, II, V1
    return x, np.round(r_s * fs).astype(np.int64)


def test_prepare_inputs_shapes_masks_and_rr():
    c = SignalContract()
    x, r = _window(c)
    inp = prepare_inputs(x, ("I", "II", "V1"), r, c)
    assert isinstance(inp, ModelInputs)
    assert inp.x.shape == (12, 5000) and inp.lead_mask.sum() == 7   # I, II, V1 + 4 derived
    assert not inp.x[~inp.lead_mask].any()
    n_whole = int(((r - c.beat_pre >= 0) & (r + c.beat_len - c.beat_pre <= c.window_len)).sum())
    assert inp.beat_mask.sum() == n_whole and inp.beats.shape == (32, 12, 350)
    # beats are aligned on R: the R sample of lead II is the window's largest value
    k = STANDARD_12.index("II")
    assert np.all(inp.beats[inp.beat_mask][:, k].argmax(axis=-1) == c.beat_pre)
    np.testing.assert_allclose(inp.rr_ms[inp.rr_mask], 800.0)
    assert inp.period[PERIOD_FEATURES.index("median_rr_s")] == pytest.approx(0.8)
    batch = stack_inputs([inp, inp])
    assert tuple(batch) == INPUT_NAMES
    assert all(v.dtype == np.float32 and v.shape[0] == 2 for v in batch.values())


def test_prepare_inputs_rejects_bad_windows():
    c = SignalContract()
    x, r = _window(c)
    with pytest.raises(SignalError, match="window must be"):
        prepare_inputs(x[:100], ("I", "II", "V1"), r, c)
    bad = x.copy()
    bad[10, 0] = np.nan
    with pytest.raises(SignalError, match="NaN"):
        prepare_inputs(bad, ("I", "II", "V1"), r, c)
    with pytest.raises(SignalError, match="none of the leads"):
        prepare_inputs(x, ("X", "Y", "Z"), r, c)
