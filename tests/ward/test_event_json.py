"""A worker's event bytes: the encoder made once writes what json.dumps wrote, and a
non-finite number still goes out as null, counted."""

from __future__ import annotations

import json

from ward_reference import source_chunks

from edge_ecg.runtime.stream_processor import StreamProcessor
from edge_ecg.ward.worker import BedCounters, Worker


class _Bed:
    def __init__(self) -> None:
        self.counters = BedCounters()


def test_event_bytes_equal_json_dumps_and_nonfinite_goes_as_null(backend):
    p = StreamProcessor(backend)
    events = [e.to_json() for c in source_chunks("synth:atrial_fibrillation?seconds=14&seed=5")
              for e in p.feed(c)]
    assert len({e["type"] for e in events}) >= 2
    b = _Bed()
    for n, d in enumerate(events):
        d["ward"] = {"id": f"icu.b1.{d['type']}.{d['index']}", "n": n + 1, "unit": "icu",
                     "bed": "b1", "worker": "w", "bundle": "x", "frame_sent": 1.7e9 + n / 3,
                     "frame_s": 0.5}
        assert Worker._json(b, d) == json.dumps(d, separators=(",", ":"),
                                                allow_nan=False).encode()
    assert b.counters.nonfinite == 0
    d = dict(events[0], rr_ms=float("inf"), extra={"x": [1.0, float("nan")]})
    out = json.loads(Worker._json(b, d))
    assert out["rr_ms"] is None and out["extra"] == {"x": [1.0, None]}
    assert b.counters.nonfinite == 2
