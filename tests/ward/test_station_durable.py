"""The station's place in the events is a durable consumer (`station_<user>` on EVENTS): a
station stopped while events arrive shows and exports them once restarted, and each
Observation is in the FHIR outbox once, also when acknowledgements were lost and the events
come again. On a secure ward the station may use that consumer only, and no other client
may touch it; the station CLI takes the same credential options as the other roles."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("aiohttp", reason="the ward extra (aiohttp) is not installed")

from edge_ecg.ward import bus  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _prediction(n: int, bundle: str) -> bytes:
    from station_kit import event

    return event("icu", "b1", n, "prediction", index=1000 * n, bundle=bundle,
                 intervals={"hr_bpm": 60.0 + n, "qrs_ms": 90.0},
                 outputs={"arrhythmia": {"label": "sinus", "prob": 0.9}})


def _observation_ids(ns, bundle: str) -> list[str]:
    from edge_ecg.ward import fhir

    out = []
    for n in ns:
        ev = json.loads(_prediction(n, bundle))
        out += [o["id"] for o in fhir.observations(ev, "icu", "b1", 1.7e9)]
    return out


async def _run_station(ward, state: Path, fhir_url: str, until, publish=None):
    """One life of the station (its own credential): started, `publish()` while it runs,
    stopped once `until(station)` holds. Returns (counters, tile events, FHIR sink stats)."""
    from edge_ecg.ward.station import Station, StationOptions

    st = Station(ward.role("station"), StationOptions(
        web=False, state_dir=str(state), fhir_url=fhir_url, fhir_backoff_s=0.05,
        fhir_max_backoff_s=0.2, fhir_timeout_s=0.5))
    ready = asyncio.Event()
    run = asyncio.create_task(st.run(ready=ready))
    await asyncio.wait_for(ready.wait(), 30)
    if publish is not None:
        await publish()
    t0 = time.monotonic()
    while not until(st) and time.monotonic() - t0 < 30:
        await asyncio.sleep(0.05)
    tile = st.tiles.get("icu.b1")
    got = dict(st.counters), (tile.events if tile else 0), st.fhir.stats()
    st.stop()
    await run
    return got


def _outbox_ids(state: Path) -> list[str]:
    db = sqlite3.connect(str(state / "fhir_outbox.sqlite"))
    try:
        return [r[0] for r in db.execute("SELECT id FROM outbox")]
    finally:
        db.close()


def test_a_restarted_station_exports_what_came_while_it_was_away_exactly_once(
        ward, tmp_path, monkeypatch):
    from station_kit import bed_desc

    from edge_ecg.ward import station
    from edge_ecg.ward.station import Station

    # lost acknowledgements come again after ACK_WAIT_S: 2 s here rather than 30
    monkeypatch.setattr(station, "ACK_WAIT_S", 2.0)
    bundle = Station(ward.role("station")).model["bundle"]
    fhir_url = f"http://127.0.0.1:{bus.free_port()}/fhir"   # nothing there: rows stay pending
    state = tmp_path / "station"

    async def main():
        pnc = await bus.connect(ward.role("publisher-icu-b1"), "bed")
        kv = await pnc.jetstream().key_value(bus.BEDS_BUCKET)
        await kv.put("icu.b1", json.dumps(bed_desc()).encode())
        wnc = await bus.connect(ward.role("worker"), "worker")
        wjs = wnc.jetstream()

        def publish(ns):
            async def go():
                for n in ns:
                    await wjs.publish("events.icu.b1", _prediction(n, bundle),
                                      stream=bus.EVENTS_STREAM)
            return go

        # 1. the station takes events 1-3 and stops
        first = await _run_station(ward, state, fhir_url, lambda s: s.counters["events"] >= 3,
                                   publish(range(1, 4)))
        # 2. events 4-8 while it is away
        await publish(range(4, 9))()
        # 3. back: 4-8 (and 9-10, sent while it runs), but every acknowledgement is lost
        from nats.aio.msg import Msg

        async def lost(self, *a, **k):
            return None
        with monkeypatch.context() as m:
            m.setattr(Msg, "ack", lost)
            second = await _run_station(ward, state, fhir_url,
                                        lambda s: s.counters["events"] >= 7,
                                        publish(range(9, 11)))
        # 4. back again: 4-10 come again (unacknowledged), 11-12 are new
        third = await _run_station(
            ward, state, fhir_url,
            lambda s: s.counters["redelivered"] >= 7 and s.counters["events"] >= 2 and
            s.fhir.queued >= len(_observation_ids([11, 12], bundle)),
            publish(range(11, 13)))
        # the consumer on the broker: nothing left unacknowledged or undelivered
        await asyncio.sleep(0.3)
        anc = await bus.connect(ward.role("admin"), "admin")
        info = await anc.jetstream().consumer_info(bus.EVENTS_STREAM, "station_station")
        for nc in (pnc, wnc, anc):
            await bus.close(nc)
        return first, second, third, info

    first, second, third, info = asyncio.run(main())
    (_, shown1, f1), (c2, shown2, f2), (c3, _, f3) = first, second, third
    assert shown1 == 3 and f1["queued"] == len(_observation_ids(range(1, 4), bundle))
    # what came while it was away is shown and exported
    assert shown2 == 7 and c2["unknown_bed_events"] == 0
    assert f2["queued"] == len(_observation_ids(range(4, 11), bundle))
    # the events that came again were taken, and added nothing to the outbox
    assert c3["redelivered"] >= 7 and f3["queued"] == len(_observation_ids([11, 12], bundle))
    want = _observation_ids(range(1, 13), bundle)
    got = _outbox_ids(state)
    assert sorted(got) == sorted(want) and len(want) == 12 * 3      # each once, none missing
    assert info.num_pending == 0 and info.num_ack_pending == 0
    assert ward.refusals()["permission_denied"] == 0


def test_a_bed_registered_since_the_last_registry_round_keeps_its_first_events(
        ward, tmp_path, monkeypatch):
    """The registry is read once before the first event, then polled; an event of a bed
    registered in between is not dropped as an unknown bed's (acknowledged, it would be
    lost for good): the station reads that bed's descriptor first."""
    from station_kit import bed_desc, event

    from edge_ecg.ward.station import Station, StationOptions, WardFeed

    async def no_polling(self, beds_kv, workers_kv):      # only the first round, and look-ups
        await self.st._stop.wait()
    monkeypatch.setattr(WardFeed, "_registry_loop", no_polling)

    async def main():
        pnc = await bus.connect(ward.role("publisher-test"), "bridge")
        kv = await pnc.jetstream().key_value(bus.BEDS_BUCKET)
        await kv.put("icu.b1", json.dumps(bed_desc()).encode())
        st = Station(ward.role("station"), StationOptions(web=False, state_dir=str(tmp_path)))
        ready = asyncio.Event()
        run = asyncio.create_task(st.run(ready=ready))
        await asyncio.wait_for(ready.wait(), 30)
        known = sorted(st.tiles)
        await kv.put("icu.b2", json.dumps(bed_desc()).encode())
        wnc = await bus.connect(ward.role("worker"), "worker")
        for bed in ("b1", "b2"):
            await wnc.jetstream().publish(f"events.icu.{bed}", event(
                "icu", bed, 1, index=100, bundle=st.model["bundle"]), stream=bus.EVENTS_STREAM)
        t0 = time.monotonic()
        while st.counters["events"] + st.counters["unknown_bed_events"] < 2 and \
                time.monotonic() - t0 < 20:
            await asyncio.sleep(0.05)
        got = known, sorted(st.tiles), dict(st.counters)
        st.stop()
        await run
        for nc in (pnc, wnc):
            await bus.close(nc)
        return got

    known, tiles, counters = asyncio.run(main())
    assert known == ["icu.b1"] and tiles == ["icu.b1", "icu.b2"]
    assert counters["events"] == 2 and counters["unknown_bed_events"] == 0


