"""The ward's stream work alone: beds fed through `run_tick` as a worker feeds them, with the
beats of a tick delineated as one shared batch and, beside it in the same run, each bed's
beats delineated on their own (the code before 2026-12-06, late). No broker, no I/O: what
the runtime costs a worker per bed-second, and proof that both give the same events.

    python bench/ward_ticks.py                 # 24 beds x 30 s, 3 alternating rounds: ~2 min

The beds are bench/ward.py's (half PTB-XL, half synthetic, 12 leads at 500 Hz, 0.5-s frames);
one tick per frame period, every bed in it. CPU time of this process, min and median of the
rounds; events compared field by field (latency, a wall clock, left out).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--beds", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=30.0, help="signal per bed")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of both forms")
    args = ap.parse_args()

    import ward as ward_bench

    import edge_ecg.ward.batching as batching
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.stream_processor import StreamProcessor
    from edge_ecg.signal.delineate import _Batch

    _, chunks, _ = ward_bench.make_feeds(args.beds, args.seconds)
    shared = batching.InvariantBackend(open_backend(ward_bench.REPO / "edge_ecg" / "assets"
                                                    / "default_bundle"))
    shared_rows = batching._BedRows

    def run(together: bool):
        # each bed's rows of a shared batch, or (as before) a batch of its own beats
        batching._BedRows = shared_rows if together else _Batch
        try:
            procs = {b: StreamProcessor(batching.BedBackend(shared)) for b in chunks}
            events = {b: [] for b in chunks}
            t0 = time.process_time()
            for i in range(max(len(c) for c in chunks.values())):
                work = {b: (lambda p=procs[b], c=cs[i]: p.feed(c))
                        for b, cs in chunks.items() if i < len(cs)}
                for b, r in batching.run_tick(shared, work).items():
                    if isinstance(r, Exception):
                        raise r
                    events[b] += [{k: v for k, v in e.to_json().items() if k != "latency_ms"}
                                  for e in r]
            return time.process_time() - t0, events
        finally:
            batching._BedRows = shared_rows

    run(True)                                   # warm-up: imports, first inferences
    cpu = {True: [], False: []}
    same = True
    for _ in range(args.rounds):
        t_own, ev_own = run(False)
        t_shared, ev_shared = run(True)
        cpu[False].append(t_own)
        cpu[True].append(t_shared)
        same &= ev_own == ev_shared
    bed_s = args.beds * args.seconds
    for together, name in ((False, "each bed delineates its own beats"),
                           (True, "a tick delineates its beds' beats together")):
        ms = [t / bed_s * 1e3 for t in cpu[together]]
        print(f"{name:45s} {min(ms):5.2f} ms CPU a bed-second (median {statistics.median(ms):.2f}; "
              f"rounds {', '.join(f'{m:.2f}' for m in ms)})")
    n = sum(len(v) for v in ev_shared.values())
    print(f"events: {n}, identical in both forms: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
