"""`edge-ecg ward`: a ward of bedside monitors on NATS JetStream (needs the `ward` extra).

    edge-ecg ward broker --port 4222                          # a local nats-server -js (tests, demos)
    edge-ecg ward publish --source synth:sinus_rhythm --bed 7 --nats nats://127.0.0.1:4222
    edge-ecg ward worker --nats nats://127.0.0.1:4222         # as many as you like, anywhere
    edge-ecg ward adduser --users edge-ecg-station/users.json --name nurse1 --role clinician
    edge-ecg ward station --nats nats://127.0.0.1:4222 --port 8443 --fhir-out obs.ndjson

Summaries go to stderr as JSON; the station's page says it is not a diagnostic device.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from edge_ecg import DISCLAIMER

DEFAULT_URL = "nats://127.0.0.1:4222"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="ward_command", metavar="ROLE", required=True)
    b = sub.add_parser("broker", help="run nats-server with JetStream on a loopback port")
    b.add_argument("--port", type=int, default=4222)
    b.add_argument("--store", default=None, help="JetStream store folder (default: a temp dir)")

    p = sub.add_parser("publish", help="bedside bridge: a monitor's frames -> ecg.<unit>.<bed>")
    p.add_argument("--source", required=True, metavar="SPEC",
                   help="a source spec as for `edge-ecg stream` (serial:, record:, synth:, ...)")
    p.add_argument("--bed", required=True, help="bed id (letters, digits, - or _)")
    p.add_argument("--unit", default="ward", help="unit (ward) id")
    p.add_argument("--nats", default=DEFAULT_URL, metavar="URL")
    p.add_argument("--speed", default="realtime",
                   help="replays: realtime, max or a factor (live devices: their own pace)")
    p.add_argument("--frame-s", type=float, default=0.5,
                   help="replays: seconds of signal per bus frame (shorter: lower latency, more "
                        "broker and worker CPU; live devices send their own chunks)")
    p.add_argument("--buffer-frames", type=int, default=600,
                   help="frames held while the broker is away; the oldest beyond are dropped "
                        "and counted")
    p.add_argument("--seconds", type=float, default=None, help="stop after this much signal")

    w = sub.add_parser("worker", help="serve beds: runtime per bed, inference batched across beds")
    w.add_argument("--nats", default=DEFAULT_URL, metavar="URL")
    w.add_argument("--bundle", default=None, metavar="DIR", help="bundle (default: the bundled one)")
    w.add_argument("--variant", default=None)
    w.add_argument("--tick-s", type=float, default=0.25)
    w.add_argument("--snapshot-s", type=float, default=10.0,
                   help="seconds of signal between a bed's state snapshots")
    w.add_argument("--lease-ttl", type=float, default=3.0,
                   help="seconds after which a silent worker's beds move")
    w.add_argument("--max-beds", type=int, default=None)
    w.add_argument("--id", default=None, help="worker id (default host-pid-random)")
    w.add_argument("--seconds", type=float, default=None, help="stop after this long")

    s = sub.add_parser("station", help="central station: a live web page, alarms, FHIR/HL7 out")
    s.add_argument("--nats", default=DEFAULT_URL, metavar="URL")
    s.add_argument("--bundle", default=None, metavar="DIR",
                   help="the bundle workers must run (default: the bundled one)")
    s.add_argument("--variant", default=None)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8443)
    s.add_argument("--state-dir", default="edge-ecg-station", metavar="DIR",
                   help="the station's own files: TLS key pair (made at first start), FHIR "
                        "outbox, audit log, and by default users.json")
    s.add_argument("--users", default=None, metavar="FILE",
                   help="users file (default STATE_DIR/users.json; `edge-ecg ward adduser`)")
    s.add_argument("--tls-cert", default=None, metavar="PEM",
                   help="the station's certificate (default: self-signed, made in STATE_DIR/tls)")
    s.add_argument("--tls-key", default=None, metavar="PEM")
    s.add_argument("--no-tls", action="store_true",
                   help="plain HTTP: only behind a proxy that serves HTTPS")
    s.add_argument("--fhir-out", default=None, metavar="FILE",
                   help="write FHIR R4 Observations (NDJSON)")
    s.add_argument("--fhir-url", default=None, metavar="URL",
                   help="PUT FHIR R4 Observations to this FHIR base URL (outbox, retries)")
    s.add_argument("--fhir-token-file", default=None, metavar="FILE",
                   help="bearer token for the FHIR server (default: $EDGE_ECG_FHIR_TOKEN)")
    s.add_argument("--hl7-out", default=None, metavar="FILE", help="write HL7 v2 ORU^R01 messages")
    s.add_argument("--no-data-s", type=float, default=10.0,
                   help="a bed silent this long raises NO DATA")
    s.add_argument("--stale-worker-s", type=float, default=10.0,
                   help="frames without events (or a silent worker) this long: NO ANALYSIS")
    s.add_argument("--seconds", type=float, default=None, help="stop after this long")

    u = sub.add_parser("adduser", help="add or replace a station user (Argon2id hash)")
    u.add_argument("--users", required=True, metavar="FILE",
                   help="users file (the station's STATE_DIR/users.json by default)")
    u.add_argument("--name", required=True)
    u.add_argument("--role", required=True, choices=("viewer", "clinician"),
                   help="viewer: sees the ward; clinician: also acknowledges and silences")
    u.add_argument("--password-stdin", action="store_true",
                   help="read the password from stdin's first line (else prompted twice)")


def _serve(coro_factory, stop) -> object:
    async def main():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop)
            except (NotImplementedError, RuntimeError):
                pass
        return await coro_factory()
    return asyncio.run(main())


def run(args: argparse.Namespace) -> int:
    from edge_ecg.runtime.bundle import DEFAULT_BUNDLE
    from edge_ecg.ward import bus

    cmd = args.ward_command
    if cmd == "broker":
        import time

        br = bus.LocalBroker(port=args.port, store=args.store).start()
        print(f"nats-server with JetStream at {br.url} (store {br.store}); Ctrl-C stops it",
              file=sys.stderr)
        try:
            while br.proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            br.close()
        return 0
    if cmd == "publish":
        from edge_ecg.ward.publisher import Publisher, open_feed

        speed = {"realtime": 1.0, "max": 0.0}.get(args.speed)
        if speed is None:
            try:
                speed = float(args.speed)
            except ValueError:
                from edge_ecg.ward.errors import WardError
                raise WardError(f"--speed {args.speed!r}: realtime, max or a number") from None
        feed = open_feed(args.source, args.unit, args.bed, args.frame_s)
        pub = Publisher([feed], args.nats, speed=speed, buffer_frames=args.buffer_frames)
        st = _serve(lambda: pub.run(args.seconds), pub.stop)
        print(json.dumps(st["total"]), file=sys.stderr)
        return 0
    if cmd == "worker":
        from edge_ecg.runtime.backends import open_backend
        from edge_ecg.ward.worker import Worker, WorkerOptions

        bus.environ_threads()
        opts = WorkerOptions(tick_s=args.tick_s, snapshot_s=args.snapshot_s,
                             max_beds=args.max_beds,
                             cfg=bus.WardConfig(lease_ttl_s=args.lease_ttl))
        backend = open_backend(args.bundle or str(DEFAULT_BUNDLE), variant=args.variant,
                               threads=1)
        backend.warmup()
        w = Worker(args.nats, backend, opts, args.id)
        print(f"worker {w.id} serving beds at {args.nats} with {w.bundle}", file=sys.stderr)
        try:
            st = _serve(lambda: w.run(args.seconds), w.stop)
        finally:
            backend.close()
        print(json.dumps({k: st[k] for k in ("worker", "released", "tick")}), file=sys.stderr)
        return 0
    if cmd == "station":
        from edge_ecg.ward.station import Station, StationOptions
        from edge_ecg.ward.technical import TechnicalLimits

        st = Station(args.nats, StationOptions(
            bundle=args.bundle or str(DEFAULT_BUNDLE), variant=args.variant, host=args.host,
            port=args.port, state_dir=args.state_dir, users=args.users,
            tls_cert=args.tls_cert, tls_key=args.tls_key, tls=not args.no_tls,
            fhir_out=args.fhir_out, fhir_url=args.fhir_url,
            fhir_token_file=args.fhir_token_file, hl7_out=args.hl7_out,
            technical=TechnicalLimits(no_data_s=args.no_data_s,
                                      stale_worker_s=args.stale_worker_s)))
        print(DISCLAIMER, file=sys.stderr)
        _serve(lambda: st.run(args.seconds), st.stop)
        return 0
    if cmd == "adduser":
        import getpass

        from edge_ecg.ward.auth import AuthError, add_user

        if args.password_stdin:
            pw = sys.stdin.readline().rstrip("\r\n")
        else:
            pw = getpass.getpass(f"password for {args.name}: ")
            if getpass.getpass("again: ") != pw:
                raise AuthError("the two passwords differ; nothing changed")
        add_user(args.users, args.name, pw, args.role)
        print(f"{args.name} ({args.role}) in {args.users}", file=sys.stderr)
        return 0
    return 2
