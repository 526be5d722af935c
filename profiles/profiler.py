"""The latency profiler: the runtime pipeline under a device profile's constraints, measured.

`profile_bundle(bundle, profile)` replays a stream (a synthetic 12-lead record, or a WFDB
record) as fast as possible through the runtime's `StreamProcessor` (the same code
`edge-ecg stream` runs), with the profile's thread count and CPU affinity, and reports
per-stage latency percentiles (the runtime's own stages, `edge_ecg.runtime.stage_timer.STAGES`),
per-hop end-to-end latency, a single-stream figure in the MLPerf manner (`profiles.latency`),
throughput in multiples of real time, peak RSS (`profiles.memory`), model size, and pass or
fail against the profile's budgets (`profiles.budgets`). `profiles.compare` runs several.

Honesty rules: the report names the machine it measured on; figures are never scaled to
another device. When the profile's device is not this machine the report says so, and the
budget check is labelled a proxy.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge_ecg import DISCLAIMER, __version__
from edge_ecg.errors import BundleError, ProfileError
from edge_ecg.runtime.stage_timer import STAGES, StageTimer
from profiles.budgets import check_budgets, honesty_note, installed_within_known_good
from profiles.latency import (
    MLPERF_MIN_QUERIES,
    RecordingBackend,
    headline,
    latency_summary,
    single_stream,
)
from profiles.machine import is_profile_device, pin_to_profile, restore_affinity, this_machine
from profiles.memory import current_rss_mb, peak_rss_mb
from profiles.profile import Profile


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
    from edge_ecg.runtime.stream_processor import StreamProcessor

    class ChunkTimer(StageTimer):
        """The runtime's timer, also summing the stage times of the current chunk."""

        chunk_sum = 0.0

        def add(self, stage: str, seconds: float) -> None:
            super().add(stage, seconds)
            self.chunk_sum += seconds

    rec = RecordingBackend(backend)
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
    stages = {name: latency_summary(times.get(name, [])) for name in STAGES}
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
        "per_hop": hop,
        "per_hop_ms": [t * 1000.0 for t in per_hop],
        "settle_delay_ms": headline(latency_summary(np.asarray(settle_ms) / 1000.0)),
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
