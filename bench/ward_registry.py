"""How often a key listing of the ward's registry comes back wrong: nats-py's
`KeyValue.keys()` against `edge_ecg.ward.registry.list_keys`, on a busy machine.

`keys()` reads the bucket through a watcher whose end-of-replay marker can come before the
entries already sent (nats-io/nats.py#842): short, or `NoKeysError` while the keys exist. A
worker that read the bed registry that way once kept the answer and served none of its share
(BENCHMARKS.md, Ward). The registry reads the stream's state instead. This lists a bucket of
`--keys` keys `--listings` times each way, in turns, beside `--burners` processes spinning on
the CPU (a ward's broker, workers and station share a small machine; idle, both ways are
right), and prints how many listings were wrong:

    python bench/ward_registry.py                  # 3 000 listings, 3 burners: ~30 s
    python bench/ward_registry.py --burners 0      # the same on an idle machine
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_ecg.ward import registry  # noqa: E402
from edge_ecg.ward.bus import LocalBroker  # noqa: E402

PER_BUCKET = 300


async def listings(url: str, n_keys: int, n: int) -> tuple[Counter, Counter, float]:
    import nats
    from nats.js.api import KeyValueConfig

    nc = await nats.connect(url)
    js = nc.jetstream()
    old, new = Counter(), Counter()
    t0 = time.perf_counter()
    for i in range(n):
        if i % PER_BUCKET == 0:
            # a fresh bucket every PER_BUCKET listings: each keys() leaves an ephemeral
            # consumer behind for a while, and nats-server refuses more beyond its limit
            bucket = f"bench_registry_{i // PER_BUCKET}"
            kv = await js.create_key_value(KeyValueConfig(bucket=bucket, history=1))
            for k in range(n_keys):
                await kv.put(f"icu.b{k}", b"{}")
        try:
            got = len(await kv.keys())
        except Exception as exc:        # NoKeysError: "no keys" while there are some
            if type(exc).__name__ != "NoKeysError":
                raise
            got = 0
        old[got] += 1
        new[len(await registry.list_keys(js, kv, bucket))] += 1
    wall = time.perf_counter() - t0
    await nc.close()
    return old, new, wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=24, help="keys in the bucket (beds)")
    ap.add_argument("--listings", type=int, default=3000, help="listings each way")
    ap.add_argument("--burners", type=int, default=3,
                    help="processes spinning on the CPU meanwhile")
    args = ap.parse_args(argv)
    burn = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.burners)]
    try:
        with LocalBroker() as br:
            old, new, wall = asyncio.run(listings(br.url, args.keys, args.listings))
    finally:
        for p in burn:
            p.kill()
            p.wait()
    print(f"{args.listings} listings each way of a bucket of {args.keys} keys, "
          f"{args.burners} CPU burners, {wall:.1f} s")
    for name, c in (("nats-py KeyValue.keys()", old), ("edge_ecg.ward.registry.list_keys", new)):
        wrong = sum(v for k, v in c.items() if k != args.keys)
        detail = ", ".join(f"{v} x {k} keys" for k, v in sorted(c.items()) if k != args.keys)
        print(f"  {name:34s} wrong {wrong} of {args.listings}" + (f" ({detail})" if detail else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
