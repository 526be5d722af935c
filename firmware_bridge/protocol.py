"""The edge-ecg wire protocol, version 1: message layouts, encoders and sample packing.

One envelope for every message: sync word, version, type, flags, a reserved zero byte, body
length, body, CRC-32. The byte-level specification with rationale is PROTOCOL.md beside this
file; the C reference encoder (c/encoder.c) writes the same bytes. Everything little-endian.

This module encodes single messages and parses single bodies; `decoder.StreamDecoder` finds
messages in a byte stream (resync, CRC, loss counting).
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from edge_ecg.errors import FrameError

SYNC = b"\xA5\x5A"            # 1010 0101 0101 1010: alternating bits, rare in ECG sample bytes
VERSION = 1
HEADER = struct.Struct("<2sBBBBH")   # sync, version, type, flags, reserved (0), body_len
HEADER_LEN = HEADER.size             # 8
CRC_LEN = 4
DATA_HEADER = struct.Struct("<HIBBB")  # seq, timestamp_us, n_leads, samples_per_frame, format
DATA_HEADER_LEN = DATA_HEADER.size     # 9
FRAME_OVERHEAD = HEADER_LEN + DATA_HEADER_LEN + CRC_LEN   # 21 bytes per data frame
MAX_BODY_LEN = 4096          # bounds the wait on a corrupted-but-plausible header
MAX_LEADS = 32
SEQ_MODULUS = 1 << 16
TIMESTAMP_MODULUS = 1 << 32  # microseconds: wraps every 71.6 minutes, unwrapped by the host


class MsgType(enum.IntEnum):
    DATA = 0x01
    DEVICE_INFO = 0x02
    COMMAND = 0x03
    ACK = 0x04


class SampleFormat(enum.IntEnum):
    """Value = bytes per sample, two's complement little-endian."""

    INT16 = 2
    INT24 = 3

    @classmethod
    def parse(cls, name: "str | int | SampleFormat") -> "SampleFormat":
        if isinstance(name, (int, SampleFormat)):
            return cls(int(name))
        key = name.strip().lower()
        if key in ("int16", "i16", "16"):
            return cls.INT16
        if key in ("int24", "i24", "24"):
            return cls.INT24
        raise FrameError(f"sample format {name!r} unknown: use int16 or int24")

    @property
    def min_count(self) -> int:
        return -(1 << (8 * self.value - 1))

    @property
    def max_count(self) -> int:
        return (1 << (8 * self.value - 1)) - 1


class Flag(enum.IntFlag):
    """Bits of the envelope's flags byte on DATA frames."""

    STREAM_START = 0x01   # first frame after START (or after a reconnect)
    LEAD_OFF = 0x02       # at least one electrode reports lead-off in this frame
    OVERRUN = 0x04        # the device dropped samples internally before this frame


class Command(enum.IntEnum):
    PING = 0x01
    START = 0x02
    STOP = 0x03
    CONFIGURE = 0x04
    GET_INFO = 0x05


class AckStatus(enum.IntEnum):
    OK = 0x00
    UNKNOWN_COMMAND = 0x01
    BAD_ARGUMENT = 0x02
    BAD_STATE = 0x03


COMMAND_BODY = struct.Struct("<BB")        # command, token
CONFIGURE_ARGS = struct.Struct("<BBI")     # format, samples_per_frame, lead_mask (0 = keep)
ACK_BODY = struct.Struct("<BBB")           # command, token, status
INFO_FIXED = struct.Struct("<IBBBBBB")  # fs_millihz, n_leads, format, spf, fw major, minor, patch
LEAD_FIXED = struct.Struct("<fi")          # gain (counts per mV), baseline (counts at 0 mV)


@dataclass(frozen=True)
class DataFrame:
    """One decoded DATA frame. `samples` is (samples_per_frame, n_leads) int32 counts."""

    seq: int                # as sent, 0..65535
    seq_unwrapped: int      # monotone across wraparound (decoder's count)
    timestamp_us: int       # as sent, 0..2**32-1, device clock of the first sample
    time_us: int            # the same, unwrapped past 2**32 by the decoder
    flags: int
    fmt: SampleFormat
    samples: np.ndarray
    # the decoder's: the first frame after a sequence reset (a reboot), the span lost before it
    # unknown (at least one frame is booked; the runtime must not bridge it)
    after_reset: bool = False

    @property
    def n_leads(self) -> int:
        return int(self.samples.shape[1])

    @property
    def samples_per_frame(self) -> int:
        return int(self.samples.shape[0])


