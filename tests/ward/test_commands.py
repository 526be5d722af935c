"""A station's commands to a bed's worker (edge_ecg/ward/commands.py): relearn and the bed's
limits go into the bed's own stream, the worker applies them between the same two frames on
every replay (a takeover from a snapshot included), a bad one is counted and skipped, and only
a station may send one."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from ward_reference import comparable, source_chunks, stored_events

from edge_ecg.runtime.alarm_settings import apply_limits
from edge_ecg.runtime.alarms import AlarmLimits
from edge_ecg.ward import bus, frames
from edge_ecg.ward.commands import MAX_BYTES, BedCommand, CommandError, decode

# sinus tachycardia: the default limits raise a tachycardia alarm at 11 s (index 5500)
SPEC = "synth:sinus_tachycardia?seconds=30&seed=21"
LIMITS = {"tachy_bpm": 200, "extreme_tachy_bpm": 250}    # no tachycardia alarm under these
K, K2 = 8, 16            # the commands after frame K (4 s); the takeover after frame K2 (8 s)


def test_a_command_is_checked_whole():
    assert decode(BedCommand("relearn", by="nurse", t=1.0).to_json()) == \
        BedCommand("relearn", by="nurse", t=1.0)
    lim = apply_limits(AlarmLimits(), LIMITS, "t")
    assert decode(BedCommand("limits", lim, "nurse").to_json()).limits == lim
    assert decode(b'{"command": "limits", "limits": null}').limits is None
    for bad, why in [(b"\xff\xfe", "not JSON"), (b"[1, 2]", "unknown command"),
                     (b'{"command": "format_disk"}', "unknown command 'format_disk'"),
                     (b'{"command": "limits", "limits": {"vt_run": 50}}', "vt_run = 50"),
                     (b'{"command": "limits", "limits": {"vt_run": true}}', "must be a number"),
                     (b'{"command": "limits", "limits": {"rm": 1}}', "unknown alarm limit"),
                     (b'{"command": "limits", "limits": [1]}', "expected a table"),
                     (b" " * (MAX_BYTES + 1), f"at most {MAX_BYTES}")]:
        with pytest.raises(CommandError, match=why):
            decode(bad)
    # who and when are data: bounded, a non-finite time dropped
    c = decode(json.dumps({"command": "relearn", "by": "x" * 500, "t": 1e400}).encode())
    assert len(c.by) == 64 and c.t is None


def _expected(chunks, backend) -> tuple[list, list]:
    """The bed's events with the commands applied before frame K, and without them."""
    from edge_ecg.runtime.alarm_settings import changed
    from edge_ecg.runtime.stream_processor import StreamProcessor
    from edge_ecg.ward.batching import InvariantBackend

    out = []
    for commanded in (True, False):
        p = StreamProcessor(InvariantBackend(backend))
        ev = [comparable(e.to_json()) for c in chunks[:K] for e in p.feed(c)]
        if commanded:
            c = chunks[K]
            r = p.relearned(c.index, c.fs_hz)
            r.info["by"] = "nurse"
            lim = apply_limits(AlarmLimits(), LIMITS, "t")
            p.alarms.set_limits(lim)
            ev += [comparable(r.to_json()),
                   {"type": "status", "index": c.index, "time_s": c.index / c.fs_hz,
                    "state": "limits", "info": {"by": "nurse", "alarm_limits": changed(lim),
                                                "source": "station"}}]
        ev += [comparable(e.to_json()) for c in chunks[K:] for e in p.feed(c)]
        out.append(ev)
    return out[0], out[1]


