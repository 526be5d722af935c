"""Device faults the stream must not paper over: a zero rate, a reboot, a rate the clock denies.

Decoder level (counters, `seq_unwrapped`, `rate_mismatch`) and through SerialSource on a real
pseudo-terminal, where each must become a gap in `Chunk.index` or a SourceError.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from edge_ecg.errors import SourceError
from firmware_bridge.decoder import RATE_CHECK_FRAMES, StreamDecoder
from firmware_bridge.protocol import (
    DataFrame,
    DeviceInfo,
    MsgType,
    SampleFormat,
    encode_data,
    encode_device_info,
    envelope,
)
from firmware_bridge.scripted_device import ScriptedDevice
from firmware_bridge.serial_source import SerialSource

SPF = 10
FS = 500.0


def info_bytes(fs_hz: float) -> bytes:
    return encode_device_info(DeviceInfo(fs_hz=fs_hz, leads=("I", "II"), gain=(1000.0, 1000.0),
                                         baseline=(0, 0), fmt=SampleFormat.INT24,
                                         samples_per_frame=SPF, firmware=(1, 0, 0)))


def frames(n: int, seq0: int = 0, ts0: int = 0, clock_hz: float = FS,
           jitter_us: int = 0, seed: int = 0) -> list[bytes]:
    """`n` DATA frames whose timestamps advance at `clock_hz` (plus optional jitter)."""
    rng = np.random.default_rng(seed)
    x = np.arange(SPF * 2, dtype=np.int32).reshape(SPF, 2)
    out = []
    for k in range(n):
        ts = ts0 + round(k * SPF * 1e6 / clock_hz) + int(rng.integers(-jitter_us, jitter_us + 1))
        out.append(encode_data((seq0 + k) % 65536, ts % 2**32, x + k, SampleFormat.INT24))
    return out


def data_of(msgs) -> list[DataFrame]:
    return [m for m in msgs if isinstance(m, DataFrame)]


# -- decoder -------------------------------------------------------------------------------
def test_zero_rate_device_info_is_refused_and_counted_not_raised():
    body = info_bytes(FS)[8:-4]
    zero = envelope(MsgType.DEVICE_INFO, b"\0\0\0\0" + body[4:])       # fs_millihz = 0, CRC fine
    dec = StreamDecoder()
    got = data_of(dec.feed(zero + b"".join(frames(3))))
    assert len(got) == 3 and dec.info is None
    assert dec.malformed_messages == dec.refused_infos == 1
    assert "fs_millihz=0" in dec.errors[-1]


def test_reboot_with_restarted_clock_is_a_one_frame_gap():
    dec = StreamDecoder()
    dec.feed(info_bytes(FS))
    got = data_of(dec.feed(b"".join(frames(5, seq0=1000, ts0=7_000_000) + frames(3, seq0=0))))
    assert [f.seq_unwrapped for f in got] == [1000, 1001, 1002, 1003, 1004, 1006, 1007, 1008]
    assert dec.seq_resets == 1 and dec.reset_gap_frames == 1 and dec.lost_frames == 0
    assert dec.clock_jumps == 0 and dec.rate_mismatch is None
    t = [f.time_us for f in got]
    assert all(b > a for a, b in zip(t, t[1:]))          # device time never runs backwards


def test_reboot_gap_is_estimated_from_a_clock_that_ran_on():
    dec = StreamDecoder()
    dec.feed(info_bytes(FS))
    # 5 frames at t = 0..80 ms, then the counter restarts 2 s after the last frame.
    got = data_of(dec.feed(b"".join(frames(5, seq0=20_000) + frames(3, seq0=0, ts0=2_080_000))))
    assert got[5].seq_unwrapped - got[4].seq_unwrapped == 100       # 2 s / 20 ms frames
    assert dec.reset_gap_frames == 99 and got[5].time_us == 2_080_000


def test_rate_contradicted_by_the_clock_is_detected_after_the_documented_frames():
    dec = StreamDecoder()
    stream = frames(RATE_CHECK_FRAMES + 1, clock_hz=250.0)       # 40 ms per 20 ms frame
    dec.feed(info_bytes(FS) + b"".join(stream[:-1]))
    assert dec.rate_mismatch is None                              # 7 pairs: not yet
    dec.feed(stream[-1])
    bad = dec.rate_mismatch
    assert bad is not None and bad.announced_hz == FS
    assert bad.measured_hz == pytest.approx(250.0, rel=1e-6)
    assert bad.frames == RATE_CHECK_FRAMES


def test_rate_error_below_the_per_frame_jump_tolerance_is_still_detected():
    dec = StreamDecoder()                 # 360 Hz announced, 250 Hz clock: 40 vs 27.8 ms
    dec.feed(info_bytes(360.0) + b"".join(frames(20, clock_hz=250.0)))
    assert dec.clock_jumps == 0
    assert dec.rate_mismatch.measured_hz == pytest.approx(250.0, rel=1e-4)


@pytest.mark.parametrize("case", ["jitter", "one_jump", "lost_frames"])
def test_a_right_rate_is_never_called_wrong(case):
    if case == "jitter":                  # +-1 ms timestamp noise on 20 ms frames
        stream = frames(200, jitter_us=1000, seed=3)
    elif case == "one_jump":              # the device clock steps 3 s once
        stream = frames(50) + frames(50, seq0=50, ts0=50 * 20_000 + 3_000_000)
    else:                                 # every other frame lost: dseq = 2 per pair
        stream = frames(200)[::2]
    dec = StreamDecoder()
    dec.feed(info_bytes(FS) + b"".join(stream))
    assert dec.rate_mismatch is None
    assert dec.clock_jumps == (1 if case == "one_jump" else 0)


def test_new_device_info_clears_the_rate_verdict():
    dec = StreamDecoder()
    dec.feed(info_bytes(FS) + b"".join(frames(12, clock_hz=250.0)))
    assert dec.rate_mismatch is not None
    dec.feed(info_bytes(250.0) + b"".join(frames(12, seq0=12, ts0=12 * 40_000, clock_hz=250.0)))
    assert dec.rate_mismatch is None


# -- through SerialSource on a pseudo-terminal ---------------------------------------------
def drain(src: SerialSource, quiet_s: float = 0.3, limit_s: float = 5.0) -> list:
    chunks, last = [], time.monotonic()
    end = time.monotonic() + limit_s
    while time.monotonic() < end and time.monotonic() - last < quiet_s:
        c = src.read(0.05)
        if c is not None:
            chunks.append(c)
            last = time.monotonic()
    return chunks


def test_serial_source_refuses_zero_rate_naming_the_field():
    with ScriptedDevice([info_bytes(0.0) + b"".join(frames(3))]) as dev:
        src = SerialSource(dev.path, info_timeout_s=1.0, reconnect=False)
        t0 = time.monotonic()
        with pytest.raises(SourceError, match=r"fs_millihz=0.*sample-rate field"):
            src.open()
        assert time.monotonic() - t0 < 0.9            # refused at once, not by timeout
        assert src.stats()["refused_infos"] == 1


def test_serial_source_stops_when_the_clock_denies_the_rate():
    with ScriptedDevice([info_bytes(FS)] + frames(60, clock_hz=250.0)) as dev:
        src = SerialSource(dev.path, info_timeout_s=1.0, reconnect=True)
        with pytest.raises(SourceError, match=r"runs at ~250 Hz but device-info says 500 Hz"):
            src.open()
            drain(src)
        src.close()


def test_serial_source_reports_a_reboot_as_an_index_gap():
    before, after = frames(30, seq0=500, ts0=1_000_000), frames(30, seq0=0)
    with ScriptedDevice([info_bytes(FS)] + before + after) as dev:
        src = SerialSource(dev.path, info_timeout_s=1.0, reconnect=False)
        src.open()
        try:
            chunks = drain(src)
        finally:
            src.close()
    idx = np.concatenate([c.index + np.arange(c.n_samples) for c in chunks])
    assert idx.size == 60 * SPF
    jumps = np.flatnonzero(np.diff(idx) != 1)
    assert jumps.tolist() == [30 * SPF - 1]                      # exactly one gap, at the reboot
    assert idx[30 * SPF] - idx[30 * SPF - 1] == SPF + 1          # one frame marked missing
    assert src.stats()["seq_resets"] == 1


def test_virtual_monitor_reboot_is_one_marked_gap_with_counters_matching():
    """reboot=1@2s: 1 s of frames never sent, then seq and clock restart at 0. The host books
    the minimum gap (the restarted clock says nothing), counts one reset, joins nothing."""
    from firmware_bridge.emulator import VirtualMonitor
    from firmware_bridge.faults import FaultSpec

    seconds, leads = 5.0, ("I", "II")
    t = np.arange(int(seconds * FS)) / FS
    x = np.stack([np.sin(2 * np.pi * t), 0.5 * np.cos(2 * np.pi * 3 * t)], axis=1)
    faults = FaultSpec.parse("reboot=1@2s,drop=0.01,seed=2")
    with VirtualMonitor(x, FS, leads, speed=20, faults=faults, seconds=seconds) as vm:
        src = SerialSource(vm.path, info_timeout_s=2.0)
        src.open()
        try:
            chunks = drain(src, quiet_s=0.5, limit_s=10.0)
            stats = src.stats()
        finally:
            src.close()
    inj = vm.injected
    assert inj["reboot"] == 1 and inj["reboot_frames"] == 1.0 * FS / vm.info.samples_per_frame
    assert stats["seq_resets"] == 1 and stats["reset_gap_frames"] == 1
    assert stats["lost_frames"] == inj["drop"] and stats["frames"] == inj["frames_sent"]
    spf = vm.info.samples_per_frame
    gaps = [(a.end, b.index - a.end) for a, b in zip(chunks, chunks[1:]) if b.index != a.end]
    assert all(g > 0 for _, g in gaps)                         # never overlapping, never joined
    assert sum(g for _, g in gaps) == spf * (inj["drop"] + stats["reset_gap_frames"])
    # Before the reboot every sample sits at its own index. The first frame after it carries
    # the signal at 3 s (the device's sample clock ran on through the outage) but is booked
    # right after the marked one-frame gap: the true outage is unknowable from the stream.
    counts = np.rint(x * 1000).astype(np.int32)
    k = next(i for i, c in enumerate(chunks) if c.index >= 2 * FS)
    for c in chunks[:k]:
        np.testing.assert_array_equal(c.samples, counts[c.index:c.end])
    after = chunks[k]
    np.testing.assert_array_equal(after.samples[:spf], counts[3 * int(FS):3 * int(FS) + spf])
    assert after.index - chunks[k - 1].end >= spf                # a gap, at least one frame
