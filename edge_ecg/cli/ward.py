"""`edge-ecg ward`: a ward of bedside monitors on NATS JetStream (needs the `ward` extra).

    edge-ecg ward broker --dir ward --beds icu.7 --bundle DIR  # CA, certificates, per-role
                                                              # credentials; nats-server on TLS
    edge-ecg ward publish --creds ward/roles/publisher-icu-7.json --unit icu --bed 7 \
        --source synth:sinus_rhythm
    edge-ecg ward worker --creds ward/roles/worker.json      # as many as you like, anywhere
    edge-ecg ward adduser --users edge-ecg-station/users.json --name nurse1 --role clinician
    edge-ecg ward station --creds ward/roles/station.json --port 8443 --fhir-out obs.ndjson

Secure by default: the roles connect with a credential file (`--creds`); `--insecure` (a plain,
unauthenticated broker on loopback: `edge-ecg ward broker --insecure`) is for experiments.
Every role stops within a stated time on SIGTERM or SIGINT, broker or no broker; a second
signal ends it at once.

Summaries go to stderr as JSON; the station's page says it is not a diagnostic device.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading

from edge_ecg import DISCLAIMER

DEFAULT_URL = "nats://127.0.0.1:4222"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="ward_command", metavar="ROLE", required=True)
    b = sub.add_parser("broker", help="write a secure ward (CA, certificates, credentials per "
                                      "role) and run nats-server with JetStream on it")
    b.add_argument("--dir", default=None, metavar="DIR",
                   help="the ward's folder: made the first time, extended later (keys stay)")
    b.add_argument("--port", type=int, default=4222)
    b.add_argument("--host", default="127.0.0.1",
                   help="listen address (0.0.0.0 or a LAN address for a LAN ward)")
    b.add_argument("--name", action="append", default=[], metavar="HOST",
                   help="a LAN name or address clients dial (in the server certificate; "
                        "repeatable)")
    b.add_argument("--mtls", action="store_true",
                   help="mutual TLS: clients must also present a certificate of the ward's CA")
    b.add_argument("--beds", nargs="*", default=[], metavar="UNIT.BED",
                   help="beds whose bedside publishers get a credential each")
    b.add_argument("--bridge", action="append", default=[], metavar="NAME=UNIT.BED,...",
                   help="one publisher credential for several beds (a bridge box; repeatable)")
    b.add_argument("--bundle", default=None, metavar="DIR",
                   help="the bundle workers must run, written into ward_config by the admin")
    b.add_argument("--variant", default=None)
    b.add_argument("--max-connections", type=int, default=512)
    b.add_argument("--max-file-store", type=float, default=8.0, metavar="GB",
                   help="JetStream's disk for all streams together")
    b.add_argument("--frames-max-gb", type=float, default=2.0,
                   help="the ECG stream's bytes (oldest frames dropped beyond)")
    b.add_argument("--write-only", action="store_true",
                   help="write the configuration and credentials, do not start nats-server")
    b.add_argument("--insecure", action="store_true",
                   help="a plain, unauthenticated broker on loopback (experiments only)")
    b.add_argument("--store", default=None, help="--insecure: JetStream store folder")
    _log_options(b)

    p = sub.add_parser("publish", help="bedside bridge: a monitor's frames -> ecg.<unit>.<bed>")
    p.add_argument("--source", required=True, metavar="SPEC",
                   help="a source spec as for `edge-ecg stream` (serial:, record:, synth:, ...)")
    p.add_argument("--bed", required=True, help="bed id (letters, digits, - or _)")
    p.add_argument("--unit", default="ward", help="unit (ward) id")
    add_bus_options(p)
    p.add_argument("--speed", default="realtime",
                   help="replays: realtime, max or a factor (live devices: their own pace)")
    p.add_argument("--frame-s", type=float, default=0.5,
                   help="replays: seconds of signal per bus frame (shorter: lower latency, more "
                        "broker and worker CPU; live devices send their own chunks)")
    p.add_argument("--buffer-frames", type=int, default=600,
                   help="frames held while the broker is away; the oldest beyond are dropped "
                        "and counted")
    p.add_argument("--seconds", type=float, default=None, help="stop after this much signal")
    _log_options(p)

    w = sub.add_parser("worker", help="serve beds: runtime per bed, inference batched across beds")
    add_bus_options(w)
    w.add_argument("--bundle", default=None, metavar="DIR", help="bundle (default: the bundled one)")
    w.add_argument("--variant", default=None)
    w.add_argument("--tick-s", type=float, default=0.25)
    w.add_argument("--snapshot-s", type=float, default=10.0,
                   help="seconds of signal between a bed's state snapshots")
    w.add_argument("--lease-ttl", type=float, default=3.0,
                   help="seconds after which a silent worker's beds move")
    w.add_argument("--max-beds", type=int, default=None)
    w.add_argument("--id", default=None, help="worker id (default host-pid-random)")
    w.add_argument("--alarm-limits", default=None, metavar="FILE.toml",
                   help="the unit's alarm limits, as the station's (the stream's own alarms: "
                        "VF from the signal); checked at start")
    w.add_argument("--seconds", type=float, default=None, help="stop after this long")
    w.add_argument("--max-jump-s", type=float, default=600.0,
                   help="a frame farther than this from its bed's clock is refused (counted)")
    w.add_argument("--stall-s", type=float, default=10.0,
                   help="watchdog: a tick with no progress this long hands every bed over and "
                        "ends the worker (exit 3); a bed whose stored frames are not delivered "
                        "this long is subscribed again")
    _log_options(w)

    s = sub.add_parser("station", help="central station: a live web page, alarms, FHIR/HL7 out")
    add_bus_options(s)
    _log_options(s)
    s.add_argument("--bundle", default=None, metavar="DIR",
                   help="the bundle workers must run (default: the bundled one)")
    s.add_argument("--variant", default=None)
    s.add_argument("--name", default=None,
                   help="the station's name: its place in the events is kept under it, so a "
                        "restart resumes there (default: the credential's user; --insecure: "
                        "station)")
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
    s.add_argument("--alarm-limits", default=None, metavar="FILE.toml",
                   help="the unit's alarm limits: [alarms] for every bed, [beds.\"UNIT.BED\"] "
                        "for one (edge_ecg/runtime/alarm_settings.py); checked at start, the "
                        "station refuses to start on a bad file")
    s.add_argument("--seconds", type=float, default=None, help="stop after this long")

    u = sub.add_parser("adduser", help="add or replace a station user (Argon2id hash)")
    u.add_argument("--users", required=True, metavar="FILE",
                   help="users file (the station's STATE_DIR/users.json by default)")
    u.add_argument("--name", required=True)
    u.add_argument("--role", required=True, choices=("viewer", "clinician"),
                   help="viewer: sees the ward; clinician: also acknowledges and silences "
                        "alarms, sets a bed's alarm limits and relearns its beat templates")
    u.add_argument("--password-stdin", action="store_true",
                   help="read the password from stdin's first line (else prompted twice)")


def add_bus_options(p: argparse.ArgumentParser) -> None:
    """How a role reaches the bus: a credential file (secure), or --insecure with a URL. The
    station's parser can take them too; `bus_target(args)` turns them into `bus.connect`'s
    target."""
    p.add_argument("--creds", default=None, metavar="FILE",
                   help="credential file (DIR/roles/<user>.json from `edge-ecg ward broker "
                        "--dir DIR`): TLS, user, password, client certificate")
    p.add_argument("--nats", default=None, metavar="URL",
                   help=f"broker URL (default: the credential's; --insecure: {DEFAULT_URL})")
    p.add_argument("--insecure", action="store_true",
                   help="connect without TLS or credentials (a broker started --insecure)")


def bus_target(args: argparse.Namespace):
    """A `RoleConfig` from --creds (its URL replaced by --nats), or the --nats URL with
    --insecure; refuses to connect in plain text unless told to."""
    from dataclasses import replace

    from edge_ecg.ward.errors import WardError
    from edge_ecg.ward.security import RoleConfig

    if args.creds:
        role = RoleConfig.load(args.creds)
        return replace(role, url=args.nats) if args.nats else role
    if args.insecure:
        return args.nats or DEFAULT_URL
    raise WardError("no credential: give --creds DIR/roles/<user>.json (written by `edge-ecg "
                    "ward broker --dir DIR`), or --insecure to use a plain, unauthenticated "
                    "broker for an experiment")


def _log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-json", action="store_true", help="log JSON lines to stderr")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def _setup_logs(args) -> None:
    from edge_ecg.ward import logs

    logs.setup(getattr(args, "log_json", False), getattr(args, "log_level", "INFO"))


def _serve(coro_factory, stop, deadline_s: float = 8.0) -> object:
    """Run a role until it ends. The first SIGTERM/SIGINT asks it to stop (it hands its work
    over within its own stop time); if it has not ended `deadline_s` later, or at a second
    signal, the process ends at once: a service manager's stop always works."""
    import logging

    lg = logging.getLogger("edge_ecg.ward")
    signals = []

    def hard_exit(why: str) -> None:
        lg.error("%s: exiting now", why)
        logging.shutdown()
        os._exit(1)

    def on_signal(sig):
        signals.append(sig)
        if len(signals) == 1:
            lg.info("%s: stopping (at most %.0f s)", signal.Signals(sig).name, deadline_s)
            stop()
            t = threading.Timer(deadline_s, hard_exit, (f"not stopped {deadline_s} s after "
                                                         f"{signal.Signals(sig).name}",))
            t.daemon = True
            t.start()
        else:
            hard_exit(f"second signal ({signal.Signals(sig).name})")

    async def main():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal, sig)
            except (NotImplementedError, RuntimeError):
                pass
        return await coro_factory()
    from edge_ecg.ward import event_loop

    return event_loop.run(main())