@dataclass(frozen=True)
class DeviceInfo:
    """What a host needs to turn counts into millivolts, and how the device will stream."""

    fs_hz: float
    leads: tuple[str, ...]
    gain: tuple[float, ...]        # counts per mV, per lead
    baseline: tuple[int, ...]      # counts at 0 mV, per lead
    fmt: SampleFormat
    samples_per_frame: int
    firmware: tuple[int, int, int]
    device: str = ""

    @property
    def fs_millihz(self) -> int:
        """The rate as the wire carries it: u32 millihertz (milli-, not mega-; 500 Hz = 500000)."""
        return int(round(self.fs_hz * 1000))

    @property
    def frame_us(self) -> float:
        """Duration of one DATA frame in device microseconds."""
        return self.samples_per_frame * 1e6 / self.fs_hz


@dataclass(frozen=True)
class CommandMsg:
    command: int          # Command value (kept int: a device must answer unknown ones)
    token: int            # host-chosen 0..255, echoed in the ACK
    args: bytes = b""


@dataclass(frozen=True)
class Ack:
    command: int
    token: int
    status: AckStatus


Message = DataFrame | DeviceInfo | CommandMsg | Ack


def crc32(data: bytes | memoryview) -> int:
    """CRC-32/ISO-HDLC (poly 0x04C11DB7 reflected, init and xorout 0xFFFFFFFF), as zlib."""
    return zlib.crc32(data) & 0xFFFFFFFF


def envelope(msg_type: MsgType, body: bytes, flags: int = 0) -> bytes:
    """Wrap a body: header + body + CRC-32 over everything after the sync word."""
    if len(body) > MAX_BODY_LEN:
        raise FrameError(f"message body of {len(body)} bytes exceeds MAX_BODY_LEN={MAX_BODY_LEN}:"
                         " send fewer samples per frame")
    head = HEADER.pack(SYNC, VERSION, int(msg_type), flags & 0xFF, 0, len(body))
    crc = crc32(head[2:] + body)
    return head + body + struct.pack("<I", crc)


def data_body_len(n_leads: int, samples_per_frame: int, fmt: SampleFormat) -> int:
    return DATA_HEADER_LEN + n_leads * samples_per_frame * int(fmt)


def pack_samples(samples: np.ndarray, fmt: SampleFormat) -> bytes:
    """(T, L) integer counts -> time-major interleaved little-endian bytes (vectorised).

    Raises FrameError for values outside the format's range (never wraps silently).
    """
    x = np.asarray(samples)
    if x.size and (x.min() < fmt.min_count or x.max() > fmt.max_count):
        raise FrameError(f"sample value out of {fmt.name} range [{fmt.min_count}, {fmt.max_count}]:"
                         f" got [{int(x.min())}, {int(x.max())}]; lower the gain")
    if fmt is SampleFormat.INT16:
        return x.astype("<i2").tobytes()
    wide = x.astype("<i4").reshape(-1, 1).view(np.uint8)   # (N, 4) little-endian bytes
    return np.ascontiguousarray(wide[:, :3]).tobytes()


