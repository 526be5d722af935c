"""The worker's watchdog (worker.Worker._watch): a worker must not keep the leases of beds it
no longer serves. A bed whose stored frames stop reaching it is subscribed again; a worker
whose tick hangs hands every bed over and stops. Either way the stored events still equal
the single-process reference: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from test_ward import SPECS, _check

from edge_ecg.ward import bus

CFG = bus.WardConfig(lease_ttl_s=1.5)     # the same buckets for every role of a test


async def _publish(url, specs, speed=0.0):
    from edge_ecg.ward.publisher import Publisher, open_feed

    return await Publisher([open_feed(s, "icu", b) for b, s in specs.items()], url,
                           speed=speed, cfg=CFG).run()


async def _wait_for(cond, seconds: float, what: str) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < seconds, f"{what}: not within {seconds} s"
        await asyncio.sleep(0.05)


def _options(**kw):
    from edge_ecg.ward.worker import WorkerOptions

    return WorkerOptions(tick_s=0.1, stall_s=1.0, cfg=CFG, **kw)


def _done(w, specs) -> bool:
    return len(w.beds) == len(specs) and all(
        not b.inbox and not b.outbox and b.samples >= 15000 for b in w.beds.values())


def test_a_bed_whose_frames_stop_arriving_is_subscribed_again(broker, backend):
    """The delivery of one bed's frames stops behind the worker's back (its subscription
    gone, the consumer still there): the watchdog sees stored frames it has not processed,
    twice in a row, releases the bed and claims it again with a new consumer."""
    from edge_ecg.ward.worker import Worker

    specs = {"b1": SPECS["b1"], "b2": SPECS["b2"]}

    async def main():
        w = Worker(broker.url, backend, _options(), "w-watch")
        task = asyncio.create_task(w.run())
        pub = asyncio.create_task(_publish(broker.url, specs, speed=4.0))
        await _wait_for(lambda: "icu.b1" in w.beds and w.beds["icu.b1"].samples >= 2500, 20,
                        "b1 served")
        lost = w.beds["icu.b1"]
        await lost.sub.unsubscribe()            # frames keep being stored; none delivered
        await _wait_for(lambda: w.beds.get("icu.b1") not in (None, lost), 10,
                        "the stuck bed subscribed again")
        assert lost.counters.resubscribed == 1
        st_pub = await asyncio.wait_for(pub, 30)
        await _wait_for(lambda: _done(w, specs), 30, "every frame processed")
        w.stop()
        return st_pub, await asyncio.wait_for(task, 15)

    pub, st = asyncio.run(main())
    assert pub["total"]["balanced"] and pub["total"]["dropped"] == 0
    assert st["resubscribed"] == 1 and st["stalled"] is None
    # b1 released by the watchdog first, then both beds on stop
    assert st["released"][0] == "icu.b1" and sorted(st["released"][1:]) == ["icu.b1", "icu.b2"]
    _check(broker.url, backend, specs)


def test_a_quiet_bed_is_not_subscribed_again(broker, backend):
    """A bed whose publisher has stopped hears nothing, but its stream holds nothing new: the
    watchdog leaves it alone."""
    from edge_ecg.ward.worker import Worker

    specs = {"b1": "synth:sinus_rhythm?seconds=6&seed=1"}

    async def main():
        w = Worker(broker.url, backend, _options(), "w-quiet")
        task = asyncio.create_task(w.run())
        await asyncio.wait_for(_publish(broker.url, specs), 30)
        await _wait_for(lambda: "icu.b1" in w.beds and w.beds["icu.b1"].samples >= 3000
                        and not w.beds["icu.b1"].outbox, 20, "b1 served")
        await asyncio.sleep(3.5)                  # > 3 x stall_s of silence
        w.stop()
        return await asyncio.wait_for(task, 15)

    st = asyncio.run(main())
    assert st["resubscribed"] == 0 and st["released"] == ["icu.b1"]   # released on stop only


def test_a_worker_whose_tick_hangs_hands_its_beds_over_and_stops(broker, backend):
    """Worker A's compute thread hangs mid-stream (it waits on an event nobody sets). Its
    lease loop would renew the leases for ever and its beds would go quiet, unseen. The
    watchdog deletes A's leases and stops A; worker B takes the beds over from their stored
    snapshots and the events equal the reference."""
    from edge_ecg.ward.worker import Worker

    specs = dict(SPECS)
    hang = threading.Event()

    async def main():
        a = Worker(broker.url, backend, _options(snapshot_s=2.0), "w-hangs")
        compute = a._compute
        calls = []

        def hanging(work):
            calls.append(1)
            if len(calls) > 8:
                hang.wait(60)                    # the hang: set only at the test's end
            return compute(work)
        a._compute = hanging
        ta = asyncio.create_task(a.run())
        pub = asyncio.create_task(_publish(broker.url, specs, speed=4.0))
        await _wait_for(lambda: len(a.beds) == len(specs), 20, "A serves every bed")
        b = Worker(broker.url, backend, _options(snapshot_s=2.0), "w-takes-over")
        tb = asyncio.create_task(b.run())
        st_a = await asyncio.wait_for(ta, 20)
        t_stop = time.monotonic()
        await _wait_for(lambda: len(b.beds) == len(specs), 10, "B takes every bed")
        took = time.monotonic() - t_stop
        st_pub = await asyncio.wait_for(pub, 30)
        await _wait_for(lambda: _done(b, specs), 40, "every frame processed")
        b.stop()
        return st_a, await asyncio.wait_for(tb, 15), st_pub, took

    try:
        st_a, st_b, pub, took = asyncio.run(main())
    finally:
        hang.set()
    assert pub["total"]["balanced"] and pub["total"]["dropped"] == 0
    assert st_a["stalled"] and "no progress" in st_a["stalled"]
    assert st_a["beds"] == [] and set(st_a["released"]) >= {"icu.b1"}
    assert took < 3.0, f"B took {took:.1f} s to claim the beds after A stopped"
    assert st_b["stalled"] is None
    _check(broker.url, backend, specs)


# a worker process whose compute thread hangs at its 3rd tick: the CLI as a service manager
# runs it, the hang made from outside the package
_HANGING_WORKER = """
import sys, threading
import edge_ecg.ward.worker as worker
real, calls = worker.Worker._compute, []
def hanging(self, work):
    calls.append(1)
    if len(calls) > 2:
        threading.Event().wait()
    return real(self, work)
worker.Worker._compute = hanging
from edge_ecg.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_worker_cli_exits_3_when_its_watchdog_fires(broker):
    """`edge-ecg ward worker` whose tick hangs: the watchdog hands the bed over and the process
    ends with status 3 and says why (a hung thread is not joined), well within 30 s."""
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-c", _HANGING_WORKER, "ward", "worker", "--insecure",
                          "--nats", broker.url, "--tick-s", "0.1", "--stall-s", "1.5",
                          "--id", "w-cli"], cwd=repo, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        from edge_ecg.ward.publisher import Publisher, open_feed

        asyncio.run(asyncio.wait_for(Publisher(
            [open_feed("synth:sinus_rhythm?seconds=20&seed=1", "icu", "b1")], broker.url,
            speed=2.0).run(), 30))
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 3, err[-2000:]
    assert "stopped by its watchdog" in err and "no progress" in err
