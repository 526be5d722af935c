"""Polar Measurement Data (PMD) ECG: the commands and frame layout of the Polar H10 chest strap.

From Polar's published PMD specification (polar-ble-sdk, technical_documentation/
Polar_Measurement_Data_Specification.pdf) and the SDK's ECG handling:
- PMD service FB005C80-..., control point FB005C81-... (write + indications), data
  FB005C82-... (notifications).
- Start ECG: op 0x02 (start measurement), type 0x00 (ECG), then settings as
  (setting type, array length, value u16 LE): 0x00 sample rate = 130 Hz, 0x01 resolution = 14
  bits -> `02 00 00 01 82 00 01 01 0E 00`. Stop: `03 00`.
- Control point response: 0xF0, op code, measurement type, error code (0 = success), ...
- ECG data notification: byte 0 measurement type 0x00, bytes 1-8 timestamp u64 LE in
  nanoseconds of the LAST sample in the frame, byte 9 frame type 0x00, then samples as 3-byte
  little-endian signed integers in microvolts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_ecg.errors import FrameError, SourceError

PMD_SERVICE_UUID = "FB005C80-02E7-F387-1CAD-8ACD2D8DF0C8"
PMD_CONTROL_UUID = "FB005C81-02E7-F387-1CAD-8ACD2D8DF0C8"
PMD_DATA_UUID = "FB005C82-02E7-F387-1CAD-8ACD2D8DF0C8"

MEASUREMENT_ECG = 0x00
OP_GET_SETTINGS = 0x01
OP_START = 0x02
OP_STOP = 0x03
CONTROL_RESPONSE = 0xF0
ECG_FS_HZ = 130.0
ECG_RESOLUTION_BITS = 14
START_ECG = bytes([OP_START, MEASUREMENT_ECG,
                   0x00, 0x01, 0x82, 0x00,     # sample rate: 1 value, 130 (0x0082) Hz
                   0x01, 0x01, 0x0E, 0x00])    # resolution: 1 value, 14 bits
STOP_ECG = bytes([OP_STOP, MEASUREMENT_ECG])
_HEADER_LEN = 10

ERRORS = ("SUCCESS", "INVALID OP CODE", "INVALID MEASUREMENT TYPE", "NOT SUPPORTED",
          "INVALID LENGTH", "INVALID PARAMETER", "ALREADY IN STATE", "INVALID RESOLUTION",
          "INVALID SAMPLE RATE", "INVALID RANGE", "INVALID MTU", "INVALID NUMBER OF CHANNELS",
          "INVALID STATE", "DEVICE IN CHARGER")


@dataclass(frozen=True)
class PmdEcgFrame:
    timestamp_ns: int          # sensor clock of the LAST sample
    samples_uv: np.ndarray     # (n,) int32 microvolts

    def sample_times_ns(self, fs_hz: float = ECG_FS_HZ) -> np.ndarray:
        """Sensor time of every sample, counting back from the last one."""
        n = self.samples_uv.shape[0]
        return self.timestamp_ns - np.round((n - 1 - np.arange(n)) * 1e9 / fs_hz).astype(np.int64)


@dataclass(frozen=True)
class ControlResponse:
    op: int
    measurement: int
    status: int

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def status_name(self) -> str:
        return ERRORS[self.status] if self.status < len(ERRORS) else f"error {self.status}"


def parse_ecg_frame(data: bytes | bytearray | memoryview) -> PmdEcgFrame:
    """One PMD data notification -> PmdEcgFrame; FrameError naming the offset otherwise."""
    data = bytes(data)
    if len(data) < _HEADER_LEN:
        raise FrameError(f"PMD frame of {len(data)} bytes is shorter than its 10-byte header")
    if data[0] != MEASUREMENT_ECG:
        raise FrameError(f"PMD frame byte 0: measurement type {data[0]:#04x} is not ECG (0x00)")
    if data[9] != 0x00:
        raise FrameError(f"PMD frame byte 9: frame type {data[9]:#04x} unsupported; only raw "
                         "type 0x00 (3-byte microvolts) is defined for H10 ECG")
    body = np.frombuffer(data, dtype=np.uint8, offset=_HEADER_LEN)
    if body.size % 3:
        raise FrameError(f"PMD ECG payload of {body.size} bytes (offset 10) is not a whole "
                         "number of 3-byte samples")
    wide = np.zeros((body.size // 3, 4), dtype=np.uint8)
    wide[:, 1:] = body.reshape(-1, 3)
    samples = wide.view("<i4").reshape(-1) >> 8          # sign-extend int24
    return PmdEcgFrame(timestamp_ns=int.from_bytes(data[1:9], "little"), samples_uv=samples)


def parse_control_response(data: bytes | bytearray | memoryview) -> ControlResponse:
    data = bytes(data)
    if len(data) < 4 or data[0] != CONTROL_RESPONSE:
        raise SourceError(f"PMD control point answered {data.hex()}: not a control response "
                          "(0xF0 ...); is this a Polar device with PMD?")
    return ControlResponse(op=data[1], measurement=data[2], status=data[3])


def build_ecg_frame(timestamp_ns: int, samples_uv: np.ndarray) -> bytes:
    """The published layout, for tests and emulation: header + 3-byte LE signed microvolts."""
    x = np.asarray(samples_uv, dtype="<i4")
    if x.size and (x.min() < -(1 << 23) or x.max() >= 1 << 23):
        raise FrameError("PMD ECG samples must fit 24 bits")
    payload = np.ascontiguousarray(x.reshape(-1, 1).view(np.uint8)[:, :3]).tobytes()
    return bytes([MEASUREMENT_ECG]) + int(timestamp_ns).to_bytes(8, "little") + b"\x00" + payload


__all__ = ["CONTROL_RESPONSE", "ECG_FS_HZ", "ECG_RESOLUTION_BITS", "ERRORS", "MEASUREMENT_ECG",
           "OP_GET_SETTINGS", "OP_START", "OP_STOP", "PMD_CONTROL_UUID", "PMD_DATA_UUID",
           "PMD_SERVICE_UUID", "START_ECG", "STOP_ECG", "ControlResponse", "PmdEcgFrame",
           "build_ecg_frame", "parse_control_response", "parse_ecg_frame"]
