"""Ring buffer: absolute indices, gaps filled and marked, overflow counted, NaN marked."""

import numpy as np
import pytest

from edge_ecg.runtime.ring_buffer import FLAG_GAP, FLAG_NONFINITE, RingBuffer


def _ramp(start, n, leads=2):
    return np.arange(start, start + n, dtype=np.float32)[:, None].repeat(leads, axis=1)


def test_absolute_indices_survive_wraparound():
    rb = RingBuffer(capacity=16, n_leads=2, start_index=1000)
    for k in range(10):                           # 70 samples through a 16-sample ring
        rb.write(1000 + 7 * k, _ramp(1000 + 7 * k, 7))
    assert rb.end == 1070 and rb.start == 1070 - 16
    x, flags = rb.read(1060, 1070)
    np.testing.assert_array_equal(x[:, 0], np.arange(1060, 1070))
    assert not flags.any()
    # samples no longer held come back flagged as gaps, never as stale data
    x, flags = rb.read(1050, 1056)
    assert (flags[:4] == FLAG_GAP).all() and not flags[4:].any()
    np.testing.assert_array_equal(x[4:, 0], [1054, 1055])


def test_gap_is_filled_held_and_marked():
    rb = RingBuffer(capacity=64, n_leads=2)
    rb.write(0, _ramp(0, 10))
    gap_start, gap_len = rb.write(15, _ramp(15, 5))
    assert (gap_start, gap_len) == (10, 5)
    assert rb.gap_samples == 5
    start, x, flags = rb.read_new()
    assert start == 0 and x.shape == (20, 2)
    np.testing.assert_array_equal(flags[10:15], FLAG_GAP)
    assert not flags[:10].any() and not flags[15:].any()
    np.testing.assert_array_equal(x[10:15, 0], 9.0)     # held at the last value, bounded
    np.testing.assert_array_equal(x[15:, 0], np.arange(15, 20))


def test_late_samples_dropped_and_counted():
    rb = RingBuffer(capacity=64, n_leads=1)
    rb.write(0, _ramp(0, 10, 1))
    rb.write(5, _ramp(105, 10, 1))                # 5 overlap, 5 new
    assert rb.late_samples == 5 and rb.end == 15
    x, _ = rb.read(0, 15)
    np.testing.assert_array_equal(x[:10, 0], np.arange(10))     # never overwritten
    np.testing.assert_array_equal(x[10:, 0], np.arange(110, 115))


def test_overflow_counts_only_unread_samples():
    rb = RingBuffer(capacity=10, n_leads=1)
    rb.write(0, _ramp(0, 8, 1))
    rb.read_new()                                  # reader consumed 0..7
    rb.write(8, _ramp(8, 8, 1))                    # overwrites 0..5: already read -> sliding
    assert rb.overflow_samples == 0
    rb.write(16, _ramp(16, 6, 1))                  # overwrites 6..11; 8..11 were unread
    assert rb.overflow_samples == 4
    start, x, flags = rb.read_new()
    assert start == 8 and len(x) == 14            # the reader's view keeps its clock
    np.testing.assert_array_equal(flags[:4], FLAG_GAP)   # lost to it: a marked gap
    assert not flags[4:].any()
    np.testing.assert_array_equal(x[4:, 0], np.arange(12, 22))
    # a single write larger than the ring loses its head, counted once
    rb.write(22, _ramp(22, 25, 1))
    assert rb.overflow_samples == 4 + 15
    assert rb.stats()["overflow_samples"] == 19


def test_nonfinite_samples_marked_and_held():
    rb = RingBuffer(capacity=32, n_leads=2)
    x = _ramp(0, 6)
    x[2, 1] = np.nan
    x[3, 0] = np.inf
    x[4, 1] = np.nan
    rb.write(0, x)
    _, y, flags = rb.read_new()
    np.testing.assert_array_equal(flags, [0, 0, FLAG_NONFINITE, FLAG_NONFINITE, FLAG_NONFINITE, 0])
    assert np.isfinite(y).all()
    np.testing.assert_array_equal(y[:, 1], [0, 1, 1, 3, 3, 5])   # per-lead hold
    np.testing.assert_array_equal(y[:, 0], [0, 1, 2, 2, 4, 5])
    assert rb.invalid_samples == 3


def test_rejects_wrong_shape():
    rb = RingBuffer(capacity=8, n_leads=3)
    with pytest.raises(ValueError):
        rb.write(0, np.zeros((4, 2)))
