"""`edge-ecg profile`: runtime latency under a device profile, or variants side by side.

Thin: parses arguments and calls `profiles.profiler` and `profiles.compare` (library functions
tests call directly).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_ecg.runtime.bundle import DEFAULT_BUNDLE


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", default=str(DEFAULT_BUNDLE),
                        help="exported bundle directory")
    parser.add_argument("--profile", default="local",
                        help="shipped profile name or path of a .toml profile")
    parser.add_argument("--variant", default=None,
                        help="bundle variant to run (default: the profile's first preference "
                             "the bundle has)")
    parser.add_argument("--compare", default=None, metavar="VARIANTS",
                        help="comma-separated variant names of --bundle, or bundle directories "
                             "(DIR or DIR:VARIANT), profiled side by side in one run")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="seconds of synthetic 12-lead signal to replay")
    parser.add_argument("--record", default=None,
                        help="replay this WFDB record instead of a synthetic one")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic record")
    parser.add_argument("--chunk-s", type=float, default=0.04,
                        help="seconds per chunk the replay hands the pipeline (0.04 = 25 "
                             "frames/s, as serial ECG devices send)")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the report as JSON")
    parser.add_argument("--plot", default=None, metavar="OUT.png",
                        help="write a latency plot (violin per variant, per-stage p90)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --compare: run the variants round-robin this many times and "
                             "keep each one's median run (evens out load from other processes)")
    parser.add_argument("--same-process", action="store_true",
                        help="with --compare: profile every variant in this process (faster; "
                             "peak RSS then accumulates across variants)")
    parser.add_argument("--list", action="store_true", help="list the shipped profiles and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import json

    from profiles.profile import list_profiles, load_profile

    if args.list:
        for name in list_profiles():
            p = load_profile(name)
            print(f"{name:<18} {p.runtime_backend:<12} {p.runtime_precision:<5} "
                  f"threads {p.runtime_threads}  p90 <= {p.budget_latency_p90_ms:g} ms  "
                  f"{p.description}")
        return 0

    from profiles.compare import compare
    from profiles.profiler import profile_bundle
    from profiles.report import format_comparison, format_report, plot_latency

    profile = load_profile(args.profile)
    common = {"seconds": args.seconds, "record": args.record, "seed": args.seed,
              "chunk_s": args.chunk_s, "progress": not args.no_progress}
    if args.compare:
        reports = compare(args.bundle, args.compare.split(","), profile,
                          isolate=not args.same_process, rounds=args.rounds, **common)
        print(format_comparison(reports))
        doc = {"comparison": reports}
    else:
        rep = profile_bundle(args.bundle, profile, variant=args.variant, **common)
        reports = [rep]
        print(format_report(rep))
        doc = rep
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2))
        print(f"report: {args.json}")
    if args.plot:
        print(f"plot: {plot_latency(reports, args.plot)}")
    return 0 if all(r["pass"] for r in reports) else 3
