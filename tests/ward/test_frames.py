import numpy as np
import pytest

from edge_ecg.errors import FrameError
from edge_ecg.signal.chunk import Chunk
from edge_ecg.ward import frames


def _chunk(lo=-100, hi=100, n=50, leads=("I", "II", "V1"), disc=False, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.integers(lo, hi, size=(n, len(leads)), dtype=np.int64).astype(np.int32)
    return Chunk(index=12345, seq=7, device_time_us=999, samples=s,
                 # gains real devices use (counts/mV): full-scale int32 counts stay within
                 # frames.MAX_ABS_MV
                 gain=np.array([1000.0, 200.0, 550.5], np.float32)[:len(leads)],
                 baseline=np.array([0.0, -3.0, 1.0], np.float32)[:len(leads)], leads=leads,
                 fs_hz=500.0, discontinuity=disc)


@pytest.mark.parametrize("lo,hi,width", [(-100, 100, 2), (-40000, 40000, 3),
                                         (-(1 << 23), (1 << 23) - 1, 3),
                                         (-(1 << 30), 1 << 30, 4)])
def test_round_trip_in_the_narrowest_width(lo, hi, width):
    c = _chunk(lo, hi, disc=True)
    data = frames.encode(c, 42)
    assert data[5] == width
    d, seq = frames.decode(data)
    assert seq == 42 and d.index == c.index and d.leads == c.leads and d.discontinuity
    assert d.fs_hz == c.fs_hz and d.device_time_us == c.device_time_us
    np.testing.assert_array_equal(d.samples, c.samples)
    np.testing.assert_array_equal(d.gain, c.gain)
    np.testing.assert_array_equal(d.to_mv(), c.to_mv())


def test_twelve_leads_a_tenth_of_a_second_is_compact():
    leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    s = np.zeros((50, 12), np.int32)
    s[0, 0] = 70000                       # int24
    c = Chunk(0, 0, 0, s, np.ones(12, np.float32), np.zeros(12, np.float32), leads, 500.0)
    assert len(frames.encode(c, 0)) < 2000


def test_the_default_frame_is_half_a_second_in_about_9_kb():
    leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    n = int(frames.DEFAULT_FRAME_S * 500)
    s = np.zeros((n, 12), np.int32)
    s[0, 0] = 70000                       # int24: 12 x 250 x 3 bytes of samples
    c = Chunk(0, 0, 0, s, np.ones(12, np.float32), np.zeros(12, np.float32), leads, 500.0)
    data = frames.encode(c, 0)
    assert frames.DEFAULT_FRAME_S == 0.5 and 9000 < len(data) < 9300      # ~2 % header
    assert frames.decode(data)[0].n_samples == 250


@pytest.mark.parametrize("mutate,match", [
    (lambda b: b[:10], "shorter"),
    (lambda b: b"XXXX" + b[4:], "magic"),
    (lambda b: b[:60] + bytes([b[60] ^ 1]) + b[61:], "CRC"),
    (lambda b: b[:-5] + b[-4:], "CRC"),
    (lambda b: b"", "shorter"),
])
def test_malformed_frames_raise_with_the_offset(mutate, match):
    data = frames.encode(_chunk(), 1)
    with pytest.raises(FrameError, match=match):
        frames.decode(mutate(data))


def test_length_lies_are_caught_even_with_a_valid_crc():
    import struct
    import zlib

    data = bytearray(frames.encode(_chunk(), 1))[:-4]
    struct.pack_into("<H", data, 8, 51)          # claims 51 samples, holds 50
    data = bytes(data) + struct.pack("<I", zlib.crc32(bytes(data)))
    with pytest.raises(FrameError, match="says"):
        frames.decode(data)


def test_float_samples_are_refused():
    c = _chunk()
    c = Chunk(c.index, c.seq, 0, c.samples.astype(np.float32), c.gain, c.baseline, c.leads, 500.0)
    with pytest.raises(FrameError, match="integer"):
        frames.encode(c, 0)


def test_int24_samples_sign_extend_at_every_edge():
    edges = np.array([0, 1, -1, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768, -32769,
                      (1 << 23) - 1, -(1 << 23), 70000, -70000], np.int32)
    s = np.resize(edges, (len(edges) * 3,)).reshape(-1, 3)
    c = Chunk(0, 0, 0, s, np.ones(3, np.float32), np.zeros(3, np.float32), ("I", "II", "V1"),
              500.0)
    data = frames.encode(c, 0)
    assert data[5] == 3
    d = frames.decode(data)[0].samples
    assert d.dtype == np.int32
    np.testing.assert_array_equal(d, s)


def _scan_peak(c) -> float:
    """The frame's largest |(count - baseline) / gain|, every sample scanned (float64)."""
    span = np.abs(c.samples.astype(np.float64) - c.baseline.astype(np.float64)).max(axis=0)
    return float((span / np.abs(c.gain.astype(np.float64))).max())


@pytest.mark.parametrize("gain", [1000.0, 1e-3, 2.2e-3, 1e-30, -5e-4, 3.3e-9])
@pytest.mark.parametrize("lo,hi", [(-100, 100), (-40000, 40000), (-(1 << 30), 1 << 30)])
def test_the_mv_limit_decides_as_a_scan_of_every_sample(gain, lo, hi):
    """Decoding skips the sample scan when the width and scale cannot reach the limit: its
    verdict is still that of the scan, at tiny gains (some refused, some not) and large."""
    c = _chunk(lo, hi)
    c = Chunk(c.index, c.seq, 0, c.samples, np.array([1000.0, gain, 550.5], np.float32),
              np.array([0.0, -3.0, 1e4], np.float32), c.leads, 500.0)
    data = frames.encode(c, 0)
    if _scan_peak(c) <= frames.MAX_ABS_MV:
        np.testing.assert_array_equal(frames.decode(data)[0].samples, c.samples)
    else:
        with pytest.raises(FrameError, match="mV"):
            frames.decode(data)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0, -0.0])
def test_a_gain_not_finite_or_zero_is_refused(bad):
    c = _chunk()
    c = Chunk(c.index, c.seq, 0, c.samples, np.array([1000.0, bad, 550.5], np.float32),
              c.baseline, c.leads, 500.0)
    with pytest.raises(FrameError, match="gain"):
        frames.decode(frames.encode(c, 0))
