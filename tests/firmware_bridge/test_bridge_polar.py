"""Polar H10 PMD ECG: the frame parser on the published layout, BleSource through a fake bleak."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from edge_ecg.errors import FrameError, SourceError
from firmware_bridge.ble_source import BleSource
from firmware_bridge.polar_pmd import (
    PMD_CONTROL_UUID,
    PMD_DATA_UUID,
    START_ECG,
    STOP_ECG,
    build_ecg_frame,
    parse_control_response,
    parse_ecg_frame,
)

PERIOD_NS = 1e9 / 130.0


def test_start_command_is_the_documented_one():
    # op start, ECG, sample rate 1 x 130 Hz, resolution 1 x 14 bits (PMD specification)
    assert START_ECG == bytes.fromhex("02000001820001010e00")
    assert STOP_ECG == bytes.fromhex("0300")


def test_parse_hand_written_frame():
    ts = 599_000_000_123
    frame = (b"\x00" + ts.to_bytes(8, "little") + b"\x00"
             + bytes([0xFF, 0xFF, 0xFF,      # -1 uV
                      0x10, 0x00, 0x00,      # 16 uV
                      0x00, 0x00, 0x80,      # -8388608 uV (most negative int24)
                      0xFF, 0xFF, 0x7F,      # 8388607 uV
                      0x2C, 0x01, 0x00]))    # 300 uV
    f = parse_ecg_frame(frame)
    assert f.timestamp_ns == ts
    np.testing.assert_array_equal(f.samples_uv, [-1, 16, -8388608, 8388607, 300])
    t = f.sample_times_ns()
    assert t[-1] == ts and t[0] == ts - round(4 * PERIOD_NS)     # timestamp = LAST sample


def test_build_and_parse_round_trip():
    x = np.random.default_rng(0).integers(-(1 << 23), 1 << 23, size=73)
    f = parse_ecg_frame(build_ecg_frame(123, x))
    np.testing.assert_array_equal(f.samples_uv, x)


@pytest.mark.parametrize("data,match", [
    (b"\x00\x01\x02", "shorter than its 10-byte header"),
    (b"\x02" + bytes(8) + b"\x00" + bytes(6), "measurement type 0x02 is not ECG"),
    (b"\x00" + bytes(8) + b"\x80" + bytes(6), "frame type 0x80 unsupported"),
    (b"\x00" + bytes(8) + b"\x00" + bytes(7), "not a whole number of 3-byte samples"),
])
def test_parse_rejects_malformed(data, match):
    with pytest.raises(FrameError, match=match):
        parse_ecg_frame(data)


def test_control_response():
    r = parse_control_response(bytes([0xF0, 0x02, 0x00, 0x08, 0x00]))
    assert not r.ok and r.status_name == "INVALID SAMPLE RATE"
    with pytest.raises(SourceError, match="not a control response"):
        parse_control_response(b"\x01\x02")


class FakeH10:
    """Stands in for bleak.BleakClient: same constructor and coroutine names.

    `script` is shared by every instance (each reconnect makes a new client, as bleak does):
    a list of sessions, each a list of (timestamp_ns, samples) frames; a session ending with
    "disconnect" drops the link after its frames.
    """

    script: list = []
    status = 0
    instances: list = []

    def __init__(self, address, disconnected_callback=None, **kwargs):
        self.address = address
        self._on_disconnect = disconnected_callback
        self._notify = {}
        self.is_connected = False
        self.writes = []
        FakeH10.instances.append(self)

    async def connect(self, **kwargs):
        self.is_connected = True

    async def start_notify(self, char, callback, **kwargs):
        self._notify[char.upper()] = callback

    async def write_gatt_char(self, char, data, response=None):
        self.writes.append(bytes(data))
        assert char.upper() == PMD_CONTROL_UUID and response is True
        if bytes(data) == START_ECG:
            asyncio.get_running_loop().create_task(self._stream())

    async def _stream(self):
        await asyncio.sleep(0)
        self._notify[PMD_CONTROL_UUID](None, bytearray([0xF0, 0x02, 0x00, self.status, 0x00]))
        if self.status:
            return
        session = FakeH10.script.pop(0) if FakeH10.script else []
        for item in session:
            await asyncio.sleep(0.001)
            if item == "disconnect":
                self.is_connected = False
                self._on_disconnect(self)
                return
            self._notify[PMD_DATA_UUID](None, bytearray(build_ecg_frame(*item)))

    async def disconnect(self):
        self.is_connected = False


def frames(first_sample_index: int, n_frames: int, n: int = 73, skip: tuple = ()):
    """Frames of n samples with exact 130 Hz timestamps (of the last sample)."""
    out = []
    for k in range(n_frames):
        if k in skip:
            continue
        i0 = first_sample_index + k * n
        x = np.arange(i0, i0 + n) % 1000 - 500
        out.append((int(round((i0 + n - 1) * PERIOD_NS)) + 10**12, x))
    return out


def read_chunks(src, n_chunks, limit_s=5.0):
    chunks, deadline = [], time.monotonic() + limit_s
    while len(chunks) < n_chunks and time.monotonic() < deadline:
        c = src.read(0.05)
        if c is not None:
            chunks.append(c)
    return chunks


@pytest.fixture
def fake():
    FakeH10.script, FakeH10.status, FakeH10.instances = [], 0, []
    yield FakeH10


def test_ble_source_chunks_gaps_and_reconnect(fake):
    # Session 1: frames 0..5 with frame 3 lost in the air, then the link drops.
    # Session 2: streaming resumes 2 frames later on the same sensor clock.
    fake.script = [frames(0, 6, skip=(3,)) + ["disconnect"], frames(8 * 73, 3)]
    src = BleSource("AA:BB:CC:DD:EE:FF", client_class=FakeH10, backoff_s=0.01)
    with src:
        chunks = read_chunks(src, 8)
    assert [c.index for c in chunks] == [0, 73, 146, 292, 365, 584, 657, 730]
    for c in chunks:
        assert c.leads == ("I",) and c.fs_hz == 130.0 and c.samples.shape == (73, 1)
        np.testing.assert_array_equal(c.samples[:, 0], np.arange(c.index, c.end) % 1000 - 500)
        np.testing.assert_allclose(c.to_mv()[:, 0], c.samples[:, 0] / 1000.0)
    st = src.stats()
    assert st["reconnects"] == 1 and st["gaps"] == 2 and st["lost_samples"] == 73 * 3
    assert len(fake.instances) == 2 and fake.instances[1].writes[-1] == STOP_ECG


def test_ble_source_refuses_a_rejected_start(fake):
    fake.status = 0x08
    with pytest.raises(SourceError, match="INVALID SAMPLE RATE"):
        BleSource("AA:BB", client_class=FakeH10, reconnect=False).open()


def test_a_corrupt_notification_is_counted_and_said_once(caplog):
    """A skipped frame is visible: counted in stats(), the first one logged as a warning
    with the parser's reason, the rest at debug level (a bad radio link would flood it)."""
    import logging

    src = BleSource("AA:BB:CC:DD:EE:FF", client_class=FakeH10)
    with caplog.at_level(logging.DEBUG, logger="firmware_bridge.ble_source"):
        src._on_data(None, bytearray(b"\x00\x01\x02"))
        src._on_data(None, bytearray(b"\x02" + bytes(8) + b"\x00" + bytes(6)))
    assert src.stats()["bad_frames"] == 2 and src.stats()["frames"] == 0
    recs = [r for r in caplog.records if r.name == "firmware_bridge.ble_source"]
    assert [r.levelno for r in recs] == [logging.WARNING, logging.DEBUG]
    assert "corrupt ECG notification skipped" in recs[0].getMessage()
    assert "shorter than its 10-byte header" in recs[0].getMessage()