def test_the_station_may_use_its_own_consumer_only_and_nobody_else_may(ward):
    from nats.js.api import ConsumerConfig

    async def attempt(role: str, coro_fn) -> bool:
        """True when the broker let it through (a refused request gets no answer)."""
        c = bus.ConnectionCounters()
        nc = await bus.connect(ward.role(role), role, c)
        try:
            await coro_fn(nc.jetstream(timeout=0.5), nc)
            await nc.flush()
            await asyncio.sleep(0.2)             # a refused publish is reported after it
            return c.permission_errors == 0
        except Exception:
            return False
        finally:
            await bus.close(nc)

    def durable(name: str, inbox: str):
        return lambda js, nc: js.add_consumer(bus.EVENTS_STREAM, ConsumerConfig(
            durable_name=name, deliver_subject=f"{inbox}.{name}", filter_subject="events.>"))

    async def main():
        anc = await bus.connect(ward.role("admin"), "admin")
        ajs = anc.jetstream()
        await ajs.add_consumer(bus.FRAMES_STREAM, ConsumerConfig(
            durable_name="ward_icu_b1", deliver_subject="_INBOX_worker.x",
            filter_subject="ecg.icu.b1"))
        got = {
            "station: its own": await attempt("station", durable("station_station",
                                                                  "_INBOX_station")),
            "station: another name": await attempt("station", durable("station_other",
                                                                       "_INBOX_station")),
            "station: an ephemeral on EVENTS": await attempt(
                "station", lambda js, nc: js.subscribe("events.>", ordered_consumer=True,
                                                       stream=bus.EVENTS_STREAM)),
            "station: a consumer on ECG": await attempt(
                "station", lambda js, nc: js.subscribe("ecg.>", ordered_consumer=True,
                                                       stream=bus.FRAMES_STREAM)),
            "station: delete a worker's": await attempt(
                "station", lambda js, nc: js.delete_consumer(bus.FRAMES_STREAM, "ward_icu_b1")),
            "viewer: take the station's": await attempt("viewer", durable("station_station",
                                                                           "_INBOX_viewer")),
            "viewer: delete the station's": await attempt(
                "viewer", lambda js, nc: js.delete_consumer(bus.EVENTS_STREAM,
                                                            "station_station")),
            "worker: delete the station's": await attempt(
                "worker", lambda js, nc: js.delete_consumer(bus.EVENTS_STREAM,
                                                            "station_station")),
            "worker: acknowledge for it": await attempt(
                "worker", lambda js, nc: nc.publish("$JS.ACK.EVENTS.station_station.1.1.1.1.1.0",
                                                    b"+ACK")),
            "viewer: read events (ephemeral)": await attempt(
                "viewer", lambda js, nc: js.subscribe("events.>", ordered_consumer=True,
                                                      stream=bus.EVENTS_STREAM)),
        }
        info = await ajs.consumer_info(bus.EVENTS_STREAM, "station_station")
        worker_c = await ajs.consumer_info(bus.FRAMES_STREAM, "ward_icu_b1")
        await bus.close(anc)
        return got, info, worker_c

    got, info, worker_c = asyncio.run(main())
    assert got == {"station: its own": True, "station: another name": False,
                   "station: an ephemeral on EVENTS": False,
                   "station: a consumer on ECG": False, "station: delete a worker's": False,
                   "viewer: take the station's": False, "viewer: delete the station's": False,
                   "worker: delete the station's": False, "worker: acknowledge for it": False,
                   "viewer: read events (ephemeral)": True}, got
    assert info.config.deliver_subject == "_INBOX_station.station_station"
    assert worker_c.name == "ward_icu_b1"
    assert ward.refusals()["permission_denied"] >= 8


