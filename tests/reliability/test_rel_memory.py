"""A bedside runtime runs for days: the state it keeps must not grow with the stream length.

The soak benchmark (bench/soak.py) measures RSS over 24 h of signal; this test is its quick,
deterministic counterpart: the Python objects a StreamProcessor retains (everything reachable
from it except the compiled model) after 1 minute and after 3 minutes of signal fed in
device-sized chunks (40 ms) must be the same size, within a small allowance.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from reliability_harness import ecg_mv

from edge_ecg.runtime.stream_processor import StreamProcessor
from edge_ecg.signal.chunk import Chunk

FS = 500.0
CHUNK = 20                      # 40 ms at 500 Hz: a serial device's frame rate


def retained_bytes(root, skip: tuple) -> int:
    """Bytes of the objects reachable from `root` (containers, arrays, instances), once each."""
    seen, total, stack = set(), 0, [root]
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, (*skip, type)):
            continue
        seen.add(id(o))
        total += o.nbytes if isinstance(o, np.ndarray) else sys.getsizeof(o, 0)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)) or type(o).__name__ == "deque":
            stack.extend(o)
        elif hasattr(o, "__dict__"):
            stack.append(vars(o))
        elif hasattr(o, "__slots__"):
            stack.extend(getattr(o, s) for s in o.__slots__ if hasattr(o, s))
    return total


def test_processor_state_does_not_grow_with_stream_length(rel_backend):
    x = ecg_mv(60.0, seed=3, leads=("I", "II"))
    counts = np.rint(x * 1000).astype(np.int32)
    proc = StreamProcessor(rel_backend)
    gain, base = np.full(2, 1000.0), np.zeros(2, np.int64)
    skip = (type(rel_backend),)

    def feed(minutes: int, pos: int) -> int:
        for _ in range(int(minutes * 60 * FS) // CHUNK):
            a = pos % counts.shape[0]
            proc.feed(Chunk(index=pos, seq=0, device_time_us=0, samples=counts[a:a + CHUNK],
                            gain=gain, baseline=base, leads=("I", "II"), fs_hz=FS))
            pos += CHUNK
        return pos

    pos = feed(1, 0)
    size_1min = retained_bytes(proc, skip)
    feed(2, pos)
    size_3min = retained_bytes(proc, skip)
    # 3 min of signal at a 1-s hop: up to 171 windows of 10 s; nearly all must be predicted.
    assert proc.summary.predictions > 150
    growth = size_3min - size_1min
    assert growth < 64 * 1024, f"retained state grew {growth / 1024:.0f} KiB in 2 min of signal"
