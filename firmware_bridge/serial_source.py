"""`SerialSource`: edge-ecg protocol frames from a serial port (UART, USB CDC, pseudo-terminal).

Opens the port with explicit settings (baud, 8N1, no flow control, read timeout), sends START,
and learns fs, leads, gain and baseline from the DEVICE_INFO that answers it; a DEVICE_INFO it
cannot use is refused with a SourceError naming the field. DATA frames become `Chunk`s whose
`index` is the unwrapped sequence number times samples per frame, so a lost frame or a link
outage shows as an index jump (a gap the ring buffer marks), never as silently joined signal.
On a read error (cable pulled, USB re-enumeration) it reconnects with exponential backoff and
sends START again; `stats()` counts crc_errors, lost_frames, discarded_bytes and reconnects.

A device reboot (sequence reset) is a gap too: the decoder skips at least one frame of
`seq_unwrapped` there, so the index jumps. The stream stops with a SourceError when a CRC-valid
DEVICE_INFO cannot be used (malformed, fs_millihz=0, ...) or when the device clock contradicts the
announced rate (decoder `rate_mismatch`): predicting on a wrong rate would be a silent wrong
answer.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import deque
from typing import Any

import numpy as np

from edge_ecg.errors import SourceError
from edge_ecg.signal.chunk import Chunk
from edge_ecg.signal.leads import canonical_lead
from edge_ecg.signal.source import Source
from firmware_bridge.backoff import Backoff
from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.protocol import (
    Ack,
    AckStatus,
    Command,
    DataFrame,
    DeviceInfo,
    encode_command,
)

log = logging.getLogger(__name__)

FS_RANGE_HZ = (50.0, 10_000.0)   # below 50 Hz a QRS is not resolved; above 10 kHz not an ECG


def check_device_info(info: DeviceInfo, port: str) -> None:
    """Refuse a DEVICE_INFO the runtime cannot use, naming the field and what to do."""
    where = f"DEVICE_INFO from {port}"
    if not info.leads:
        raise SourceError(f"{where}: no leads announced; configure at least one lead")
    if not FS_RANGE_HZ[0] <= info.fs_hz <= FS_RANGE_HZ[1]:
        raise SourceError(f"{where}: fs_hz={info.fs_hz:g} outside {FS_RANGE_HZ[0]:g}.."
                          f"{FS_RANGE_HZ[1]:g} Hz; check the firmware's sample-rate field "
                          "(millihertz)")
    if info.samples_per_frame < 1:
        raise SourceError(f"{where}: samples_per_frame=0")
    for name, gain in zip(info.leads, info.gain):
        if not math.isfinite(gain) or gain <= 0:
            raise SourceError(f"{where}: lead {name!r} gain={gain} counts/mV is not a positive "
                              "finite number; counts cannot be turned into millivolts")
    unknown = [n for n in info.leads if canonical_lead(n) is None]
    if unknown:
        raise SourceError(f"{where}: lead names {unknown} are not standard ECG leads "
                          "(I, II, III, aVR, aVL, aVF, V1-V6, MLII); rename them in the firmware")
    if len(set(info.leads)) != len(info.leads):
        raise SourceError(f"{where}: duplicate lead names in {list(info.leads)}")


class SerialSource(Source):
    """Chunks from an edge-ecg protocol device on `port`."""

    def __init__(self, port: str, baud: int = 921600, timeout_s: float = 0.02,
                 info_timeout_s: float = 2.0, reconnect: bool = True,
                 reconnect_timeout_s: float = 30.0, backoff_s: float = 0.05,
                 backoff_max_s: float = 2.0, leads: tuple[str, ...] | None = None) -> None:
        self.port = port
        # `?leads=II,V1`: the standard lead of each announced channel, in order, for firmware
        # that names its channels otherwise ("ECG1", "CH2"); None keeps the announced names
        self.leads_override = tuple(leads) if leads else None
        self.baud = int(baud)
        self.timeout_s = timeout_s
        self.info_timeout_s = info_timeout_s
        self.reconnect = reconnect
        self.reconnect_timeout_s = reconnect_timeout_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.decoder = StreamDecoder()
        self.info: DeviceInfo | None = None
        self.reconnects = 0
        self.chunks = 0
        self._serial: Any = None     # a serial.Serial while open (pyserial imported lazily)
        self._token = 0
        self._frames: deque[DataFrame] = deque()
        self._base: tuple[int, int] | None = None     # (seq_unwrapped, index) of the first frame
        self._layout_mismatch = 0
        self._backoff = Backoff(backoff_s, backoff_max_s, reconnect_timeout_s)
        self._down_reason: Exception | None = None   # why the link is down, while reconnecting
        self._fatal = False        # the device itself is unusable: reconnecting cannot help

    # -- Source ---------------------------------------------------------------------------
    def open(self) -> None:
        self._connect()

    def read(self, timeout_s: float = 0.1) -> Chunk | None:
        deadline = time.monotonic() + timeout_s
        while True:
            chunk = self._next_chunk()
            if chunk is not None:
                return chunk
            if time.monotonic() >= deadline:
                return None
            self._pump(deadline)

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._send(Command.STOP)
            except Exception as exc:   # noqa: BLE001 - closing a port that already failed
                log.debug("serial port %s: STOP not sent on close: %r", self.port, exc)
            try:
                self._serial.close()
            finally:
                self._serial = None

    def stats(self) -> dict[str, int]:
        d = self.decoder.stats()
        d.update(reconnects=self.reconnects, chunks=self.chunks,
                 layout_mismatch=self._layout_mismatch)
        return d

    # -- connection -----------------------------------------------------------------------
    def _open_port(self):
        import serial  # pyserial: base dependency, imported here to keep module import light

        ser = serial.Serial()
        ser.port = self.port
        ser.baudrate = self.baud
        ser.bytesize = serial.EIGHTBITS
        ser.parity = serial.PARITY_NONE
        ser.stopbits = serial.STOPBITS_ONE
        ser.xonxoff = False
        ser.rtscts = False
        ser.dsrdtr = False
        ser.timeout = self.timeout_s
        ser.write_timeout = 1.0
        try:
            ser.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise SourceError(f"cannot open serial port {self.port!r} at {self.baud} baud: {exc}."
                              " Check the path, permissions (dialout group) and that no other"
                              " program holds it") from None
        return ser

    def _connect(self) -> None:
        """Open the port, send START, wait for its ACK and a usable DEVICE_INFO."""
        import serial

        self._serial = self._open_port()
        token = self._send(Command.START)
        deadline = time.monotonic() + self.info_timeout_s
        acked = False
        info = None
        while time.monotonic() < deadline and not (acked and info is not None):
            try:
                data = self._serial.read(max(1, self._serial.in_waiting))
            except (serial.SerialException, OSError) as exc:
                self.close()
                raise SourceError(f"serial port {self.port} failed during the handshake: "
                                  f"{exc}") from None
            for msg in self._feed(data):
                if isinstance(msg, Ack) and msg.command == Command.START and msg.token == token:
                    if msg.status != AckStatus.OK:
                        raise SourceError(f"device on {self.port} refused START: "
                                          f"{msg.status.name}")
                    acked = True
                elif isinstance(msg, DeviceInfo):
                    info = msg
                elif isinstance(msg, DataFrame):
                    self._frames.append(msg)
        if info is None or not acked:
            what = "DEVICE_INFO" if acked else "ACK to START"
            errs = "; ".join(self.decoder.errors) or "none"
            self.close()
            raise SourceError(
                f"no {what} from {self.port} within {self.info_timeout_s:g} s "
                f"({self.decoder.bytes_in} bytes received, {self.decoder.discarded_bytes} "
                f"discarded, malformed messages: {errs}). Check the baud rate ({self.baud}), "
                "the cable, and that the device speaks edge-ecg protocol v1")
        try:
            info = self._assigned(info)
            check_device_info(info, self.port)
        except SourceError:
            self.close()
            raise
        if self.info is not None and (info.leads, info.fs_hz) != (self.info.leads, self.info.fs_hz):
            self.close()
            raise SourceError(f"device on {self.port} changed from {list(self.info.leads)} at "
                              f"{self.info.fs_hz:g} Hz to {list(info.leads)} at {info.fs_hz:g} Hz "
                              "across a reconnect; restart the stream")
        self.info = info

    def _assigned(self, info: DeviceInfo) -> DeviceInfo:
        """`info` with the `?leads=` names in place of the announced ones."""
        if self.leads_override is None:
            return info
        if len(self.leads_override) != len(info.leads):
            raise SourceError(f"serial:{self.port}: leads= names {len(self.leads_override)} "
                              f"lead(s) but the device announces {len(info.leads)} "
                              f"{list(info.leads)}; give one per channel, in order")
        return dataclasses.replace(info, leads=self.leads_override)

    def _link_lost(self, reason: Exception) -> None:
        """The port failed: close it and schedule reconnection (or fail when told not to)."""
        if self._serial is not None:
            try:
                self._serial.close()
            except Exception as exc:   # noqa: BLE001 - the port is already broken
                log.debug("serial port %s: close after failure: %r", self.port, exc)
            self._serial = None
        if not self.reconnect:
            raise SourceError(f"serial port {self.port} failed: {reason}") from None
        log.warning("serial port %s lost (%s); reconnecting for up to %g s", self.port, reason,
                    self.reconnect_timeout_s)
        self.decoder.flush()                    # a half-received frame is lost with the link
        self.reconnects += 1
        self._down_reason = reason
        self._backoff.start(time.monotonic())

    def _try_reconnect(self, deadline: float) -> None:
        """One reconnection attempt when its backoff time has come; never waits past `deadline`.

        Exponential backoff from `backoff_s` to `backoff_max_s`; SourceError once the link has
        been down for `reconnect_timeout_s`.
        """
        b = self._backoff
        now = time.monotonic()
        if now < b.retry_at:
            time.sleep(max(0.0, min(b.retry_at, deadline) - now))
            if time.monotonic() < b.retry_at:
                return
        try:
            self._connect()
            b.recovered()
            log.info("serial port %s reconnected", self.port)
            return
        except SourceError as exc:
            self._serial = None
            if self._fatal:
                raise
            if b.expired(time.monotonic()):
                raise SourceError(f"serial port {self.port} lost ({self._down_reason}) and not "
                                  f"back within {self.reconnect_timeout_s:g} s: {exc}") from None
        b.failed(time.monotonic())

    def _send(self, command: Command) -> int:
        self._token = (self._token + 1) % 256
        self._serial.write(encode_command(command, self._token))
        self._serial.flush()
        return self._token

    # -- data -----------------------------------------------------------------------------
    def _pump(self, deadline: float) -> None:
        """Read what the port has (waiting at most its timeout) and decode it."""
        import serial

        if self._backoff.down:
            self._try_reconnect(deadline)
            return
        if self._serial is None:
            raise SourceError(f"serial source {self.port} is not open: call open() first")
        try:
            data = self._serial.read(max(1, self._serial.in_waiting))
        except (serial.SerialException, OSError) as exc:
            self._link_lost(exc)
            return
        for msg in self._feed(data):
            if isinstance(msg, DataFrame):
                self._frames.append(msg)
            elif isinstance(msg, DeviceInfo):
                msg = self._assigned(msg)
                check_device_info(msg, self.port)
                self.info = msg

    def _feed(self, data: bytes) -> list:
        """Decode `data`; SourceError (port closed) when the device announced something the
        stream cannot go on with: an unusable DEVICE_INFO, or a rate its own clock denies."""
        dec = self.decoder
        refused = dec.refused_infos
        msgs = dec.feed(data)
        if dec.refused_infos != refused:
            reason = dec.errors[-1] if dec.errors else "malformed"
            self._fatal = True
            self._frames.clear()           # withheld: the stream is not trusted
            self.close()
            raise SourceError(f"DEVICE_INFO from {self.port} refused ({reason}); fix the "
                              "device-info the firmware sends, then restart the stream")
        bad = dec.rate_mismatch
        if bad is not None:
            self._fatal = True
            self._frames.clear()           # withheld: the stream is not trusted
            self.close()
            raise SourceError(
                f"device on {self.port}: device clock runs at ~{bad.measured_hz:.4g} Hz but "
                f"device-info says {bad.announced_hz:g} Hz (over {bad.frames} consecutive "
                "frames): check the firmware's configured rate")
        return msgs

    def _next_chunk(self) -> Chunk | None:
        """Merge queued frames that follow each other without a gap into one Chunk."""
        info = self.info
        if not self._frames or info is None:
            return None
        first = self._frames.popleft()
        if first.n_leads != len(info.leads):
            self._layout_mismatch += 1
            # the first one said, the rest counted in stats()
            log.log(logging.WARNING if self._layout_mismatch == 1 else logging.DEBUG,
                    "serial port %s: a frame of %d leads skipped (DEVICE_INFO announced %d)",
                    self.port, first.n_leads, len(info.leads))
            return None
        if self._base is None:
            self._base = (first.seq_unwrapped, 0)
        spf = first.samples_per_frame
        parts = [first.samples]
        nxt = first.seq_unwrapped + 1
        while (self._frames and self._frames[0].seq_unwrapped == nxt
               and self._frames[0].samples.shape == first.samples.shape):
            parts.append(self._frames.popleft().samples)
            nxt += 1
        base_seq, base_index = self._base
        index = base_index + (first.seq_unwrapped - base_seq) * spf
        self._base = (nxt, index + len(parts) * spf)     # rebase: spf may change later
        self.chunks += 1
        return Chunk(
            index=index, seq=first.seq_unwrapped, device_time_us=first.time_us,
            samples=parts[0] if len(parts) == 1 else np.concatenate(parts),
            gain=np.asarray(info.gain, dtype=np.float64),
            baseline=np.asarray(info.baseline, dtype=np.int64),
            leads=info.leads, fs_hz=info.fs_hz, discontinuity=first.after_reset,
        )


__all__ = ["FS_RANGE_HZ", "SerialSource", "check_device_info"]