def _wait_for(path: Path, text: str, timeout_s: float = 60.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def test_the_station_cli_on_a_secure_ward_with_its_credential(ward, tmp_path):
    """`edge-ecg ward station --creds` (the options of every role): over TLS as `station`, it
    makes its durable consumer and nothing the broker refuses, stops on SIGTERM within its
    stated time; a name other than its user's is refused before it starts."""
    from station_kit import make_users

    state = tmp_path / "station"
    state.mkdir()
    make_users(state)
    creds = ward.ward.roles_dir / "station.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    log = tmp_path / "station.log"
    base = [sys.executable, "-m", "edge_ecg", "ward", "station", "--creds", str(creds),
            "--port", "0", "--state-dir", str(state), "--log-json"]
    bad = subprocess.run(base + ["--name", "other"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 1 and "named after its credential's user" in bad.stderr
    with open(log, "wb") as lf:
        p = subprocess.Popen(base, cwd=REPO, env=env, stdout=lf, stderr=subprocess.STDOUT)
    try:
        assert _wait_for(log, "station at https://"), log.read_text()[-2000:]

        async def consumer():
            nc = await bus.connect(ward.role("admin"), "admin")
            info = await nc.jetstream().consumer_info(bus.EVENTS_STREAM, "station_station")
            await bus.close(nc)
            return info
        info = asyncio.run(consumer())
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        p.wait(20)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert info.push_bound or info.config.deliver_subject == "_INBOX_station.station_station"
    assert took <= 8.0 and p.returncode == 0, (took, log.read_text()[-2000:])
    assert ward.refusals()["permission_denied"] == 0, log.read_text()[-2000:]
