"""A worker stopped while a tick is still computing (a catch-up tick can take seconds; the stop
cuts the tick loop after 1 s) hands its beds over without losing an event: the events of
that computation are stored before the snapshot that says they were."""

from __future__ import annotations

import asyncio
import threading
import time

from test_ward import SPECS, _check, _publish
from ward_reference import reference_events, source_chunks, stored_events


def test_a_stop_during_a_long_tick_loses_no_event(broker, backend):
    from edge_ecg.ward.worker import Worker, WorkerOptions

    specs = {"b1": SPECS["b1"], "b2": SPECS["b2"]}
    want = {b: len(reference_events(source_chunks(s), backend)) for b, s in specs.items()}
    started = threading.Event()

    async def main():
        await asyncio.wait_for(_publish(broker.url, specs), 30)   # every frame stored first
        # the first tick waits 1 s for the frames sent together: all of them, in one batch
        a = Worker(broker.url, backend, WorkerOptions(tick_s=0.1, gather_s=1.0), "w-a")
        real = a._compute

        def slow_first(work):
            if not started.is_set():
                started.set()
                time.sleep(1.5)                 # a long tick: still computing at the stop
            return real(work)
        a._compute = slow_first
        ta = asyncio.create_task(a.run())
        t0 = time.monotonic()
        while not started.is_set():
            assert time.monotonic() - t0 < 20, "worker A never computed"
            await asyncio.sleep(0.02)
        a.stop()
        st_a = await asyncio.wait_for(ta, 15)
        b = Worker(broker.url, backend, WorkerOptions(tick_s=0.1), "w-b")
        tb = asyncio.create_task(b.run())
        t0 = time.monotonic()
        got = {}
        while time.monotonic() - t0 < 30:
            got = {k: len(await stored_events(broker.url, "icu", k)) for k in specs}
            if got == want:
                break
            await asyncio.sleep(0.3)
        b.stop()
        await asyncio.wait_for(tb, 15)
        return st_a, got

    st_a, got = asyncio.run(main())
    assert sorted(st_a["released"]) == ["icu.b1", "icu.b2"]     # handed over, not abandoned
    assert got == want
    _check(broker.url, backend, specs)


def test_a_release_does_not_wait_for_a_stuck_compute_thread(broker, backend):
    """The release waits for the compute thread at most `stall_s`: with the thread stuck, the
    bed goes without a snapshot (the next worker replays from the last stored one) and its
    lease is deleted, instead of the lease loop waiting for ever."""
    from edge_ecg.ward import bus
    from edge_ecg.ward.worker import Worker, WorkerOptions

    specs = {"b1": "synth:sinus_rhythm?seconds=6&seed=1"}
    hang = threading.Event()

    async def main():
        await asyncio.wait_for(_publish(broker.url, specs), 30)
        a = Worker(broker.url, backend, WorkerOptions(tick_s=0.1, stall_s=1.0,
                                                      snapshot_s=1000.0), "w-stuck")
        ta = asyncio.create_task(a.run())
        t0 = time.monotonic()
        while "icu.b1" not in a.beds or a.beds["icu.b1"].samples < 3000 \
                or a.beds["icu.b1"].outbox:
            assert time.monotonic() - t0 < 20, "b1 never served"
            await asyncio.sleep(0.05)
        a._pool.submit(hang.wait, 60)            # the compute thread, stuck from here on
        t0 = time.monotonic()
        await a._release("icu.b1")
        took = time.monotonic() - t0
        leased = await a._keys(a.kv_leases, bus.LEASES_BUCKET)
        try:
            await a.obs.get("icu.b1")
            snapshot = True
        except Exception:
            snapshot = False
        a.stop()
        await asyncio.wait_for(ta, 15)
        return took, leased, snapshot

    try:
        took, leased, snapshot = asyncio.run(main())
    finally:
        hang.set()
    assert 0.9 <= took < 3.0, took
    assert leased == [] and not snapshot
