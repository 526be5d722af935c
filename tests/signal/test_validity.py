"""The validity mask in the contract (issue 17): which segments were filled, what an RR
interval across one becomes, and the batch writer equal to `prepare_inputs`."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.data.synth import synthesize
from edge_ecg.errors import SignalError
from edge_ecg.signal.contract import (
    INPUT_NAMES,
    InputBatch,
    SignalContract,
    filled_segments,
    prepare_inputs,
    stack_inputs,
)

C = SignalContract(fs_hz=250.0)


@pytest.fixture(scope="module")
def window():
    r = synthesize("sinus_rhythm", seconds=10.0, fs_hz=250.0, seed=2)
    return r.signal, r.leads, r.r_peaks


def test_segments_are_40_ms_and_a_short_last_one_counts():
    assert (C.valid_seg, C.n_valid_seg) == (10, 250)
    odd = SignalContract(fs_hz=250.0, window_s=9.99)            # 2497 samples: 250 segments
    assert odd.n_valid_seg == 250
    f = np.zeros(odd.window_len, bool)
    f[-1] = True
    assert filled_segments(f, odd).tolist() == [False] * 249 + [True]
    f = np.zeros(C.window_len, bool)
    f[[0, 9, 10, 1234]] = True
    assert np.flatnonzero(filled_segments(f, C)).tolist() == [0, 1, 123]
    with pytest.raises(SignalError, match="filled must be"):
        filled_segments(np.zeros(10, bool), C)


def test_nothing_filled_is_the_lead_mask_per_segment(window):
    sig, leads, r = window
    a = prepare_inputs(sig[:, :2], leads[:2], r, C)
    b = prepare_inputs(sig[:, :2], leads[:2], r, C, seg_filled=np.zeros(C.n_valid_seg, bool))
    for k in INPUT_NAMES:
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
    assert a.valid.shape == (12, 250)
    np.testing.assert_array_equal(a.valid, np.repeat(a.lead_mask[:, None], 250, 1))


def test_an_rr_interval_across_a_filled_segment_is_unknown(window):
    sig, leads, r = window
    r = np.asarray(r)
    seg = np.zeros(C.n_valid_seg, bool)
    k = 4
    mid = (r[k] + r[k + 1]) // 2
    seg[mid // C.valid_seg] = True                              # inside interval k only
    seg[r[k + 3] // C.valid_seg] = True                         # on a peak: intervals k+2, k+3
    inp = prepare_inputs(sig, leads, r, C, seg_filled=seg)
    ref = prepare_inputs(sig, leads, r, C)
    assert (inp.valid[:, seg] == 0).all() and (inp.valid[:, ~seg] == 1).all()
    rr = np.diff(r) * 4.0
    keep = np.ones(rr.size, bool)
    keep[[k, k + 2, k + 3]] = False
    n = int(keep.sum())
    np.testing.assert_allclose(inp.rr_ms[:n], rr[keep])
    assert inp.rr_mask.sum() == n == ref.rr_mask.sum() - 3
    assert inp.period[0] == pytest.approx(rr[keep].mean() / 1000.0, rel=1e-6)   # mean RR, s
    # beat_rr: a beat's pre/post RR across the fill is 0 (unknown), the mean leaves them out
    slot_of = {int(p): i for i, p in enumerate(r[(r - C.beat_pre >= 0)
                                                & (r + C.beat_len - C.beat_pre <= C.window_len)])}
    i = slot_of[int(r[k])]
    assert inp.beat_rr[i, 1] == 0.0 and inp.beat_rr[i, 0] == pytest.approx(rr[k - 1])
    assert inp.beat_rr[i + 1, 0] == 0.0
    assert inp.beat_rr[0, 2] == pytest.approx(rr[keep].mean(), rel=1e-5)
    np.testing.assert_array_equal(inp.beats, ref.beats)        # the beats themselves are kept
    np.testing.assert_array_equal(inp.x, ref.x)                # the model zeroes, not the contract


def test_the_batch_writer_equals_prepare_inputs_with_fills(window):
    sig, leads, r = window
    rng = np.random.default_rng(0)
    batch = InputBatch(C, capacity=1)
    items = []
    for j in range(3):
        seg = rng.random(C.n_valid_seg) < 0.05 if j != 1 else None
        names = leads if j != 2 else leads[:3]
        w = sig if j != 2 else sig[:, :3]
        batch.add(w, names, r, seg)
        items.append(prepare_inputs(w, names, r, C, seg_filled=seg))
    want, got = stack_inputs(items), batch.arrays()
    for k in INPUT_NAMES:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    with pytest.raises(SignalError, match="seg_filled must be"):
        batch.add(sig, leads, r, np.zeros(7, bool))
