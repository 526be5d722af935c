"""Incremental host decoder: bytes in any chunking -> the same messages, loss counted.

`StreamDecoder.feed(data)` returns the complete messages found so far. It scans for the sync
word, checks the header for plausibility (version, type, reserved byte, body length consistent
with lead count x samples x format), waits for the whole frame, and checks the CRC-32. On a
bad candidate it steps one byte past the sync word and scans again, so a corrupted or truncated
frame costs only itself. A sample reaches the caller only from a frame whose CRC matched.

Counters (`stats()`): frames, crc_errors, lost_frames (from 16-bit sequence gaps, wraparound
handled), duplicate_frames, seq_resets, clock_jumps, discarded_bytes, bytes_in. Bytes add up:
bytes_in == bytes in accepted messages + discarded_bytes + pending().
"""

from __future__ import annotations

import struct

import numpy as np

from edge_ecg.errors import FrameError
from firmware_bridge.protocol import (
    ACK_BODY,
    COMMAND_BODY,
    CRC_LEN,
    DATA_HEADER,
    DATA_HEADER_LEN,
    HEADER,
    HEADER_LEN,
    MAX_BODY_LEN,
    MAX_LEADS,
    SEQ_MODULUS,
    SYNC,
    TIMESTAMP_MODULUS,
    VERSION,
    Ack,
    AckStatus,
    CommandMsg,
    DataFrame,
    DeviceInfo,
    Message,
    MsgType,
    SampleFormat,
    crc32,
    parse_device_info,
    unpack_samples,
)

_SYNC0 = SYNC[0]
_CRC = struct.Struct("<I")
_TYPES = {int(t) for t in MsgType}
_FORMATS = {int(f): f for f in SampleFormat}
_MIN_BODY = {MsgType.DATA: DATA_HEADER_LEN + 2, MsgType.DEVICE_INFO: 12,
             MsgType.COMMAND: COMMAND_BODY.size, MsgType.ACK: ACK_BODY.size}
_MAX_BODY = {MsgType.DATA: MAX_BODY_LEN, MsgType.DEVICE_INFO: MAX_BODY_LEN,
             MsgType.COMMAND: 64, MsgType.ACK: ACK_BODY.size}


