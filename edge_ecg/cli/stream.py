"""`edge-ecg stream`: run the on-device runtime on a source and emit JSON Lines events.

    edge-ecg stream --source record:../shared/data/mitdb/100 --speed max --output jsonl:out.jsonl
    edge-ecg stream --source serial:/dev/ttyUSB0?baud=921600 --lsl --record session.edf
    edge-ecg stream --source edf:session.edf --speed max

Events go to stdout (or a file); the disclaimer and the summary go to stderr so that stdout
stays pure JSON Lines. SIGINT or SIGTERM stops it cleanly; SIGUSR1 relearns the patient's beat
templates (a monitor's relearn key, after an electrode was moved).
"""

from __future__ import annotations

import argparse
import os
import sys

from edge_ecg import DISCLAIMER
from edge_ecg.runtime.bundle import DEFAULT_BUNDLE


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("SIGINT or SIGTERM stops the stream cleanly (the last windows, the "
                     "summary); SIGUSR1 relearns the patient's beat templates, a monitor's "
                     "relearn key (a `status` event with state \"relearn\" marks it).")
    parser.add_argument("--source", required=True, metavar="SPEC",
                        help="serial:PORT?baud=N | ble:ADDRESS | record:PATH | synth:CONDITION"
                             "[?seconds=N&seed=N] (conditions may be joined with +) | edf:PATH"
                             " | brainflow:BOARD?param=value | lsl:NAME_OR_TYPE")
    parser.add_argument("--bundle", default=str(DEFAULT_BUNDLE), metavar="DIR",
                        help="exported bundle directory (verified before use)")
    parser.add_argument("--variant", default=None, help="bundle variant (default: the bundle's)")
    parser.add_argument("--profile", default=None, metavar="NAME",
                        help="device profile (profiles/): its variant, threads, hop, CPUs and "
                             "[quality] limits (missing signal, leads off)")
    parser.add_argument("--hop", type=float, default=None, metavar="S",
                        help="seconds between predictions (default: the bundle's hop)")
    parser.add_argument("--output", default="jsonl:-", metavar="jsonl:-|jsonl:FILE")
    parser.add_argument("--lsl", action="store_true", help="also publish events on an LSL outlet")
    parser.add_argument("--record", default=None, metavar="FILE.edf",
                        help="record the raw signal and every event to an EDF+ file (.bdf: "
                             "BDF+, 24-bit), valid up to the last second written if killed")
    parser.add_argument("--speed", choices=("realtime", "max"), default=None,
                        help="replay pace for record:/synth:/edf: sources (default realtime)")
    parser.add_argument("--threads", type=int, default=None, help="inference threads (default 1)")
    parser.add_argument("--smooth", type=int, default=1, metavar="N",
                        help="average outputs over the last N contiguous windows")
    parser.add_argument("--seconds", type=float, default=None,
                        help="stop after this many seconds of signal")
    parser.add_argument("--no-beats", action="store_true", help="do not emit beat events")
    parser.add_argument("--alarm-limits", default=None, metavar="FILE.toml",
                        help="the unit's alarm limits (TOML: [alarms] vt_run = 5, tachy_bpm = "
                             "130, ...; edge_ecg/runtime/alarm_settings.py), checked and "
                             "refused whole if out of range; default: the package's defaults")
    from edge_ecg.cli.bundle import add_trust_options

    add_trust_options(parser)     # --trusted-keys, --allow-unsigned


def resolve_profile(name: str | None, variants: list[str]) -> dict:
    """Variant (the profile's first preference the bundle has), threads, hop and CPU affinity
    from a device profile (profiles/*.toml), when one is named."""
    if not name:
        return {}
    from edge_ecg.errors import BundleError
    from profiles import load_profile

    prof = load_profile(name)
    out: dict = {"threads": int(prof.runtime_threads), "hop": float(prof.stream_hop_s),
                 "quality": prof.quality()}
    if prof.runtime_cpu_affinity:
        out["affinity"] = tuple(prof.runtime_cpu_affinity)
    if prof.runtime_variants and variants:
        have = [v for v in prof.runtime_variants if v in variants]
        if not have:
            raise BundleError(f"profile {name!r} runs variants {list(prof.runtime_variants)}; "
                              f"the bundle has {variants}: pass --variant or another bundle")
        out["variant"] = have[0]
    return out


