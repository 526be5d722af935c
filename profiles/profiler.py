"""The latency profiler: the runtime pipeline under a device profile's constraints, measured.

`profile_bundle(bundle, profile)` replays a stream (a synthetic 12-lead record, or a WFDB
record) as fast as possible through the runtime pipeline (`edge_ecg.runtime.pipeline`, the
same code `edge-ecg stream` runs), with the profile's thread count and CPU affinity, and
reports per-stage latency percentiles, per-hop end-to-end latency, a single-stream figure
in the MLPerf manner, throughput in multiples of real time, peak RSS, model size, and pass or
fail against the profile's budgets.

Honesty rules: the report names the machine it measured on; figures are never scaled to
another device. When the profile's device is not this machine the report says so, and the
budget check is labelled a proxy.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from edge_ecg import DISCLAIMER, __version__
from edge_ecg.errors import BundleError, ProfileError
from profiles.machine import (
    Machine,
    is_profile_device,
    pin_to_profile,
    restore_affinity,
    this_machine,
)
from profiles.profile import Profile

STAGES = ("decode", "buffer", "beats", "features", "inference", "output")
PERCENTILES = (50, 90, 99)
# MLPerf's single-stream scenario (LoadGen) issues one query when the previous completes and
# reports the 90th-percentile latency, over at least 1024 queries and a minimum duration; we
# issue up to this many within a time limit and say how many.
MLPERF_MIN_QUERIES = 1024


def latency_summary(samples_s) -> dict:
    """p50/p90/p99, mean, max (ms) and count of a list of durations in seconds.

    Percentiles use numpy's default linear interpolation, so p50 <= p90 <= p99 always holds.
    """
    a = np.asarray(list(samples_s), dtype=np.float64) * 1000.0
    if a.size == 0:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": None,
                "max_ms": None, "total_s": 0.0}
    p = np.percentile(a, PERCENTILES)
    return {"n": int(a.size), "p50_ms": float(p[0]), "p90_ms": float(p[1]),
            "p99_ms": float(p[2]), "mean_ms": float(a.mean()), "max_ms": float(a.max()),
            "total_s": float(a.sum() / 1000.0)}


def _statm_rss_mb() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return None


def current_rss_mb() -> float:
    """Resident set size now (Linux /proc/self/statm), or the peak where /proc is absent."""
    now = _statm_rss_mb()
    return peak_rss_mb() if now is None else now


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far.

    getrusage reports KB on Linux, bytes on macOS. Linux updates that high-water mark lazily,
    so it can lag the current RSS by a few pages: the peak is never below the current size.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = peak / 2**20 if sys.platform == "darwin" else peak / 1024
    return max(peak_mb, _statm_rss_mb() or 0.0)


def pick_variant(manifest, profile: Profile, bundle: Path, requested: str | None = None) -> str:
    """The variant to run: `requested`, else the first of the profile's preferences the bundle
    has, else the bundle's first variant with the profile's backend and precision."""
    if requested:
        manifest.variant(requested)          # BundleError naming the variants it has
        return requested
    for name in profile.runtime_variants:
        if name in manifest.variants:
            return name
    for name, v in manifest.variants.items():
        if v["backend"] == profile.runtime_backend and v["precision"] == profile.runtime_precision:
            return name
    raise BundleError(
        f"bundle {bundle} has none of the variants profile {profile.name!r} prefers "
        f"({', '.join(profile.runtime_variants)}) nor any {profile.runtime_backend} "
        f"{profile.runtime_precision} variant; it has: {', '.join(sorted(manifest.variants))}. "
        "Pass --variant NAME or edit runtime.variants in the profile"
    )


def model_bytes(manifest, variant_name: str) -> int:
    """Bytes on disk of the variant's model file(s), from the verified manifest."""
    v = manifest.variant(variant_name)
    return int(sum(manifest.files[f]["bytes"] for f in (v.file, *v.extra_files)))


