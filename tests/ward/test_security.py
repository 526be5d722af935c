"""The ward's bus attacked as issue 26 attacked it, each attack now refused and counted:
clients without TLS, without or with wrong credentials; a publisher writing another bed or
reading events; a worker or station administering streams or overwriting ward_config; a
frame jumping 1e12 samples; a forged event ordinal; a gain of 1e-30; a bed whose processing
raises; a worker whose broker has gone, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ward_reference import comparable, reference_events, source_chunks, stored_events

from edge_ecg.errors import FrameError
from edge_ecg.signal.chunk import Chunk
from edge_ecg.ward import bus, frames, registry
from edge_ecg.ward.errors import WardError

REPO = Path(__file__).resolve().parents[2]
SPEC = "synth:sinus_rhythm?seconds=12&seed=1"

pytest.importorskip("nats", reason="the ward extra (nats-py) is not installed")


async def _connect_js(target, counters=None, timeout=1.0):
    nc = await bus.connect(target, "attacker", counters)
    return nc, nc.jetstream(timeout=timeout)


def test_plain_unauthenticated_and_wrong_credentials_are_refused(ward):
    import dataclasses

    import nats

    port = ward.settings.port

    async def attempt(**kw):
        try:
            nc = await nats.connect(allow_reconnect=False, connect_timeout=2, **kw)
        except Exception as exc:
            return type(exc).__name__
        await nc.close()
        return "connected"

    worker = ward.role("worker")
    tls = bus.tls_context(dataclasses.replace(worker, cert_file=None, key_file=None))
    got = asyncio.run(attempt(servers=[f"nats://127.0.0.1:{port}"]))           # plain text
    assert got != "connected"
    got = asyncio.run(attempt(servers=[worker.url], tls=tls))                  # no credentials
    assert got != "connected"
    got = asyncio.run(attempt(servers=[worker.url], tls=tls, user="worker",
                              password="guessed"))                             # wrong password
    assert got != "connected"
    got = asyncio.run(attempt(servers=[f"nats://127.0.0.1:{port}"], user="worker",
                              password=worker.password))                       # right, no TLS
    assert got != "connected"
    with pytest.raises(WardError, match="cannot connect"):                      # the ward's API
        asyncio.run(bus.connect(dataclasses.replace(worker, password="x" * 32), "w"))
    r = ward.refusals()
    assert r["auth_failed"] >= 3 and r["tls_failed"] >= 1, r
    # and the real credential works
    assert asyncio.run(attempt(servers=[worker.url], tls=tls, user="worker",
                               password=worker.password)) == "connected"


def test_mutual_tls_refuses_a_client_without_a_certificate(tmp_path):
    import dataclasses
    import shutil

    if shutil.which("nats-server") is None:
        pytest.skip("nats-server not found")
    from edge_ecg.ward.broker import BrokerSettings, WardBroker, WardDir

    wd = WardDir(tmp_path / "w").create(BrokerSettings(port=bus.free_port(), mtls=True))
    with WardBroker(wd) as br:
        viewer = br.role("viewer")
        nc = asyncio.run(bus.connect(viewer, "v"))          # with its certificate: in
        asyncio.run(bus.close(nc))
        with pytest.raises(WardError):
            asyncio.run(bus.connect(dataclasses.replace(viewer, cert_file=None, key_file=None),
                                    "v", allow_reconnect=False))
        assert br.refusals()["tls_failed"] >= 1


def test_a_publisher_writes_only_its_own_bed_and_reads_nothing(ward):
    async def main():
        c = bus.ConnectionCounters()
        nc, js = await _connect_js(ward.role("publisher-icu-b1"), c)
        await js.publish("ecg.icu.b1", b"x", stream=bus.FRAMES_STREAM)        # its own: stored
        with pytest.raises(Exception):
            await js.publish("ecg.icu.b2", b"forged", stream=bus.FRAMES_STREAM)
        kv = await js.key_value(bus.BEDS_BUCKET)
        await kv.put("icu.b1", b"{}")
        with pytest.raises(Exception):
            await kv.put("icu.b9", b"{}")                                      # a forged bed
        got = []

        async def on_event(m):
            got.append(m)
        await nc.subscribe("events.>", cb=on_event)
        with pytest.raises(Exception):
            await js.subscribe("events.>", ordered_consumer=True)
        await asyncio.sleep(0.3)
        await bus.close(nc)
        # what is stored, read as the admin
        anc, ajs = await _connect_js(ward.role("admin"))
        await ajs.publish("events.icu.b1", b"{}", stream=bus.EVENTS_STREAM)
        info = await ajs.stream_info(bus.FRAMES_STREAM, subjects_filter="ecg.>")
        await bus.close(anc)
        return c, got, info.state.subjects
    c, got, subjects = asyncio.run(main())
    assert subjects == {"ecg.icu.b1": 1}
    assert got == []
    assert c.permission_errors >= 3
    assert ward.refusals()["permission_denied"] >= 3


@pytest.mark.parametrize("role", ["worker", "station"])
def test_no_client_role_administers_streams_or_ward_config(ward, role):
    async def main():
        anc, ajs = await _connect_js(ward.role("admin"))
        await (await ajs.key_value(bus.CONFIG_BUCKET)).put("bundle", b"the-real/bundle")
        await ajs.publish("events.icu.b1", b"{}", stream=bus.EVENTS_STREAM)
        c = bus.ConnectionCounters()
        nc, js = await _connect_js(ward.role(role), c, timeout=0.5)   # a refusal: no reply
        refused = 0
        for attack in (lambda: js.purge_stream(bus.EVENTS_STREAM),
                       lambda: js.delete_stream(bus.EVENTS_STREAM),
                       lambda: js.delete_stream(bus.FRAMES_STREAM),
                       lambda: js.delete_msg(bus.EVENTS_STREAM, 1),
                       lambda: js.delete_key_value(bus.LEASES_BUCKET)):
            try:
                await attack()
            except Exception:
                refused += 1
        kv = await js.key_value(bus.CONFIG_BUCKET)
        try:
            await kv.put("bundle", b"evil/bundle")
        except Exception:
            refused += 1
        value = (await kv.get("bundle")).value
        await bus.close(nc)
        info = await ajs.stream_info(bus.EVENTS_STREAM)
        await bus.close(anc)
        return refused, value, info.state.messages, c
    refused, value, n_events, c = asyncio.run(main())
    assert refused == 6
    assert value == b"the-real/bundle"
    assert n_events == 1                      # history intact
    assert c.permission_errors >= 6


def test_a_secure_ward_stores_the_reference_events(ward, backend):
    """Publisher, worker and audit each with their own credential over TLS."""
    from edge_ecg.ward.publisher import Publisher, open_feed
    from edge_ecg.ward.worker import Worker, WorkerOptions

    async def main():
        w = Worker(ward.role("worker"), backend, WorkerOptions(tick_s=0.1))
        task = asyncio.create_task(w.run())
        pub = await Publisher([open_feed(SPEC, "icu", "b1")], ward.role("publisher-icu-b1"),
                              speed=0.0).run()
        for _ in range(600):           # done long before, unless the machine is loaded
            await asyncio.sleep(0.1)
            b = w.beds.get("icu.b1")
            if b is not None and b.samples >= 6000 and not b.inbox and not b.outbox:
                break
        w.stop()
        st = await task
        return pub, st
    pub, st = asyncio.run(main())
    assert pub["total"]["published"] == 24 and pub["total"]["refused"] == 0
    assert st["connection"]["permission_errors"] == 0
    got = asyncio.run(stored_events(ward.role("viewer"), "icu", "b1"))
    assert [comparable(e) for e in got] == reference_events(source_chunks(SPEC), backend)


def test_a_publisher_is_refused_a_bed_its_credential_does_not_cover(ward):
    """Up front: the credential names its beds, so another bed is refused before anything is
    sent, with what to do. On the bus: a credential file that claims a bed the broker does not
    grant (stale, or edited) gets that bed stopped, named and counted within the publish
    timeout, while its other beds publish everything; before, the bed was retried silently
    for ever and the publisher never ended."""
    import dataclasses

    from edge_ecg.ward.publisher import Publisher, open_feed

    role = ward.role("publisher-test")                  # icu.b1-b3
    with pytest.raises(WardError, match=r"only icu\.b1, icu\.b2, icu\.b3, not icu\.b4"):
        Publisher([open_feed(SPEC, "icu", "b4")], role)
    claims = dataclasses.replace(role, beds=(*role.beds, "icu.b4"))

    async def main():
        pub = Publisher([open_feed(SPEC, "icu", "b1"), open_feed(SPEC, "icu", "b4")], claims,
                        speed=0.0)
        return await asyncio.wait_for(pub.run(), 60)
    t0 = time.monotonic()
    st = asyncio.run(main())
    took = time.monotonic() - t0
    b1, b4 = st["beds"]["icu.b1"], st["beds"]["icu.b4"]
    assert b1["published"] == b1["produced"] == 24 and not b1["refused"]
    assert "icu.b4" in b4["refused"] and b4["published"] == 0 and b4["balanced"]
    assert st["total"]["beds_refused"] == ["icu.b4"] and st["total"]["refused"] >= 1
    assert took < 30, took

    async def stored_frames(bed):                       # and nothing of b4 reached the bus
        nc, js = await _connect_js(ward.role("admin"))
        try:
            subj = bus.frames_subject("icu", bed)
            info = await js.stream_info(bus.FRAMES_STREAM, subjects_filter=subj)
            return int((info.state.subjects or {}).get(subj, 0))
        finally:
            await bus.close(nc)
    assert asyncio.run(stored_frames("b1")) == 24
    assert asyncio.run(stored_frames("b4")) == 0


def test_ward_publish_with_another_beds_credential_fails_saying_so(ward, capsys):
    from edge_ecg.cli import main

    creds = ward.ward.roles_dir / "publisher-icu-b1.json"
    rc = main(["ward", "publish", "--creds", str(creds), "--unit", "icu", "--bed", "b2",
               "--source", SPEC, "--speed", "max"])
    err = capsys.readouterr().err
    assert rc == 1 and "may publish only icu.b1, not icu.b2" in err, err


# --- trusting nothing that arrives (a plain broker: these are the worker's own checks) --------
def _forged_frame(index: int, gain: float = 200.0, seq: int = 10_000) -> bytes:
    c = Chunk(index=index, seq=seq, device_time_us=0, samples=np.ones((250, 1), np.int32),
              gain=np.array([gain], np.float32), baseline=np.zeros(1, np.float32),
              leads=("MLII",), fs_hz=500.0)
    return frames.encode(c, seq)


def test_gain_1e30_is_refused_before_it_becomes_infinity():
    with pytest.raises(FrameError, match="mV"):
        frames.decode(_forged_frame(0, gain=1e-30))
    with pytest.raises(FrameError, match="outside"):
        frames.decode(_forged_frame(-5))
    chunk, _ = frames.decode(_forged_frame(0))
    assert np.all(np.isfinite(chunk.to_mv()))


async def _worker_with_injection(url, backend, inject, spec=SPEC, unit="icu", bed="b1",
                                 before=None):
    """A worker serving `bed` from `spec`; `inject(js)` publishes forged input halfway."""
    from edge_ecg.ward.publisher import Publisher, open_feed
    from edge_ecg.ward.worker import Worker, WorkerOptions

    nc = await bus.connect(url, "attacker")
    js = nc.jetstream()
    await bus.ensure(js)
    if before is not None:
        await before(js)
    w = Worker(url, backend, WorkerOptions(tick_s=0.1))
    task = asyncio.create_task(w.run())
    chunks = source_chunks(spec)
    half = len(chunks) // 2
    feed = open_feed(spec, unit, bed)
    pub = Publisher([feed], url, speed=0.0)
    # the first half, the forged input, the second half (one publisher session: its frames
    # are numbered on; the forged ones come from elsewhere)
    from edge_ecg.ward.publisher import BedFeed  # noqa: F401

    class Half:
        def __init__(self, part):
            self.part, self.i = list(part), 0

        def open(self):
            pass

        def read(self, _t=0.0):
            if self.i >= len(self.part):
                raise EOFError
            self.i += 1
            return self.part[self.i - 1]

        def close(self):
            pass
    feed.source = Half(chunks[:half])
    await pub.run()
    await inject(js)
    feed2 = open_feed(spec, unit, bed)
    feed2.source = Half(chunks[half:])
    pub2 = Publisher([feed2], url, speed=0.0)
    pub2.session = pub.session + "b"
    await pub2.run()
    for _ in range(600):               # done long before, unless the machine is loaded
        await asyncio.sleep(0.1)
        b = w.beds.get(f"{unit}.{bed}")
        if b is not None and b.samples >= sum(c.n_samples for c in chunks) and \
                not b.inbox and not b.outbox:
            break
    c = w.beds[f"{unit}.{bed}"].counters
    w.stop()
    await task
    await bus.close(nc)
    return c


def test_a_frame_jumping_1e12_samples_is_refused_and_the_bed_goes_on(broker, backend):
    async def inject(js):
        await js.publish("ecg.icu.b1", _forged_frame(10 ** 12), stream=bus.FRAMES_STREAM)
        await js.publish("ecg.icu.b1", _forged_frame(10 ** 8), stream=bus.FRAMES_STREAM)
    t0 = time.monotonic()
    c = asyncio.run(_worker_with_injection(broker.url, backend, inject))
    assert time.monotonic() - t0 < 30
    assert c.index_refused == 2 and c.errors == 0 and c.restarts == 0
    got = asyncio.run(stored_events(broker.url, "icu", "b1"))
    # the forged frames never reached the processor: the events are the reference's
    assert [comparable(e) for e in got] == reference_events(source_chunks(SPEC), backend)


def test_a_forged_ordinal_does_not_blind_a_bed(broker, backend):
    forged = {"type": "prediction", "index": 5000, "time_s": 10.0,
              "ward": {"id": "icu.b1.prediction.5000", "n": 10 ** 9, "unit": "icu", "bed": "b1"}}

    async def before(js):
        await js.publish("events.icu.b1", json.dumps(forged).encode(), stream=bus.EVENTS_STREAM)

    async def nothing(js):
        pass
    c = asyncio.run(_worker_with_injection(broker.url, backend, nothing, before=before))
    assert c.implausible_seq == 1 and c.replayed == 0
    got = asyncio.run(stored_events(broker.url, "icu", "b1"))
    assert got[0]["ward"]["n"] == 10 ** 9
    assert [comparable(e) for e in got[1:]] == reference_events(source_chunks(SPEC), backend)


def test_a_bed_that_raises_is_an_event_and_the_other_beds_go_on(broker, backend):
    from edge_ecg.ward.publisher import Publisher, open_feed
    from edge_ecg.ward.worker import Worker, WorkerOptions

    spec2 = "synth:atrial_fibrillation?seconds=12&seed=2"

    async def main():
        w = Worker(broker.url, backend, WorkerOptions(tick_s=0.1))
        task = asyncio.create_task(w.run())
        pub = Publisher([open_feed(SPEC, "icu", "b1"), open_feed(spec2, "icu", "b2")],
                        broker.url, speed=4.0)
        ptask = asyncio.create_task(pub.run())
        for _ in range(100):
            await asyncio.sleep(0.05)
            if "icu.b1" in w.beds and w.beds["icu.b1"].samples > 0:
                break
        b = w.beds["icu.b1"]

        def boom(chunk):
            raise RuntimeError("a bug in this bed's processing")
        b.proc.feed = boom             # the next frame of b1 raises (its processor is replaced)
        await ptask
        for _ in range(600):           # done long before, unless the machine is loaded
            await asyncio.sleep(0.1)
            if all(x.samples >= 6000 and not x.inbox and not x.outbox
                   for x in w.beds.values()) and len(w.beds) == 2:
                break
        nc = await bus.connect(broker.url, "audit")
        hb = json.loads((await (await nc.jetstream().key_value(bus.WORKERS_BUCKET)).get(w.id)).value)
        await bus.close(nc)
        w.stop()
        return await task, hb
    st, hb = asyncio.run(main())
    assert st["failed"]["icu.b1"]["errors"] == 1
    assert "a bug in this bed" in st["failed"]["icu.b1"]["last_error"]
    assert hb["errors"] == 1 and "icu.b1" in hb["failed"]
    b1 = asyncio.run(stored_events(broker.url, "icu", "b1"))
    failed = [e for e in b1 if e["type"] == "bed_failed"]
    assert len(failed) == 1 and "RuntimeError" in failed[0]["error"]
    assert len(b1) > len(failed) + 5                  # and b1 went on after it
    b2 = asyncio.run(stored_events(broker.url, "icu", "b2"))
    assert [comparable(e) for e in b2] == reference_events(source_chunks(spec2), backend)


def test_a_worker_whose_broker_has_gone_stops_on_sigterm_within_5_s(broker):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "edge_ecg", "ward", "worker", "--insecure",
                          "--nats", broker.url, "--tick-s", "0.1", "--log-json"],
                         cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        async def registered():
            nc = await bus.connect(broker.url, "t")
            for _ in range(300):
                try:
                    js = nc.jetstream()
                    kv = await js.key_value(bus.WORKERS_BUCKET)
                    # the registry's reading: nats-py's keys() can come back short
                    if await registry.list_keys(js, kv, bus.WORKERS_BUCKET):
                        break
                except Exception:
                    pass
                await asyncio.sleep(0.1)
            await bus.close(nc)
        asyncio.run(registered())
        broker.proc.kill()                       # the broker goes, without a word
        broker.proc.wait()
        time.sleep(0.5)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        p.wait(15)
        took = time.monotonic() - t0
        err = p.stderr.read().decode()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert took <= 5.0, (took, err[-2000:])
    lines = [json.loads(x) for x in err.splitlines() if x.startswith("{\"t\"")]
    assert any(x["logger"] == "edge_ecg.ward.bus" and "disconnected" in x["msg"] for x in lines)


def _wait_for(path: Path, text: str, timeout_s: float = 20.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def test_broker_and_publisher_stop_on_sigterm_within_their_stated_times(tmp_path):
    """`edge-ecg ward broker --dir` writes, starts and sets up a secure ward; a publisher with
    its credential streams to it; the broker stops on SIGTERM within 5 s (its nats-server
    with it), and the publisher, its broker gone, stops on SIGTERM within 5 s too."""
    import shutil

    if shutil.which("nats-server") is None:
        pytest.skip("nats-server not found")
    from edge_ecg.ward.broker import WardDir

    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    d = tmp_path / "ward"
    blog, plog = tmp_path / "broker.log", tmp_path / "pub.log"
    port = bus.free_port()
    with open(blog, "wb") as bl:
        br = subprocess.Popen([sys.executable, "-m", "edge_ecg", "ward", "broker", "--dir", str(d),
                               "--port", str(port), "--beds", "icu.b1"], cwd=REPO, env=env,
                              stdout=bl, stderr=subprocess.STDOUT)
    pub = None
    try:
        assert _wait_for(blog, "streams and buckets set up"), blog.read_text()
        creds = d / "roles" / "publisher-icu-b1.json"
        with open(plog, "wb") as pl:
            pub = subprocess.Popen([sys.executable, "-m", "edge_ecg", "ward", "publish", "--creds",
                                    str(creds), "--unit", "icu", "--bed", "b1", "--source",
                                    "synth:sinus_rhythm?seconds=600&seed=1", "--log-json"],
                                   cwd=REPO, env=env, stdout=pl, stderr=subprocess.STDOUT)
        async def frames_stored():
            nc = await bus.connect(WardDir(d).role("viewer"), "audit")
            n = 0
            for _ in range(200):
                n = (await nc.jetstream().stream_info(bus.FRAMES_STREAM)).state.messages
                if n >= 2:
                    break
                await asyncio.sleep(0.1)
            await bus.close(nc)
            return n
        assert asyncio.run(frames_stored()) >= 2, plog.read_text()
        assert pub.poll() is None, plog.read_text()
        nats_pid = int(next(x for x in (d / "nats.log").read_text().split()
                            if x.startswith("[") and x[1:-1].isdigit())[1:-1])
        t0 = time.monotonic()
        br.send_signal(signal.SIGTERM)
        br.wait(15)
        took_broker = time.monotonic() - t0
        assert not Path(f"/proc/{nats_pid}").exists() or \
            "zombie" in Path(f"/proc/{nats_pid}/status").read_text().lower()
        time.sleep(0.5)
        t0 = time.monotonic()
        pub.send_signal(signal.SIGTERM)
        pub.wait(15)
        took_pub = time.monotonic() - t0
    finally:
        for p in (br, pub):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert took_broker <= 5.0 and br.returncode == 0, (took_broker, blog.read_text()[-1500:])
    assert took_pub <= 5.0, (took_pub, plog.read_text()[-1500:])
    summary = json.loads(plog.read_text().strip().splitlines()[-1])
    assert summary["published"] > 0 and summary["balanced"] and summary["refused"] == 0
    assert WardDir(d).exists()
