"""`VirtualMonitor`: an ECG front end on a real pseudo-terminal, with faults on request.

It behaves like the firmware the C encoder is written for: it waits for the host's START,
answers ACK + DEVICE_INFO, then streams DATA frames at real-time pace (or `speed` times faster),
paced by an absolute schedule (frame k is due at t0 + k x frame period / speed, so no drift
accumulates). It answers PING, STOP, CONFIGURE and GET_INFO. The device's frame clock runs
from the first START whether or not frames are sent: `seq` counts it, so every frame the host
did not get shows up as a sequence gap.

Faults (firmware_bridge.faults.FaultSpec) are injected with a seeded generator and counted
exactly in `.injected`, so tests can compare them with the decoder's counters. The first frame
after each START and the last frame of a finite stream are always sent intact: the host needs
a reference to count losses against. A disconnect closes the pseudo-terminal (the host's reads
fail as on a USB-serial unplug) and reopens a new one behind the same link path (a symlink, as
`socat ... link=` does); the device then waits for START again. A reboot silences the device
for its duration (frames due meanwhile are never sent), then it streams on with its frame
counter and its clock restarted at 0, as firmware that starts streaming on power-up does.

The link speed is not emulated (a pty is as fast as memory), but `baud` makes the monitor refuse
a stream that would not fit the UART (firmware_bridge.budget).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import tempfile
import termios
import threading
import time
import tty
from collections import deque

import numpy as np

from edge_ecg.errors import SignalError, SourceError
from firmware_bridge import budget
from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.faults import FaultSpec
from firmware_bridge.protocol import (
    CONFIGURE_ARGS,
    DATA_HEADER_LEN,
    HEADER_LEN,
    MAX_BODY_LEN,
    SEQ_MODULUS,
    AckStatus,
    Command,
    CommandMsg,
    DeviceInfo,
    Flag,
    SampleFormat,
    data_body_len,
    encode_ack,
    encode_data,
    encode_device_info,
)

# Counts per mV the monitor announces by default: 1 uV per count for int24 (as Polar's PMD
# microvolts), 5 uV per count for int16 (MIT-BIH's 200 adu/mV) which keeps +/-163 mV in range.
DEFAULT_GAIN = {SampleFormat.INT24: 1000.0, SampleFormat.INT16: 200.0}
_GARBAGE_ALPHABET = np.array([b for b in range(256) if b != 0xA5], dtype=np.uint8)
_OUTBUF_LIMIT = 1 << 20     # bytes queued for a host that is not reading, before frames drop
_DRAIN_WAIT_S = 3.0         # before a disconnect, let the host read what is already in the pty
_DRAIN_SETTLE_S = 0.1       # ... and see it stay empty this long
FAULT_COUNTERS = ("frames_sent", "drop", "bitflip", "truncate", "garbage", "garbage_bytes",
                  "clockjump", "stall", "stall_frames", "disconnect", "disconnect_frames",
                  "reboot", "reboot_frames", "wrap", "corrupt_bytes", "link_overflow_frames", "disconnect_unread_bytes")


class _Outbox:
    """What is queued for the pty, as (bytes, kind) with kind None for a control message.

    A host that stops reading cannot make it grow without bound: past `_OUTBUF_LIMIT` bytes,
    frames are dropped and counted as `link_overflow_frames` (control messages still queue).
    """

    def __init__(self, unsend) -> None:
        self._q: deque = deque()
        self._off = 0                   # bytes of the first item already written
        self._bytes = 0
        self._unsend = unsend

    def __bool__(self) -> bool:
        return bool(self._q)

    def send(self, data: bytes, kind: str | None) -> None:
        if self._bytes > _OUTBUF_LIMIT and kind is not None:
            self._unsend(kind, "link_overflow_frames")
            return
        self._q.append((data, kind))
        self._bytes += len(data)

    def discard(self) -> list:
        """Empty it (a disconnect); returns the kinds of what never reached the host."""
        kinds = [k for _, k in self._q]
        self._q.clear()
        self._off = self._bytes = 0
        return kinds

    def write_to(self, fd: int) -> None:
        """Write what the pty takes now (non-blocking)."""
        while self._q:
            data, _ = self._q[0]
            try:
                n = os.write(fd, data[self._off:] if self._off else data)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EIO:
                    break
                raise
            self._off += n
            if self._off >= len(data):
                self._q.popleft()
                self._bytes -= len(data)
                self._off = 0


class _RunState:
    """The device thread's clocks and fault schedule (one per `start()`)."""

    def __init__(self, spec: FaultSpec) -> None:
        self.pos = 0                     # device sample clock (samples since the first START)
        self.frame_no = 0                # device frame clock (all frames, sent or not)
        self.seq0 = SEQ_MODULUS - 100 if spec.wrap else 0
        self.t0: float | None = None     # wall time of the first START
        self.streaming = False
        self.first_after_start = False
        self.down_until: float | None = None   # wall time the link comes back, while down
        self.lost_to_disconnect = False  # frames are lost to a disconnect until the next START
        self.clock_offset_us = 0
        self.stalls = list(spec.stall)
        self.disconnects = list(spec.disconnect)
        self.reboots = list(spec.reboot)
        self.stall_end: float | None = None     # signal time a stall ends
        self.reboot_end: float | None = None    # signal time the rebooting device is back
        self.held: list[tuple] = []      # (bytes, kind) held back by a stall

    def release_held(self, out: _Outbox) -> None:
        for h in self.held:
            out.send(*h)
        self.held.clear()