def test_relearn_and_limits_reach_the_beds_worker_and_survive_a_takeover(broker, backend,
                                                                        tmp_path):
    """A station (real, on the broker) relearns a bed and sets its limits mid-stream; a bad
    command is on the stream too. The worker serving the bed stops after the commands (its
    snapshot taken), another takes the bed over from the snapshot: the stored events equal
    one processor's with the commands applied before frame K, and the station's tile shows
    what the worker confirmed. A second station follows the bed's limits from its events:
    they are the bed's, not the station's that set them."""
    pytest.importorskip("aiohttp", reason="the ward extra (aiohttp) is not installed")
    from station_kit import make_users

    from edge_ecg.ward.station import Station, StationOptions
    from edge_ecg.ward.worker import Worker, WorkerOptions

    chunks = source_chunks(SPEC)
    want, plain = _expected(chunks, backend)
    tachy = [e for e in plain if e["type"] == "alarm" and e.get("code") == "tachy"
             and e["index"] >= chunks[K2].index]
    assert tachy, "the test's premise: the default limits raise a tachycardia alarm after K2"
    assert not [e for e in want if e["type"] == "alarm" and e.get("code") == "tachy"
                and e["index"] >= chunks[K].index]
    make_users(tmp_path)
    make_users(tmp_path / "second")
    key = "icu.c1"

    async def publish(js, lo, hi):
        for i in range(lo, hi):
            await js.publish(bus.frames_subject("icu", "c1"), frames.encode(chunks[i], i),
                             stream=bus.FRAMES_STREAM, headers={bus.MSG_ID: f"{key}.s.{i}"})

    async def served(w, n_frames, timeout=30.0):
        want_samples = sum(c.n_samples for c in chunks[:n_frames])
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            b = w.beds.get(key)
            if b is not None and b.samples >= want_samples and not b.inbox and not b.outbox:
                return b
            await asyncio.sleep(0.1)
        raise AssertionError(f"{key} not served up to frame {n_frames} in {timeout} s")

    async def main():
        nc = await bus.connect(broker.url, "test")
        js = nc.jetstream()
        kv = await bus.ensure(js)
        c0 = chunks[0]
        await kv[bus.BEDS_BUCKET].put(key, json.dumps(
            {"unit": "icu", "bed": "c1", "leads": list(c0.leads), "fs_hz": c0.fs_hz,
             "source": SPEC, "session": "s", "origin": 0, "registered": time.time()}).encode())
        st = Station(broker.url, StationOptions(port=0, state_dir=str(tmp_path)))
        st2 = Station(broker.url, StationOptions(port=0, state_dir=str(tmp_path / "second"),
                                                 name="second"))
        ready, ready2 = asyncio.Event(), asyncio.Event()
        ts = asyncio.create_task(st.run(ready=ready))
        ts2 = asyncio.create_task(st2.run(ready=ready2))
        await ready.wait()
        await ready2.wait()
        wa = Worker(broker.url, backend, WorkerOptions(tick_s=0.1, snapshot_s=2.0))
        ta = asyncio.create_task(wa.run())
        await publish(js, 0, K)
        await served(wa, K)
        for _ in range(50):
            if key in st.tiles:
                break
            await asyncio.sleep(0.1)
        sent = await st.relearn(key, "nurse")
        st.set_limits(key, LIMITS, "nurse")
        to_worker = await st.send_limits(key, "nurse")
        await js.publish(bus.commands_subject("icu", "c1"), b'{"command": "format_disk"}',
                         stream=bus.FRAMES_STREAM)
        await publish(js, K, K2)
        a = await served(wa, K2)
        counters = dict(a.counters.__dict__)
        wa.stop()
        await ta
        wb = Worker(broker.url, backend, WorkerOptions(tick_s=0.1))
        tb = asyncio.create_task(wb.run())
        await publish(js, K2, len(chunks))
        b = await served(wb, len(chunks))
        resumed, limits_b = b.resumed_from, b.limits
        for _ in range(50):      # the stations have taken the worker's confirmations
            t, t2 = st.tiles[key], st2.tiles.get(key)
            if t.relearned and t.worker_limits and t2 is not None and t2.worker_limits:
                break
            await asyncio.sleep(0.1)
        tile = st.tiles[key].to_json(time.time())
        tile2 = st2.tiles[key].to_json(time.time())
        wb.stop()
        await tb
        st.stop()
        st2.stop()
        await ts
        await ts2
        await nc.close()
        return sent, to_worker, counters, resumed, limits_b, tile, tile2

    sent, to_worker, counters, resumed, limits_b, tile, tile2 = asyncio.run(main())
    assert sent["command"] == "relearn" and sent["stream_seq"] == K + 1
    assert to_worker == {"sent": True, "stream_seq": K + 2}
    assert counters["commands"] == 2 and counters["bad_commands"] == 1
    assert "unknown command 'format_disk'" in counters["last_error"]
    assert resumed > K + 3                        # worker B started from A's snapshot
    assert limits_b == apply_limits(AlarmLimits(), LIMITS, "t")   # ... with the bed's limits
    got = asyncio.run(stored_events(broker.url, "icu", "c1"))
    assert [e["ward"]["n"] for e in got] == list(range(1, len(got) + 1))
    assert [comparable(e) for e in got] == want
    assert {e["ward"]["worker"] for e in got if e["index"] >= chunks[K2].index} == {wb_id(got)}
    assert tile["relearned"]["by"] == "nurse" and tile["relearned"]["index"] == chunks[K].index
    assert tile["worker_limits"]["alarm_limits"] == tile["alarm_limits"] == {
        "tachy_bpm": 200.0, "extreme_tachy_bpm": 250.0}
    # the second station never set them: it runs them all the same, and keeps them
    assert tile2["alarm_limits"] == tile["alarm_limits"]
    assert tile2["alarm_limits_set"]["by"] == "nurse"
    kept = json.loads((tmp_path / "second" / "bed_limits.json").read_text())
    assert kept["beds"][key]["changes"] == {"tachy_bpm": 200.0, "extreme_tachy_bpm": 250.0}


