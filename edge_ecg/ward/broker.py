"""A secure ward broker: `edge-ecg ward broker --dir DIR` writes it, starts it, sets it up.

    DIR/ca.pem ca.key server.pem server.key     edge_ecg.ward.security
    DIR/roles/<user>.json (.pem .key)            one credential per client: the roles take
                                                 them with --creds
    DIR/nats.conf                                written from the roles at every start (0600;
                                                 bcrypt hashes of the passwords, never the
                                                 passwords: those are only in each role's file)
    DIR/ward.json                                the settings (port, host, names, mutual TLS)
    DIR/js/                                      JetStream's store
    DIR/nats.log                                 the broker's log; `refusals()` counts it

What each role may do on the bus (NATS subject permissions; anything not allowed is refused):

    publisher  publish its own beds' frames (ecg.<unit>.<bed>) and their descriptors in
               ward_beds; subscribe to nothing but its own replies
    worker     read frames, the bed registry, ward_config; write events, leases, heartbeats,
               state snapshots; acknowledge frames
    station    read events through its own durable consumer (station_<user> on EVENTS:
               create, look up and acknowledge that one, no other), frames (strips, plain
               subscription), the bed registry, heartbeats, ward_config; write
               acknowledgements (acks.<unit>.<bed>) and commands to a bed's worker
               (ecg.<unit>.<bed>.cmd: relearn, limits; never a frame) only
    viewer     read (no role but its station may touch a station's durable consumer)
    admin      everything: creates the streams and buckets at set-up, writes ward_config

No client role may create, change, purge or delete a stream or bucket, or write ward_config:
the JetStream API's admin subjects are denied to all of them, and the history streams deny
purge and delete even to the admin. Reply subjects are per user (`_INBOX_<user>.>`), so no
client reads another's replies. TLS on every link (plain connections are refused), mutual
TLS with `mtls`; connection, payload, subscription and JetStream store limits bound what a
flood can take.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_ecg.ward import bus
from edge_ecg.ward.errors import WardError
from edge_ecg.ward.security import (CertificateAuthority, RoleConfig, new_password,
                                    password_hash, user_name)

log = logging.getLogger(__name__)

STOP_S = 5.0      # the broker stops within this on SIGTERM/SIGINT (then it is killed)

# The JetStream API subjects that administer streams and the account: no client role gets
# them (deny wins over allow in NATS permissions).
ADMIN_API = ("$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>",
             "$JS.API.STREAM.MSG.DELETE.>", "$JS.API.STREAM.SNAPSHOT.>",
             "$JS.API.STREAM.RESTORE.>", "$JS.API.STREAM.PEER.>", "$JS.API.STREAM.LEADER.>",
             "$JS.API.ACCOUNT.>", "$JS.API.SERVER.>", "$JS.API.META.>", "$SYS.>",
             f"$KV.{bus.CONFIG_BUCKET}.>")
_COMMON = ("$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.NAMES", "$JS.FC.>")
_KV = {b: f"KV_{b}" for b in (bus.BEDS_BUCKET, bus.LEASES_BUCKET, bus.WORKERS_BUCKET,
                              bus.CONFIG_BUCKET)}
_OBJ = f"OBJ_{bus.STATE_STORE}"
ALL_STREAMS = (bus.FRAMES_STREAM, bus.EVENTS_STREAM, bus.ACKS_STREAM, *_KV.values(), _OBJ)


def _reads(*streams: str) -> list[str]:
    """The API subjects that read a stream: consumers on it, direct and stored-message gets."""
    out = []
    for s in streams:
        out += [f"$JS.API.CONSUMER.CREATE.{s}", f"$JS.API.CONSUMER.CREATE.{s}.>",
                f"$JS.API.CONSUMER.DURABLE.CREATE.{s}.*", f"$JS.API.CONSUMER.DELETE.{s}.*",
                f"$JS.API.CONSUMER.INFO.{s}.*", f"$JS.API.CONSUMER.MSG.NEXT.{s}.*",
                f"$JS.API.DIRECT.GET.{s}", f"$JS.API.DIRECT.GET.{s}.>",
                f"$JS.API.STREAM.MSG.GET.{s}"]
    return out


def _durable(stream: str, name: str) -> list[str]:
    """The API and acknowledgement subjects of one durable push consumer: create (the legacy
    and the named form), look up, acknowledge its messages."""
    return [f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{name}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{name}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{name}.>",
            f"$JS.API.CONSUMER.INFO.{stream}.{name}", f"$JS.ACK.{stream}.{name}.>"]


def _hands_off(stream: str, name: str) -> list[str]:
    """Everything another client could do to a durable consumer it does not own."""
    return [*_durable(stream, name), f"$JS.API.CONSUMER.DELETE.{stream}.{name}",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"]


def permissions(role: str, inbox: str, beds: tuple[str, ...] = (), user: str | None = None,
                stations: tuple[str, ...] = ()) -> dict:
    """NATS permissions of one client of `role` (see the module docstring). `user`: the
    client's user (default: from its inbox `_INBOX_<user>`); `stations`: the ward's station
    users, whose durable consumers on EVENTS no other client may create, change, delete or
    acknowledge."""
    if role == "admin":
        return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    user = user or inbox.removeprefix("_INBOX_")
    subs = [f"{inbox}.>"]
    if role == "publisher":
        if not beds:
            raise WardError("a publisher credential needs its beds (<unit>.<bed>)")
        pub = [bus.frames_subject(*b.split(".", 1)) for b in beds]
        pub += [f"$KV.{bus.BEDS_BUCKET}.{b}" for b in beds]
        pub += list(_COMMON)
    elif role == "worker":
        pub = ["events.>", f"$KV.{bus.LEASES_BUCKET}.>", f"$KV.{bus.WORKERS_BUCKET}.>",
               f"$O.{bus.STATE_STORE}.>", f"$JS.ACK.{bus.FRAMES_STREAM}.>",
               f"$JS.API.STREAM.PURGE.{_OBJ}",      # the object store replaces a snapshot so
               *_COMMON,                            # (its old chunks purged by subject)
               *_reads(bus.FRAMES_STREAM, bus.EVENTS_STREAM, *_KV.values(), _OBJ)]
    elif role == "station":
        # events through its own durable consumer only (it resumes there after a restart);
        # strips from a plain subscription to the frames; no other consumer on any stream
        pub = [f"{bus.ACKS_SUBJECT}.>", bus.COMMANDS_ANY,
               *_COMMON,
               *_durable(bus.EVENTS_STREAM, bus.station_durable(user)),
               *_reads(*(_KV[b] for b in (bus.BEDS_BUCKET, bus.WORKERS_BUCKET,
                                          bus.CONFIG_BUCKET)))]
        subs += ["ecg.>"]
    elif role == "viewer":
        pub = [*_COMMON, *_reads(bus.EVENTS_STREAM, bus.FRAMES_STREAM, bus.ACKS_STREAM,
                                 *_KV.values())]
        subs += ["events.>", "ecg.>", "acks.>"]
    else:
        raise WardError(f"unknown ward role {role!r}: publisher, worker, station, viewer, admin")
    purge_ok = {_OBJ} if role == "worker" else set()
    deny = [*ADMIN_API, *(f"$JS.API.STREAM.PURGE.{s}" for s in ALL_STREAMS if s not in purge_ok)]
    for other in stations:
        if not (role == "station" and other == user):
            deny += _hands_off(bus.EVENTS_STREAM, bus.station_durable(other))
    return {"publish": {"allow": pub, "deny": deny},
            "subscribe": {"allow": subs, "deny": ["$SYS.>"]}}


@dataclass
class BrokerSettings:
    """Where the broker listens and what it allows; kept in DIR/ward.json."""

    host: str = "127.0.0.1"            # 0.0.0.0 (or an address) for a LAN ward
    port: int = 4222
    names: list[str] = field(default_factory=list)   # LAN names/addresses for the certificate
    mtls: bool = False                 # clients must present a certificate of the ward's CA
    max_connections: int = 512
    max_payload: int = 1 << 20         # a frame is ~9 kB; snapshot chunks 128 kB
    max_subscriptions: int = 20_000    # per connection (a worker: a few per bed)
    max_pending: int = 64 << 20        # per connection, then it is a slow consumer, cut
    max_file_store: int = 8 << 30      # JetStream's disk, all streams together
    max_memory_store: int = 256 << 20
    client_host: str | None = None     # the address clients dial (default: host, or 127.0.0.1)

    @property
    def url(self) -> str:
        h = self.client_host or (self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1")
        if ":" in h:
            h = f"[{h}]"
        return f"tls://{h}:{self.port}"


class WardDir:
    """A secure ward's folder: its CA, certificates, credentials and broker configuration."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.roles_dir = self.path / "roles"

    @property
    def settings_file(self) -> Path:
        return self.path / "ward.json"

    def settings(self) -> BrokerSettings:
        try:
            return BrokerSettings(**json.loads(self.settings_file.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise WardError(f"{self.settings_file}: {exc}; write the ward with "
                            "`edge-ecg ward broker --dir DIR`") from None

    def exists(self) -> bool:
        return self.settings_file.exists() and (self.path / "ca.key").exists()

    def create(self, settings: BrokerSettings | None = None, beds: list[str] = (),
               bridges: dict[str, list[str]] | None = None) -> WardDir:
        """Write (or extend) the ward: a CA and server certificate the first time, one
        credential per role and per bed (and per named bridge of several beds) not yet there.
        An existing CA and credentials are kept, so running clients stay valid."""
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        if self.exists():
            st = self.settings()
            if settings is not None:       # new listen settings; certificate names kept
                settings.names = sorted(set(st.names) | set(settings.names))
                st = settings
            ca = CertificateAuthority.load(self.path)
        else:
            st = settings or BrokerSettings()
            ca = CertificateAuthority.create()
            ca.save(self.path)
        names = ("127.0.0.1", "::1", "localhost", *st.names,
                 *([st.host] if st.host not in ("0.0.0.0", "::") else []))
        ca.issue("nats-server", self.path / "server", tuple(dict.fromkeys(names)))
        self.settings_file.write_text(json.dumps(asdict(st), indent=1))
        want = [("admin", (), None), ("worker", (), None), ("station", (), None),
                ("viewer", (), None)]
        for b in beds:
            unit, bed = b.split(".", 1) if "." in b else ("ward", b)
            want.append(("publisher", (bus.bed_key(unit, bed),), None))
        for name, bb in (bridges or {}).items():
            want.append(("publisher", tuple(bus.bed_key(*x.split(".", 1)) for x in bb), name))
        for role, bb, name in want:
            user = user_name(role, bb, name)
            bus.check_token(user, "user")
            f = self.roles_dir / f"{user}.json"
            pw = None
            if f.exists():
                old = RoleConfig.load(f)
                if old.beds == bb:
                    if old.url != st.url:      # the broker moved: the credential follows
                        dataclasses.replace(old, url=st.url).save(f)
                    continue
                pw = old.password          # a bridge given other beds keeps its password
            pem, key = ca.issue(user, self.roles_dir / user)
            RoleConfig(url=st.url, user=user, password=pw or new_password(), role=role,
                       ca_file=str(self.path / "ca.pem"), cert_file=str(pem), key_file=str(key),
                       inbox_prefix=f"_INBOX_{user}", beds=bb).save(f)
        self.write_conf()
        return self

    def role(self, user: str) -> RoleConfig:
        f = self.roles_dir / f"{user}.json"
        if not f.exists():
            raise WardError(f"no credential {f}: known users "
                            f"{sorted(p.stem for p in self.roles_dir.glob('*.json'))}")
        return RoleConfig.load(f)

    def roles(self) -> list[RoleConfig]:
        return [RoleConfig.load(f) for f in sorted(self.roles_dir.glob("*.json"))]

    def write_conf(self) -> Path:
        """nats.conf from the settings and every credential in roles/ (JSON is valid NATS
        configuration syntax, and quoting every value keeps `$JS...` subjects and `$2a$...`
        hashes literal). Each user's password is there as a bcrypt hash, made afresh at every
        write (`security.password_hash`)."""
        st = self.settings()
        roles = self.roles()
        stations = tuple(r.user for r in roles if r.role == "station")
        users = [{"user": r.user, "password": password_hash(r.password),
                  "permissions": permissions(r.role, r.inbox_prefix or f"_INBOX_{r.user}",
                                             r.beds, r.user, stations)} for r in roles]
        conf = {
            "listen": f"{st.host}:{st.port}",
            "server_name": "edge_ecg_ward",
            "max_connections": st.max_connections,
            "max_payload": st.max_payload,
            "max_subscriptions": st.max_subscriptions,
            "max_pending": st.max_pending,
            "max_control_line": 4096,
            "write_deadline": "2s",
            "ping_interval": "20s",
            "tls": {"cert_file": str(self.path / "server.pem"),
                    "key_file": str(self.path / "server.key"),
                    "ca_file": str(self.path / "ca.pem"), "verify": bool(st.mtls),
                    "timeout": 2.0},
            "authorization": {"timeout": 2.0, "users": users},
            "jetstream": {"store_dir": str(self.path / "js"),
                          "max_file_store": st.max_file_store,
                          "max_memory_store": st.max_memory_store},
        }
        p = self.path / "nats.conf"
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(conf, f, indent=1)
        return p


# --- what the broker refused, from its log -------------------------------------------------
_REFUSALS = {
    "auth_failed": re.compile(r"authentication error|authorization violation", re.I),
    "tls_failed": re.compile(r"TLS handshake error|client didn't provide a certificate|"
                             r"secure connection - TLS required|TLS required", re.I),
    "permission_denied": re.compile(r"(publish|subscription) violation|permissions violation",
                                    re.I),
    "max_connections": re.compile(r"maximum connections exceeded", re.I),
    "max_payload": re.compile(r"maximum payload", re.I),
    "slow_consumer": re.compile(r"slow consumer", re.I),
}


def refusals(log_path: str | Path) -> dict[str, int]:
    """Counts of what the broker refused or cut, read from its log."""
    out = dict.fromkeys(_REFUSALS, 0)
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                if "[ERR]" not in line and "[WRN]" not in line:
                    continue
                for k, rx in _REFUSALS.items():
                    if rx.search(line):
                        out[k] += 1
                        break
    except OSError:
        pass
    return out


class WardBroker:
    """nats-server on a `WardDir`: start (and set up), stop within `STOP_S`, kill."""

    def __init__(self, ward: WardDir) -> None:
        self.ward = ward
        self.proc: subprocess.Popen | None = None

    @property
    def settings(self) -> BrokerSettings:
        return self.ward.settings()

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def log_path(self) -> Path:
        return self.ward.path / "nats.log"

    def role(self, user: str) -> RoleConfig:
        return self.ward.role(user)

    def start(self, timeout_s: float = 10.0) -> WardBroker:
        conf = self.ward.write_conf()
        st = self.settings
        start_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        logf = open(self.log_path, "ab")   # noqa: SIM115 (the child writes it until it ends)
        self.proc = subprocess.Popen([bus.nats_server_binary(), "-c", str(conf), "-l",
                                      str(self.log_path)], stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        logf.close()
        # ready when its log says so: a TCP probe would be a refused plain client in the log
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise WardError(f"nats-server exited ({self.proc.returncode}); see "
                                f"{self.log_path}")
            try:
                with open(self.log_path, "rb") as f:
                    f.seek(start_at)
                    if b"Server is ready" in f.read():
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise WardError(f"nats-server was not ready on port {st.port} in {timeout_s} s; "
                        f"see {self.log_path}")

    def provision(self, cfg: bus.WardConfig | None = None, bundle: str | None = None) -> None:
        """As the admin: create (or bring to `cfg`'s limits) the streams and buckets, and
        write the bundle the workers must run into ward_config."""
        asyncio.run(provision(self.role("admin"), cfg, bundle))

    def stop(self, timeout_s: float = STOP_S) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("nats-server did not stop in %.1f s: killed", timeout_s)
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def refusals(self) -> dict[str, int]:
        return refusals(self.log_path)

    def __enter__(self) -> WardBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


async def provision(admin: RoleConfig, cfg: bus.WardConfig | None = None,
                    bundle: str | None = None) -> None:
    from nats.js.api import StreamConfig  # noqa: F401  (the ward extra is needed here)

    cfg = cfg or bus.WardConfig()
    nc = await bus.connect(admin, "edge-ecg-admin")
    try:
        js = nc.jetstream()
        st = await bus.ensure(js, cfg, create=True)
        for sc in cfg.streams():            # an existing stream is brought to these limits
            try:
                await js.update_stream(sc)
            except Exception as exc:
                log.warning("stream %s kept its settings: %s", sc.name, exc)
        if bundle is not None:
            await st[bus.CONFIG_BUCKET].put("bundle", bundle.encode())
    finally:
        await bus.close(nc)
