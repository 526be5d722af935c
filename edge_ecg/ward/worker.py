"""The ward worker: any number of them share the beds, each bed served by one at a time.

A worker claims beds through leases in the `ward_leases` key-value bucket (create fails when
another worker holds one; leases expire `lease_ttl_s` after their holder stops renewing, so
the beds of a worker killed with -9 free themselves), up to its share of the beds
(ceil(beds / live workers), so a second worker takes half of them over). Per bed it runs the
unmodified runtime (`StreamProcessor`: ring buffer, beats, quality, predictor); every tick the
windows due in all its beds go to the backend as one batch (`edge_ecg.ward.batching`).

Exactly once, end to end:
- Each event gets a deterministic id (`<unit>.<bed>.<type>.<index>`, also its `Nats-Msg-Id`)
  and ordinal `n` (its position in the bed's event sequence from the stream start).
- Frames are acknowledged only after the events they released are stored in JetStream.
- Every `snapshot_s` of signal a bed's state is written to the object store with the stream
  sequence of the last frame in it and the ordinal of its last event (after those events are
  stored). A worker taking a bed over loads the snapshot (or starts from the stream's first
  frame), replays the frames after it and publishes only events past the last ordinal stored
  in `events.<unit>.<bed>`: the processor is deterministic given its input, so the replayed
  events are the very ones already stored. Nothing lost, nothing duplicated, and the events
  equal those of one `StreamProcessor` over the whole stream (tests/ward/test_ward.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from edge_ecg.errors import FrameError
from edge_ecg.ward import bus, frames, snapshot
from edge_ecg.ward.batching import BedBackend, InvariantBackend, TickStats, run_tick
from edge_ecg.ward.errors import StateError, WardError


@dataclass
class WorkerOptions:
    tick_s: float = 0.25              # how often the beds' new frames are processed
    snapshot_s: float = 10.0          # seconds of signal between a bed's state snapshots
    max_frames_per_tick: int = 400    # per bed: bounds a tick while a bed catches up
    max_beds: int | None = None       # never serve more beds than this
    hop_s: float | None = None
    cfg: bus.WardConfig = field(default_factory=bus.WardConfig)


@dataclass
class BedCounters:
    frames: int = 0
    malformed: int = 0              # frames that failed to decode: acknowledged, counted, skipped
    redelivered: int = 0            # frames at or before the state's stream sequence
    events: int = 0                 # events published by this worker
    replayed: int = 0               # events recomputed on takeover, already stored: not re-sent
    errors: int = 0
    last_error: str = ""


class BedRun:
    """One bed served by this worker: its processor and where it stands in the streams."""

    def __init__(self, unit: str, bed: str, proc, meta: dict, suppress_upto: int,
                 lease_rev: int) -> None:
        self.unit, self.bed = unit, bed
        self.key = bus.bed_key(unit, bed)
        self.proc = proc
        self.stream_seq = int(meta.get("stream_seq", 0))
        self.n = int(meta.get("n", 0))
        self.samples_at_snapshot = int(meta.get("samples", 0))
        self.samples = self.samples_at_snapshot
        self.suppress_upto = suppress_upto
        self.lease_rev = lease_rev
        self.inbox: list = []
        self.outbox: list = []          # (subject, payload, msg id) not yet stored
        self.ack_msg = None             # the last frame whose events are all stored
        self.pending_snapshot: bytes | None = None
        self.sub = None
        self.counters = BedCounters()
        self.claimed_at = time.time()
        self.resumed_from = self.stream_seq


class Worker:
    def __init__(self, url: str, backend, options: WorkerOptions | None = None,
                 worker_id: str | None = None) -> None:
        self.url = url
        self.shared = backend if isinstance(backend, InvariantBackend) else InvariantBackend(backend)
        self.opt = options or WorkerOptions()
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.bundle = snapshot.bundle_key(self.shared)
        self.beds: dict[str, BedRun] = {}
        self.tick_stats = TickStats()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ward-compute")
        self._stop = asyncio.Event()
        self._hb_rev: int | None = None
        self.released: list[str] = []
        self.log: list[str] = []

    def stop(self) -> None:
        self._stop.set()

    def _note(self, msg: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {msg}")
        del self.log[:-200]

    # --- setup ---------------------------------------------------------------------------
    async def run(self, max_seconds: float | None = None) -> dict:
        self.nc = await bus.connect(self.url, f"edge-ecg-worker-{self.id}")
        try:
            self.js = self.nc.jetstream()
            st = await bus.ensure(self.js, self.opt.cfg)
            self.kv_beds, self.kv_leases = st[bus.BEDS_BUCKET], st[bus.LEASES_BUCKET]
            self.kv_workers, self.kv_config = st[bus.WORKERS_BUCKET], st[bus.CONFIG_BUCKET]
            self.obs = st[bus.STATE_STORE]
            await self._check_bundle()
            await self._heartbeat()
            loops = [asyncio.create_task(self._lease_loop()),
                     asyncio.create_task(self._tick_loop())]
            try:
                if max_seconds is None:
                    await self._stop.wait()
                else:
                    await asyncio.wait_for(self._stop.wait(), max_seconds)
            except asyncio.TimeoutError:
                pass
            self._stop.set()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._shutdown()
        finally:
            self._pool.shutdown(wait=True)
            await self.nc.close()
        return self.stats()

    async def _check_bundle(self) -> None:
        try:
            want = (await self.kv_config.get("bundle")).value.decode()
        except Exception:
            return          # no station has said what it expects
        if want != self.bundle:
            raise WardError(f"this worker runs bundle {self.bundle!r}; the station expects "
                            f"{want!r}: start the worker with the station's --bundle")

    def stats(self) -> dict:
        return {"worker": self.id, "bundle": self.bundle, "beds": sorted(self.beds),
                "released": list(self.released), "tick": self.tick_stats.to_dict(),
                "per_bed": {k: dict(b.counters.__dict__, stream_seq=b.stream_seq, n=b.n,
                                    resumed_from=b.resumed_from)
                            for k, b in self.beds.items()}}

    # --- leases --------------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        tot = {"frames": sum(b.counters.frames for b in self.beds.values()),
               "events": sum(b.counters.events for b in self.beds.values()),
               "malformed": sum(b.counters.malformed for b in self.beds.values())}
        val = json.dumps({"beds": sorted(self.beds), "bundle": self.bundle, "pid": os.getpid(),
                          "host": socket.gethostname(), "t": time.time(), **tot}).encode()
        await self.kv_workers.put(self.id, val)

    async def _lease_loop(self) -> None:
        period = self.opt.cfg.lease_ttl_s / 3.0
        while not self._stop.is_set():
            try:
                await self._heartbeat()
                await self._renew()
                await self._balance()
            except Exception as exc:     # broker restarting: keep trying
                self._note(f"lease loop: {exc!r}")
            try:
                await asyncio.wait_for(self._stop.wait(), period)
            except asyncio.TimeoutError:
                pass

    async def _renew(self) -> None:
        for key, b in list(self.beds.items()):
            try:
                b.lease_rev = await self.kv_leases.update(key, self.id.encode(), last=b.lease_rev)
            except Exception as exc:
                if "wrong last sequence" in str(exc).lower() or "not found" in str(exc).lower() \
                        or type(exc).__name__ in ("KeyWrongLastSequenceError", "KeyNotFoundError"):
                    self._note(f"lost the lease of {key}: {exc!r}")
                    await self._drop(key)
                else:
                    raise

    async def _keys(self, kv) -> list[str]:
        try:
            return await kv.keys()
        except Exception as exc:
            if type(exc).__name__ == "NoKeysError":
                return []
            raise

    async def _balance(self) -> None:
        beds = sorted(await self._keys(self.kv_beds))
        workers = await self._keys(self.kv_workers)
        n_workers = max(len(set(workers) | {self.id}), 1)
        quota = math.ceil(len(beds) / n_workers) if beds else 0
        if self.opt.max_beds is not None:
            quota = min(quota, self.opt.max_beds)
        if len(self.beds) > quota:        # a worker joined: hand the newest beds over
            for key in sorted(self.beds, key=lambda k: -self.beds[k].claimed_at)[
                    :len(self.beds) - quota]:
                await self._release(key)
            return
        if len(self.beds) >= quota:
            return
        leased = set(await self._keys(self.kv_leases))
        for key in beds:
            if len(self.beds) >= quota or self._stop.is_set():
                break
            if key in leased or key in self.beds:
                continue
            try:
                rev = await self.kv_leases.create(key, self.id.encode())
            except Exception:
                continue                 # another worker was faster
            try:
                await self._start_bed(key, rev)
            except Exception as exc:
                self._note(f"could not start {key}: {exc!r}")
                try:
                    await self.kv_leases.delete(key)
                except Exception:
                    pass

    # --- a bed arrives -------------------------------------------------------------------
    async def _start_bed(self, key: str, rev: int) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        from edge_ecg.runtime.stream_processor import StreamProcessor

        unit, bed = key.split(".", 1)
        loop = asyncio.get_running_loop()
        proc, meta = None, {"stream_seq": 0, "n": 0}
        try:
            data = (await self.obs.get(key)).data
        except Exception:
            data = None
        if data:
            try:
                proc, meta = await loop.run_in_executor(
                    self._pool, snapshot.load, data, BedBackend(self.shared))
            except StateError as exc:
                self._note(f"{key}: snapshot not used ({exc}); replaying from the stream start")
                proc, meta = None, {"stream_seq": 0, "n": 0}
        if proc is None:
            proc = StreamProcessor(BedBackend(self.shared), hop_s=self.opt.hop_s)
        try:
            last = await self.js.get_last_msg(bus.EVENTS_STREAM, bus.events_subject(unit, bed))
            suppress = int(json.loads(last.data)["ward"]["n"])
        except Exception:
            suppress = 0
        b = BedRun(unit, bed, proc, meta, suppress, rev)
        name = f"ward_{unit}_{bed}"
        try:
            await self.js.delete_consumer(bus.FRAMES_STREAM, name)
        except Exception:
            pass
        inbox = self.nc.new_inbox()

        async def on_msg(msg, b=b):
            b.inbox.append(msg)

        b.sub = await self.nc.subscribe(inbox, cb=on_msg, pending_msgs_limit=200_000,
                                        pending_bytes_limit=1 << 30)
        cc = ConsumerConfig(durable_name=name, deliver_subject=inbox,
                            filter_subject=bus.frames_subject(unit, bed),
                            ack_policy=AckPolicy.ALL, ack_wait=60.0, max_ack_pending=50_000,
                            deliver_policy=DeliverPolicy.BY_START_SEQUENCE
                            if b.stream_seq else DeliverPolicy.ALL,
                            opt_start_seq=b.stream_seq + 1 if b.stream_seq else None)
        await self.js.add_consumer(bus.FRAMES_STREAM, cc)
        self.beds[key] = b
        self._note(f"claimed {key} from stream seq {b.stream_seq} (event {b.n}, stored up to "
                   f"{suppress})")

    async def _drop(self, key: str) -> None:
        b = self.beds.pop(key, None)
        if b is not None and b.sub is not None:
            try:
                await b.sub.unsubscribe()
            except Exception:
                pass

    async def _release(self, key: str) -> None:
        """Hand a bed over cleanly: its events stored, its state snapshotted, lease deleted."""
        b = self.beds.get(key)
        if b is None:
            return
        if b.sub is not None:
            try:
                await b.sub.unsubscribe()
            except Exception:
                pass
            b.sub = None
        if not b.outbox:
            try:
                data = await asyncio.get_running_loop().run_in_executor(
                    self._pool, self._dump, b)
                await self.obs.put(key, data)
            except Exception as exc:
                self._note(f"{key}: snapshot on release failed: {exc!r}")
        self.beds.pop(key, None)
        try:
            await self.kv_leases.delete(key)
        except Exception:
            pass
        self.released.append(key)
        self._note(f"released {key} at stream seq {b.stream_seq}")

    async def _shutdown(self) -> None:
        await self._flush(final=True)
        for key in list(self.beds):
            await self._release(key)
        try:
            await self.kv_workers.delete(self.id)
        except Exception:
            pass

    # --- ticks ---------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                await self._flush()
            except Exception as exc:
                self._note(f"tick: {exc!r}")
            dt = time.perf_counter() - t0
            try:
                await asyncio.wait_for(self._stop.wait(), max(self.opt.tick_s - dt, 0.0))
            except asyncio.TimeoutError:
                pass

    async def _flush(self, final: bool = False) -> None:
        # beds whose events of a previous tick are not stored yet wait for them first
        await self._publish([b for b in self.beds.values() if b.outbox])
        work = {}
        for key, b in self.beds.items():
            if b.outbox or not b.inbox:
                continue
            msgs = b.inbox[:self.opt.max_frames_per_tick]
            del b.inbox[:len(msgs)]
            work[key] = (b, msgs)
        if not work:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._compute, work)
        ready = [b for b, _ in work.values()]
        await self._publish(ready)
        for b in ready:
            if b.pending_snapshot is not None and not b.outbox:
                data, b.pending_snapshot = b.pending_snapshot, None
                try:
                    await self.obs.put(b.key, data)
                except Exception as exc:
                    self._note(f"{b.key}: snapshot put failed: {exc!r}")

    def _dump(self, b: BedRun) -> bytes:
        return snapshot.dump(b.proc, {"stream_seq": b.stream_seq, "n": b.n,
                                      "samples": b.samples, "unit": b.unit, "bed": b.bed,
                                      "worker": self.id, "t": time.time()})

    def _compute(self, work: dict) -> None:
        """In the compute thread: decode, feed every bed in one batched tick, envelope."""
        fns, last_msg = {}, {}
        for key, (b, msgs) in work.items():
            chunks, sent = [], []
            for m in msgs:
                try:
                    sseq = m.metadata.sequence.stream
                except Exception:
                    b.counters.malformed += 1
                    continue
                last_msg[key] = m
                if sseq <= b.stream_seq:
                    b.counters.redelivered += 1
                    continue
                b.stream_seq = sseq
                b.counters.frames += 1
                try:
                    chunk, _ = frames.decode(m.data)
                    p = b.proc
                    if getattr(p, "_started", False) and (
                            tuple(chunk.leads) != p.leads or float(chunk.fs_hz) != p.fs_in):
                        raise FrameError(f"leads/rate changed mid-stream ({chunk.leads}, "
                                         f"{chunk.fs_hz} Hz)")
                except FrameError as exc:
                    b.counters.malformed += 1
                    b.counters.last_error = f"stream seq {sseq}: {exc}"
                    continue
                chunks.append(chunk)
                try:
                    sent.append(float((m.headers or {}).get(bus.SENT_HEADER, "nan")))
                except ValueError:
                    sent.append(float("nan"))
            if not chunks:
                continue
            # fed frame by frame, as published: any chunking gives the same events, but
            # their order within a feed call follows the chunks (beats of a long chunk come
            # before a window it also closes), and the reference is the stream as sent
            pieces = list(zip(chunks, sent))
            b.samples += sum(c.n_samples for c in chunks)

            def fn(b=b, pieces=pieces):
                out = []
                for c, t in pieces:
                    dur = c.n_samples / c.fs_hz
                    out.extend((e, t, dur) for e in b.proc.feed(c))
                return out
            fns[key] = fn
        results = run_tick(self.shared, fns, self.tick_stats)
        for key, (b, _) in work.items():
            r = results.get(key, [])
            if isinstance(r, Exception):
                b.counters.errors += 1
                b.counters.last_error = repr(r)
                r = []
            subject = bus.events_subject(b.unit, b.bed)
            for ev, t, dur in r:
                d = ev.to_json()
                b.n += 1
                eid = f"{b.key}.{d['type']}.{d['index']}"
                if b.n <= b.suppress_upto:
                    b.counters.replayed += 1
                    continue
                d["ward"] = {"id": eid, "n": b.n, "unit": b.unit, "bed": b.bed,
                             "worker": self.id, "bundle": self.bundle, "frame_sent": t,
                             "frame_s": round(dur, 6)}
                b.outbox.append((subject, json.dumps(d, separators=(",", ":")).encode(), eid))
            if key in last_msg:
                b.ack_msg = last_msg[key]
            if b.samples - b.samples_at_snapshot >= self.opt.snapshot_s * getattr(
                    b.proc, "fs_in", 500.0):
                b.samples_at_snapshot = b.samples
                try:
                    b.pending_snapshot = self._dump(b)
                except StateError as exc:   # state the snapshot cannot hold: a takeover
                    b.counters.last_error = f"no snapshot: {exc}"   # replays from the start

    async def _publish(self, beds: list[BedRun]) -> None:
        """Store each bed's pending events in order (beds side by side, a bed's events one
        after another, stopping at the first failure so the stream keeps their order); then
        acknowledge the frames that released them."""
        if beds:
            await asyncio.gather(*(self._publish_bed(b) for b in beds))

    async def _publish_bed(self, b: BedRun) -> None:
        while b.outbox:
            subject, payload, eid = b.outbox[0]
            try:
                await self.js.publish(subject, payload, stream=bus.EVENTS_STREAM,
                                      headers={bus.MSG_ID: eid}, timeout=5.0)
            except Exception:
                return          # retried next tick; its frames stay unacknowledged meanwhile
            b.outbox.pop(0)
            b.counters.events += 1
        if b.ack_msg is not None:
            try:
                await b.ack_msg.ack()
            except Exception:
                pass
            b.ack_msg = None


async def run_worker(url: str, bundle: str | None = None, variant: str | None = None,
                     options: WorkerOptions | None = None, max_seconds: float | None = None,
                     worker_id: str | None = None) -> dict:
    """Open the bundle and serve beds until stopped (SIGINT/SIGTERM in the CLI)."""
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.bundle import DEFAULT_BUNDLE

    bus.environ_threads()
    backend = open_backend(bundle or str(DEFAULT_BUNDLE), variant=variant, threads=1)
    backend.warmup()
    w = Worker(url, backend, options, worker_id)
    try:
        return await w.run(max_seconds)
    finally:
        backend.close()