def wb_id(events: list) -> str:
    """The worker that stored the last event (the one that took the bed over)."""
    return events[-1]["ward"]["worker"]


def test_only_a_station_sends_commands(ward):
    """A monitor's credential cannot command its own bed; a station can, and cannot forge a
    frame with that permission."""
    async def main():
        out = {}
        for role, subject in [("publisher-icu-b1", "ecg.icu.b1.cmd"),
                              ("station", "ecg.icu.b1.cmd"), ("station", "ecg.icu.b1")]:
            nc = await bus.connect(ward.role(role), "t")
            js = nc.jetstream(timeout=1.0)
            try:
                await js.publish(subject, BedCommand("relearn").to_json(),
                                 stream=bus.FRAMES_STREAM)
                out[role, subject] = "stored"
            except Exception:      # noqa: BLE001 - a permission refusal times out or errors
                out[role, subject] = "refused"
            await bus.close(nc)
        return out
    assert asyncio.run(main()) == {("publisher-icu-b1", "ecg.icu.b1.cmd"): "refused",
                                   ("station", "ecg.icu.b1.cmd"): "stored",
                                   ("station", "ecg.icu.b1"): "refused"}


def test_relearn_at_the_station_needs_a_clinician_and_says_when_not_sent(tmp_path):
    pytest.importorskip("aiohttp", reason="the ward extra (aiohttp) is not installed")
    pytest.importorskip("argon2", reason="the ward extra (argon2-cffi) is not installed")
    from station_kit import bed_desc, client_ssl, login, session, web_only

    async def main():
        async with web_only(tmp_path) as st, session() as viewer, session() as nurse:
            ctx = client_ssl(tmp_path)
            st.add_bed("icu.b1", bed_desc())
            await login(viewer, st, tmp_path, "visitor")
            await login(nurse, st, tmp_path, "nurse")
            path = f"https://127.0.0.1:{st.port}/api/beds/icu.b1/relearn"
            r1 = await viewer.post(path, ssl=ctx, json={})
            r2 = await nurse.post(path.replace("b1", "zz"), ssl=ctx, json={})
            r3 = await nurse.post(path, ssl=ctx, json={})
            r4 = await nurse.post(path.replace("relearn", "limits"), ssl=ctx,
                                  json={"limits": {"vt_run": 5}})
            return (r1.status, r2.status, r3.status, (await r3.json())["error"], r4.status,
                    (await r4.json())["worker"])
    s1, s2, s3, err, s4, worker = asyncio.run(main())
    assert (s1, s2, s3, s4) == (403, 404, 503, 200)
    assert "not connected to a ward" in err and "send it again" in err
    # the station runs the limits whatever the bus does, and says the worker did not get them
    assert worker["sent"] is False and "not connected" in worker["error"]
    audit = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    assert [a["action"] for a in audit if a["action"] != "login"] == [
        "relearn_not_sent", "set_limits"]


def test_a_station_follows_the_beds_limits_events_and_refuses_a_forged_one(tmp_path):
    """The bed's `limits` events move the station's engine at their place in the events; one
    out of range is counted and not followed; the worker's own file's means the unit's."""
    from station_kit import bed_desc, event

    from edge_ecg.ward.station import Station, StationOptions

    st = Station("nats://127.0.0.1:9", StationOptions(state_dir=str(tmp_path), web=False))
    st.add_bed("icu.b1", bed_desc())
    bundle, t = st.model["bundle"], st.tiles["icu.b1"]

    def limits(n, source, lim):
        st.on_event(event("icu", "b1", n, "status", 100 * n, bundle, state="limits",
                          info={"by": "other-station", "source": source, "alarm_limits": lim}))
    limits(1, "station", {"vt_run": 99})
    assert st.counters["limits_events_refused"] == 1 and t.alarms.limits == AlarmLimits()
    limits(2, "station", {"vt_run": 5})
    assert t.alarms.limits == AlarmLimits(vt_run=5) and t.limits_set["by"] == "other-station"
    limits(3, "worker file", {})
    assert t.alarms.limits == AlarmLimits() and t.limits_set is None
    assert json.loads((tmp_path / "bed_limits.json").read_text())["beds"] == {}


def test_a_snapshots_commanded_limits_are_checked_as_a_commands_are(backend, caplog):
    """The state store is shared: limits a snapshot says were commanded are data, checked;
    out of range, the bed runs the worker's own and the log says why."""
    import logging

    from edge_ecg.ward.worker import Worker

    w = Worker("nats://127.0.0.1:9", backend)
    assert w._commanded("icu.b1", None) is None
    assert w._commanded("icu.b1", {"vt_run": 5}) == AlarmLimits(vt_run=5)
    with caplog.at_level(logging.WARNING):
        assert w._commanded("icu.b1", {"vt_run": 99}) is None
    assert "snapshot's commanded limits not used" in caplog.text and "vt_run = 99" in caplog.text
