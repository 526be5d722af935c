"""The runtime's quality checks beyond the reliability suite: ADC rails derived from the
counts' sample format, and a lead-off run that straddles the window's edge."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.runtime.backends import open_backend
from edge_ecg.runtime.quality import QualityConfig, _lead_off
from edge_ecg.runtime.stream_processor import StreamProcessor
from edge_ecg.signal.chunk import Chunk


def _chunk(counts, index, gain=1000.0):
    n = counts.shape[1]
    return Chunk(index=index, seq=0, device_time_us=0, samples=counts, gain=np.full(n, gain),
                 baseline=np.zeros(n, np.int64), leads=("I", "II")[:n], fs_hz=500.0)


def test_rails_follow_the_narrowest_sample_format_holding_the_counts(fixture_bundle):
    be = open_backend(fixture_bundle)
    try:
        proc = StreamProcessor(be)
        proc.feed(_chunk(np.full((20, 2), 100, np.int32), 0, gain=8000.0))
        lo, hi = proc.rails_mv
        np.testing.assert_array_equal(hi, np.float32(32767) / np.float32(8000.0))
        np.testing.assert_array_equal(lo, np.float32(-32768) / np.float32(8000.0))
        proc.feed(_chunk(np.full((20, 2), 40_000, np.int32), 20, gain=8000.0))   # int24 now
        np.testing.assert_array_equal(proc.rails_mv[1], np.float32(8388607) / np.float32(8000))
        fixed = (np.full(2, -1.0, np.float32), np.full(2, 1.0, np.float32))
        proc2 = StreamProcessor(be, rails_mv=fixed)
        proc2.feed(_chunk(np.full((20, 2), 100, np.int32), 0))
        assert proc2.rails_mv is fixed                     # given rails are kept
    finally:
        be.close()


def test_flat_run_straddling_the_window_edge_is_lead_off_with_context():
    fs, cfg = 500.0, QualityConfig()
    t = np.arange(7000) / fs
    x = np.stack([np.sin(2 * np.pi * 1.2 * t), np.sin(2 * np.pi * 1.1 * t + 1)])  # (L, T)
    x[1, 5850:6550] = 0.0                   # 1.4 s flat, 0.3 s of it in the window [1000, 6000)
    ok = np.ones(7000, bool)
    w = x[:, 1000:6000]
    assert not _lead_off(w, ok[:5000], fs, cfg)                 # the window alone: too short
    assert not _lead_off(w, ok[:5000], fs, cfg, x, ok, 1000)    # 0.3 s < flat_min_s held
    x[1, 5700:5850] = 0.0                                       # now 0.6 s in the window
    assert _lead_off(x[:, 1000:6000], ok[:5000], fs, cfg, x, ok, 1000)


def _judge(x, fs):
    from edge_ecg.runtime.quality import _saturated_leads
    return _saturated_leads(x[None, :].astype(np.float32), np.ones(x.size, bool), fs,
                            QualityConfig(), None)[0]


def test_a_broad_extreme_flat_for_3_samples_at_128_hz_is_not_a_clip():
    """At 128 Hz, 20 ms is 3 samples: a smooth S trough quantized at 5 uV sits flat that long.
    A clip needs 4 samples there; at 250 Hz and above the 20 ms rule is unchanged."""
    fs = 128.0
    t = np.arange(1280) / fs
    x = np.round(0.8 * np.sin(2 * np.pi * 1.0 * t) / 0.005) * 0.005       # 5 uV steps
    x[640:643] = x.min() - 0.4                          # a 3-sample flat trough, the extreme
    assert not _judge(x, fs)
    x[640:644] = x[640]                                 # 4 samples: a clip
    assert _judge(x, fs)
    fs = 250.0                                          # 20 ms = 5 samples, as before
    t = np.arange(2500) / fs
    y = np.sin(2 * np.pi * 1.0 * t)
    y[1000:1004] = 1.5
    assert not _judge(y, fs)
    y[1000:1005] = 1.5
    assert _judge(y, fs)


@pytest.mark.needs_data("svdb/887")
def test_holter_record_windows_are_withheld_only_at_its_clip_level(shared_data):
    """SVDB 887 (a training-fold record whose recorder never clipped): with 3 samples, 8 of its
    10-s windows were judged saturated, each a stretch of unclassified beats; with 4, 1."""
    import wfdb
    r = wfdb.rdrecord(str(shared_data / "svdb" / "887"), physical=False, channels=[0])
    x = r.d_signal[:, 0] / r.adc_gain[0]
    flagged = sum(bool(_judge(x[s:s + 1280], r.fs)) for s in range(0, x.size - 1280, 640))
    assert flagged <= 1
