"""Wire-protocol decoder throughput: frames/s and multiples of real time, with peers.

    python bench/bridge.py [--seconds 60] [--repeats 7]

For 8 and 12 leads at 500 Hz, int16 and int24, 10 samples per frame (50 frames/s), it decodes
`--seconds` of stream with `StreamDecoder` fed three ways (the whole buffer at once, 4096-byte
reads as a serial port delivers them, one frame per call) and, as the peer, a straightforward
decoder that unpacks every sample with `struct` (the per-sample Python loop the style guide
forbids on hot paths), plus the same stream with 1% of frames corrupted. Medians over repeats;
real time = frames/s / 50. Then the virtual monitor's pacing through a real pseudo-terminal
and SerialSource: how late chunks arrive against the absolute schedule, and the drift.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.protocol import SampleFormat, encode_data
from profiles.machine import this_machine  # noqa: E402

FS_HZ, SPF = 500, 10
FRAMES_PER_S = FS_HZ / SPF


def make_stream(n_leads: int, fmt: SampleFormat, seconds: float, corrupt: float = 0.0):
    rng = np.random.default_rng(0)
    n_frames = int(seconds * FRAMES_PER_S)
    x = rng.integers(-3000, 3000, size=(n_frames, SPF, n_leads))
    frames = [encode_data(k, int(k * SPF * 1e6 / FS_HZ), x[k], fmt) for k in range(n_frames)]
    if corrupt:
        for k in rng.choice(n_frames, size=int(corrupt * n_frames), replace=False):
            b = bytearray(frames[k])
            b[30] ^= 0x10
            frames[k] = bytes(b)
    return frames, b"".join(frames)


def naive_decode(stream: bytes) -> int:
    """Peer: find sync, check CRC, unpack every sample with struct in a Python loop."""
    pos, n, count = 0, len(stream), 0
    out = []
    while True:
        i = stream.find(b"\xA5\x5A", pos)
        if i < 0 or i + 17 > n:
            break
        body_len = struct.unpack_from("<H", stream, i + 6)[0]
        end = i + 8 + body_len
        if end + 4 > n:
            break
        if zlib.crc32(stream[i + 2:end]) != struct.unpack_from("<I", stream, end)[0]:
            pos = i + 1
            continue
        _, _, n_leads, spf, fmt = struct.unpack_from("<HIBBB", stream, i + 8)
        p = i + 17
        samples = []
        for _ in range(n_leads * spf):
            if fmt == 2:
                samples.append(struct.unpack_from("<h", stream, p)[0])
            else:
                v = stream[p] | stream[p + 1] << 8 | stream[p + 2] << 16
                samples.append(v - (1 << 24) if v & 0x800000 else v)
            p += fmt
        out.append(samples)
        count += 1
        pos = end + 4
    return count


def run_decoder(frames: list[bytes], stream: bytes, how: str) -> int:
    dec = StreamDecoder()
    got = 0
    if how == "whole":
        got = len(dec.feed(stream))
    elif how == "4096 B reads":
        for i in range(0, len(stream), 4096):
            got += len(dec.feed(stream[i:i + 4096]))
    else:
        for f in frames:
            got += len(dec.feed(f))
    return got


def pacing(speed: float, seconds: float) -> tuple[float, float, float]:
    """Virtual monitor -> pty -> SerialSource: chunk lateness against the absolute schedule.

    Returns (median lateness ms, max lateness ms, drift ms: lateness of the last chunk minus
    the first). Lateness = arrival - (time its last sample was due), on a clock whose origin is
    the first chunk's arrival, so it is relative to the first chunk and can be negative.
    """
    from firmware_bridge.emulator import VirtualMonitor
    from firmware_bridge.serial_source import SerialSource

    t = np.arange(int(seconds * FS_HZ)) / FS_HZ
    x = np.stack([np.sin(2 * np.pi * (k + 1) * t) for k in range(8)], axis=1)
    leads = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    late = []
    with VirtualMonitor(x, FS_HZ, leads, speed=speed, seconds=seconds) as vm:
        with SerialSource(vm.path) as src:
            t0 = None
            while True:
                c = src.read(0.2)
                now = time.perf_counter()
                if c is None:
                    if vm.finished.is_set():
                        break
                    continue
                due = c.end / FS_HZ / speed
                if t0 is None:
                    t0 = now - due        # the schedule's origin, as seen from the host
                late.append((now - t0 - due) * 1000)
    return statistics.median(late), max(late), late[-1] - late[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="stream length per case")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--pacing-seconds", type=float, default=5.0,
                    help="wall seconds of each virtual-monitor pacing run")
    args = ap.parse_args()
    print(f"machine: {this_machine().summary()}")
    print(f"stream: {args.seconds:g} s per case at {FS_HZ} Hz, {SPF} samples/frame "
          f"({FRAMES_PER_S:g} frames/s real time); medians of {args.repeats} repeats\n")
    head = (f"{'leads':>5} {'format':>6} {'decoder':<30} {'frames/s':>12} {'x real time':>12} "
            f"{'vs peer':>8}")
    print(head)
    print("-" * len(head))
    for n_leads in (8, 12):
        for fmt in (SampleFormat.INT16, SampleFormat.INT24):
            frames, stream = make_stream(n_leads, fmt, args.seconds)
            cframes, cstream = make_stream(n_leads, fmt, args.seconds, corrupt=0.01)
            n = len(frames)
            cases = {
                "StreamDecoder, whole": lambda f=frames, s=stream: run_decoder(f, s, "whole"),
                "StreamDecoder, 4096 B reads":
                    lambda f=frames, s=stream: run_decoder(f, s, "4096 B reads"),
                "StreamDecoder, 1 frame per call":
                    lambda f=frames, s=stream: run_decoder(f, s, "1 frame per call"),
                "StreamDecoder, 4096 B, 1% bad":
                    lambda f=cframes, s=cstream: run_decoder(f, s, "4096 B reads"),
                "peer: struct per sample": lambda s=stream: naive_decode(s),
            }
            expect = {name: n for name in cases}
            expect["StreamDecoder, 4096 B, 1% bad"] = n - int(0.01 * n)
            # Round-robin repeats: a noisy neighbour slows every variant alike.
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.repeats):
                for name, fn in cases.items():
                    t = time.perf_counter()
                    got = fn()
                    times[name].append(time.perf_counter() - t)
                    assert got == expect[name], (name, got)
            fps = {name: n / statistics.median(ts) for name, ts in times.items()}
            peer_fps = fps["peer: struct per sample"]
            for name, v in fps.items():
                print(f"{n_leads:>5} {fmt.name.lower():>6} {name:<30} {v:>12,.0f} "
                      f"{v / FRAMES_PER_S:>12,.0f} {v / peer_fps:>7.1f}x")
    print(f"\nvirtual monitor pacing over a real pty (8 leads int24, {SPF}-sample frames):")
    print(f"{'speed':>6} {'signal s':>9} {'median late ms':>15} {'max late ms':>12} "
          f"{'drift ms':>9}")
    for speed, secs in ((1.0, args.pacing_seconds), (10.0, 10 * args.pacing_seconds)):
        med, worst, drift = pacing(speed, secs)
        print(f"{speed:>6g} {secs:>9g} {med:>15.2f} {worst:>12.2f} {drift:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
