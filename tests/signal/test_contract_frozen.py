"""`prepare_inputs` and its parts against a frozen copy of their first implementation.

The contract is what a model was trained on: a faster rewrite must give the same numbers. The
frozen functions below are the original code, verbatim (to_standard_leads -> lead-major copy ->
np.median normalisation -> index-matrix beat gather -> rr_series / period_features with numpy's
reductions). Every comparison is bitwise (`assert_array_equal` on the float32 arrays), over
windows with all, some, derived and unknown leads, no beats, more beats than `max_beats`, peaks
outside the window, integer and float64 windows, odd lengths and the other normalisations.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.data.synth import synthesize
from edge_ecg.errors import SignalError
from edge_ecg.signal.beats import beat_windows
from edge_ecg.signal.contract import (
    INPUT_NAMES,
    InputBatch,
    ModelInputs,
    SignalContract,
    prepare_inputs,
    stack_inputs,
)
from edge_ecg.signal.leads import STANDARD_12, to_standard_leads
from edge_ecg.signal.normalize import median_last_axis, normalize
from edge_ecg.signal.period import PERIOD_FEATURES, period_features, rr_series
from edge_ecg.signal.patient_context import N_CONTEXT

# --- the frozen original implementation ---------------------------------------------------
_CLIP = 8.0


def _old_normalize(x, method="median_mv", axis=-1):
    x = np.asarray(x, dtype=np.float32)
    if method == "median_mv":
        y = x - np.median(x, axis=axis, keepdims=True)
        return np.clip(y, -_CLIP, _CLIP)
    if method == "zscore":
        mu = x.mean(axis=axis, keepdims=True)
        sd = x.std(axis=axis, keepdims=True)
        return ((x - mu) / np.maximum(sd, 1e-3)).astype(np.float32)
    return x


def _old_beat_windows(x, r_peaks, pre, post, max_beats):
    n_leads, n = x.shape
    r = np.asarray(r_peaks, dtype=np.int64)
    r = r[(r - pre >= 0) & (r + post <= n)][:max_beats]
    beats = np.zeros((max_beats, n_leads, pre + post), dtype=np.float32)
    mask = np.zeros(max_beats, dtype=bool)
    if r.size:
        idx = r[:, None] + np.arange(-pre, post)[None, :]
        beats[: r.size] = np.transpose(x[:, idx], (1, 0, 2))
        mask[: r.size] = True
    return beats, mask


def _old_rr_ms(r_peaks, fs_hz):
    return np.diff(np.asarray(r_peaks, dtype=np.float64)) * (1000.0 / fs_hz)


def _old_rr_series(r_peaks, fs_hz, max_beats):
    rr = _old_rr_ms(r_peaks, fs_hz)[:max_beats]
    out = np.zeros(max_beats, dtype=np.float32)
    mask = np.zeros(max_beats, dtype=bool)
    out[: rr.size] = rr
    mask[: rr.size] = True
    return out, mask


def _old_period_features(r_peaks, fs_hz, window_s):
    rr = _old_rr_ms(r_peaks, fs_hz) / 1000.0
    feats = np.zeros(len(PERIOD_FEATURES), dtype=np.float32)
    feats[7] = len(r_peaks) / window_s
    if rr.size < 1:
        return feats
    mean_rr, median_rr = float(rr.mean()), float(np.median(rr))
    feats[0], feats[1] = mean_rr, median_rr
    feats[2] = float(rr.std())
    feats[5] = feats[2] / max(mean_rr, 1e-6)
    if rr.size >= 2:
        d = np.diff(rr)
        feats[3] = float(np.sqrt(np.mean(d ** 2)))
        feats[4] = float(np.mean(np.abs(d) > 0.05))
        feats[6] = float(np.mean(np.abs(d) > 0.125 * rr[:-1]))
    feats[8] = median_rr
    return feats


def _old_prepare_inputs(window, lead_names, r_peaks, contract):
    window = np.asarray(window)
    if window.ndim != 2 or window.shape[0] != contract.window_len:
        raise SignalError("window must be ...")
    if not np.all(np.isfinite(window)):
        raise SignalError("window holds NaN or infinite samples; withhold it instead")
    y, lead_mask = to_standard_leads(window, tuple(lead_names), contract.leads)
    if not lead_mask.any():
        raise SignalError("none of the leads ...")
    x = np.zeros((contract.n_leads, contract.window_len), dtype=np.float32)
    x[lead_mask] = _old_normalize(np.ascontiguousarray(y.T[lead_mask]), contract.normalisation,
                                  axis=-1)
    r = np.asarray(r_peaks, dtype=np.int64)
    r = r[(r >= 0) & (r < contract.window_len)]
    beats, beat_mask = _old_beat_windows(x, r, contract.beat_pre,
                                         contract.beat_len - contract.beat_pre,
                                         contract.max_beats)
    rr, rr_mask = _old_rr_series(r, contract.fs_hz, contract.max_beats)
    period = _old_period_features(r, contract.fs_hz, contract.window_s)
    return ModelInputs(x=x, lead_mask=lead_mask, beats=beats, beat_mask=beat_mask, rr_ms=rr,
                       rr_mask=rr_mask, period=period,
                       beat_rr=_plain_beat_rr(r, contract),
                       # `valid` (issue 17): with nothing filled, the lead mask per segment
                       valid=np.repeat(lead_mask[:, None], contract.n_valid_seg, 1),
                       beat_ctx=np.zeros((contract.max_beats, N_CONTEXT), np.float32))


def _plain_beat_rr(r, c):
    """`beat_rr` (added with the per-beat task) written plainly, beat by beat: pre-RR, post-RR
    and the window's mean RR of each kept whole beat, in ms (float64, then float32)."""
    out = np.zeros((c.max_beats, 3), dtype=np.float32)
    pre, post, n = c.beat_pre, c.beat_len - c.beat_pre, c.window_len
    ms = 1000.0 / c.fs_hz
    mean = float(np.mean(np.diff(r))) * ms if len(r) >= 2 else 0.0
    slot = 0
    for i, ri in enumerate(r):
        if ri - pre < 0 or ri + post > n or slot >= c.max_beats:
            continue
        out[slot, 0] = (ri - r[i - 1]) * ms if i > 0 else 0.0
        out[slot, 1] = (r[i + 1] - ri) * ms if i + 1 < len(r) else 0.0
        out[slot, 2] = mean
        slot += 1
    return out


