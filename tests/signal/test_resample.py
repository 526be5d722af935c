"""Resampling: correct rates and amplitudes; streaming equals offline up to its fixed delay."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_ecg.errors import SignalError
from edge_ecg.signal.resample import resample_apply, resample_initial, resample_offline

RATES = [(360.0, 500.0), (128.0, 500.0), (1000.0, 500.0), (250.0, 500.0), (500.0, 500.0),
         (500.0, 250.0)]


def _tones(fs, seconds=4.0):
    t = np.arange(int(fs * seconds)) / fs
    return np.stack([np.sin(2 * np.pi * 5 * t), 0.5 * np.cos(2 * np.pi * 17 * t) + 1.0], 1)


def _expected(fs, n):
    t = np.arange(n) / fs
    return np.stack([np.sin(2 * np.pi * 5 * t), 0.5 * np.cos(2 * np.pi * 17 * t) + 1.0], 1)


@pytest.mark.parametrize("fs_in,fs_out", RATES)
def test_offline_matches_the_continuous_signal(fs_in, fs_out):
    x = _tones(fs_in)
    y = resample_offline(x, fs_in, fs_out)
    assert y.dtype == np.float32 and y.shape == (int(np.ceil(len(x) * fs_out / fs_in)), 2)
    edge = int(0.2 * fs_out)                                   # edge padding is not a tone
    err = np.abs(y - _expected(fs_out, len(y)))[edge:-edge]
    assert err.max() < 5e-3                                    # Kaiser-5 pass-band ripple


def test_dc_stays_flat_at_the_edges():
    x = np.full((1000, 1), 3.0)
    y = resample_offline(x, 360.0, 500.0)
    np.testing.assert_allclose(y, 3.0, atol=1e-3)


@settings(max_examples=20, deadline=None)
@given(rates=st.sampled_from(RATES), seed=st.integers(0, 10_000))
def test_streaming_equals_offline_for_any_chunking(rates, seed):
    fs_in, fs_out = rates
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((int(fs_in * 1.5), 3)) + 2.0
    y_off = resample_offline(x, fs_in, fs_out)
    state = resample_initial(fs_in, fs_out, 3)
    outs, i = [], 0
    while i < len(x):
        step = int(rng.integers(0, 60))
        y, state = resample_apply(x[i: i + step], state)
        outs.append(y)
        i += step
    y_s = np.concatenate(outs)
    d = state.delay_out
    n = len(y_s) - d
    assert n > len(y_off) - d - 5                              # only the delay is missing
    np.testing.assert_allclose(y_s[d:], y_off[:n], atol=1e-6)


def test_output_count_depends_only_on_input_count():
    st1 = resample_initial(360.0, 500.0, 1)
    total = 0
    for _ in range(10):
        y, st1 = resample_apply(np.zeros((36, 1)), st1)
        total += len(y)
    assert total == (360 * 500 - 1) // 360 + 1


def test_bad_input_raises():
    with pytest.raises(SignalError):
        resample_offline(np.zeros((10, 1)), 0.0, 500.0)
    with pytest.raises(SignalError):
        resample_offline(np.zeros((10, 1)), 360.0, 500.0 * np.pi)
    with pytest.raises(SignalError):
        resample_apply(np.zeros((10, 2)), resample_initial(360.0, 500.0, 3))


@pytest.mark.parametrize("up, down", [(1, 2), (1, 4), (2, 1), (3, 4), (4, 5), (25, 36)])
def test_polyphase_sums_as_the_gathered_einsum(up, down):
    """The tap-by-tap form (few phases) gives the very floats of the gathered einsum."""
    from edge_ecg.signal.resample import _design, _polyphase

    bank, _ = _design(up, down)
    k_taps = bank.shape[1]
    rng = np.random.default_rng(up * 100 + down)
    for n_out in (1, up, 997):
        k = np.arange(13, 13 + n_out)
        i0 = (k * down) // up
        buf = rng.normal(size=(int(i0[-1]) + k_taps + 3, 5)) * 3.0
        newest = i0 - int(i0[0]) + k_taps + 1
        phase = k * down - i0 * up
        want = np.einsum("nk,nkl->nl", bank[phase],
                         buf[newest[:, None] - np.arange(k_taps)[None, :]])
        np.testing.assert_array_equal(_polyphase(bank, buf, newest, phase, up, down), want)
