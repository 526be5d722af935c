"""The ward end to end on a real nats-server: publisher -> workers -> stored events, against
the single-process reference; a worker killed with -9 mid-run; bad input on the bus."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ward_reference import comparable, reference_events, source_chunks, stored_events

from edge_ecg.ward import bus
from edge_ecg.ward.errors import WardError

REPO = Path(__file__).resolve().parents[2]

SPECS = {"b1": "synth:sinus_rhythm?seconds=30&seed=1",
         "b2": "synth:atrial_fibrillation?seconds=30&seed=2",
         "b3": "synth:premature_ventricular_contractions?seconds=30&seed=3"}
# two alarms start at one sample in this bed (ectopy and tachy, index 5500): both must be
# stored (an event id of type and index alone made JetStream drop the second as a duplicate)
SAME_INDEX = {"b4": "synth:sinus_tachycardia?seconds=30&seed=21"}


def _check(url, backend, specs, unit="icu"):
    for bed, spec in specs.items():
        got = asyncio.run(stored_events(url, unit, bed))
        ids = [e["ward"]["id"] for e in got]
        assert len(ids) == len(set(ids)), f"{bed}: duplicated events"
        assert [e["ward"]["n"] for e in got] == list(range(1, len(got) + 1))
        assert [comparable(e) for e in got] == reference_events(source_chunks(spec), backend), bed


async def _publish(url, specs, speed=0.0, unit="icu"):
    from edge_ecg.ward.publisher import Publisher, open_feed

    pub = Publisher([open_feed(s, unit, b) for b, s in specs.items()], url, speed=speed)
    return await pub.run()


async def _serve_until_done(url, backend, specs, opts=None, extra=None, unit="icu"):
    from edge_ecg.ward.worker import Worker, WorkerOptions

    w = Worker(url, backend, opts or WorkerOptions(tick_s=0.1))
    task = asyncio.create_task(w.run())
    pub = await _publish(url, specs, unit=unit)
    if extra is not None:
        await extra()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        await asyncio.sleep(0.2)
        if len(w.beds) == len(specs) and all(
                not b.inbox and not b.outbox and b.samples >= 15000 for b in w.beds.values()):
            break
    served = {k: b.samples for k, b in w.beds.items()}
    w.stop()
    st = await task
    # a bed never claimed, or not caught up, says so here rather than as "no events" later
    assert len(served) == len(specs) and min(served.values()) >= 15000, (
        f"in 30 s the worker served {served} (samples) of {sorted(specs)}")
    return pub, st


def test_worker_events_equal_the_single_process_reference(broker, backend):
    specs = {**SPECS, **SAME_INDEX}
    pub, st = asyncio.run(_serve_until_done(broker.url, backend, specs))
    assert pub["total"]["balanced"] and pub["total"]["dropped"] == 0
    assert pub["total"]["produced"] == len(specs) * 60          # 30 s in 0.5-s frames
    assert st["tick"]["rows"] > st["tick"]["batches"]          # beds shared batches
    assert st["tick"]["delineations"] and st["tick"]["delineated_beats"]
    _check(broker.url, backend, specs)
    # each event names the duration of the frame that released it (sample-to-event bound)
    ev = asyncio.run(stored_events(broker.url, "icu", "b1"))
    assert {e["ward"]["frame_s"] for e in ev} == {0.5}


def test_malformed_frame_is_counted_and_skipped(broker, backend):
    import nats

    async def garbage():
        nc = await nats.connect(broker.url)
        js = nc.jetstream()
        await js.publish("ecg.icu.b1", b"not a frame at all", stream=bus.FRAMES_STREAM)
        await js.publish("ecg.icu.b1", b"EWF1" + bytes(60), stream=bus.FRAMES_STREAM)
        await nc.close()

    specs = {"b1": SPECS["b1"]}
    asyncio.run(_serve_until_done(broker.url, backend, specs, extra=garbage))
    # the garbage took two stream sequences of b1's subject: skipped, the events unchanged
    _check(broker.url, backend, specs)


def test_malformed_frame_counters(broker, backend):
    """The counters of a bed that received garbage, read while the worker serves it."""
    import nats

    from edge_ecg.ward.worker import Worker, WorkerOptions

    async def main():
        w = Worker(broker.url, backend, WorkerOptions(tick_s=0.1))
        task = asyncio.create_task(w.run())
        await _publish(broker.url, {"b1": "synth:sinus_rhythm?seconds=12&seed=1"})
        nc = await nats.connect(broker.url)
        await nc.jetstream().publish("ecg.icu.b1", b"junk", stream=bus.FRAMES_STREAM)
        await nc.close()
        for _ in range(100):
            await asyncio.sleep(0.1)
            b = w.beds.get("icu.b1")
            if b is not None and b.counters.malformed:
                break
        c = w.beds["icu.b1"].counters
        w.stop()
        await task
        return c
    c = asyncio.run(main())
    assert c.malformed == 1 and "shorter" in c.last_error


def test_worker_refuses_a_bundle_the_station_does_not_expect(broker, backend):
    from edge_ecg.ward.worker import Worker

    async def main():
        nc = await bus.connect(broker.url, "t")
        st = await bus.ensure(nc.jetstream())
        await st[bus.CONFIG_BUCKET].put("bundle", b"other-model/onnx-fp32")
        await nc.close()
        await Worker(broker.url, backend).run(max_seconds=2)
    with pytest.raises(WardError, match="station expects 'other-model/onnx-fp32'"):
        asyncio.run(main())


def test_bad_bed_ids_are_refused():
    with pytest.raises(WardError, match="subject token"):
        bus.frames_subject("icu", "bed.7")
    assert bus.parse_subject("ecg.icu.7") == ("icu", "7")
    assert bus.parse_subject("ecg.icu.7.x") is None


def _worker(creds, wid):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "edge_ecg", "ward", "worker", "--creds", str(creds), "--id", wid,
         "--tick-s", "0.1", "--snapshot-s", "4", "--lease-ttl", "1.5"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_kill_9_moves_beds_and_resumes_exactly(ward, backend):
    """Two worker processes share three beds streaming at 4x real time; one is killed with -9
    mid-run. Its beds move to the other, which resumes from their snapshots: the stored
    events equal the single-process reference, none lost, none duplicated. A secure ward:
    every process with its own credential over TLS."""
    creds = ward.ward.roles_dir / "worker.json"
    viewer = ward.role("viewer")
    a = _worker(creds, "wa")
    b = None
    try:
        async def main():
            nonlocal b
            from edge_ecg.ward.publisher import Publisher, open_feed

            pub = Publisher([open_feed(s, "icu", k) for k, s in SPECS.items()],
                            ward.role("publisher-test"), speed=4.0)
            task = asyncio.create_task(pub.run())
            await asyncio.sleep(3.0)
            b = _worker(creds, "wb")            # joins: beds are shared out
            await asyncio.sleep(2.5)
            a.send_signal(signal.SIGKILL)        # mid-run, without a word
            st = await task
            assert st["total"]["balanced"] and st["total"]["dropped"] == 0
            want = {k: len(reference_events(source_chunks(s), backend)) for k, s in SPECS.items()}
            t0 = time.monotonic()
            while time.monotonic() - t0 < 40:
                got = {k: len(await stored_events(viewer, "icu", k)) for k in SPECS}
                if got == want:
                    break
                await asyncio.sleep(0.5)
            return got, want
        got, want = asyncio.run(main())
        assert a.wait(5) == -signal.SIGKILL
        assert got == want
        b.send_signal(signal.SIGTERM)
        b.wait(15)
        _check(viewer, backend, SPECS)
        workers = {e["ward"]["worker"] for k in SPECS
                   for e in asyncio.run(stored_events(viewer, "icu", k))}
        assert workers == {"wa", "wb"}
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