def check_budgets(profile: Profile, figures: dict) -> dict:
    """Each budget the profile sets against the measured figure: {limit, measured, pass}."""
    measured = {
        "latency_p90_ms": figures["per_hop"]["p90_ms"],
        "latency_p99_ms": figures["per_hop"]["p99_ms"],
        "peak_rss_mb": figures["memory"]["peak_rss_mb"],
        "model_size_mb": figures["model"]["size_mb"],
        "min_realtime_factor": figures["throughput"]["realtime_factor"],
    }
    out = {}
    for key, limit in profile.budgets().items():
        m = measured[key]
        if m is None:
            ok = False
        elif key.startswith("min_"):
            ok = m >= limit
        else:
            ok = m <= limit
        out[key] = {"limit": limit, "measured": m, "pass": bool(ok)}
    return out


def installed_within_known_good(profile: Profile, machine: Machine) -> dict:
    """Whether this machine's runtime versions lie in the profile's vendor-stated ranges."""
    out = {}
    for dist, spec in (("onnxruntime", profile.known_good_onnxruntime),
                       ("openvino", profile.known_good_openvino)):
        installed = getattr(machine, dist)
        if spec.strip().lower() == "none":
            ok = None
        elif installed == "not installed":
            ok = False
        else:
            try:
                ok = Version(installed) in SpecifierSet(spec)
            except (InvalidVersion, InvalidSpecifier):   # an odd local version string
                ok = None
        out[dist] = {"installed": installed, "known_good": spec, "within": ok}
    return out


def honesty_note(profile: Profile, machine: Machine, on_device: bool) -> str:
    """One sentence saying where the figures come from and what they may stand for."""
    where = f"{machine.cpu_model}{', ' + machine.board if machine.board else ''}, " \
            f"{machine.cores} usable core(s), {machine.arch}"
    if on_device:
        return f"Measured on this machine ({where}), which is the profile's device."
    return (f"Figures are from THIS machine ({where}), not from the profile's device "
            f"({profile.device_cpu}); they are checked against the budgets of profile "
            f"{profile.name!r} as a proxy only and are not scaled to that device.")


def _load_average() -> list[float] | None:
    """1/5/15-minute load averages: how busy the shared CPUs were around the measurement."""
    try:
        import os
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _check_window(profile: Profile, manifest, bundle: Path) -> None:
    window_s = float(manifest.signal.get("window_s", 0.0))
    if abs(window_s - profile.stream_window_s) > 1e-9:
        raise ProfileError(
            f"{profile.path}: key 'stream.window_s' = {profile.stream_window_s} but bundle "
            f"{bundle} was exported for {window_s}-s windows; use a profile whose window matches "
            "the bundle, or export a bundle for this window"
        )


# The runtime names the source stage "read" (for a serial source that is where frames are
# decoded; for a replay it is slicing the record into chunks). The issue calls it "decode".
RUNTIME_STAGE = {"decode": "read"}


class _RecordingBackend:
    """Wraps a runtime `Backend`, keeping the last batches it ran for the single-stream figure.

    Everything else (manifest, output names, ...) is the wrapped backend's, so the runtime's
    `StreamProcessor` cannot tell the difference.
    """

    def __init__(self, backend, keep: int = 32) -> None:
        self._backend = backend
        self._keep = keep
        self.batches: list[dict[str, np.ndarray]] = []

    def run(self, inputs):
        if len(self.batches) >= self._keep:
            self.batches.pop(0)
        self.batches.append(inputs)
        return self._backend.run(inputs)

    def __getattr__(self, name):
        return getattr(self._backend, name)


def single_stream(backend, batches: list[dict[str, np.ndarray]], queries: int = MLPERF_MIN_QUERIES,
                  max_s: float = 5.0) -> dict:
    """MLPerf-style single-stream: one batch-1 query issued as soon as the previous completes.

    Queries cycle through the real windows of the run (`batches`); inference only, as MLPerf
    times the system under test without the preprocessing. Stops at `queries` or `max_s`.
    """
    rows = []
    for b in batches:
        n = next(iter(b.values())).shape[0]
        rows += [{k: v[i:i + 1] for k, v in b.items()} for i in range(n)]
    if not rows:
        return {**_pick(latency_summary([])), "queries": 0, "note": "no window was predicted"}
    times = []
    t_end = time.perf_counter() + max_s
    for i in range(queries):
        t0 = time.perf_counter()
        backend.run(rows[i % len(rows)])
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 > t_end:
            break
    s = latency_summary(times)
    note = ("90th-percentile latency of batch-1 queries issued back to back (MLPerf single-stream "
            f"metric), inference only, over the run's {len(rows)} real windows; "
            f"{len(times)} queries")
    if len(times) < MLPERF_MIN_QUERIES:
        note += (f" (MLPerf asks for >= {MLPERF_MIN_QUERIES} queries and a minimum duration: "
                 "a short run)")
    return {**_pick(s), "queries": len(times), "note": note}