class StreamDecoder:
    """Stateful byte-stream decoder; the only state is the pending bytes and the counters."""

    def __init__(self, clock_tolerance_us: float | None = None) -> None:
        self._buf = bytearray()
        self.frames = 0
        self.messages = 0
        self.crc_errors = 0
        self.lost_frames = 0
        self.duplicate_frames = 0
        self.seq_resets = 0
        self.clock_jumps = 0
        self.discarded_bytes = 0
        self.bytes_in = 0
        self.bytes_accepted = 0
        self.malformed_messages = 0
        self.errors: list[str] = []       # the latest malformed-message reasons, newest last
        self.info: DeviceInfo | None = None
        self._clock_tol = clock_tolerance_us
        self._last_seq: int | None = None
        self._unwrapped = 0
        self._last_ts: int | None = None
        self._last_spf = 0
        self._last_ts_unwrapped = 0

    # -- public ---------------------------------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Append `data`; return every complete message now decodable, in stream order."""
        self.bytes_in += len(data)
        buf = self._buf
        buf += data
        mv = memoryview(buf)
        found: list[tuple] = []          # (kind, pos, total, extra)
        pos, n = 0, len(buf)
        try:
            while True:
                i = buf.find(SYNC, pos)
                if i < 0:
                    keep = 1 if n > pos and buf[n - 1] == _SYNC0 else 0   # half a sync word
                    self.discarded_bytes += n - pos - keep
                    pos = n - keep
                    break
                self.discarded_bytes += i - pos
                pos = i
                if n - pos < HEADER_LEN:
                    break
                _, version, mtype, flags, reserved, body_len = HEADER.unpack_from(buf, pos)
                if (version != VERSION or mtype not in _TYPES or reserved != 0
                        or not _MIN_BODY[mtype] <= body_len <= _MAX_BODY[mtype]):
                    self._skip(1)
                    pos += 1
                    continue
                layout = None
                if mtype == MsgType.DATA:
                    if n - pos < HEADER_LEN + DATA_HEADER_LEN:
                        break
                    seq, ts, n_leads, spf, fmt = DATA_HEADER.unpack_from(buf, pos + HEADER_LEN)
                    if (fmt not in _FORMATS or not 1 <= n_leads <= MAX_LEADS or spf < 1
                            or body_len != DATA_HEADER_LEN + n_leads * spf * fmt):
                        self._skip(1)
                        pos += 1
                        continue
                    layout = (seq, ts, n_leads, spf, _FORMATS[fmt], flags)
                total = HEADER_LEN + body_len + CRC_LEN
                if n - pos < total:
                    break
                end = pos + HEADER_LEN + body_len
                if crc32(mv[pos + 2:end]) != _CRC.unpack_from(buf, end)[0]:
                    self.crc_errors += 1
                    self._skip(1)
                    pos += 1
                    continue
                found.append((mtype, pos, total, layout))
                self.bytes_accepted += total
                pos += total
            messages = self._materialise(mv, found)
        finally:
            mv.release()
            del buf[:pos]
        return messages

    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def flush(self) -> None:
        """Drop pending bytes (link reset): they count as discarded."""
        self.discarded_bytes += len(self._buf)
        self._buf.clear()

    def stats(self) -> dict[str, int]:
        return {
            "frames": self.frames, "messages": self.messages, "crc_errors": self.crc_errors,
            "lost_frames": self.lost_frames, "duplicate_frames": self.duplicate_frames,
            "seq_resets": self.seq_resets, "clock_jumps": self.clock_jumps,
            "discarded_bytes": self.discarded_bytes, "bytes_in": self.bytes_in,
            "malformed_messages": self.malformed_messages,
        }

    def timestamp_unwrapped(self) -> int:
        """Device time of the last accepted frame, microseconds, unwrapped past 2**32."""
        return self._last_ts_unwrapped

    # -- internals ------------------------------------------------------------------------
    def _skip(self, k: int) -> None:
        self.discarded_bytes += k

    def _materialise(self, mv: memoryview, found: list[tuple]) -> list[Message]:
        """Turn accepted frame positions into messages; payloads unpacked in batches."""
        out: list[Message] = []
        k = 0
        while k < len(found):
            mtype, pos, total, layout = found[k]
            if mtype != MsgType.DATA:
                try:
                    body = bytes(mv[pos + HEADER_LEN:pos + total - CRC_LEN])
                    out.append(self._control(mtype, body))
                except FrameError as exc:   # CRC-valid but malformed: a firmware bug, reported
                    self.malformed_messages += 1
                    self.errors = (self.errors + [f"stream byte {self.bytes_in}: {exc}"])[-10:]
                k += 1
                continue
            # A run of DATA frames with one layout: one numpy call for all their payloads.
            j = k + 1
            while (j < len(found) and found[j][0] == MsgType.DATA
                   and found[j][3][2:5] == layout[2:5]):
                j += 1
            _, _, n_leads, spf, fmt, _ = layout
            start = HEADER_LEN + DATA_HEADER_LEN
            payload = b"".join(mv[p + start:p + t - CRC_LEN] for _, p, t, _ in found[k:j])
            samples = unpack_samples(payload, n_leads, fmt).reshape(j - k, spf, n_leads)
            for r in range(k, j):
                frame = self._data(found[r][3], samples[r - k])
                if frame is not None:
                    out.append(frame)
            k = j
        self.messages += len(out)
        return out

    def _data(self, layout: tuple, samples: np.ndarray) -> DataFrame | None:
        seq, ts, _, _, fmt, flags = layout
        if self._last_seq is None:
            self._unwrapped = seq
            self._last_ts_unwrapped = ts
        else:
            delta = (seq - self._last_seq) % SEQ_MODULUS
            if delta == 0:
                self.duplicate_frames += 1
                return None
            if delta >= SEQ_MODULUS // 2:
                # Backwards: the device restarted its counter. Continue monotonically.
                self.seq_resets += 1
                delta = 1
            else:
                self.lost_frames += delta - 1
            self._unwrapped += delta
            dts = (ts - self._last_ts) % TIMESTAMP_MODULUS
            if dts >= TIMESTAMP_MODULUS // 2:
                dts -= TIMESTAMP_MODULUS          # clock went backwards
            self._last_ts_unwrapped += dts
            self._check_clock(delta, dts, self._last_spf)
        self._last_seq, self._last_ts, self._last_spf = seq, ts, samples.shape[0]
        self.frames += 1
        return DataFrame(seq=seq, seq_unwrapped=self._unwrapped, timestamp_us=ts,
                         time_us=self._last_ts_unwrapped, flags=flags, fmt=fmt, samples=samples)

    def _check_clock(self, dseq: int, dts_us: int, spf: int) -> None:
        """Count a clock jump when device time disagrees with the sequence count.

        `spf` is the previous frame's length: lost frames are assumed to have had it.
        Needs the sample rate (from DEVICE_INFO). Tolerance: half a frame, at least 1 ms, so
        a device clock that rounds to microseconds never trips it.
        """
        if self.info is None:
            return
        frame_us = spf * 1e6 / self.info.fs_hz
        tol = self._clock_tol if self._clock_tol is not None else max(1000.0, 0.5 * frame_us)
        if abs(dts_us - dseq * frame_us) > tol:
            self.clock_jumps += 1

    def _control(self, mtype: int, body: bytes) -> Message:
        if mtype == MsgType.DEVICE_INFO:
            info = parse_device_info(body)
            self.info = info
            return info
        if mtype == MsgType.COMMAND:
            cmd, token = COMMAND_BODY.unpack_from(body, 0)
            return CommandMsg(command=cmd, token=token, args=body[COMMAND_BODY.size:])
        cmd, token, status = ACK_BODY.unpack_from(body, 0)
        try:
            st = AckStatus(status)
        except ValueError:
            raise FrameError(f"ACK for command {cmd} carries unknown status {status}") from None
        return Ack(command=cmd, token=token, status=st)
