"""`edge-ecg bridge`: the virtual monitor on a pseudo-terminal, the link budget, a port reader.

    edge-ecg bridge emulate --synth sinus_rhythm --speed 1 --faults drop=0.01,wrap
    edge-ecg bridge emulate --record ../shared/data/mitdb/100 --faults disconnect=5@60s
    edge-ecg bridge listen /tmp/edge-ecg-pty-XXXX/ttyECG0 --seconds 10
    edge-ecg bridge budget
"""

from __future__ import annotations

import argparse
import sys
import time

from edge_ecg.cli.formatter import HelpFormatter
from edge_ecg.errors import SourceError


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bridge_command", metavar="ACTION", required=True)

    em = sub.add_parser("emulate", help="stream a record or synthetic ECG from a virtual monitor "
                        "on a pseudo-terminal",
                        formatter_class=HelpFormatter)
    src = em.add_mutually_exclusive_group(required=True)
    src.add_argument("--record", metavar="PATH", help="WFDB record (with or without .hea)")
    src.add_argument("--synth", metavar="CONDITION", help="synthetic condition (see simulate)")
    em.add_argument("--speed", type=float, default=1.0, help="times real time")
    em.add_argument("--faults", default="", metavar="SPEC",
                    help="e.g. drop=0.01,bitflip=0.005,truncate=0.002,garbage=0.002,"
                         "clockjump=0.001,stall=2@30s,disconnect=5@60s,reboot=3@90s,wrap "
                         "(PROTOCOL.md)")
    em.add_argument("--seed", type=int, default=0, help="fault and synthesis seed")
    em.add_argument("--seconds", type=float, default=None,
                    help="stream this long (signal time) then stop; default: loop forever")
    em.add_argument("--baud", type=int, default=None,
                    help="refuse a stream that does not fit this UART rate (8N1)")
    em.add_argument("--format", default="int24", choices=("int24", "int16"))
    em.add_argument("--samples-per-frame", type=int, default=None, help="default: 20 ms")
    em.add_argument("--leads", default=None,
                    help="comma-separated lead names to stream; default: the 8 independent "
                         "leads when present, else all")
    em.add_argument("--fs", type=float, default=500.0, help="sample rate for --synth")
    em.add_argument("--link", default=None, metavar="PATH",
                    help="symlink path for the device (stable across reconnects)")
    em.set_defaults(_bridge=_emulate)

    ls = sub.add_parser("listen", help="read an edge-ecg protocol port and report what arrives",
                        formatter_class=HelpFormatter)
    ls.add_argument("port")
    ls.add_argument("--baud", type=int, default=921600)
    ls.add_argument("--seconds", type=float, default=10.0, help="wall time to listen")
    ls.set_defaults(_bridge=_listen)

    bu = sub.add_parser("budget", help="print the link budget table (leads x rate x format)")
    bu.set_defaults(_bridge=_budget)


def run(args: argparse.Namespace) -> int:
    return args._bridge(args)


def _signal(args):
    """(signal mV (T, L), fs_hz, leads) from --record or --synth, leads selected."""
    import numpy as np

    from edge_ecg.signal.leads import INDEPENDENT_8, canonical_lead

    if args.record:
        from edge_ecg.data.records import read_record

        rec = read_record(args.record)
        x, fs, leads = rec.signal, rec.fs_hz, rec.leads
    else:
        from edge_ecg.data.synth import CONDITIONS, synthesize

        if args.synth not in CONDITIONS:
            raise SourceError(f"--synth {args.synth!r} unknown; choose one of "
                              f"{', '.join(CONDITIONS)}")
        seconds = args.seconds if args.seconds else 60.0
        rec = synthesize(args.synth, seconds=seconds, fs_hz=args.fs, seed=args.seed)
        x, fs, leads = rec.signal, rec.fs_hz, rec.leads
    if args.leads:
        want = [s.strip() for s in args.leads.split(",") if s.strip()]
    else:
        std = [canonical_lead(n) for n in leads]
        want = [leads[std.index(n)] for n in INDEPENDENT_8] if all(
            n in std for n in INDEPENDENT_8) else list(leads)
    missing = [n for n in want if n not in leads]
    if missing:
        raise SourceError(f"--leads {missing} not in the signal's leads {list(leads)}")
    cols = [list(leads).index(n) for n in want]
    return np.asarray(x)[:, cols], fs, tuple(want)


def _emulate(args) -> int:
    from firmware_bridge.emulator import VirtualMonitor
    from firmware_bridge.faults import FaultSpec

    x, fs, leads = _signal(args)
    faults = FaultSpec.parse(args.faults, seed=args.seed)
    vm = VirtualMonitor(x, fs, leads, speed=args.speed, faults=faults, fmt=args.format,
                        samples_per_frame=args.samples_per_frame, seconds=args.seconds,
                        baud=args.baud, link_path=args.link)
    path = vm.start()
    info = vm.info
    print(f"virtual monitor on {path} (-> {vm.pts_path})")
    print(f"  {len(info.leads)} leads {','.join(info.leads)} at {info.fs_hz:g} Hz "
          f"{info.fmt.name.lower()}, {info.samples_per_frame} samples/frame, gain "
          f"{info.gain[0]:g} counts/mV, speed x{args.speed:g}")
    print(f"  read it with: edge-ecg stream serial:{path}   or   edge-ecg bridge listen {path}")
    if vm.clipped_samples:
        print(f"  warning: {vm.clipped_samples} samples clipped at the {info.fmt.name} rails")
    sys.stdout.flush()
    try:
        while not vm.finished.wait(0.5):
            pass
        time.sleep(0.5)   # let the host read the tail
    except KeyboardInterrupt:
        pass
    finally:
        vm.stop()
        print("injected: " + vm.summary())
    return 0


def _listen(args) -> int:
    from firmware_bridge.serial_source import SerialSource

    src = SerialSource(args.port, baud=args.baud)
    n = 0
    first = last = None
    with src:
        info = src.info
        print(f"device: {info.device!r} fw {'.'.join(map(str, info.firmware))}, "
              f"{len(info.leads)} leads {','.join(info.leads)} at {info.fs_hz:g} Hz "
              f"{info.fmt.name.lower()}")
        deadline = time.monotonic() + args.seconds
        try:
            while time.monotonic() < deadline:
                chunk = src.read(0.2)
                if chunk is None:
                    continue
                first = chunk.index if first is None else first
                last = chunk.end
                n += chunk.n_samples
        except KeyboardInterrupt:
            pass
        stats = src.stats()
    span = (last - first) if first is not None else 0
    print(f"samples received {n} of {span} in the index span ({span - n} in gaps)")
    print("stats: " + ", ".join(f"{k}={v}" for k, v in stats.items()))
    return 0


def _budget(args) -> int:
    from firmware_bridge.budget import markdown_table

    print(markdown_table())
    return 0