def _broker(args) -> int:
    from edge_ecg.ward import broker, bus

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if args.insecure:
        br = bus.LocalBroker(port=args.port, store=args.store).start()
        print(f"INSECURE nats-server with JetStream at {br.url} (store {br.store}): no TLS, no "
              "credentials, for experiments; SIGTERM/Ctrl-C stops it", file=sys.stderr)
        try:
            while br.proc.poll() is None and not stop.wait(0.2):
                pass
        finally:
            br.close()
        return 0
    if not args.dir:
        from edge_ecg.ward.errors import WardError
        raise WardError("--dir DIR: where the ward's CA, certificates and credentials go (or "
                        "--insecure for a plain broker for experiments)")
    bridges = {}
    for spec in args.bridge:
        name, _, beds = spec.partition("=")
        bridges[name] = [b for b in beds.split(",") if b]
    settings = broker.BrokerSettings(host=args.host, port=args.port, names=list(args.name),
                                     mtls=args.mtls, max_connections=args.max_connections,
                                     max_file_store=int(args.max_file_store * (1 << 30)))
    ward = broker.WardDir(args.dir).create(settings, beds=args.beds, bridges=bridges)
    roles = sorted(p.name for p in ward.roles_dir.glob("*.json"))
    print(f"ward in {ward.path}: CA, server certificate, credentials {roles}", file=sys.stderr)
    if args.write_only:
        return 0
    bundle = None
    if args.bundle:
        from edge_ecg.runtime.backends import open_backend
        from edge_ecg.ward.snapshot import bundle_key

        be = open_backend(args.bundle, variant=args.variant, threads=1)
        bundle = bundle_key(be)
        be.close()
    br = broker.WardBroker(ward).start()
    code = 0
    try:
        cfg = bus.WardConfig(frames_max_bytes=int(args.frames_max_gb * (1 << 30)))
        br.provision(cfg, bundle)
        print(f"nats-server at {br.url} (TLS{', mutual' if args.mtls else ''}; plain clients "
              f"refused); streams and buckets set up{f', bundle {bundle}' if bundle else ''}; "
              f"SIGTERM/Ctrl-C stops it within {broker.STOP_S:.0f} s", file=sys.stderr)
        while br.proc.poll() is None and not stop.wait(0.2):
            pass
        if br.proc.poll() is not None:
            code = br.proc.returncode
    finally:
        br.stop()
        print(json.dumps({"refused": br.refusals()}), file=sys.stderr)
    return 0 if not code else 1