class _BeatFilter:
    """A sink wrapper that drops beat events (--no-beats)."""

    def __init__(self, sink) -> None:
        self.sink = sink

    def emit(self, event) -> None:
        if event.to_json()["type"] != "beat":
            self.sink.emit(event)

    def close(self) -> None:
        self.sink.close()


def build_spec(source: str, speed: str | None):
    from edge_ecg.signal.source import SourceSpec

    spec = SourceSpec.parse(source)
    if speed and spec.kind in ("record", "synth", "edf") and "speed" not in spec.options:
        spec = SourceSpec(spec.kind, spec.target, {**spec.options, "speed": speed})
    return spec


def run(args: argparse.Namespace) -> int:
    import warnings

    from edge_ecg.cli.bundle import trust_policy
    from edge_ecg.runtime.alarm_settings import changed, describe, settings_from
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.bundle import verify_bundle
    from edge_ecg.runtime.events import LslSink, open_output
    from edge_ecg.runtime.pipeline import Pipeline
    from edge_ecg.runtime.signing import UnsignedBundleWarning
    from edge_ecg.runtime.sources import open_source

    # read before anything opens: a bad limits file stops the run before a port is taken
    alarms = settings_from(args.alarm_limits)
    if alarms.beds:
        print(f"edge-ecg stream: {alarms.source}: the [beds] tables are for a ward station; "
              "this stream uses [alarms]", file=sys.stderr)
    with warnings.catch_warnings():   # said below, on stderr and in the status event
        warnings.simplefilter("ignore", UnsignedBundleWarning)
        manifest, signature = verify_bundle(args.bundle, trust=trust_policy(args))
    if not signature.trusted:
        print(f"WARNING: bundle {args.bundle}: {signature.describe()}", file=sys.stderr)
    prof = resolve_profile(args.profile, [] if args.variant else sorted(manifest.variants))
    variant = args.variant or prof.get("variant")
    threads = args.threads or int(prof.get("threads", 1))
    hop = args.hop or prof.get("hop")
    if prof.get("affinity") and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(prof["affinity"]) & os.sched_getaffinity(0) or
                             os.sched_getaffinity(0))
    backend = open_backend(args.bundle, variant=variant, threads=threads, manifest=manifest)
    source = open_source(build_spec(args.source, args.speed))
    sinks = [open_output(args.output)]
    if args.lsl:
        sinks.append(LslSink())
    if args.no_beats:
        sinks = [_BeatFilter(s) for s in sinks]
    if args.record:
        from edge_ecg.runtime.recording import Recorder, annotation_bytes_for

        hop_s = float(hop or backend.manifest.signal.get("hop_s", 1.0))
        # every event, beats too, whatever --no-beats
        sinks.append(Recorder(args.record, annotation_bytes_per_s=annotation_bytes_for(hop_s)))
    print(DISCLAIMER, file=sys.stderr)
    print(describe(alarms), file=sys.stderr)
    info = {"source": args.source, "bundle": str(args.bundle), "variant": backend.variant.name,
            "backend": backend.name, "model_version": backend.manifest.model_version,
            "signature": signature.to_dict(),
            "alarm_limits": {"source": alarms.source, "changed": changed(alarms.limits)},
            "disclaimer": DISCLAIMER}
    from edge_ecg.runtime.quality import QualityConfig

    quality = QualityConfig(**prof["quality"]) if "quality" in prof else None
    from edge_ecg.runtime.rhythm_history import RhythmDecider, RhythmSink

    # with a rhythm stack in the bundle, a `rhythm` event (the history's call) after each
    # new non-overlapping window
    decider = RhythmDecider.from_bundle(args.bundle, backend.manifest)
    pipe_sinks = [RhythmSink(sinks, decider)] if decider is not None else sinks
    pipe = Pipeline(source, backend, pipe_sinks, hop_s=hop, smooth=args.smooth, quality=quality,
                    info=info, alarm_limits=alarms.limits)
    try:
        summary = pipe.run(max_seconds=args.seconds)
    finally:
        backend.close()
    for line in summary.lines():
        print(line, file=sys.stderr)
    for s in sinks:
        if hasattr(s, "write_chunk"):
            st = s.stats()
            print(f"recorded {st['records']} data records to {s.path} (fill samples "
                  f"{st['fill_samples']}, clipped samples {st['clipped_samples']}, annotations "
                  f"cut {st['truncated_annotations']})", file=sys.stderr)
    print(DISCLAIMER, file=sys.stderr)
    return 0
