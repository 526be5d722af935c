"""The beat stack's trees (`edge_ecg.runtime.trees.TreeEnsemble.raw`) against another
revision's, interleaved in one process: per row at a stream's and a ward tick's row counts,
and, with `--ward`, the ward's whole stream work (bench/ward_ticks.py's feed) with each.

    python bench/trees.py --before 4bde6fc           # ~20 s
    python bench/trees.py --before 4bde6fc --ward    # + ~3 min: 24 beds x 20 s, 4 rounds

The other revision's `trees.py` is read with `git show` and loaded as a module beside this
one; both walk the bundled beat stack's trees on the same rows. The outputs are compared:
equal within 1e-12 (the sums' order may differ in the last bit, not more).
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
# one BLAS thread, as a worker and `edge-ecg stream` run: with numpy's default pool the old
# walk's matrix product spun a second thread, and that CPU counted here
from edge_ecg.runtime.blas_threads import one_thread_per_process  # noqa: E402

one_thread_per_process()
import numpy as np  # noqa: E402


def other_trees(rev: str):
    """`edge_ecg/runtime/trees.py` as it was at `rev`, loaded as module `trees_<rev>`."""
    src = subprocess.run(["git", "show", f"{rev}:edge_ecg/runtime/trees.py"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    name = f"trees_{rev}"
    with tempfile.TemporaryDirectory() as tmp:      # read once, by exec_module
        path = Path(tmp) / "trees_other.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod          # dataclasses look their module up
        spec.loader.exec_module(mod)
    return mod


def per_row_us(fn, x, reps: int = 40) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(x)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) / x.shape[0] * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="the revision to compare with (git)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--ward", action="store_true",
                    help="also the ward's stream work, 24 beds x 20 s, with each walk")
    args = ap.parse_args()

    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.bundle import DEFAULT_BUNDLE

    before = other_trees(args.before)
    backend = open_backend(str(DEFAULT_BUNDLE), threads=1)
    t_now = backend.stack.trees
    t_before = before.TreeEnsemble(**{f.name: getattr(t_now, f.name) for f in fields(t_now)})
    print(f"beat stack: {t_now.roots.size} trees, depth {t_now.depth}, "
          f"{t_now.feature.size} nodes")
    rng = np.random.default_rng(0)
    n_feat = len(backend.stack.features)
    res: dict = {}
    worst = 0.0
    for _ in range(args.rounds):
        for n in (16, 64, 300):
            x = rng.standard_normal((n, n_feat)) * 2
            worst = max(worst, float(np.abs(t_now.raw(x) - t_before.raw(x)).max()))
            for name, t in random.sample([("before", t_before), ("now", t_now)], 2):
                res.setdefault((n, name), []).append(per_row_us(t.raw, x))
    for n in (16, 64, 300):
        b, a = statistics.median(res[(n, "before")]), statistics.median(res[(n, "now")])
        print(f"{n:4d} rows: {args.before} {b:6.1f} us a row, now {a:6.1f} (ratio {a / b:.2f})")
    print(f"largest difference of a logit: {worst:.1e}")
    if worst > 1e-12:
        print("the two walks disagree")
        return 1
    if args.ward:
        ward(args, before)
    return 0


def ward(args, before) -> None:
    """The ward's stream work (ward_ticks.feed) with each walk, alternated."""
    import ward as ward_bench
    import ward_ticks

    import edge_ecg.runtime.trees as now
    import edge_ecg.ward.batching as batching
    from edge_ecg.runtime.backends import open_backend

    _, chunks, _ = ward_bench.make_feeds(24, 20.0)
    shared = batching.InvariantBackend(open_backend(REPO / "edge_ecg" / "assets"
                                                    / "default_bundle"))
    beds = list(chunks)
    raw_now = now.TreeEnsemble.raw

    def raw_before(self, x):
        other = self.__dict__.get("_before_m")
        if other is None:
            other = before.TreeEnsemble(**{f.name: getattr(self, f.name) for f in fields(self)})
            object.__setattr__(self, "_before_m", other)
        return other.raw(x)

    forms = {"every bed in one tick": [beds], "2 halves, a tick each": [beds[0::2], beds[1::2]]}
    ward_ticks.feed(chunks, shared, [beds])                      # warm-up
    ms: dict = {}
    try:
        for _ in range(args.rounds):
            for walk, form in random.sample([(w, f) for w in ("before", "now") for f in forms],
                                            2 * len(forms)):
                now.TreeEnsemble.raw = raw_before if walk == "before" else raw_now
                t = time.process_time()
                ward_ticks.feed(chunks, shared, forms[form])
                ms.setdefault((walk, form), []).append(
                    (time.process_time() - t) / (len(beds) * 20.0) * 1e3)
    finally:
        now.TreeEnsemble.raw = raw_now
    for form in forms:
        b, a = (statistics.median(ms[(w, form)]) for w in ("before", "now"))
        runs = " / ".join(", ".join(f"{v:.2f}" for v in ms[(w, form)]) for w in ("before", "now"))
        print(f"ward stream work, {form}: {args.before} {b:.2f} ms CPU a bed-second, now "
              f"{a:.2f} (ratio {a / b:.2f}; rounds {runs})")


if __name__ == "__main__":
    sys.exit(main())
