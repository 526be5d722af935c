"""Incremental host decoder: bytes in any chunking -> the same messages, loss counted.

`StreamDecoder.feed(data)` returns the complete messages found so far. It scans for the sync
word, checks the header for plausibility (version, type, reserved byte, body length consistent
with lead count x samples x format), waits for the whole frame, and checks the CRC-32. On a
bad candidate it steps one byte past the sync word and scans again, so a corrupted or truncated
frame costs only itself. A sample reaches the caller only from a frame whose CRC matched.

Counters (`stats()`): frames, crc_errors, lost_frames (from 16-bit sequence gaps, wraparound
handled), duplicate_frames, seq_resets, reset_gap_frames, clock_jumps, discarded_bytes,
bytes_in, malformed_messages, refused_infos. Bytes add up: bytes_in == bytes in accepted
messages + discarded_bytes + pending().

A sequence reset (device reboot) is never joined: `seq_unwrapped` skips at least one frame
there (more when the device clock ran on and says how long the outage was), so a consumer
that indexes samples by `seq_unwrapped` sees a gap. A device clock that consistently runs at
another rate than DEVICE_INFO announces sets `rate_mismatch` (see `RATE_CHECK_FRAMES`); the
decoder only reports it, the source decides to stop.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from dataclasses import dataclass

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

log = logging.getLogger(__name__)

_SYNC0 = SYNC[0]
_CRC = struct.Struct("<I")
_TYPES = {int(t) for t in MsgType}
_FORMATS = {int(f): f for f in SampleFormat}
_MIN_BODY = {MsgType.DATA: DATA_HEADER_LEN + 2, MsgType.DEVICE_INFO: 12,
             MsgType.COMMAND: COMMAND_BODY.size, MsgType.ACK: ACK_BODY.size}
_MAX_BODY = {MsgType.DATA: MAX_BODY_LEN, MsgType.DEVICE_INFO: MAX_BODY_LEN,
             MsgType.COMMAND: 64, MsgType.ACK: ACK_BODY.size}


# Rate check: the announced rate is contradicted when, over the last RATE_CHECK_FRAMES
# consecutive frame pairs (no reset, no new DEVICE_INFO between), the device clock ran at a
# rate more than RATE_TOLERANCE away from it (the aggregate and the newest pair), and every
# one of those pairs agrees with that measured rate within RATE_TOLERANCE. A single clock step (one outlier pair) never trips it;
# a firmware configured for another rate (250 Hz announced as 500 Hz) trips it after 8 frames
# (160 ms at 20 ms frames). 5% is far above crystal error (typically < 100 ppm) and above
# 1 ms timestamp quantisation over 20 ms frames; below it, an RR interval is off < 5%.
RATE_CHECK_FRAMES = 8
RATE_TOLERANCE = 0.05
# An older frame seen again at most this many frames back, at its own device time, is a
# duplicate (dropped, counted), not a reboot: a reboot restarts the device clock as well.
STALE_FRAMES = 16


@dataclass(frozen=True)
class RateMismatch:
    """The device clock contradicts the sample rate its DEVICE_INFO announced."""

    announced_hz: float
    measured_hz: float
    frames: int            # consecutive frame pairs the measurement spans


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
        self.reset_gap_frames = 0        # frames assumed missing at sequence resets
        self.clock_jumps = 0
        self.discarded_bytes = 0
        self.bytes_in = 0
        self.bytes_accepted = 0
        self.malformed_messages = 0
        self.refused_infos = 0           # CRC-valid DEVICE_INFOs that could not be used
        self.rate_mismatch: RateMismatch | None = None
        self._rate_pairs: deque[tuple[float, float]] = deque(maxlen=RATE_CHECK_FRAMES)
        self.errors: list[str] = []       # the latest malformed-message reasons, newest last
        self.info: DeviceInfo | None = None
        self._clock_tol = clock_tolerance_us
        self._last_seq: int | None = None
        self._unwrapped = 0
        self._last_ts: int | None = None
        self._last_spf = 0
        self._step_us = 0.0              # device time per frame over the last forward step
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
                    log.debug("CRC mismatch at stream byte %d: candidate frame skipped",
                              self.bytes_in - n + pos)
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
            "seq_resets": self.seq_resets, "reset_gap_frames": self.reset_gap_frames,
            "clock_jumps": self.clock_jumps,
            "discarded_bytes": self.discarded_bytes, "bytes_in": self.bytes_in,
            "malformed_messages": self.malformed_messages, "refused_infos": self.refused_infos,
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
                    if mtype == MsgType.DEVICE_INFO:
                        self.refused_infos += 1
                    self.errors = (self.errors + [f"stream byte {self.bytes_in}: {exc}"])[-10:]
                    log.warning("CRC-valid but malformed message skipped (a firmware bug): %s",
                                self.errors[-1])
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
        reset = False
        if self._last_seq is None:
            self._unwrapped = seq
            self._last_ts_unwrapped = ts
        else:
            delta = (seq - self._last_seq) % SEQ_MODULUS
            if delta == 0:
                self.duplicate_frames += 1
                return None
            dts = (ts - self._last_ts) % TIMESTAMP_MODULUS
            if dts >= TIMESTAMP_MODULUS // 2:
                dts -= TIMESTAMP_MODULUS          # clock went backwards
            back = SEQ_MODULUS - delta
            if delta >= SEQ_MODULUS // 2 and self._stale(back, dts):
                # An older frame again (a duplicate resent, or spliced in by corruption that
                # kept its CRC): a few frames back in sequence AND back in device time by as
                # much. A reboot restarts the clock too, which this never matches. Dropped.
                self.duplicate_frames += 1
                return None
            if delta >= SEQ_MODULUS // 2:
                # Backwards: the device restarted its counter (reboot). Never join the two
                # sides: skip at least one frame, more when the device clock says so.
                self.seq_resets += 1
                reset = True
                delta, dts = self._reset_gap(dts, self._last_spf)
                self.reset_gap_frames += delta - 1
                log.warning("frame sequence went back from %d to %d (device restart?): "
                            "%d frame(s) booked as a gap", self._last_seq, seq, delta - 1)
                self._rate_pairs.clear()
            else:
                self.lost_frames += delta - 1
                self._check_clock(delta, dts, self._last_spf)
                if dts > 0:   # device time per frame, for `_stale` before a DEVICE_INFO
                    self._step_us = dts / delta
            self._unwrapped += delta
            self._last_ts_unwrapped += dts
        self._last_seq, self._last_ts, self._last_spf = seq, ts, samples.shape[0]
        self.frames += 1
        return DataFrame(seq=seq, seq_unwrapped=self._unwrapped, timestamp_us=ts,
                         time_us=self._last_ts_unwrapped, flags=flags, fmt=fmt, samples=samples,
                         after_reset=reset)

    def _frame_us(self, spf: int) -> float | None:
        """Duration of `spf` samples at the announced rate; None without a usable rate."""
        if self.info is None or not self.info.fs_hz > 0:
            return None
        return spf * 1e6 / self.info.fs_hz

    def _stale(self, back: int, dts_us: int) -> bool:
        """Whether a frame `back` frames behind the last one, `dts_us` later in device time
        (negative: earlier), is that older frame again: at most `STALE_FRAMES` back and its
        timestamp exactly where that frame's was (within a quarter frame of jitter)."""
        frame_us = self._frame_us(self._last_spf) or self._step_us
        if not frame_us or not 0 < back <= STALE_FRAMES:
            return False
        return abs(dts_us + back * frame_us) <= 0.25 * frame_us

    def _reset_gap(self, dts_us: int, spf: int) -> tuple[int, int]:
        """Sequence step and device-time step to book across a sequence reset.

        The frames lost across a reboot are unknown from `seq`. When the device clock ran on
        (moved forward) and the rate is known, the outage is estimated from it; otherwise it
        is marked as the minimum, one frame. Either way at least one frame is skipped, so
        the signal on the two sides is never joined. Unwrapped device time keeps moving
        forward (a rebooted clock restarting at 0 would otherwise run it backwards).
        """
        frame_us = self._frame_us(spf)
        if frame_us is None:
            return 2, max(dts_us, 0)
        if dts_us > 0:
            est = min(round(dts_us / frame_us), SEQ_MODULUS // 2)
            if est >= 2:
                return est, dts_us
        return 2, round(2 * frame_us)

    def _check_clock(self, dseq: int, dts_us: int, spf: int) -> None:
        """Count a clock jump when device time disagrees with the sequence count, and test
        the announced rate against the device clock (`rate_mismatch`).

        `spf` is the previous frame's length: lost frames are assumed to have had it.
        Needs the sample rate (from DEVICE_INFO). Tolerance: half a frame, at least 1 ms, so
        a device clock that rounds to microseconds never trips it.
        """
        frame_us = self._frame_us(spf)
        info = self.info
        if frame_us is None or info is None:
            return
        expected_us = dseq * frame_us
        tol = self._clock_tol if self._clock_tol is not None else max(1000.0, 0.5 * frame_us)
        if abs(dts_us - expected_us) > tol:
            self.clock_jumps += 1
        pairs = self._rate_pairs
        pairs.append((dts_us, expected_us))           # maxlen: the oldest pair drops out
        if len(pairs) < RATE_CHECK_FRAMES or self.rate_mismatch is not None:
            return
        if abs(dts_us - expected_us) <= RATE_TOLERANCE * expected_us:
            return                        # this pair agrees with the announced rate: no verdict
        total_us = sum(d for d, _ in pairs)
        ratio = total_us / sum(e for _, e in pairs)       # device time per announced time
        if total_us <= 0 or abs(ratio - 1.0) <= RATE_TOLERANCE:
            return
        if all(abs(d / (e * ratio) - 1.0) <= RATE_TOLERANCE for d, e in pairs):
            self.rate_mismatch = RateMismatch(announced_hz=info.fs_hz,
                                              measured_hz=info.fs_hz / ratio,
                                              frames=len(pairs))
            log.warning("the device clock runs at %.4g Hz over %d frames, not the %.4g Hz "
                        "DEVICE_INFO announced", info.fs_hz / ratio, len(pairs), info.fs_hz)

    def _control(self, mtype: int, body: bytes) -> Message:
        if mtype == MsgType.DEVICE_INFO:
            info = parse_device_info(body)
            self.info = info
            self._rate_pairs.clear()          # a new announcement is tested afresh
            self.rate_mismatch = None
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


__all__ = ["RATE_CHECK_FRAMES", "RATE_TOLERANCE", "STALE_FRAMES", "RateMismatch", "StreamDecoder"]
