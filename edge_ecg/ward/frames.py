"""The ward's bus frame: one monitor chunk as compact bytes on `ecg.<unit>.<bed>`.

Layout (little-endian), self-describing so a worker needs nothing else to rebuild the `Chunk`:

    magic b"EWF1" | flags u8 (bit 0: discontinuity) | width u8 (2, 3 or 4 bytes a sample)
    | n_leads u8 | pad u8 | n_samples u16 | seq u64 (the publisher's frame counter)
    | index i64 (absolute sample index of the first sample) | device_time_us i64 | fs_hz f64
    | n_leads x (u8 length + ASCII lead name) | gain f32[n_leads] | baseline f32[n_leads]
    | samples (n_samples x n_leads, row-major, signed, `width` bytes each) | crc32 u32

Integer ADC counts only, in the narrowest of int16/int24/int32 that holds the frame: 12 leads
x 0.5 s (`DEFAULT_FRAME_S`) at 500 Hz is ~9.2 kB in int24, 6.2 kB in int16, ~2-3 % of it
header. Decoding reads numbers with `struct` and NumPy `frombuffer` and validates every length
and range: bytes from the bus stay data (nothing is unpickled) and a malformed frame raises
`FrameError` naming the offset. Ranges checked besides the lengths: the sample index lies in
[0, 2**53) (exact as a JSON number), and the frame's samples in millivolts are finite and
within +/-`MAX_ABS_MV` (a gain of 1e-30 would make them 1e30 mV, infinite in float32, and
an Infinity in the station's JSON); how far the index may jump from the bed's last frame is
the worker's check (edge_ecg.ward.sequence).

Frame duration is the ward's main cost knob: every frame is a JetStream message stored,
acknowledged, delivered and decoded, and a processor feed call with per-call overhead. 0.5 s
frames cost the whole ward (broker, worker, publisher, station) about half the CPU of 0.1 s
frames (bench/ward.py); the price is latency: a sample waits up to one frame duration at the
bedside before its frame leaves, which the bench adds to its sample-to-event figure.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

from edge_ecg.errors import FrameError
from edge_ecg.signal.chunk import Chunk

MAGIC = b"EWF1"
_HEAD = struct.Struct("<4sBBBBHQqqd")      # 40 bytes
_CRC = struct.Struct("<I")
MAX_LEADS = 16
MAX_FS_HZ = 20_000.0
MAX_INDEX = 1 << 53                   # indices beyond are not exact as JSON numbers (doubles)
# An ECG is millivolts; 10 kV at the electrodes is no ECG but a broken gain (a full-scale
# int32 count at >= 215 counts/mV stays inside). Far below the float32 limit (3e38), so
# filters and squared powers downstream stay finite.
MAX_ABS_MV = 1e7
DEFAULT_FRAME_S = 0.5                 # seconds of signal per frame (replays; see above)
_FLAG_DISCONTINUITY = 1
_PRINTABLE = bytes(range(0x21, 0x7F))  # lead names: printable ASCII, no space


def _width(samples: np.ndarray) -> int:
    if samples.size == 0:
        return 2
    lo, hi = int(samples.min()), int(samples.max())
    for w in (2, 3, 4):
        if -(1 << (8 * w - 1)) <= lo and hi <= (1 << (8 * w - 1)) - 1:
            return w
    raise FrameError(f"samples {lo}..{hi} do not fit in int32 counts")


def encode(chunk: Chunk, seq: int) -> bytes:
    """`chunk` as one bus frame numbered `seq` (the publisher's frame counter)."""
    smp = np.asarray(chunk.samples)
    if smp.dtype.kind not in "iu":
        raise FrameError(f"the bus carries integer ADC counts; this source gives {smp.dtype} "
                         "samples (quantise them with a gain first)")
    n, n_leads = smp.shape
    if not 0 < n_leads <= MAX_LEADS or not 0 < n <= 0xFFFF:
        raise FrameError(f"a frame holds 1..{MAX_LEADS} leads and 1..65535 samples, got "
                         f"{n_leads} x {n}: use shorter chunks")
    w = _width(smp)
    names = b"".join(bytes([len(b)]) + b for b in (ld.encode("ascii") for ld in chunk.leads))
    head = _HEAD.pack(MAGIC, _FLAG_DISCONTINUITY if chunk.discontinuity else 0, w, n_leads, 0, n,
                      int(seq), int(chunk.index), int(chunk.device_time_us), float(chunk.fs_hz))
    gain = np.asarray(chunk.gain, dtype="<f4").tobytes()
    base = np.asarray(chunk.baseline, dtype="<f4").tobytes()
    a = smp.astype("<i4", copy=False).reshape(-1)
    if w == 4:
        payload = a.tobytes()
    elif w == 2:
        payload = a.astype("<i2").tobytes()
    else:   # int24: the low three bytes of each little-endian int32
        payload = a.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    body = head + names + gain + base + payload
    return body + _CRC.pack(zlib.crc32(body))


def decode(data: bytes) -> tuple[Chunk, int]:
    """`(chunk, seq)` from one bus frame; `FrameError` (with the offset) when malformed."""
    data = bytes(data)
    if len(data) < _HEAD.size + _CRC.size:
        raise FrameError(f"frame of {len(data)} bytes is shorter than the {_HEAD.size + 4}-byte "
                         "header and CRC")
    magic, flags, w, n_leads, _, n, seq, index, dev_us, fs = _HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise FrameError(f"bad magic {magic!r} at offset 0 (expected {MAGIC!r}): not a ward frame")
    (crc,) = _CRC.unpack_from(data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise FrameError(f"CRC mismatch at offset {len(data) - 4} ({len(data)}-byte frame, "
                         f"seq {seq})")
    if w not in (2, 3, 4):
        raise FrameError(f"sample width {w} at offset 5 is not 2, 3 or 4 bytes")
    if not 0 < n_leads <= MAX_LEADS or n == 0:
        raise FrameError(f"{n_leads} leads x {n} samples at offset 6: out of range")
    if not (math.isfinite(fs) and 0 < fs <= MAX_FS_HZ):
        raise FrameError(f"sample rate {fs} Hz at offset 32 is out of range")
    if not 0 <= index < MAX_INDEX - n:
        raise FrameError(f"sample index {index} at offset 18 is outside [0, 2**53): not a "
                         "sample clock")
    off = _HEAD.size
    leads = []
    for _ in range(n_leads):
        if off >= len(data):
            raise FrameError(f"lead names run past the frame end at offset {off}")
        k = data[off]
        name = data[off + 1:off + 1 + k]
        if len(name) != k or k == 0 or name.translate(None, _PRINTABLE):
            raise FrameError(f"lead name at offset {off} is empty, truncated or not printable ASCII")
        leads.append(name.decode("ascii"))
        off += 1 + k
    need = off + 8 * n_leads + n * n_leads * w + 4
    if len(data) != need:
        raise FrameError(f"frame is {len(data)} bytes; its header (seq {seq}, {n_leads} leads x "
                         f"{n} samples x {w} bytes) says {need}")
    # a dozen numbers: checked as Python floats (numpy's per-call overhead was ~1/5 of a
    # frame's decoding)
    scale = struct.unpack_from(f"<{2 * n_leads}f", data, off)
    if not all(map(math.isfinite, scale)) or 0.0 in scale[:n_leads]:
        raise FrameError(f"gain/baseline at offset {off} must be finite with gain != 0")
    gain = np.frombuffer(data, "<f4", n_leads, off).astype(np.float32)
    base = np.frombuffer(data, "<f4", n_leads, off + 4 * n_leads).astype(np.float32)
    off += 8 * n_leads
    m = n * n_leads
    if w == 4:
        a = np.frombuffer(data, "<i4", m, off).astype(np.int32)
    elif w == 2:
        a = np.frombuffer(data, "<i2", m, off).astype(np.int32)
    else:   # each sample's 3 bytes as the top 3 of an int32, shifted down: sign-extended
        b = np.zeros((m, 4), np.uint8)
        b[:, 1:] = np.frombuffer(data, np.uint8, 3 * m, off).reshape(m, 3)
        a = b.view("<i4").reshape(m) >> 8
    # the largest |(count - baseline) / gain| in float64: the frame in mV must be finite and
    # physiological in scale (see MAX_ABS_MV). No sample of a w-byte frame can pass
    # (2**(8w-1) + |baseline|) / |gain| (rounding is monotonic, so neither can its computed
    # value): under the limit (any ECG's gain and width), the samples need no scan.
    top = float(1 << (8 * w - 1))
    if max((top + abs(bv)) / abs(gv) for gv, bv in zip(scale[:n_leads], scale[n_leads:])) \
            > MAX_ABS_MV:
        span = np.abs(a.reshape(n, n_leads).astype(np.float64)
                      - base.astype(np.float64)).max(axis=0)
        peak = float((span / np.abs(gain.astype(np.float64))).max())
        if not peak <= MAX_ABS_MV:
            raise FrameError(f"gain/baseline at offset {off - 8 * n_leads} make a sample "
                             f"{peak:.3g} mV (limit {MAX_ABS_MV:g} mV): the device's gain is "
                             "wrong; refused")
    chunk = Chunk(index=int(index), seq=int(seq), device_time_us=int(dev_us),
                  samples=a.reshape(n, n_leads), gain=gain, baseline=base, leads=tuple(leads),
                  fs_hz=float(fs), discontinuity=bool(flags & _FLAG_DISCONTINUITY))
    return chunk, int(seq)
