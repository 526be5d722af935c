"""Several variants (or bundles) profiled under one profile on the same stream, each in a
fresh process if asked, round-robin over rounds, the median run kept."""

from __future__ import annotations

import sys
from pathlib import Path

from edge_ecg.errors import BundleError, ProfileError
from profiles.profile import Profile
from profiles.profiler import profile_bundle


def resolve_targets(bundle: str | Path | None, items: list[str]) -> list[tuple[Path, str | None]]:
    """`--compare` items -> (bundle dir, variant or None): a directory is a bundle (its variant
    chosen by the profile), `DIR:VARIANT` a bundle's variant, anything else a variant of
    `bundle`."""
    out = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if Path(item).is_dir():
            out.append((Path(item), None))
            continue
        head, sep, tail = item.rpartition(":")
        if sep and head and Path(head).is_dir():
            out.append((Path(head), tail))
            continue
        if bundle is None:
            raise BundleError(f"--compare item {item!r} is not a bundle directory and no --bundle "
                              "was given to take it as a variant of")
        out.append((Path(bundle), item))
    if not out:
        raise BundleError("--compare needs at least one variant name or bundle directory")
    return out


def compare(bundle: str | Path | None, items: list[str], profile: Profile, isolate: bool = False,
            rounds: int = 1, **kwargs) -> list[dict]:
    """Profile several variants (or bundles) under one profile on the same stream.

    `isolate=True` runs each in a fresh Python process (the CLI does), so each peak-RSS figure
    is that variant's own and no backend's threads linger into the next measurement.
    `rounds > 1` runs the variants round-robin (A B C A B C ...) so a burst of load from other
    processes on shared CPUs hits all of them alike, and keeps for each the run with the median
    per-hop p90 (every round's figures are listed under "rounds").
    """
    if rounds < 1:
        raise ProfileError(f"--rounds must be at least 1, got {rounds}")
    targets = resolve_targets(bundle, items)
    runs: list[list[dict]] = [[] for _ in targets]
    for _ in range(rounds):
        for i, (b, v) in enumerate(targets):
            if isolate:
                runs[i].append(_profile_in_subprocess(b, v, profile, **kwargs))
            else:
                runs[i].append(profile_bundle(b, profile, variant=v, **kwargs))
    return [_median_run(r) for r in runs]


def _median_run(runs: list[dict]) -> dict:
    """The run with the median per-hop p90, annotated with every round's headline figures."""
    key = [r["per_hop"]["p90_ms"] if r["per_hop"]["p90_ms"] is not None else float("inf")
           for r in runs]
    order = sorted(range(len(runs)), key=key.__getitem__)
    chosen = dict(runs[order[(len(runs) - 1) // 2]])
    chosen["rounds"] = [{"per_hop_p50_ms": r["per_hop"]["p50_ms"],
                         "per_hop_p90_ms": r["per_hop"]["p90_ms"],
                         "single_stream_p90_ms": r["single_stream"]["p90_ms"],
                         "realtime_factor": r["throughput"]["realtime_factor"],
                         "load_avg_start": r.get("conditions", {}).get("load_avg_start")}
                        for r in runs]
    return chosen


def _profile_in_subprocess(bundle: Path, variant: str | None, profile: Profile, seconds=60.0,
                           record=None, seed=0, chunk_s=0.04, progress=False, **_) -> dict:
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "edge_ecg", "profile", "--bundle", str(bundle),
               "--profile", profile.path or profile.name, "--seconds", f"{seconds:g}",
               "--seed", str(seed), "--chunk-s", f"{chunk_s:g}", "--json", str(out),
               "--no-progress"]
        if variant:
            cmd += ["--variant", variant]
        if record:
            cmd += ["--record", str(record)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode not in (0, 3) or not out.is_file():   # 3 = ran, a budget failed
            raise BundleError(f"profiling {bundle} variant {variant or '(profile choice)'} "
                              f"failed: {res.stderr.strip().splitlines()[-1:] or res.returncode}")
        rep = json.loads(out.read_text())
        rep["isolated_process"] = True
        return rep
