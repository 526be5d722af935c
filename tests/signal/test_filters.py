"""Filters: streaming in any chunking equals one pass; the designs do what their names say."""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_ecg.errors import SignalError
from edge_ecg.signal.filters import (
    FilterState,
    filter_apply,
    filter_initial,
    filter_offline,
    make_filter,
)

NAMES = ["bandpass_0.5_40", "highpass_0.5", "lowpass_40", "notch_50", "notch_60", "bandpass_5_15"]


def _signal(n=3000, leads=3, fs=500.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    base = 1.5 + 0.8 * np.sin(2 * np.pi * 0.3 * t)[:, None]          # DC + wander
    mains = 0.2 * np.sin(2 * np.pi * 50 * t)[:, None]
    return (base + mains + 0.1 * rng.standard_normal((n, leads))).astype(np.float32)


def _chunked(sos, x, cuts):
    state = filter_initial(sos, x.shape[1], x0=x[0])
    out, start = [], 0
    for stop in list(cuts) + [len(x)]:
        y, state = filter_apply(sos, x[start:stop], state)
        out.append(y)
        start = stop
    return np.concatenate(out)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(NAMES), fs=st.sampled_from([128.0, 250.0, 360.0, 500.0, 1000.0]),
       cuts=st.lists(st.integers(0, 3000), max_size=12))
def test_any_chunking_equals_one_pass(name, fs, cuts):
    x = _signal(fs=fs)
    sos = make_filter(name, fs)
    y = _chunked(sos, x, sorted(cuts))
    np.testing.assert_allclose(y, filter_offline(name, x, fs), rtol=0, atol=1e-5)


def test_offline_is_sosfilt_from_steady_state():
    x = _signal()
    sos = make_filter("bandpass_0.5_40", 500.0)
    zi = scipy.signal.sosfilt_zi(sos)[:, :, None] * x[0].astype(np.float64)[None, None, :]
    ref, _ = scipy.signal.sosfilt(sos, x.astype(np.float64), axis=0, zi=zi)
    y = filter_offline("bandpass_0.5_40", x, 500.0)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, ref, atol=1e-5)


def test_apply_is_pure():
    x = _signal(200, 2)
    sos = make_filter("highpass_0.5", 500.0)
    state = filter_initial(sos, 2, x0=x[0])
    before = state.zi.copy()
    y1, s1 = filter_apply(sos, x, state)
    y2, _ = filter_apply(sos, x, state)
    np.testing.assert_array_equal(state.zi, before)
    np.testing.assert_array_equal(y1, y2)
    assert isinstance(s1, FilterState) and not np.array_equal(s1.zi, before)


def _gain(name, fs, f):
    _, h = scipy.signal.sosfreqz(make_filter(name, fs), worN=[f], fs=fs)
    return abs(h[0])


@pytest.mark.parametrize("fs", [128.0, 250.0, 360.0, 500.0, 1000.0])
def test_frequency_responses(fs):
    assert _gain("bandpass_0.5_40", fs, 10.0) > 0.98          # QRS/T band passes
    assert _gain("bandpass_0.5_40", fs, 0.05) < 0.02          # wander removed
    assert _gain("highpass_0.5", fs, 0.05) < 0.02
    assert _gain("highpass_0.5", fs, 5.0) > 0.99
    assert _gain("notch_50", fs, 50.0) < 1e-3
    assert _gain("notch_50", fs, 40.0) > 0.95
    assert _gain("notch_60", fs, 60.0) < 1e-3


def test_steady_state_start_has_no_transient():
    x = np.full((1000, 1), 2.0, np.float32)                   # pure DC offset
    y = filter_offline("highpass_0.5", x, 500.0)
    assert np.abs(y).max() < 1e-5


@pytest.mark.parametrize("name", ["bandpass_40_0.5", "notch_300", "wiener_3", "highpass_x",
                                  "bandpass_1", "lowpass_0"])
def test_bad_names_raise(name):
    with pytest.raises(SignalError):
        make_filter(name, 500.0)


def test_shape_and_lead_mismatch_raise():
    sos = make_filter("highpass_0.5", 500.0)
    with pytest.raises(SignalError):
        filter_apply(sos, np.zeros((10, 3)), filter_initial(sos, 2))
    with pytest.raises(SignalError):
        filter_offline("highpass_0.5", np.zeros((2, 3, 4)), 500.0)
    with pytest.raises(SignalError):
        filter_initial(sos, 2, x0=np.array([np.nan, 0.0]))
