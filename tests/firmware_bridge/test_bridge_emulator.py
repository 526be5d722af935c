"""Virtual monitor on a real pseudo-terminal, read through SerialSource: data, faults, commands."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import numpy as np
import pytest

from edge_ecg.errors import SourceError
from edge_ecg.signal.source import Source
from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.emulator import VirtualMonitor
from firmware_bridge.faults import FaultSpec, TimedFault
from firmware_bridge.protocol import (
    Ack,
    AckStatus,
    Command,
    DataFrame,
    DeviceInfo,
    SampleFormat,
    encode_command,
    encode_configure,
)
from firmware_bridge.serial_source import SerialSource

LEADS8 = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
FS = 500.0


def test_signal(seconds: float, n_leads: int = 8) -> np.ndarray:
    """Distinct per-lead waveforms in mV (a test fixture, not an ECG)."""
    t = np.arange(int(seconds * FS)) / FS
    return np.stack([(k + 1) * 0.3 * np.sin(2 * np.pi * (k + 1) * t) + 0.01 * k
                     for k in range(n_leads)], axis=1)


test_signal.__test__ = False   # a helper, not a test


def read_all(src: Source, vm: VirtualMonitor, wall_limit_s: float = 20.0) -> list:
    """Read chunks until the monitor has finished and the link is quiet."""
    chunks, quiet_since = [], None
    deadline = time.monotonic() + wall_limit_s
    while time.monotonic() < deadline:
        c = src.read(0.05)
        if c is not None:
            chunks.append(c)
            quiet_since = None
        elif vm.finished.is_set():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 0.3:
                break
    return chunks


def test_end_to_end_with_faults_counters_match_injected():
    seconds = 24.0
    x = test_signal(seconds)
    faults = FaultSpec.parse("drop=0.01,bitflip=0.01,truncate=0.01,garbage=0.02,clockjump=0.005,"
                             "stall=2@4s,disconnect=3@12s,wrap,seed=5")
    with VirtualMonitor(x, FS, LEADS8, speed=20, faults=faults, seconds=seconds) as vm:
        with SerialSource(vm.path, baud=921600) as src:
            assert src.info.leads == LEADS8 and src.info.fs_hz == FS
            assert src.info.fmt is SampleFormat.INT24 and src.info.gain[0] == 1000.0
            chunks = read_all(src, vm)
            stats = src.stats()
    inj = vm.injected
    assert inj["drop"] and inj["bitflip"] and inj["truncate"] and inj["garbage"]
    assert inj["clockjump"] and inj["stall"] == 1 and inj["disconnect"] == 1 and inj["wrap"] == 1
    # The decoder's counters equal what was injected, exactly.
    assert stats["frames"] == inj["frames_sent"]
    assert stats["crc_errors"] == inj["bitflip"] + inj["truncate"]
    assert stats["lost_frames"] == (inj["drop"] + inj["bitflip"] + inj["truncate"]
                                    + inj["disconnect_frames"])
    assert stats["clock_jumps"] == inj["clockjump"]
    assert stats["reconnects"] == 1
    assert stats["discarded_bytes"] == inj["garbage_bytes"] + inj["corrupt_bytes"]
    # Every sample arrives at its own index, scaled by the announced gain; gaps are index jumps.
    counts = np.rint(x * 1000).astype(np.int32)
    n_total = int(seconds * FS)
    received = np.zeros(n_total, dtype=bool)
    for c in chunks:
        np.testing.assert_array_equal(c.samples, counts[c.index:c.end])
        np.testing.assert_allclose(c.to_mv(), x[c.index:c.end], atol=6e-4)
        received[c.index:c.end] = True
    assert chunks[0].index == 0 and chunks[-1].end == n_total
    assert received.sum() == stats["frames"] * 10
    gaps = [b.index - a.end for a, b in zip(chunks, chunks[1:]) if b.index != a.end]
    assert max(gaps) == 10 * inj["disconnect_frames"]          # the outage, as one index jump
    assert chunks[0].seq == 65536 - 100                         # wrap: started near 65535


def test_monitor_answers_commands_over_pty():
    x = test_signal(2.0, n_leads=3)
    with VirtualMonitor(x, FS, ("I", "II", "V1"), speed=10, seconds=2.0) as vm:
        fd = os.open(vm.path, os.O_RDWR | os.O_NOCTTY)
        dec = StreamDecoder()

        def ask(msg: bytes, want: int, until_ack: int | None = None) -> list:
            os.write(fd, msg)
            got, deadline = [], time.monotonic() + 3
            while len(got) < want and time.monotonic() < deadline:
                if select.select([fd], [], [], 0.1)[0]:
                    got += dec.feed(os.read(fd, 65536))
                if until_ack is not None and any(
                        isinstance(m, Ack) and m.command == until_ack for m in got):
                    break
            return got

        try:
            assert ask(encode_command(Command.PING, 1), 1) == [Ack(Command.PING, 1, AckStatus.OK)]
            ack, info = ask(encode_command(Command.GET_INFO, 2), 2)
            assert ack.status is AckStatus.OK and info.leads == ("I", "II", "V1")
            assert ask(encode_command(0x7F, 3), 1)[0].status is AckStatus.UNKNOWN_COMMAND
            assert ask(encode_configure(4, lead_mask=1 << 5), 1)[0].status is AckStatus.BAD_ARGUMENT
            ack, info = ask(encode_configure(5, SampleFormat.INT16, 5, 0b011), 2)
            assert ack.status is AckStatus.OK
            assert (info.leads, info.fmt, info.samples_per_frame, info.gain) == (
                ("I", "II"), SampleFormat.INT16, 5, (200.0, 200.0))
            msgs = ask(encode_command(Command.START, 6), 12)
            assert msgs[0] == Ack(Command.START, 6, AckStatus.OK)
            assert isinstance(msgs[1], DeviceInfo)
            frames = [m for m in msgs if isinstance(m, DataFrame)]
            assert frames[0].samples.shape == (5, 2) and frames[0].fmt is SampleFormat.INT16
            np.testing.assert_array_equal(frames[0].samples, np.rint(x[:5, :2] * 200))
            stop = ask(encode_command(Command.STOP, 7), 10**6, until_ack=Command.STOP)
            assert stop[-1] == Ack(Command.STOP, 7, AckStatus.OK)
            assert Command.STOP in vm.commands_seen
            time.sleep(0.2)
            tail = select.select([fd], [], [], 0.2)[0] and os.read(fd, 65536)
            assert not tail or not any(isinstance(m, DataFrame) for m in dec.feed(tail))
        finally:
            os.close(fd)


@pytest.mark.parametrize("leads,fs,match", [
    (("X1", "X2"), FS, "not standard ECG leads"),
    (("I", "II"), 10.0, "fs_hz=10"),
])
def test_serial_source_refuses_unusable_device_info(leads, fs, match):
    x = test_signal(1.0, n_leads=2)
    with VirtualMonitor(x, fs, leads, speed=5) as vm:
        with pytest.raises(SourceError, match=match):
            SerialSource(vm.path, info_timeout_s=1.0).open()


def test_serial_source_clear_errors_without_a_device(tmp_path):
    with pytest.raises(SourceError, match="cannot open serial port.*nope"):
        SerialSource(str(tmp_path / "nope")).open()
    master, slave = os.openpty()                 # a port where nothing answers
    try:
        with pytest.raises(SourceError, match="no ACK to START .* within 0.3 s"):
            SerialSource(os.ttyname(slave), info_timeout_s=0.3).open()
    finally:
        os.close(master), os.close(slave)


def test_serial_source_gives_up_when_the_device_stays_away():
    x = test_signal(60.0)
    vm = VirtualMonitor(x, FS, LEADS8, speed=1)
    src = SerialSource(vm.start(), reconnect_timeout_s=0.4, backoff_s=0.05)
    src.open()
    try:
        assert read_all_until(src, lambda c: c.end >= 50)          # streaming
        vm.stop()                                                  # unplugged for good
        with pytest.raises(SourceError, match=r"lost .* not back within 0.4 s"):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                src.read(0.05)
        assert src.stats()["reconnects"] == 1
    finally:
        src.close()
        vm.stop()


def read_all_until(src: Source, done, limit_s: float = 5.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        c = src.read(0.05)
        if c is not None and done(c):
            return True
    return False


def test_monitor_refuses_stream_that_does_not_fit_the_uart():
    x = test_signal(1.0, n_leads=12)
    leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    with pytest.raises(SourceError, match=r"19\.05 kB/s.*115200 baud.*8 independent leads"):
        VirtualMonitor(x, FS, leads, baud=115200)
    VirtualMonitor(x[:, [0, 1, 6, 7, 8, 9, 10, 11]], FS, LEADS8, baud=460800)   # fits


def test_fault_spec_parsing():
    spec = FaultSpec.parse("drop=0.01, stall=2@30s,disconnect=5@60,wrap,seed=4")
    assert spec.drop == 0.01 and spec.wrap and spec.seed == 4
    assert spec.stall == (TimedFault(30.0, 2.0),) and spec.disconnect == (TimedFault(60.0, 5.0),)
    assert FaultSpec.parse("", seed=9).seed == 9 and not FaultSpec.parse("").any
    with pytest.raises(SourceError, match="unknown fault 'dorp'"):
        FaultSpec.parse("dorp=0.1")
    with pytest.raises(SourceError, match="0<=P<=1"):
        FaultSpec.parse("drop=2")
    with pytest.raises(SourceError, match="D@Ts"):
        FaultSpec.parse("stall=2")


def test_record_streams_through_the_bridge(shared_data):
    from edge_ecg.data.records import read_record

    rec = read_record(str(shared_data / "mitdb" / "100"))
    x = rec.signal[: int(6 * rec.fs_hz)]
    with VirtualMonitor(x, rec.fs_hz, rec.leads, speed=30, seconds=6.0) as vm:
        with SerialSource(vm.path) as src:
            assert src.info.fs_hz == 360.0 and src.info.leads == rec.leads
            chunks = read_all(src, vm)
    y = np.concatenate([c.to_mv() for c in chunks])
    assert chunks[-1].end == y.shape[0] == x.shape[0]
    np.testing.assert_allclose(y, x, atol=5.1e-4)                # 1 uV counts


def test_cli_emulate_streams_synthetic_ecg():
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_ecg", "bridge", "emulate", "--synth", "sinus_rhythm",
         "--seconds", "4", "--speed", "20", "--faults", "drop=0.05", "--seed", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("virtual monitor on "), first + proc.stderr.read()
        path = first.split()[3]
        src = SerialSource(path)
        src.open()
        n, lost_seen = 0, 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and n + 10 * lost_seen < 2000:
            c = src.read(0.1)
            if c is not None:
                n += c.n_samples
                lost_seen = src.stats()["lost_frames"]
        stats = src.stats()
        src.close()
        out, _ = proc.communicate(timeout=15)
    finally:
        proc.kill() if proc.poll() is None else None
    assert src.info.leads == LEADS8 and src.info.fs_hz == 500.0
    injected = dict(kv.split("=") for kv in out.split("injected: ")[1].strip().split(", "))
    assert int(injected["drop"]) == stats["lost_frames"] > 0
    assert int(injected["frames_sent"]) == stats["frames"] == n // 10
