"""Long fuzz runs of the frame decoder and the manifest and profile loaders.

    python bench/fuzz.py --minutes 5                       # hypothesis, every target
    python bench/fuzz.py --engine atheris --target decoder --minutes 5
    python bench/fuzz.py --engine atheris --target manifest --runs 20000

Targets (tests/reliability/fuzz_targets.py): decoder (random bytes in random chunkings),
device_info (DEVICE_INFO body parser), device_info_stream (fuzzed DEVICE_INFO then DATA through
the decoder), manifest (load_bundle on a real bundle with a fuzzed manifest.json), profile
(read_profile on fuzzed TOML). Property: a valid object or the project's EdgeECGError subclass;
the decoder never raises. A finding is any other exception (or a broken invariant); each
distinct (type, place) is printed once with the input that caused it. Prints a table of
examples, examples/s and findings per target.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "reliability"))

TARGETS = ("decoder", "device_info", "device_info_stream", "manifest", "profile")


class Stats:
    def __init__(self, name: str) -> None:
        self.name = name
        self.examples = 0
        self.findings: dict[tuple, str] = {}
        self.t0 = time.perf_counter()

    def finding(self, exc: BaseException, data) -> None:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
        key = (type(exc).__name__, where)
        if key not in self.findings:
            self.findings[key] = f"{type(exc).__name__} at {where}: {str(exc)[:160]} <- {data!r:.200}"
            print(f"[{self.name}] FINDING {self.findings[key]}", flush=True)


def make_runner(target: str, scratch: Path):
    """A function bytes -> None that raises only on a finding (EdgeECGError is accepted)."""
    import fuzz_targets as ft

    from edge_ecg.errors import EdgeECGError

    if target == "decoder":
        fn = ft.decoder_target
    elif target == "device_info":
        fn = ft.device_info_target
    elif target == "device_info_stream":
        fn = ft.device_info_stream_target
    elif target == "manifest":
        from reliability_harness import bundle_for_tests

        box = ft.BundleSandbox(bundle_for_tests(scratch))
        base = json.dumps(box.valid, indent=1).encode()

        def fn(data: bytes) -> None:
            box.load(_edit(base, data))
    elif target == "profile":
        base = ft.LOCAL_PROFILE.read_bytes()

        def fn(data: bytes) -> None:
            ft.profile_text_target(_edit(base, data), scratch)
    else:
        raise SystemExit(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")

    def run(data: bytes) -> None:
        try:
            fn(data)
        except EdgeECGError:
            pass
    return run


def _edit(base: bytes, data: bytes) -> bytes:
    """Structure-aware input: the first byte picks raw bytes or edits of a valid document
    (3-byte records: position hi/lo, new byte; 0xFF as new byte truncates there)."""
    if not data:
        return base
    if data[0] < 32:
        return data[1:]
    out = bytearray(base)
    for i in range(1, len(data) - 2, 3):
        pos = ((data[i] << 8) | data[i + 1]) % (len(out) + 1)
        if data[i + 2] == 0xFF:
            del out[pos:]
        elif pos < len(out):
            out[pos] = data[i + 2]
        else:
            out.append(data[i + 2])
    return bytes(out)


def _structured(target: str, scratch: Path):
    """Typed edits of a valid document: a manifest through load_bundle, a profile through
    parse_profile (what read_profile runs after tomllib)."""
    import fuzz_targets as ft
    from reliability_harness import bundle_for_tests

    from edge_ecg.errors import EdgeECGError
    from edge_ecg.runtime.toml_input import tomllib  # tomli on Python 3.10

    if target == "manifest":
        box = ft.BundleSandbox(bundle_for_tests(scratch / "s"))

        def fn(path, value, delete):
            box.load(json.dumps(ft.mutate_json(box.valid, path, value, delete)).encode())
    else:
        doc = tomllib.loads(ft.LOCAL_PROFILE.read_text())

        def fn(path, value, delete):
            ft.profile_doc_target(ft.mutate_json(doc, path, value, delete))

    def run(path, value, delete):
        try:
            fn(path, value, delete)
        except EdgeECGError:
            pass
    return run


def run_hypothesis(target: str, seconds: float, scratch: Path, max_runs: int | None) -> Stats:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    stats = Stats(target)
    runner = make_runner(target, scratch)
    deadline = time.perf_counter() + seconds

    structured = None
    if target in ("manifest", "profile"):
        structured = _structured(target, scratch)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                     max_size=3),
        max_leaves=8)
    inputs = st.binary(max_size=1024)
    if structured is not None:      # half raw/edited bytes, half typed edits of a valid doc
        inputs = inputs | st.tuples(st.lists(st.integers(0, 50), min_size=1, max_size=4),
                                    json_values, st.booleans())

    @settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(inputs)
    def batch(data):
        stats.examples += 1
        try:
            if isinstance(data, tuple):
                structured(*data)
            else:
                runner(data)
        except Exception as exc:   # noqa: BLE001 - every other exception is a finding
            stats.finding(exc, data)

    while time.perf_counter() < deadline and (max_runs is None or stats.examples < max_runs):
        batch()
    return stats


def run_atheris(target: str, seconds: float, scratch: Path, max_runs: int | None) -> None:
    """Coverage-guided with libFuzzer; this process exits when the budget is spent."""
    import atheris
    import numpy  # noqa: F401 - imported first so that only the project's code is instrumented
    try:
        import tomllib  # noqa: F401
    except ModuleNotFoundError:   # Python 3.10
        import tomli  # noqa: F401

    import edge_ecg.errors

    with atheris.instrument_imports():
        import edge_ecg.runtime.bundle  # noqa: F401
        import edge_ecg.signal.chunk  # noqa: F401
        import firmware_bridge.decoder
        import firmware_bridge.protocol  # noqa: F401
        import profiles.profile  # noqa: F401
    stats = Stats(target)
    runner = make_runner(target, scratch)
    deadline = time.perf_counter() + seconds

    def one(data: bytes) -> None:
        stats.examples += 1
        try:
            runner(data)
        except Exception as exc:   # noqa: BLE001
            stats.finding(exc, data)
        if time.perf_counter() >= deadline or (max_runs and stats.examples >= max_runs):
            print_table([stats], "atheris")
            sys.stdout.flush()
            os._exit(0)

    atheris.Setup([sys.argv[0], "-rss_limit_mb=4096"], one)
    atheris.Fuzz()


def print_table(all_stats: list[Stats], engine: str) -> None:
    import platform

    print(f"\nfuzz engine {engine} on {platform.node()} ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs)")
    print(f"{'target':<20} {'examples':>10} {'seconds':>8} {'examples/s':>11} {'findings':>9}")
    for s in all_stats:
        dt = time.perf_counter() - s.t0
        print(f"{s.name:<20} {s.examples:>10} {dt:>8.1f} {s.examples / max(dt, 1e-9):>11.0f} "
              f"{len(s.findings):>9}")
    for s in all_stats:
        print(f"{s.name}: findings {len(s.findings)}")
        for text in s.findings.values():
            print(f"  - {text}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engine", choices=("hypothesis", "atheris"), default="hypothesis")
    ap.add_argument("--target", choices=TARGETS + ("all",), default="all")
    ap.add_argument("--minutes", type=float, default=1.0, help="per target")
    ap.add_argument("--runs", type=int, default=None, help="stop a target after N examples")
    args = ap.parse_args(argv)
    targets = TARGETS if args.target == "all" else (args.target,)
    seconds = args.minutes * 60.0
    with tempfile.TemporaryDirectory(prefix="edge-ecg-fuzz-") as tmp:
        if args.engine == "atheris":
            if len(targets) != 1:
                raise SystemExit("atheris fuzzes one target per process: pass --target")
            try:
                import atheris  # noqa: F401
            except ImportError:
                raise SystemExit("atheris is not installed (pip install atheris)") from None
            run_atheris(targets[0], seconds, Path(tmp), args.runs)
            return 0
        results = [run_hypothesis(t, seconds, Path(tmp), args.runs) for t in targets]
    print_table(results, "hypothesis")
    return 0


if __name__ == "__main__":
    sys.exit(main())
