"""The station on a secure ward (TLS, its own `station` credential): it reads the bed
registry, frames and events it may read, sets up nothing, and a clinician's acknowledgement
goes out on `acks.<unit>.<bed>` into the ward's ACKS stream."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

pytest.importorskip("aiohttp", reason="the ward extra (aiohttp) is not installed")


def test_the_station_on_a_secure_ward_reads_and_acknowledges(ward, tmp_path):
    from station_kit import bed_desc, client_ssl, event, frame, login, make_users, session

    from edge_ecg.ward import bus
    from edge_ecg.ward.station import Station, StationOptions
    from edge_ecg.ward.technical import TechnicalLimits

    make_users(tmp_path)

    async def main():
        st = Station(ward.role("station"), StationOptions(
            port=0, state_dir=str(tmp_path), push_s=0.2,
            technical=TechnicalLimits(no_data_s=1.0, stale_worker_s=1.0)))
        ready = asyncio.Event()
        run = asyncio.create_task(st.run(ready=ready))
        await asyncio.wait_for(ready.wait(), 20)
        # the bedside bridge of icu.b1 registers its bed and sends a frame; a worker's event
        pnc = await bus.connect(ward.role("publisher-icu-b1"), "bed")
        pjs = pnc.jetstream()
        await (await pjs.key_value(bus.BEDS_BUCKET)).put("icu.b1", json.dumps(bed_desc()).encode())
        t0 = time.monotonic()
        while "icu.b1" not in st.tiles and time.monotonic() - t0 < 10:   # registry: 1-s poll
            await asyncio.sleep(0.05)
        await pjs.publish("ecg.icu.b1", frame(0, n=250), stream=bus.FRAMES_STREAM)
        wnc = await bus.connect(ward.role("worker"), "worker")
        wjs = wnc.jetstream()
        await wjs.publish("events.icu.b1", event("icu", "b1", 1, "beat", index=100,
                                                 bundle=st.model["bundle"]),
                          stream=bus.EVENTS_STREAM)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and not (
                "icu.b1" in st.tiles and st.tiles["icu.b1"].events):
            await asyncio.sleep(0.1)
        tile = st.tiles["icu.b1"]
        got = (st.counters["frames"], tile.events)
        while tile.status() != "no_data" and time.monotonic() - t0 < 15:
            await asyncio.sleep(0.1)
        async with session() as s:
            await login(s, st, tmp_path, "nurse")
            r = await s.post(f"https://127.0.0.1:{st.port}/api/beds/icu.b1/alarms/no_data/ack",
                             ssl=client_ssl(tmp_path), json={})
            assert r.status == 200, await r.text()
        await asyncio.sleep(0.5)
        # the ward's admin reads the acknowledgement from the ACKS stream
        anc = await bus.connect(ward.role("admin"), "admin")
        ajs = anc.jetstream()
        msg = await ajs.get_last_msg(bus.ACKS_STREAM, "acks.icu.b1")
        ack = json.loads(msg.data)
        counters = dict(st.counters)
        st.stop()
        await run
        for nc in (pnc, wnc, anc):
            await bus.close(nc)
        return got, ack, counters

    got, ack, counters = asyncio.run(main())
    assert got == (1, 1)
    assert ack["action"] == "acknowledge" and ack["alarm"] == "no_data" and ack["by"] == "nurse"
    assert counters["acks_published"] == 1 and counters["acks_unpublished"] == 0