class VirtualMonitor:
    """A streaming ECG device behind a pseudo-terminal. `start()` returns the path to open."""

    def __init__(self, signal: np.ndarray, fs_hz: float, leads, speed: float = 1.0,
                 faults: FaultSpec | str | None = None, fmt: str | SampleFormat = "int24",
                 samples_per_frame: int | None = None, gain: float | None = None,
                 baseline: int = 0, seconds: float | None = None, loop: bool = True,
                 baud: int | None = None, link_path: str | None = None,
                 device: str = "edge-ecg virtual monitor",
                 firmware: tuple[int, int, int] = (1, 0, 0)) -> None:
        x = np.asarray(signal, dtype=np.float64)
        leads = tuple(leads)
        if x.ndim != 2 or x.shape[1] != len(leads) or x.shape[0] < 1:
            raise SignalError(f"VirtualMonitor needs a (T, {len(leads)}) signal for leads "
                              f"{list(leads)}, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise SignalError("VirtualMonitor signal holds NaN or inf: clean the record first")
        if not fs_hz > 0 or not speed > 0:
            raise SignalError(f"fs_hz ({fs_hz}) and speed ({speed}) must be positive")
        self._mv = x
        self.fs_hz = float(fs_hz)
        self.all_leads = leads
        self.speed = float(speed)
        self.faults = faults if isinstance(faults, FaultSpec) else FaultSpec.parse(faults)
        self._fmt = SampleFormat.parse(fmt)
        self._spf = int(samples_per_frame or budget.samples_per_frame(fs_hz))
        self._gain_arg = gain
        self._baseline = int(baseline)
        self._lead_idx = np.arange(len(leads))
        self._check_layout(self._fmt, self._spf, len(leads))
        if baud is not None:
            need = budget.framed_bytes_per_s(len(leads), fs_hz, self._fmt, self._spf)
            if need > baud / 10:
                raise SourceError(
                    f"{len(leads)} leads x {fs_hz:g} Hz x {self._fmt.name.lower()} needs "
                    f"{need / 1000:.2f} kB/s framed, more than {baud} baud 8N1 carries "
                    f"({baud / 10000:.2f} kB/s): "
                    + ("stream the 8 independent leads (I, II, V1-V6; the rest is derived), "
                       if len(leads) > 8 else "stream fewer leads, ")
                    + "int16, or a faster link (see PROTOCOL.md, link budget)")
        self.baud = baud
        total = None if loop else x.shape[0]
        if seconds is not None:
            total = int(round(seconds * fs_hz))
        self._total_samples = total
        self._link_path = link_path
        self.device = device
        self.firmware = firmware
        self._quantize()
        self._rng = np.random.default_rng(self.faults.seed)
        self.injected: dict[str, int] = {k: 0 for k in FAULT_COUNTERS}
        self.finished = threading.Event()     # set once the last frame of a finite stream is out
        self.started = threading.Event()      # set at the first START from the host
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._master = self._slave = -1
        self._wake_r, self._wake_w = os.pipe()
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self.pts_path = ""
        self.commands_seen: list[int] = []

    # -- public ---------------------------------------------------------------------------
    @property
    def info(self) -> DeviceInfo:
        leads = tuple(self.all_leads[i] for i in self._lead_idx)
        return DeviceInfo(fs_hz=self.fs_hz, leads=leads, gain=(self._gain,) * len(leads),
                          baseline=(self._baseline,) * len(leads), fmt=self._fmt,
                          samples_per_frame=self._spf, firmware=self.firmware, device=self.device)

    @property
    def path(self) -> str:
        return self._link_path or ""

    def start(self) -> str:
        """Open the pseudo-terminal and run the device in a thread; return the path to open."""
        if self._thread is not None:
            return self.path
        if self._link_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="edge-ecg-pty-")
            self._link_path = os.path.join(self._tmpdir.name, "ttyECG0")
        self._open_pty()
        self._thread = threading.Thread(target=self._run, name="VirtualMonitor", daemon=True)
        self._thread.start()
        return self._link_path

    def stop(self) -> None:
        """Stop the device thread and close the pseudo-terminal; safe to call twice."""
        self._stop.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close_pty()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> "VirtualMonitor":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def summary(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.injected.items())

    # -- pty ------------------------------------------------------------------------------
    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)     # no echo, no CR/LF translation, 8-bit clean
        fl = fcntl.fcntl(master, fcntl.F_GETFL)
        fcntl.fcntl(master, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        self._master, self._slave = master, slave
        self.pts_path = os.ttyname(slave)
        tmp = self.path + ".new"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(self.pts_path, tmp)
        os.replace(tmp, self.path)             # atomic: the host never sees a half-made link

    def _close_pty(self) -> None:
        if self._link_path:
            try:
                os.unlink(self._link_path)
            except OSError:
                pass
        for fd in (self._master, self._slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = -1

    def _unread_bytes(self) -> int:
        """Bytes written to the pty that the host has not read yet."""
        if self._slave < 0:
            return 0
        buf = fcntl.ioctl(self._slave, termios.FIONREAD, b"\0\0\0\0")
        return int.from_bytes(buf, "little")

    # -- signal -> counts -------------------------------------------------------------------
    def _quantize(self) -> None:
        self._gain = float(self._gain_arg or DEFAULT_GAIN[self._fmt])
        counts = np.rint(self._mv * self._gain) + self._baseline
        # An ADC saturates at its rails; so does the monitor (counted, never wrapped).
        lo, hi = self._fmt.min_count, self._fmt.max_count
        self.clipped_samples = int(np.count_nonzero((counts < lo) | (counts > hi)))
        self._counts = np.clip(counts, lo, hi).astype(np.int32)

    @staticmethod
    def _check_layout(fmt: SampleFormat, spf: int, n_leads: int) -> None:
        if not 1 <= spf <= 255 or data_body_len(n_leads, spf, fmt) > MAX_BODY_LEN:
            raise SourceError(f"samples_per_frame={spf} with {n_leads} leads {fmt.name.lower()} "
                              f"does not fit a frame (1..255 samples, body <= {MAX_BODY_LEN} B)")

    # -- device loop ------------------------------------------------------------------------
    def _run(self) -> None:
        """The device thread: reconnect, answer commands, send the frames due, write, sleep."""
        st = _RunState(self.faults)
        self.injected["wrap"] = int(self.faults.wrap)
        self._rx = StreamDecoder()
        out = _Outbox(self._unsend)
        while not self._stop.is_set():
            now = time.monotonic()
            # Link back after a disconnect: a fresh pty behind the same path.
            if st.down_until is not None and now >= st.down_until:
                self._open_pty()
                st.down_until = None
            self._serve_commands(st, out, now)
            next_due = None
            if st.t0 is not None and not self.finished.is_set():
                next_due = self._send_due_frames(st, out, now)
            if self._master >= 0:
                out.write_to(self._master)
            self._wait(next_due, st.down_until, bool(out))
        self._close_pty()

    def _serve_commands(self, st: _RunState, out: _Outbox, now: float) -> None:
        """Read the host's bytes and answer every command in them."""
        if self._master < 0:
            return
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            data = b""
        except OSError as exc:
            if exc.errno != errno.EIO:   # EIO: no host has the slave open; harmless
                raise
            data = b""
        for msg in self._rx.feed(data) if data else ():
            if isinstance(msg, CommandMsg):
                reply, start = self._command(msg)
                for r in reply:
                    out.send(r, None)
                if start is not None:
                    st.streaming = start
                    if start:
                        st.first_after_start = True
                        st.lost_to_disconnect = False
                        if st.t0 is None:
                            st.t0 = now
                            self.started.set()

    def _send_due_frames(self, st: _RunState, out: _Outbox, now: float) -> float | None:
        """Every frame due by the absolute schedule (at most a burst of 256, so commands stay
        responsive); returns when the next one is due, or None."""
        t0 = st.t0
        if t0 is None:                            # not started
            return None
        for _ in range(256):
            spf = self._spf
            if self._total_samples is not None:   # a finite stream ends on a short frame
                spf = min(spf, self._total_samples - st.pos)
            due = t0 + (st.pos + spf) / (self.fs_hz * self.speed)
            if due > now:
                return due
            t_sig = st.pos / self.fs_hz
            last = self._total_samples is not None and st.pos + spf >= self._total_samples
            self._begin_timed_faults(st, out, t_sig, now)
            rebooting = st.reboot_end is not None and t_sig < st.reboot_end and not last
            if st.reboot_end is not None and not rebooting:
                # Back up: frame counter and clock restart at 0 (sample clock runs on).
                st.reboot_end = None
                st.seq0 = -st.frame_no
                st.clock_offset_us = -int(round(st.pos * 1e6 / self.fs_hz))
                st.first_after_start = True
            self._frame_due(st, out, spf, last, rebooting)
            st.pos += spf
            st.frame_no += 1
            if st.stall_end is not None and st.pos / self.fs_hz >= st.stall_end:
                st.release_held(out)
                st.stall_end = None
            if self._total_samples is not None and st.pos >= self._total_samples:
                st.release_held(out)
                self.finished.set()
                return None
        return None

    def _begin_timed_faults(self, st: _RunState, out: _Outbox, t_sig: float, now: float) -> None:
        """Start the disconnect, stall or reboot whose signal time has come."""
        if st.disconnects and t_sig >= st.disconnects[0].start_s and st.down_until is None:
            d = st.disconnects.pop(0)
            self._drain_then_close()
            for k in out.discard() + [k for _, k in st.held]:   # queued, never reached the host
                if k is not None:
                    self._unsend(k, "disconnect_frames")
            st.held.clear()
            st.down_until = now + d.duration_s / self.speed
            st.lost_to_disconnect = True
            st.streaming = False
            self.injected["disconnect"] += 1
        if st.stalls and t_sig >= st.stalls[0].start_s and st.stall_end is None:
            s = st.stalls.pop(0)
            st.stall_end = s.start_s + s.duration_s
            self.injected["stall"] += 1
        if st.reboots and t_sig >= st.reboots[0].start_s and st.reboot_end is None:
            r = st.reboots.pop(0)
            st.reboot_end = r.start_s + r.duration_s
            self.injected["reboot"] += 1

    def _frame_due(self, st: _RunState, out: _Outbox, spf: int, last: bool,
                   rebooting: bool) -> None:
        """The frame at `st.pos`: sent (faulted as the dice say), held by a stall, or lost to a
        reboot or a disconnect (counted)."""
        idx = (st.pos + np.arange(spf)) % self._counts.shape[0]
        samples = self._counts[idx][:, self._lead_idx]
        seq = (st.seq0 + st.frame_no) % SEQ_MODULUS
        if rebooting and st.streaming:
            self.injected["reboot_frames"] += 1
        elif st.streaming and self._master >= 0:
            data, kind, st.clock_offset_us = self._faulted_frame(
                seq, st.pos, samples, st.first_after_start or last, st.first_after_start,
                st.clock_offset_us)
            st.first_after_start = False
            if data is not None:
                if st.stall_end is not None:
                    st.held.append((data, kind))
                    self.injected["stall_frames"] += kind != "drop"
                else:
                    out.send(data, kind)
        elif st.lost_to_disconnect:
            self.injected["disconnect_frames"] += 1

    def _wait(self, next_due: float | None, down_until: float | None, writing: bool) -> None:
        """Sleep until the next frame, a command, pty space, a reconnect or stop()."""
        timeout = 0.05
        for t in (next_due, down_until):
            if t is not None:
                timeout = min(timeout, max(0.0, t - time.monotonic()))
        rl = [self._wake_r] + ([self._master] if self._master >= 0 else [])
        wl = [self._master] if writing and self._master >= 0 else []
        try:
            select.select(rl, wl, [], timeout)
        except (OSError, ValueError):
            pass

    def _drain_then_close(self) -> None:
        """Unplug: let the host read what is already in the pty, then close it.

        The link path stays absent while the link is down, as a re-enumerating USB device.
        """
        # FIONREAD counts only the line discipline's buffer, not the tty flip buffer the kernel
        # pushes into it asynchronously, so "empty" must hold for a while to mean drained.
        deadline = time.monotonic() + _DRAIN_WAIT_S
        empty_since = None
        while time.monotonic() < deadline:
            if self._unread_bytes():
                empty_since = None
            elif empty_since is None:
                empty_since = time.monotonic()
            elif time.monotonic() - empty_since >= _DRAIN_SETTLE_S:
                break
            time.sleep(0.002)
        self.injected["disconnect_unread_bytes"] += self._unread_bytes()
        self._close_pty()

    def _unsend(self, kind: str, reason: str) -> None:
        """A queued frame never reaches the host: move its count from `kind` to `reason`.

        A frame already corrupted on purpose still costs the host one lost frame, but no CRC
        error, so the counters keep adding up.
        """
        if kind == "drop":          # a garbage burst before a dropped frame: bytes only
            return
        self.injected["frames_sent" if kind == "frame" else kind] -= 1
        self.injected[reason] += 1

    def _faulted_frame(self, seq: int, pos: int, samples: np.ndarray, protect: bool,
                       stream_start: bool, clock_offset_us: int) -> tuple:
        """Encode one frame with the faults the dice choose; returns (bytes|None, kind, offset)."""
        spec, rng, inj = self.faults, self._rng, self.injected
        flags = int(Flag.STREAM_START) if stream_start else 0
        kind = "frame"
        if not protect:
            r = rng.random()
            if r < spec.drop:
                kind = "drop"
            elif r < spec.drop + spec.bitflip:
                kind = "bitflip"
            elif r < spec.drop + spec.bitflip + spec.truncate:
                kind = "truncate"
            elif spec.clockjump and rng.random() < spec.clockjump:
                jump_us = int(rng.uniform(1.0, 10.0) * 1e6) * (1 if rng.random() < 0.5 else -1)
                clock_offset_us += jump_us
                inj["clockjump"] += 1
        ts = int(round(pos * 1e6 / self.fs_hz)) + clock_offset_us
        prefix = b""
        if not protect and spec.garbage and rng.random() < spec.garbage:
            n = int(rng.integers(1, spec.garbage_max_bytes + 1))
            prefix = rng.choice(_GARBAGE_ALPHABET, size=n).tobytes()
            inj["garbage"] += 1
            inj["garbage_bytes"] += n
        if kind == "drop":
            inj["drop"] += 1
            return (prefix or None), kind, clock_offset_us
        frame = bytearray(encode_data(seq, ts, samples, self._fmt, flags))
        if kind == "bitflip":
            # Only bytes the CRC alone guards: flags, seq, timestamp, samples, CRC. Flips in the
            # sync, version, type, length or layout bytes are caught earlier by the header check
            # and tested in the decoder tests.
            body = HEADER_LEN + DATA_HEADER_LEN
            allowed = np.concatenate([[4], np.arange(HEADER_LEN, HEADER_LEN + 6),
                                      np.arange(body, len(frame))])
            byte = int(rng.choice(allowed))
            frame[byte] ^= 1 << int(rng.integers(0, 8))
            inj["bitflip"] += 1
            inj["corrupt_bytes"] += len(frame)
        elif kind == "truncate":
            cut = int(rng.integers(HEADER_LEN + DATA_HEADER_LEN, len(frame)))
            frame = frame[:cut]
            inj["truncate"] += 1
            inj["corrupt_bytes"] += cut
        else:
            inj["frames_sent"] += 1
        return prefix + bytes(frame), kind, clock_offset_us

    def _command(self, msg: CommandMsg) -> tuple[list[bytes], bool | None]:
        """Answer one host command: (messages to send, new streaming state or None)."""
        self.commands_seen.append(msg.command)
        def ack(status: AckStatus) -> bytes:
            return encode_ack(msg.command, msg.token, status)

        if msg.command == Command.PING:
            return [ack(AckStatus.OK)], None
        if msg.command == Command.START:
            return [ack(AckStatus.OK), encode_device_info(self.info)], True
        if msg.command == Command.STOP:
            return [ack(AckStatus.OK)], False
        if msg.command == Command.GET_INFO:
            return [ack(AckStatus.OK), encode_device_info(self.info)], None
        if msg.command == Command.CONFIGURE:
            try:
                fmt_code, spf, mask = CONFIGURE_ARGS.unpack(msg.args)
                fmt = SampleFormat(fmt_code) if fmt_code else self._fmt
                spf = spf or self._spf
                idx = self._lead_idx
                if mask:
                    if mask >> len(self.all_leads):
                        raise ValueError
                    idx = np.flatnonzero([(mask >> i) & 1 for i in range(len(self.all_leads))])
                self._check_layout(fmt, spf, len(idx))
            except (ValueError, struct.error, SourceError):
                return [ack(AckStatus.BAD_ARGUMENT)], None
            self._fmt, self._spf, self._lead_idx = fmt, spf, idx
            self._quantize()
            return [ack(AckStatus.OK), encode_device_info(self.info)], None
        return [ack(AckStatus.UNKNOWN_COMMAND)], None


__all__ = ["DEFAULT_GAIN", "FAULT_COUNTERS", "VirtualMonitor"]
