"""numpy-only filter design (edge_ecg.signal.design) against scipy.signal, and the filtering
kernel in use (edge_ecg.signal.filters): loaded without scipy.signal, verified, with a fallback.

scipy.signal is imported here only as the reference (the runtime never imports it; see
tests/runtime/test_footprint.py). Designs are compared at the rates and edges the package uses
(contract filters at 100-1000 Hz, the QRS detector's 5-15 Hz band, the 45 Hz noise high-pass,
50/60 Hz notches, the resampler's Kaiser FIR for the rate pairs of real sources), on the
coefficients and on the filtered signals.
"""

from __future__ import annotations

import subprocess
import sys
from math import ceil

import numpy as np
import pytest
import scipy.signal

from edge_ecg.errors import SignalError
from edge_ecg.signal import design, filters
from edge_ecg.signal.filters import filter_apply, filter_initial, make_filter
from edge_ecg.signal.qrs import DEFAULT_QRS, qrs_initial
from edge_ecg.signal.resample import KAISER_BETA, ZERO_CROSSINGS, _design, _ratio

RATES = [100.0, 128.0, 130.0, 250.0, 360.0, 500.0, 1000.0]
# (order, edges Hz, btype) as filters.py and qrs.py call butter, plus odd orders that exercise
# zpk2sos's real-pole pairing
BUTTER = [(filters.BANDPASS_ORDER, [0.5, 40.0], "bandpass"),
          (2, list(DEFAULT_QRS.detect_band_hz), "bandpass"),
          (filters.HIGHPASS_ORDER, [0.5], "highpass"),
          (filters.HIGHPASS_ORDER, [45.0], "highpass"),
          (filters.LOWPASS_ORDER, [40.0], "lowpass"),
          (3, [25.0], "lowpass"), (1, [0.5], "highpass"), (3, [1.0, 30.0], "bandpass")]