def run(args: argparse.Namespace) -> int:
    from edge_ecg.runtime.bundle import DEFAULT_BUNDLE
    from edge_ecg.ward import bus

    cmd = args.ward_command
    if cmd in ("broker", "publish", "worker", "station"):
        _setup_logs(args)
    if cmd == "broker":
        return _broker(args)
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
        pub = Publisher([feed], bus_target(args), speed=speed, buffer_frames=args.buffer_frames)
        st = _serve(lambda: pub.run(args.seconds), pub.stop, pub.stop_timeout_s + 3)
        print(json.dumps(st["total"]), file=sys.stderr)
        if st["total"]["beds_refused"]:
            from edge_ecg.ward.errors import WardError
            raise WardError(st["beds"][st["total"]["beds_refused"][0]]["refused"] + ": use "
                            "this bed's own credential (DIR/roles/publisher-UNIT-BED.json)")
        return 0
    if cmd == "worker":
        from edge_ecg.runtime.alarm_settings import describe, settings_from
        from edge_ecg.runtime.backends import open_backend
        from edge_ecg.ward.worker import Worker, WorkerOptions

        alarms = settings_from(args.alarm_limits)
        target = bus_target(args)
        opts = WorkerOptions(tick_s=args.tick_s, snapshot_s=args.snapshot_s,
                             max_beds=args.max_beds, max_jump_s=args.max_jump_s,
                             stall_s=args.stall_s,
                             cfg=bus.WardConfig(lease_ttl_s=args.lease_ttl), alarms=alarms)
        print(describe(alarms), file=sys.stderr)
        backend = open_backend(args.bundle or str(DEFAULT_BUNDLE), variant=args.variant,
                               threads=1)
        backend.warmup()
        w = Worker(target, backend, opts, args.id)
        where = target if isinstance(target, str) else f"{target.url} as {target.user}"
        print(f"worker {w.id} serving beds at {where} with {w.bundle}", file=sys.stderr)
        try:
            st = _serve(lambda: w.run(args.seconds), w.stop, opts.stop_timeout_s + 3)
        finally:
            backend.close()
        print(json.dumps({k: st[k] for k in ("worker", "released", "stalled", "resubscribed",
                                              "tick", "failed", "connection")}),
              file=sys.stderr)
        if st["stalled"]:
            # the watchdog handed every bed over: a hung compute thread cannot be joined, so
            # the process ends here, non-zero, for its service manager to start it again
            print(f"worker {w.id} stopped by its watchdog: {st['stalled']}; its beds were "
                  "handed over. Start it again (a service manager restarts it on failure).",
                  file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(3)
        return 0
    if cmd == "station":
        from edge_ecg.runtime.alarm_settings import changed, describe, settings_from
        from edge_ecg.ward.station import Station, StationOptions
        from edge_ecg.ward.technical import TechnicalLimits

        alarms = settings_from(args.alarm_limits)
        st = Station(bus_target(args), StationOptions(
            bundle=args.bundle or str(DEFAULT_BUNDLE), variant=args.variant, host=args.host,
            port=args.port, state_dir=args.state_dir, users=args.users,
            tls_cert=args.tls_cert, tls_key=args.tls_key, tls=not args.no_tls,
            fhir_out=args.fhir_out, fhir_url=args.fhir_url,
            fhir_token_file=args.fhir_token_file, hl7_out=args.hl7_out, name=args.name,
            technical=TechnicalLimits(no_data_s=args.no_data_s,
                                      stale_worker_s=args.stale_worker_s), alarms=alarms))
        print(DISCLAIMER, file=sys.stderr)
        print(describe(alarms), file=sys.stderr)
        vf_keys = {"vf_on", "vf_off"} & {k for lim in [alarms.limits, *alarms.beds.values()]
                                         for k in changed(lim)}
        if vf_keys:
            # the station has no signal path: it shows the VF alarm the bed's stream raised
            print(f"edge-ecg ward station: {', '.join(sorted(vf_keys))} act where VF is "
                  "detected, in the workers' streams: give them the same file "
                  "(`edge-ecg ward worker --alarm-limits`)", file=sys.stderr)
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
