"""The ward's stream work alone: beds fed through `run_tick` as a worker feeds them, with the
beats of a tick delineated as one shared batch and, beside it in the same run, each bed's
beats delineated on their own (the code before 2026-12-06, late). No broker, no I/O: what
the runtime costs a worker per bed-second, and proof that both give the same events.

    python bench/ward_ticks.py                 # 24 beds x 30 s, 3 alternating rounds: ~2 min
    python bench/ward_ticks.py --split         # the beds in one tick, or split as over 2 workers

The beds are bench/ward.py's (half PTB-XL, half synthetic, 12 leads at 500 Hz, 0.5-s frames);
one tick per frame period, every bed in it. CPU time of this process, min and median of the
rounds; events compared field by field (latency, a wall clock, left out). numpy's BLAS and
OpenMP pools one thread, as in a worker (figures before 2026-12-07 had the default pool).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# as a worker runs (`edge-ecg ward worker` sets it before numpy loads): with numpy's default
# BLAS pool, its idle threads' spinning counted in this process's CPU time
from edge_ecg.runtime.blas_threads import one_thread_per_process  # noqa: E402

one_thread_per_process()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--beds", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=30.0, help="signal per bed")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of both forms")
    ap.add_argument("--split", action="store_true",
                    help="instead: every bed in one tick, against two halves of the beds in "
                         "ticks of their own (as two workers serve them), and each half "
                         "over two ticks a frame period (frames arriving apart)")
    args = ap.parse_args()

    import ward as ward_bench

    import edge_ecg.ward.batching as batching
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.signal.delineate import _Batch

    _, chunks, _ = ward_bench.make_feeds(args.beds, args.seconds)
    shared = batching.InvariantBackend(open_backend(ward_bench.REPO / "edge_ecg" / "assets"
                                                    / "default_bundle"))
    shared_rows = batching._BedRows

    def run(together: bool):
        # each bed's rows of a shared batch, or (as before) a batch of its own beats
        batching._BedRows = shared_rows if together else _Batch
        try:
            t0 = time.process_time()
            events = feed(chunks, shared, [list(chunks)])
            return time.process_time() - t0, events
        finally:
            batching._BedRows = shared_rows

    if args.split:
        return split(args, chunks, shared)
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


def feed(chunks: dict, shared, ticks: list[list[str]]) -> dict:
    """Every bed's frames through fresh processors, frame period by frame period: in each, one
    `run_tick` per list of beds in `ticks`. Each bed's events (latency, a wall clock, left
    out)."""
    import edge_ecg.ward.batching as batching
    from edge_ecg.runtime.stream_processor import StreamProcessor

    procs = {b: StreamProcessor(batching.BedBackend(shared)) for b in chunks}
    events = {b: [] for b in chunks}
    for i in range(max(len(c) for c in chunks.values())):
        for tick in ticks:
            work = {b: (lambda p=procs[b], c=chunks[b][i]: p.feed(c))
                    for b in tick if i < len(chunks[b])}
            for b, r in batching.run_tick(shared, work).items():
                if isinstance(r, Exception):
                    raise r
                events[b] += [{k: v for k, v in e.to_json().items() if k != "latency_ms"}
                              for e in r]
    return events


def split(args, chunks, shared) -> int:
    """CPU a bed-second with every bed in each tick, or the beds in groups with ticks of their
    own: what a second worker's smaller batches cost, apart from its process."""
    beds = list(chunks)
    # the ticks of one frame period (a worker's ticks one after the other)
    forms = {"every bed in one tick": [beds],
             "2 halves, a tick each": [beds[0::2], beds[1::2]],
             "2 halves, 2 ticks each": [beds[0::4], beds[2::4], beds[1::4], beds[3::4]]}

    inner, calls = shared.inner, []
    counted = inner.run

    def count(inputs):                          # the batches the model really runs
        calls.append(next(iter(inputs.values())).shape[0])
        return counted(inputs)

    def run(ticks):
        calls.clear()
        t0 = time.process_time()
        feed(chunks, shared, ticks)
        return (time.process_time() - t0) / (len(beds) * args.seconds) * 1e3

    inner.run = count
    try:
        run(forms["every bed in one tick"])      # warm-up
        ms, batches = {k: [] for k in forms}, {}
        for _ in range(args.rounds):
            for k, ticks in forms.items():
                ms[k].append(run(ticks))
                batches[k] = (len(calls), sum(calls))
    finally:
        inner.run = counted
    for k, v in ms.items():
        print(f"{k:25s} {min(v):5.2f} ms CPU a bed-second (median {statistics.median(v):.2f}; "
              f"rounds {', '.join(f'{m:.2f}' for m in v)}); {batches[k][0]} model calls, "
              f"{batches[k][1]} rows (a row due alone runs beside a copy of itself)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