def _pick(s: dict) -> dict:
    return {k: s[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms")}


def profile_bundle(bundle: str | Path, profile: Profile, variant: str | None = None,
                   seconds: float = 60.0, record: str | None = None, seed: int = 0,
                   chunk_s: float = 0.04, progress: bool = False,
                   single_stream_queries: int = MLPERF_MIN_QUERIES,
                   single_stream_max_s: float = 5.0) -> dict:
    """Run the runtime pipeline on a replayed stream under `profile`; the report as a dict.

    The replay runs as fast as the pipeline takes it, in chunks of `chunk_s` (a device's frame
    rate), so each chunk's processing is timed as it would be on arrival. Per-hop latency is
    the wall time from reading the chunk that completes a window to its prediction written
    to the sink; stage times come from the runtime's own `StageTimer`.
    """
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.bundle import load_bundle
    from edge_ecg.runtime.sources import open_source

    if seconds <= 0:
        raise ProfileError(f"--seconds must be positive, got {seconds}")
    if chunk_s <= 0:
        raise ProfileError(f"--chunk-s must be positive, got {chunk_s}")
    bundle = Path(bundle)
    machine = this_machine()
    on_device = is_profile_device(profile, machine)
    manifest = load_bundle(bundle)
    _check_window(profile, manifest, bundle)
    vname = pick_variant(manifest, profile, bundle, variant)
    spec = (f"record:{record}?speed=max&chunk_s={chunk_s:g}" if record else
            f"synth:sinus_rhythm?seconds={seconds:g}&seed={seed}&speed=max&chunk_s={chunk_s:g}")
    source = open_source(spec)
    load_start = _load_average()
    placement = pin_to_profile(profile)
    try:
        rss_before = current_rss_mb()
        backend = open_backend(bundle, vname, threads=placement.threads_used, manifest=manifest)
        try:
            rep = _measure(backend, source, profile, spec, progress, seconds,
                           single_stream_queries, single_stream_max_s)
        finally:
            backend.close()
    finally:
        restore_affinity(placement)
    v = manifest.variant(vname)
    size = model_bytes(manifest, vname)
    rep.update({
        "tool": "edge-ecg profile",
        "edge_ecg_version": __version__,
        "disclaimer": DISCLAIMER,
        "machine": machine.to_dict(),
        "on_profile_device": on_device,
        "honesty": honesty_note(profile, machine, on_device),
        "profile": profile.to_dict(),
        "runtime_versions": installed_within_known_good(profile, machine),
        "bundle": str(bundle),
        "model_version": manifest.model_version,
        "variant": {"name": v.name, "file": v.file, "backend": v.backend,
                    "precision": v.precision, "routed": v.routed},
        "model": {"bytes": size, "size_mb": size / 2**20},
        "placement": placement.to_dict(),
        "isolated_process": False,
        "conditions": {"load_avg_start": load_start, "load_avg_end": _load_average()},
    })
    rep["memory"]["rss_before_backend_mb"] = rss_before
    rep["budgets"] = check_budgets(profile, rep)
    rep["pass"] = all(b["pass"] for b in rep["budgets"].values())
    return rep


def _measure(backend, source, profile: Profile, spec: str, progress: bool, total_s: float,
             ss_queries: int, ss_max_s: float) -> dict:
    """The timed loop: read a chunk, feed the runtime, write its events; per-hop figures.

    Stops at the end of the replay or after `total_s` seconds of signal (a long record)."""
    import os

    from tqdm import tqdm

    from edge_ecg.runtime.events import JsonlSink, PredictionEvent, WithheldEvent
    from edge_ecg.runtime.stage_timer import StageTimer
    from edge_ecg.runtime.stream_processor import StreamProcessor

    class ChunkTimer(StageTimer):
        """The runtime's timer, also summing the stage times of the current chunk."""

        chunk_sum = 0.0

        def add(self, stage: str, seconds: float) -> None:
            super().add(stage, seconds)
            self.chunk_sum += seconds

    rec = _RecordingBackend(backend)
    timer = ChunkTimer()
    proc = StreamProcessor(rec, hop_s=profile.stream_hop_s, timer=timer)
    sink = JsonlSink(os.devnull)
    per_hop, settle_ms, excess = [], [], []
    processing_s = 0.0
    n_chunks = n_pred = n_withheld = 0

    def emit(events: list) -> float:
        """Write `events` to the sink, timed as the output stage; returns the time after."""
        t = time.perf_counter()
        for ev in events:
            sink.emit(ev)
        done = time.perf_counter()
        if events:
            timer.add("output", done - t)
        return done

    source.open()
    bar = tqdm(total=total_s, desc="profile", disable=not progress, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of signal")
    try:
        while True:
            timer.chunk_sum = 0.0
            t0 = time.perf_counter()
            try:
                chunk = source.read(timeout_s=0.0)
            except EOFError:
                break
            if chunk is None:  # the replay runs at speed=max, but a source may still idle
                continue
            if (chunk.index - getattr(proc, "origin", chunk.index)) >= total_s * chunk.fs_hz:
                break
            t1 = time.perf_counter()
            timer.add("read", t1 - t0)
            events = proc.feed(chunk)
            t3 = emit(events)
            processing_s += t3 - t0
            n_chunks += 1
            preds = [e for e in events if isinstance(e, PredictionEvent)]
            n_withheld += sum(isinstance(e, WithheldEvent) for e in events)
            if preds:
                excess.append(timer.chunk_sum - (t3 - t0))
                for e in preds:
                    per_hop.append(t3 - t0)
                    # signal time between the window's end and the chunk that released it:
                    # the detector's settle wait (edge_ecg.runtime.settling.SETTLE_MARGIN_S)
                    settle_ms.append((chunk.end - e.index) * 1000.0 / chunk.fs_hz)
            n_pred += len(preds)
            bar.update(chunk.n_samples / chunk.fs_hz)
        # end of stream: windows still waiting for their beats to settle (timed as processing,
        # not as hops: no chunk's arrival released them)
        t0 = time.perf_counter()
        tail = proc.finish()
        processing_s += emit(tail) - t0
        n_pred += sum(isinstance(e, PredictionEvent) for e in tail)
        n_withheld += sum(isinstance(e, WithheldEvent) for e in tail)
    finally:
        bar.close()
        sink.close()
        source.close()
    summary = proc.close_summary()
    times = timer.times()
    stages = {name: latency_summary(times.get(RUNTIME_STAGE.get(name, name), []))
              for name in STAGES}
    signal_s = summary.samples / proc.fs_in if proc._started else 0.0
    ss = single_stream(backend, rec.batches, ss_queries, ss_max_s)
    hop = latency_summary(per_hop)
    return {
        "stream": {"source": spec, "signal_s": signal_s, "fs_hz": float(proc.fs_in),
                   "n_leads": len(proc.leads), "window_s": proc.contract.window_s,
                   "hop_s": proc.hop / proc.contract.fs_hz, "chunks": n_chunks,
                   "chunk_s": float(source.chunk / source.fs_hz) if hasattr(source, "chunk")
                   else None,
                   "beats": summary.beats, "predictions": n_pred, "withheld": n_withheld,
                   "withheld_reasons": dict(summary.withheld_reasons), "gaps": summary.gaps},
        "stages": stages,
        "runtime_stage_names": {s: RUNTIME_STAGE.get(s, s) for s in STAGES},
        "per_hop": hop,
        "per_hop_ms": [t * 1000.0 for t in per_hop],
        "settle_delay_ms": _pick(latency_summary(np.asarray(settle_ms) / 1000.0)),
        "single_stream": ss,
        "throughput": {"signal_s": signal_s, "processing_s": processing_s,
                       "realtime_factor": signal_s / processing_s if processing_s else None},
        "memory": {"peak_rss_mb": peak_rss_mb(),
                   "note": "peak RSS of this process so far (getrusage): interpreter, numpy, "
                           "the replayed record and the backend; run in a fresh process "
                           "(the CLI) for the runtime's own figure"},
        "consistency": {
            "stage_total_s": float(sum(s["total_s"] for s in stages.values())),
            "processing_s": processing_s,
            "per_hop_max_stage_excess_ms": float(max(excess) * 1000.0) if excess else None,
        },
    }


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
