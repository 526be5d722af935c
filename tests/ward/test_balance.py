"""What a worker reads to share the beds out (worker.Worker._bed_keys, _live_workers): the same
answers as listing the buckets' keys, at a fraction of the broker round trips."""

from __future__ import annotations

import asyncio
import time

from edge_ecg.ward import bus


async def _bound_worker(url, backend, ttl_s: float):
    from edge_ecg.ward.worker import Worker, WorkerOptions

    w = Worker(url, backend, WorkerOptions(cfg=bus.WardConfig(lease_ttl_s=ttl_s)), "w-self")
    w.nc = await bus.connect(url, "test-balance")
    w.js = w.nc.jetstream()
    st = await bus.ensure(w.js, w.opt.cfg)
    w.kv_beds, w.kv_workers = st[bus.BEDS_BUCKET], st[bus.WORKERS_BUCKET]
    return w


def test_live_workers_leave_out_deleted_and_expired_heartbeats(broker, backend):
    async def main():
        w = await _bound_worker(broker.url, backend, ttl_s=1.0)
        try:
            async def listed():        # the bucket's keys, deletes left out
                return set(await w._keys(w.kv_workers, bus.WORKERS_BUCKET)) | {w.id}

            await w.kv_workers.put("w-a", b"{}")
            await w.kv_workers.put("w-b", b"{}")
            assert await w._live_workers() == await listed() == {"w-self", "w-a", "w-b"}
            await w.kv_workers.delete("w-b")       # a worker that stopped cleanly
            assert await w._live_workers() == await listed() == {"w-self", "w-a"}
            t0 = time.monotonic()                  # one killed: its heartbeat expires
            while await w._live_workers() != {"w-self"}:
                assert time.monotonic() - t0 < 10, "heartbeat never expired"
                await asyncio.sleep(0.1)
            assert await listed() == {"w-self"}
        finally:
            await w.nc.close()
    asyncio.run(main())


def test_bed_registry_listed_again_only_when_it_changes(broker, backend):
    async def main():
        w = await _bound_worker(broker.url, backend, ttl_s=2.0)
        listings = []
        keys = w._keys

        async def counted(kv, bucket):
            listings.append(kv)
            return await keys(kv, bucket)
        w._keys = counted
        try:
            assert await w._bed_keys() == []
            for bed in ("b2", "b1"):
                await w.kv_beds.put(f"icu.{bed}", b"{}")
            assert await w._bed_keys() == ["icu.b1", "icu.b2"]
            n = len(listings)
            assert await w._bed_keys() == ["icu.b1", "icu.b2"]
            assert len(listings) == n, "listed again though nothing changed"
            await w.kv_beds.put("icu.b3", b"{}")   # a bed registers
            assert await w._bed_keys() == ["icu.b1", "icu.b2", "icu.b3"]
            await w.kv_beds.delete("icu.b2")
            assert await w._bed_keys() == ["icu.b1", "icu.b3"]
        finally:
            await w.nc.close()
    asyncio.run(main())


def test_registry_does_not_trust_nats_py_key_listing(broker, backend, monkeypatch):
    """nats-py's `KeyValue.keys()` can end its listing before the entries already sent were
    read (nats-io/nats.py#842): short, or `NoKeysError` while keys exist. A worker that read
    the bed registry that way once kept the wrong answer and served none of its share. The
    registry answers from the stream's state, so a `keys()` that lies changes nothing."""
    from nats.js.errors import NoKeysError
    from nats.js.kv import KeyValue

    from edge_ecg.ward import registry

    async def lying(self, *a, **kw):
        raise NoKeysError
    monkeypatch.setattr(KeyValue, "keys", lying)

    async def main():
        w = await _bound_worker(broker.url, backend, ttl_s=2.0)
        try:
            for bed in ("b2", "b1", "b3"):
                await w.kv_beds.put(f"icu.{bed}", b"{}")
            await w.kv_beds.delete("icu.b3")
            assert await w._bed_keys() == ["icu.b1", "icu.b2"]
            assert await registry.list_keys(w.js, w.kv_beds, bus.BEDS_BUCKET) == [
                "icu.b1", "icu.b2"]
            st = await bus.ensure(w.js, w.opt.cfg)
            leases = st[bus.LEASES_BUCKET]
            assert await w._keys(leases, bus.LEASES_BUCKET) == []
            await leases.create("icu.b1", b"w-self")
            assert await w._keys(leases, bus.LEASES_BUCKET) == ["icu.b1"]
        finally:
            await w.nc.close()
    asyncio.run(main())


def test_station_registry_round_sees_beds_and_live_workers_without_relisting(broker):
    """The station's once-a-second registry round (edge_ecg.ward.registry): a new bed gets its
    tile, a stopped worker's deleted heartbeat is not seen as alive, and the bed bucket is
    not listed again while nothing changed."""
    from edge_ecg.ward import registry
    from edge_ecg.ward.station import Station, StationOptions, WardFeed

    async def main():
        st = Station(broker.url, StationOptions(port=0, web=False))
        feed = WardFeed(st, broker.url)
        feed.nc = await bus.connect(broker.url, "test-station-registry")
        feed.js = feed.nc.jetstream()
        kv = await bus.ensure(feed.js, bus.WardConfig())
        beds_kv, workers_kv = kv[bus.BEDS_BUCKET], kv[bus.WORKERS_BUCKET]
        listings = []
        assert feed._beds_listing.lister is None     # registry.list_keys, counted here

        async def counted(kv):
            listings.append(kv)
            return await registry.list_keys(feed.js, kv, bus.BEDS_BUCKET)
        feed._beds_listing.lister = counted
        try:
            await beds_kv.put("icu.b1", b'{"fs_hz": 500.0}')
            await workers_kv.put("w-a", b"{}")
            await workers_kv.put("w-b", b"{}")
            await feed._registry_round(beds_kv, workers_kv)
            assert set(st.tiles) == {"icu.b1"} and set(st.worker_seen) == {"w-a", "w-b"}
            n = len(listings)
            await workers_kv.delete("w-b")          # stopped cleanly
            seen_b = st.worker_seen["w-b"]
            await asyncio.sleep(0.02)
            await feed._registry_round(beds_kv, workers_kv)
            assert len(listings) == n, "the beds were listed again though none changed"
            assert st.worker_seen["w-b"] == seen_b < st.worker_seen["w-a"]
            await beds_kv.put("icu.b2", b'{"fs_hz": 500.0}')
            await feed._registry_round(beds_kv, workers_kv)
            assert set(st.tiles) == {"icu.b1", "icu.b2"} and len(listings) == n + 1
        finally:
            await feed.nc.close()
    asyncio.run(main())
