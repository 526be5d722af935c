"""A bed's state snapshot: its size, array by array, and the CPU to write and read it.

What a worker stores every `--snapshot` seconds of signal per bed (edge_ecg.ward.snapshot),
measured on bench/ward.py's beds (one PTB-XL, one synthetic, 12 leads at 500 Hz, 0.5-s
frames) after `--seconds` of signal through a processor, as a worker feeds them:

    python bench/ward_snapshot.py              # ~2 s

CPU time of this process, numpy's pools on one thread as in a worker; medians of `--repeat`.
The ward's share of it (broker and event loop, the put over TLS) is measured by switching
snapshots off: `python bench/ward.py --snapshot 1000` beside the default.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_ecg.runtime.blas_threads import one_thread_per_process  # noqa: E402

one_thread_per_process()


def blob_paths(node, path: str, out: dict) -> dict:
    """{blob index: (state path, shape, dtype, stored as ADC counts)} of a snapshot's tree."""
    if isinstance(node, dict):
        if "A" in node:
            out[node["A"]] = (path, node.get("sh"), node.get("dt"), "adc" in node)
        for k, v in node.items():
            if k == "d":
                for a, w in v.items():
                    blob_paths(w, f"{path}.{a}", out)
            elif k in ("L", "T", "Q"):
                for i, w in enumerate(v):
                    blob_paths(w, f"{path}[{i}]", out)
            elif k == "D":
                for a, w in v:
                    blob_paths(w, f"{path}[{a}]", out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="signal fed before the dump")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--top", type=int, default=8, help="largest arrays listed")
    args = ap.parse_args()

    import ward as ward_bench

    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.stream_processor import StreamProcessor
    from edge_ecg.ward import snapshot

    _, chunks, kinds = ward_bench.make_feeds(2, args.seconds)
    backend = open_backend(ward_bench.REPO / "edge_ecg" / "assets" / "default_bundle")
    for bed, frames in chunks.items():
        proc = StreamProcessor(backend)
        for c in frames:
            proc.feed(c)
        last = frames[-1]       # the worker's meta: the bed's gain and baseline per lead
        meta = {"adc": {"gain": [float(g) for g in last.gain],
                        "baseline": [float(b) for b in last.baseline]}}
        dump_s, load_s = [], []
        for _ in range(args.repeat):
            t = time.process_time()
            data = snapshot.dump(proc, meta)
            dump_s.append(time.process_time() - t)
            t = time.process_time()
            snapshot.load(data, backend)
            load_s.append(time.process_time() - t)
        (n,) = struct.unpack_from("<Q", data, 4)
        head = json.loads(data[12:12 + n])
        paths = blob_paths(head["state"], "processor", {})
        print(f"{bed} ({kinds[bed]}): {len(data) / 1e3:.0f} kB (JSON skeleton {n / 1e3:.0f} kB, "
              f"{len(head['blobs'])} arrays); dump {statistics.median(dump_s) * 1e3:.2f} ms, "
              f"load {statistics.median(load_s) * 1e3:.2f} ms CPU (medians of {args.repeat})")
        for i, size in sorted(enumerate(head["blobs"]), key=lambda x: -x[1])[:args.top]:
            path, shape, dt, adc = paths.get(i, ("?", None, None, False))
            print(f"  {size / 1e3:7.1f} kB  {path} {shape} {dt}{' as int16 counts' if adc else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