def _close(got, want, rel=1e-10):
    """Each value within `rel` of the largest magnitude of `want` (coefficients of 0 included)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    scale = max(float(np.max(np.abs(want))), 1e-300)
    err = float(np.max(np.abs(got - want))) / scale
    assert err <= rel, f"relative difference {err:.3g} > {rel:g}"


def _ecg_like(n=4000, leads=2, fs=500.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    x = (1.2 + 0.5 * np.sin(2 * np.pi * 0.25 * t)[:, None]       # offset + wander
         + 0.1 * np.sin(2 * np.pi * 50 * t)[:, None])            # mains
    return x + 0.2 * rng.standard_normal((n, leads))


@pytest.mark.parametrize("fs", RATES)
@pytest.mark.parametrize("order, edges, btype", BUTTER)
def test_butter_matches_scipy(fs, order, edges, btype):
    if max(edges) >= fs / 2:
        pytest.skip("edge above Nyquist")
    cut = edges if btype == "bandpass" else edges[0]
    ours = design.butter(order, cut, btype, fs)
    ref = scipy.signal.butter(order, cut, btype, fs=fs, output="sos")
    assert ours.shape == ref.shape
    _close(ours, ref)
    x = _ecg_like(fs=fs)
    _close(scipy.signal.sosfilt(ours, x, axis=0), scipy.signal.sosfilt(ref, x, axis=0))


@pytest.mark.parametrize("fs", RATES)
@pytest.mark.parametrize("f0", [50.0, 60.0])
def test_notch_and_tf2sos_match_scipy(fs, f0):
    if f0 >= fs / 2:
        pytest.skip("notch above Nyquist")
    b, a = design.iirnotch(f0, filters.NOTCH_Q, fs)
    rb, ra = scipy.signal.iirnotch(f0, filters.NOTCH_Q, fs=fs)
    _close(b, rb)
    _close(a, ra)
    ours, ref = design.tf2sos(b, a), scipy.signal.tf2sos(rb, ra)
    _close(ours, ref)
    x = _ecg_like(fs=fs)
    _close(scipy.signal.sosfilt(ours, x, axis=0), scipy.signal.sosfilt(ref, x, axis=0))


@pytest.mark.parametrize("fs", [250.0, 360.0, 500.0])
@pytest.mark.parametrize("name", ["bandpass_0.5_40", "highpass_0.5", "highpass_45",
                                  "lowpass_40", "notch_50", "notch_60"])
def test_sosfilt_zi_and_steady_state_start(fs, name):
    sos = make_filter(name, fs)
    _close(design.sosfilt_zi(sos), scipy.signal.sosfilt_zi(sos))
    # a constant input from the steady state stays constant through a DC-passing filter
    x = _ecg_like(fs=fs)
    zi = scipy.signal.sosfilt_zi(sos)[:, :, None] * x[0][None, None, :]
    ref, _ = scipy.signal.sosfilt(sos, x, axis=0, zi=zi)
    y, _ = filter_apply(sos, x, filter_initial(sos, x.shape[1], x0=x[0]))
    np.testing.assert_allclose(y, ref, rtol=0, atol=2e-6 * np.max(np.abs(ref)))  # float32 out


def test_qrs_detector_sections_match_scipy():
    for fs in (250.0, 360.0, 500.0):
        sos = qrs_initial(fs).sos
        ref = scipy.signal.butter(2, list(DEFAULT_QRS.detect_band_hz), "bandpass", fs=fs,
                                  output="sos")
        _close(sos[:ref.shape[0]], ref)


# rate pairs of real sources resampled to contracts: MIT-BIH 360, LUDB/PTB 500/1000, Polar H10
# 130, INCART 257 left out (not a simple fraction), and down to 250/100-Hz contracts
RATE_PAIRS = [(360.0, 500.0), (250.0, 500.0), (128.0, 500.0), (130.0, 500.0), (1000.0, 500.0),
              (100.0, 500.0), (500.0, 250.0), (500.0, 100.0), (360.0, 250.0)]


@pytest.mark.parametrize("fs_in, fs_out", RATE_PAIRS)
def test_firwin_matches_scipy_on_resampler_designs(fs_in, fs_out):
    up, down = _ratio(fs_in, fs_out)
    max_rate = max(up, down)
    half_len = down * ceil(ZERO_CROSSINGS * max_rate / down)
    ours = design.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", KAISER_BETA))
    ref = scipy.signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", KAISER_BETA))
    _close(ours, ref)
    # the resampler's polyphase bank is that filter, phase by phase, normalised per phase
    bank, _ = _design(up, down)
    padded = np.zeros(bank.shape[1] * up)
    padded[:ref.size] = ref * up
    ref_bank = padded.reshape(bank.shape[1], up).T
    _close(bank, ref_bank / ref_bank.sum(axis=1, keepdims=True))
    # and filtering with it matches scipy's upfirdn (zero-stuff, filter, decimate)
    x = _ecg_like(n=600, leads=1, fs=fs_in)[:, 0]
    _close(scipy.signal.upfirdn(ours * up, x, up, down),
           scipy.signal.upfirdn(ref * up, x, up, down))


def test_design_rejects_bad_arguments():
    with pytest.raises(SignalError):
        design.butter(2, [40.0, 0.5], "bandpass", 500.0)
    with pytest.raises(SignalError):
        design.butter(2, 300.0, "lowpass", 500.0)
    with pytest.raises(SignalError):
        design.butter(2, 10.0, "bandstop", 500.0)
    with pytest.raises(SignalError):
        design.iirnotch(300.0, 30.0, 500.0)
    with pytest.raises(SignalError):
        design.firwin(21, 0.2, window="hamming")


# --- the kernel in use ----------------------------------------------------------------------
def _scipy_has_compiled_kernel() -> bool:
    import importlib.machinery
    import importlib.util
    import os

    spec = importlib.util.find_spec("scipy")
    folder = os.path.join(next(iter(spec.submodule_search_locations)), "signal")
    return any(os.path.isfile(os.path.join(folder, "_sosfilt" + s))
               for s in importlib.machinery.EXTENSION_SUFFIXES)


def test_kernel_in_use_was_verified():
    if not _scipy_has_compiled_kernel():
        pytest.skip("this scipy build has no compiled _sosfilt: the public fallback is in use")
    assert filters.KERNEL == "compiled", filters.KERNEL_NOTE
    assert "verified" in filters.KERNEL_NOTE
    assert filters._verify_kernel(filters._SOSFILT) is None
    # and on fresh data it is the numpy direct-form-II-transposed cascade
    sos = make_filter("bandpass_0.5_40", 360.0)
    rng = np.random.default_rng(7)
    x = np.ascontiguousarray(rng.standard_normal((3, 257)))
    zi = np.ascontiguousarray(rng.standard_normal((3, sos.shape[0], 2)))
    ref_y, ref_z = filters._df2t_reference(sos, x, zi)
    y, z = x.copy(), zi.copy()
    filters._SOSFILT(sos, y, z)
    np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z, ref_z, rtol=1e-12, atol=1e-12)


def test_kernel_check_rejects_a_wrong_kernel_and_loading_falls_back(tmp_path):
    def exact(sos, y, zi):                                  # the reference itself: accepted
        y[...], zi[...] = filters._df2t_reference(sos, y, zi)

    def off_by_a_bit(sos, y, zi):
        exact(sos, y, zi)
        y *= 1.0 + 1e-9

    def raises(sos, y, zi):
        raise TypeError("wrong signature")

    assert filters._verify_kernel(exact) is None
    assert "differs" in filters._verify_kernel(off_by_a_bit)
    assert "failed" in filters._verify_kernel(raises)
    # a scipy folder without the extension: no kernel, and a note that says why
    saved = sys.modules.pop(filters._KERNEL_MODULE, None)
    try:
        kernel, note = filters._load_compiled_sosfilt(scipy_dir=str(tmp_path))
    finally:
        if saved is not None:
            sys.modules[filters._KERNEL_MODULE] = saved
    assert kernel is None and "no compiled _sosfilt" in note


def test_public_fallback_filters_the_same(monkeypatch):
    x = _ecg_like(n=1500, leads=3)
    sos = make_filter("bandpass_0.5_40", 500.0)
    state = filter_initial(sos, 3, x0=x[0])
    y1, s1 = filter_apply(sos, x, state)
    monkeypatch.setattr(filters, "_SOSFILT", None)          # as if loading had failed
    y2, s2 = filter_apply(sos, x, state)
    np.testing.assert_allclose(y2, y1, rtol=0, atol=1e-6)
    np.testing.assert_allclose(s2.zi, s1.zi, rtol=1e-10, atol=1e-12)
    yl = np.ascontiguousarray(x.T.copy())
    zl = np.ascontiguousarray(state.zi.transpose(2, 0, 1).copy())
    filters.sos_step(sos, yl, zl)
    np.testing.assert_allclose(yl.T, y1, rtol=0, atol=1e-6)


def test_loading_the_kernel_leaves_scipy_signal_importable():
    """In a fresh process: the filters import no scipy.signal, and a later real import still
    gets a complete scipy.signal (its _sosfilt bound, sosfilt correct)."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import edge_ecg.signal.filters as f, edge_ecg.signal.qrs, edge_ecg.signal.resample\n"
        "assert 'scipy.signal' not in sys.modules, 'scipy.signal imported'\n"
        "assert f.KERNEL == 'compiled', f.KERNEL_NOTE\n"
        "import scipy.signal\n"
        "assert scipy.signal._sosfilt._sosfilt is f._SOSFILT\n"
        "sos = scipy.signal.butter(4, [0.1, 0.3], 'bandpass', output='sos')\n"
        "x = np.random.default_rng(0).standard_normal(300)\n"
        "b, a = scipy.signal.butter(4, [0.1, 0.3], 'bandpass')\n"
        "assert np.allclose(scipy.signal.sosfilt(sos, x), scipy.signal.lfilter(b, a, x))\n"
        "print('ok')\n"
    )
    if not _scipy_has_compiled_kernel():
        pytest.skip("this scipy build has no compiled _sosfilt")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