def _old_stack_inputs(items):
    return {n: np.stack([getattr(it, n) for it in items]).astype(np.float32) for n in INPUT_NAMES}


# --- cases ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def record():
    """24 s of a synthetic 12-lead AF patient (irregular RR), with its R peaks."""
    return synthesize("atrial_fibrillation", seconds=24.0, seed=3, snr_db=20.0)


def _assert_same(new: ModelInputs, old: ModelInputs) -> None:
    for name in INPUT_NAMES:
        a, b = getattr(new, name), getattr(old, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)


def _cases(rec, c):
    """(window, lead names, r_peaks) triples covering the contract's corners."""
    sig, r = rec.signal, rec.r_peaks
    w = c.window_len
    out = []
    for start in (0, 750, 3000, sig.shape[0] - w):            # 4 windows, beats at edges
        win = sig[start:start + w]
        rw = r[(r >= start) & (r < start + w)] - start
        out.append((win, rec.leads, rw))
    win = sig[:w]
    rw = r[r < w]
    idx8 = [STANDARD_12.index(n) for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
    out += [
        (win[:, idx8], tuple(STANDARD_12[i] for i in idx8), rw),          # limb leads derived
        (win[:, [1, 6]], ("MLII", "V1"), rw),                             # MIT-BIH-like pair
        (win[:, [0, 1, 2]], ("I", "II", "III"), rw),                      # III measured
        (win[:, [6, 1, 0]], ("V1", "D2", "D1"), rw),                      # aliases, reordered
        (win[:, [1, 1, 0]], ("II", "II", "lead I"), rw),                  # duplicate, unknown
        (win[:, [3]], ("-aVR",), rw),                                     # maps to nothing
        (win[:, [1]], ("II",), np.zeros(0, np.int64)),                    # no beats
        (win, rec.leads, np.array([-5, 3, 60, 124, 125, w - 226, w - 225, w - 1, w, w + 9])),
        (win, rec.leads, np.arange(130, w - 230, 70)),                    # > max_beats beats
        (win, rec.leads, rw[::-1].copy()),                                # peaks unordered
        (win.astype(np.float64) * 3.0, rec.leads, rw),                    # float64, clipping
        (np.round(win * 200).astype(np.int32), rec.leads, rw),            # integer window
        (np.zeros_like(win), rec.leads, rw),                              # flat: median ties
        (np.repeat(win[::50], 50, axis=0), rec.leads, rw),                # many equal values
    ]
    return out


@pytest.mark.parametrize("contract", [
    SignalContract(),
    SignalContract(normalisation="zscore"),
    SignalContract(normalisation="none"),
    SignalContract(fs_hz=250.0, window_s=8.0, max_beats=8, beat_pre_s=0.2, beat_post_s=0.4),
    SignalContract(window_s=9.999),                                       # odd window length
    SignalContract(leads=("II", "III", "V1", "aVF")),                     # a 4-lead model
], ids=["default", "zscore", "none", "250hz", "odd", "4lead"])
def test_prepare_inputs_matches_frozen_original(record, contract):
    rec = record
    if contract.fs_hz != rec.fs_hz:                                       # keep every 2nd sample
        rec = type(rec)(**{**rec.__dict__, "signal": rec.signal[::2],
                           "r_peaks": rec.r_peaks // 2, "fs_hz": contract.fs_hz})
    n_cases = 0
    for win, names, rw in _cases(rec, contract):
        try:
            old = _old_prepare_inputs(win, names, rw, contract)
        except SignalError:
            with pytest.raises(SignalError, match="none of the leads"):
                prepare_inputs(win, names, rw, contract)
            continue
        _assert_same(prepare_inputs(win, names, rw, contract), old)
        n_cases += 1
    assert n_cases >= 14


def test_batches_match_frozen_stack(record):
    """`stack_inputs` and the reusable `InputBatch` give the original batch, also when a row
    that held many beats is reused by a window with fewer (stale beats must be zeroed)."""
    c = SignalContract()
    cases = [x for x in _cases(record, c) if x[1] != ("-aVR",)]
    old = [_old_prepare_inputs(*x, c) for x in cases]
    ref = _old_stack_inputs(old)
    new = stack_inputs([prepare_inputs(*x, c) for x in cases])
    for name in INPUT_NAMES:
        np.testing.assert_array_equal(new[name], ref[name], err_msg=name)
        assert new[name].dtype == np.float32
    batch = InputBatch(c, capacity=2)                     # grows while filling
    order = [cases[i % len(cases)] for i in (9, 10, 6, 0, 1, 2, 3, 4, 5)]
    for rnd in range(3):                                  # reuse rows across batches
        batch.clear()
        todo = order[rnd:] + order[:rnd]
        for x in todo:
            batch.add(*x)
        got = batch.arrays()
        want = _old_stack_inputs([_old_prepare_inputs(*x, c) for x in todo])
        for name in INPUT_NAMES:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} round {rnd}")


def test_parts_match_frozen_original():
    rng = np.random.default_rng(7)
    for n in (0, 1, 2, 3, 4, 7, 8, 9, 16, 33, 40):
        r = np.cumsum(rng.integers(150, 700, n)) + rng.integers(0, 50)
        for fs in (500.0, 360.0, 250.0):
            np.testing.assert_array_equal(period_features(r, fs, 10.0),
                                          _old_period_features(r, fs, 10.0))
            for a, b in zip(rr_series(r, fs, 32), _old_rr_series(r, fs, 32)):
                np.testing.assert_array_equal(a, b)
    x = rng.normal(0, 1, (5, 3000)).astype(np.float32)
    r = np.array([-3, 10, 100, 1000, 2990, 2999, 3005])
    for a, b in zip(beat_windows(x, r, 20, 40, 4), _old_beat_windows(x, r, 20, 40, 4)):
        np.testing.assert_array_equal(a, b)
    for shape, axis in (((12, 5000), -1), ((3, 4999), -1), ((1000, 3), 0), ((2, 3, 10), 1),
                        ((4, 1), -1), ((4, 2), -1)):
        y = rng.standard_t(2, shape).astype(np.float32) * 3
        y[..., :1] = 0.0
        np.testing.assert_array_equal(normalize(y, "median_mv", axis=axis),
                                      _old_normalize(y, "median_mv", axis=axis))
    y[0, 0] = np.nan                                    # NaN: numpy's median, NaN row
    np.testing.assert_array_equal(normalize(y, "median_mv"), _old_normalize(y, "median_mv"))
    np.testing.assert_array_equal(median_last_axis(x), np.median(x, axis=-1, keepdims=True))
    for n in range(1, 12):                     # short float64 series (RR, QRS widths)
        v = np.round(rng.normal(800, 120, n), (0, 1)[n % 2])
        m = median_last_axis(v)
        assert m.dtype == np.float64 and m.tolist() == [float(np.median(v))]