def unpack_samples(payload: bytes | memoryview, n_leads: int, fmt: SampleFormat) -> np.ndarray:
    """Little-endian bytes -> (T, n_leads) int32 (int24 sign-extended by an arithmetic shift)."""
    raw = np.frombuffer(payload, dtype=np.uint8)
    if fmt is SampleFormat.INT16:
        out = raw.view("<i2").astype(np.int32)
    else:
        wide = np.zeros((raw.size // 3, 4), dtype=np.uint8)
        wide[:, 1:] = raw.reshape(-1, 3)            # value in the high 3 bytes ...
        out = wide.view("<i4").reshape(-1) >> 8      # ... arithmetic shift sign-extends
    return out.reshape(-1, n_leads)


def encode_data(seq: int, timestamp_us: int, samples: np.ndarray, fmt: SampleFormat,
                flags: int = 0) -> bytes:
    """One DATA frame for `samples` (spf, n_leads) integer counts."""
    fmt = SampleFormat.parse(fmt)
    samples = np.asarray(samples)
    spf, n_leads = samples.shape
    if not (1 <= n_leads <= MAX_LEADS) or not (1 <= spf <= 255):
        raise FrameError(f"frame shape {samples.shape} invalid: need 1..255 samples x "
                         f"1..{MAX_LEADS} leads")
    body = (DATA_HEADER.pack(seq % SEQ_MODULUS, timestamp_us % TIMESTAMP_MODULUS, n_leads, spf,
                             int(fmt)) + pack_samples(samples, fmt))
    return envelope(MsgType.DATA, body, flags)


def encode_device_info(info: DeviceInfo) -> bytes:
    body = bytearray(INFO_FIXED.pack(info.fs_millihz, len(info.leads), int(info.fmt),
                                     info.samples_per_frame, *info.firmware))
    body += _pstring(info.device, "device")
    for name, gain, base in zip(info.leads, info.gain, info.baseline):
        body += _pstring(name, "lead name") + LEAD_FIXED.pack(float(gain), int(base))
    return envelope(MsgType.DEVICE_INFO, bytes(body))


def encode_command(command: int, token: int = 0, args: bytes = b"") -> bytes:
    return envelope(MsgType.COMMAND, COMMAND_BODY.pack(int(command), token & 0xFF) + args)


def encode_configure(token: int, fmt: SampleFormat | None = None, samples_per_frame: int = 0,
                     lead_mask: int = 0) -> bytes:
    """CONFIGURE: zero fields keep the device's current setting."""
    args = CONFIGURE_ARGS.pack(int(fmt) if fmt else 0, samples_per_frame, lead_mask)
    return encode_command(Command.CONFIGURE, token, args)


def encode_ack(command: int, token: int, status: AckStatus) -> bytes:
    return envelope(MsgType.ACK, ACK_BODY.pack(int(command), token, int(status)))


def _pstring(text: str, what: str) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > 255:
        raise FrameError(f"{what} {text!r} longer than 255 bytes")
    return bytes([len(raw)]) + raw


def parse_device_info(body: bytes | memoryview) -> DeviceInfo:
    """DEVICE_INFO body -> DeviceInfo; FrameError naming the offset on malformed bodies."""
    body = bytes(body)
    if len(body) < INFO_FIXED.size + 1:
        raise FrameError(f"DEVICE_INFO body of {len(body)} bytes is shorter than its fixed part")
    fs_millihz, n_leads, fmt, spf, *fw = INFO_FIXED.unpack_from(body, 0)
    if fs_millihz == 0:     # every frame duration derives from it: a zero rate is unusable
        raise FrameError("DEVICE_INFO fs_millihz=0 at byte 0: the sample rate must be positive "
                         "(millihertz, 500000 = 500 Hz); set the firmware's sample-rate field")
    if spf == 0:
        raise FrameError("DEVICE_INFO samples_per_frame=0 at byte 6: must be 1..255; set the "
                         "firmware's frame length")
    pos = INFO_FIXED.size
    device, pos = _read_pstring(body, pos, "device")
    leads, gains, bases = [], [], []
    for k in range(n_leads):
        name, pos = _read_pstring(body, pos, f"lead {k} name")
        if pos + LEAD_FIXED.size > len(body):
            raise FrameError(f"DEVICE_INFO truncated in lead {k} at byte {pos}")
        g, b = LEAD_FIXED.unpack_from(body, pos)
        pos += LEAD_FIXED.size
        leads.append(name)
        gains.append(g)
        bases.append(b)
    if pos != len(body):
        raise FrameError(f"DEVICE_INFO has {len(body) - pos} trailing bytes at offset {pos}")
    try:
        sfmt = SampleFormat(fmt)
    except ValueError:
        raise FrameError(f"DEVICE_INFO sample format {fmt} at byte 5 unknown") from None
    return DeviceInfo(fs_hz=fs_millihz / 1000.0, leads=tuple(leads), gain=tuple(gains),
                      baseline=tuple(bases), fmt=sfmt, samples_per_frame=spf,
                      firmware=tuple(fw), device=device)


def _read_pstring(body: bytes, pos: int, what: str) -> tuple[str, int]:
    if pos >= len(body):
        raise FrameError(f"DEVICE_INFO truncated before {what} at byte {pos}")
    n = body[pos]
    end = pos + 1 + n
    if end > len(body):
        raise FrameError(f"DEVICE_INFO {what} at byte {pos} runs past the body end")
    try:
        return body[pos + 1:end].decode("ascii"), end
    except UnicodeDecodeError:
        raise FrameError(f"DEVICE_INFO {what} at byte {pos} is not ASCII") from None


__all__ = ["ACK_BODY", "COMMAND_BODY", "CONFIGURE_ARGS", "CRC_LEN", "DATA_HEADER",
           "DATA_HEADER_LEN", "FRAME_OVERHEAD", "HEADER", "HEADER_LEN", "INFO_FIXED", "LEAD_FIXED",
           "MAX_BODY_LEN", "MAX_LEADS", "SEQ_MODULUS", "SYNC", "TIMESTAMP_MODULUS", "VERSION",
           "Ack", "AckStatus", "Command", "CommandMsg", "DataFrame", "DeviceInfo", "Flag",
           "Message", "MsgType", "SampleFormat", "crc32", "data_body_len", "encode_ack",
           "encode_command", "encode_configure", "encode_data", "encode_device_info", "envelope",
           "pack_samples", "parse_device_info", "unpack_samples"]
