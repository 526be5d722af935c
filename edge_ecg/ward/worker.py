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

Trusting nothing that arrives (edge_ecg.ward.sequence, edge_ecg.ward.frames):
- a frame that does not decode, or whose sample index jumps more than `max_jump_s` from
  where the bed stands, is refused and counted, never allocated for; a run of such frames
  contiguous with each other restarts the bed there (a `gap` event, cause `restart`);
- the last stored event's ordinal is checked against the bed's signal before a new worker
  suppresses that many replayed events (a forged ordinal is counted and ignored);
- an exception in one bed's processing is that bed's: a `bed_failed` event (the station's
  alarm), a counted failure in the heartbeat, a fresh processor from the next frame; the
  other beds go on;
- an event that would carry a non-finite number goes out with null there, counted;
- a station's command (edge_ecg.ward.commands: relearn, the bed's limits) comes on the bed's
  own stream, between its frames, and is applied there: every replay applies it at the same
  sample, so a takeover keeps the bed's events and ordinals. One that fails its checks is
  counted and skipped.

A watchdog (`Worker._watch`, before each lease round): a worker whose tick has made no
progress for `stall_s` deletes its leases and stops, and a bed whose stored frames stop
reaching it is subscribed again, so no bed stays leased to a worker that does not serve it.

Stopping: on `stop()` the worker stores what it can and hands its beds over (snapshot,
lease deleted) within `stop_timeout_s`, broker or no broker; beds it could not hand over
move when their leases expire.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import math
import os
import socket
import time
import uuid
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge_ecg.errors import FrameError
from edge_ecg.ward import bus, frames, registry, snapshot
from edge_ecg.ward.batching import BedBackend, InvariantBackend, TickStats, run_tick
from edge_ecg.ward.errors import StateError, WardError
from edge_ecg.ward.sequence import CONFIRM_FRAMES, MAX_JUMP_S, IndexGuard, plausible_ordinal

log = logging.getLogger(__name__)
# made once: json.dumps with options builds an encoder per call (every event of every bed)
_EVENT_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


@dataclass
class WorkerOptions:
    tick_s: float = 0.25              # the beds' new frames are processed at most this often
    gather_s: float = 0.02            # an idle worker waits this long after a frame arrives
                                      # for the frames sent with it (beds behind one bridge)
    snapshot_s: float = 10.0          # seconds of signal between a bed's state snapshots
    max_frames_per_tick: int = 400    # per bed: bounds a tick while a bed catches up
    max_beds: int | None = None       # never serve more beds than this
    hop_s: float | None = None
    max_jump_s: float = MAX_JUMP_S    # a frame farther than this from the bed's clock: refused
    jump_confirm: int = CONFIRM_FRAMES  # ... unless this many in a row agree: a restart
    fail_event_s: float = 30.0        # signal seconds between two bed_failed events of a bed
    stop_timeout_s: float = 4.0       # hand the beds over within this on stop (+1 s to close)
    stall_s: float = 10.0             # the watchdog (Worker._watch): a tick with no progress
                                      # this long (> the 5-s publish timeout) hands every bed
                                      # over and stops the worker; a bed whose stored frames
                                      # have not reached it this long is subscribed again
    cfg: bus.WardConfig = field(default_factory=bus.WardConfig)
    # the unit's alarm limits (an edge_ecg.runtime.alarm_settings.AlarmSettings; None: the
    # defaults): where the stream raises alarms from the signal (VF's `vf_on` / `vf_off`),
    # each bed's own where the file names it. Not imported here: the worker module stays
    # light until `_warm` loads the runtime (tests/ward/test_warm.py)
    alarms: Any = None


@dataclass
class BedCounters:
    frames: int = 0
    malformed: int = 0              # frames that failed to decode: acknowledged, counted, skipped
    redelivered: int = 0            # frames at or before the state's stream sequence
    events: int = 0                 # events published by this worker
    replayed: int = 0               # events recomputed on takeover, already stored: not re-sent
    errors: int = 0                 # exceptions in the bed's processing (bed_failed)
    index_refused: int = 0          # frames refused: sample index beyond max_jump_s
    restarts: int = 0               # runs of such frames accepted as a restarted clock
    nonfinite: int = 0              # event values sent as null (not finite)
    implausible_seq: int = 0        # a stored ordinal the bed's signal cannot have reached
    resubscribed: int = 0           # the watchdog found its stored frames undelivered
    commands: int = 0               # a station's commands applied (relearn, limits)
    bad_commands: int = 0           # commands refused by their checks: counted, skipped
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
        # the limits a station's command set for this bed (None: the worker's own for it)
        self.limits = meta.get("limits_commanded")
        self.samples_at_snapshot = int(meta.get("samples", 0))
        self.samples = self.samples_at_snapshot
        self.suppress_upto = suppress_upto
        self.lease_rev = lease_rev
        self.inbox: list = []
        self.outbox: list = []          # (subject, payload, msg id) not yet stored
        self.publishing = asyncio.Lock()  # held while the outbox is being stored
        self.ack_msg = None             # the last frame whose events are all stored
        self.pending_snapshot: bytes | None = None
        self.snapshot_put: asyncio.Task | None = None   # the snapshot being stored
        # where in the snapshot period this bed takes its snapshots: beds claimed together
        # would otherwise all dump and store ~0.7 MB each in the same tick, delaying that
        # tick's events (the p99 latency) and the next tick
        self.snapshot_phase = (zlib.crc32(self.key.encode()) % 997) / 997
        self.sub = None
        self.counters = BedCounters()
        self.claimed_at = time.time()
        self.heard_at = time.monotonic()    # the last frame delivered (or the claim)
        self.suspect_seq: int | None = None  # the watchdog's first sight of undelivered frames
        self.looked_at = 0.0                # when the watchdog last looked up its stream
        self.resumed_from = self.stream_seq
        self.guard = IndexGuard()
        nxt = meta.get("next_index")
        if nxt is None and getattr(proc, "_started", False):
            nxt = int(proc.origin) + int(proc.raw.end)
        self.guard.next_index = None if nxt is None else int(nxt)
        self.last_fail_index: int | None = meta.get("last_fail_index")
        # the last frame's gain and baseline per lead: the snapshot writes the raw ring as
        # counts with them (edge_ecg.ward.snapshot; exact, checked there)
        self.adc: dict | None = meta.get("adc")
        self._adc_of: tuple | None = None


    def scale_from(self, chunk) -> None:
        """Keep the frame's gain and baseline for the next snapshot (lists made only when
        they change: a bed's gain is constant)."""
        g, base = chunk.gain, chunk.baseline
        if self._adc_of is not None and np.array_equal(self._adc_of[0], g) \
                and np.array_equal(self._adc_of[1], base):
            return
        self._adc_of = (g, base)
        self.adc = {"gain": [float(v) for v in g], "baseline": [float(v) for v in base]}


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
        self.conn = bus.ConnectionCounters()
        self._trouble: str | None = None
        self.failures: dict[str, dict] = {}   # bed -> errors, last error (kept after release)
        self._arrived = asyncio.Event()       # a frame arrived since the last tick began
        self._ticking = False                 # a tick is running now
        self._progress_at = time.monotonic()  # the tick's last sign of life: a bed fed, a
                                              # publish answered or timed out
        self.stalled: str | None = None       # why the watchdog stopped this worker
        self.resubscribed = 0                 # beds the watchdog subscribed again
        # the bed registry, listed through self._keys (looked up at each call)
        self._beds_listing = registry.Listing(
            bus.BEDS_BUCKET, lambda kv: self._keys(kv, bus.BEDS_BUCKET))

    def stop(self) -> None:
        self._stop.set()

    def _note(self, msg: str, level: int = logging.INFO) -> None:
        log.log(level, "worker %s: %s", self.id, msg)

    def _loop_failed(self, where: str, exc: Exception) -> None:
        """A loop's round failed (the broker away, most often): a warning the first time,
        quieter while it lasts, a note when it is over (`_loop_ok`)."""
        first = self._trouble is None
        self._trouble = where
        self._note(f"{where}: {exc!r}", logging.WARNING if first else logging.DEBUG)

    def _loop_ok(self) -> None:
        if self._trouble is not None:
            self._note(f"{self._trouble}: working again")
            self._trouble = None

    # --- setup ---------------------------------------------------------------------------
    async def run(self, max_seconds: float | None = None) -> dict:
        self.nc = await bus.connect(self.url, f"edge-ecg-worker-{self.id}", self.conn)
        try:
            self.js = self.nc.jetstream()
            st = await bus.ensure(self.js, self.opt.cfg)
            self.kv_beds, self.kv_leases = st[bus.BEDS_BUCKET], st[bus.LEASES_BUCKET]
            self.kv_workers, self.kv_config = st[bus.WORKERS_BUCKET], st[bus.CONFIG_BUCKET]
            self.obs = st[bus.STATE_STORE]
            await self._check_bundle()
            # before the heartbeat that lets this worker claim beds
            await asyncio.get_running_loop().run_in_executor(self._pool, self._warm)
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
            t0 = time.monotonic()
            # the loops end at their next check; one stuck on a broker that has gone is cut
            _, stuck = await asyncio.wait(loops, timeout=1.0)
            for t in stuck:
                t.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            left = max(self.opt.stop_timeout_s - (time.monotonic() - t0), 0.5)
            try:
                await asyncio.wait_for(self._shutdown(), left)
            except asyncio.TimeoutError:
                self._note(f"stop: could not hand {sorted(self.beds)} over in "
                           f"{self.opt.stop_timeout_s} s (broker away?): they move when their "
                           "leases expire", logging.WARNING)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
            await bus.close(self.nc, 1.0)
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
                "released": list(self.released), "stalled": self.stalled,
                "resubscribed": self.resubscribed, "tick": self.tick_stats.to_dict(),
                "connection": self.conn.to_dict(), "failed": self.failed(),
                "per_bed": {k: dict(b.counters.__dict__, stream_seq=b.stream_seq, n=b.n,
                                    resumed_from=b.resumed_from)
                            for k, b in self.beds.items()}}

    def failed(self) -> dict:
        """Beds whose processing raised while this worker served them: count, last error."""
        return {k: dict(v) for k, v in self.failures.items()}

    # --- leases --------------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        tot = {k: sum(getattr(b.counters, k) for b in self.beds.values())
               for k in ("frames", "events", "malformed", "errors", "index_refused", "restarts",
                         "nonfinite", "implausible_seq")}
        tot["failed"] = self.failed()
        tot["stalled"] = self.stalled
        tot["resubscribed"] = self.resubscribed
        val = json.dumps({"beds": sorted(self.beds), "bundle": self.bundle, "pid": os.getpid(),
                          "host": socket.gethostname(), "t": time.time(), **tot}).encode()
        await self.kv_workers.put(self.id, val)

    async def _lease_loop(self) -> None:
        period = self.opt.cfg.lease_ttl_s / 3.0
        while not self._stop.is_set():
            try:
                if await self._watch():
                    break
                await self._heartbeat()
                await self._renew()
                await self._balance()
                self._loop_ok()
            except Exception as exc:     # broker restarting: keep trying
                self._loop_failed("lease loop", exc)
            try:
                await asyncio.wait_for(self._stop.wait(), period)
            except asyncio.TimeoutError:
                pass

    async def _watch(self) -> bool:
        """The watchdog, before each lease round: a worker must not keep leases on beds it
        does not serve (the renewals alone would keep them from every other worker).

        - A tick that has shown no progress for `stall_s` (no bed fed, no publish answered
          or timed out: the compute thread hung, or an await that never returns; a broker
          away is not one, its publishes time out): every lease is deleted without a
          snapshot (the state may be half updated; the next worker resumes from the last
          stored one and replays), the worker reports why in its heartbeat and stops.
          True: the lease loop ends.
        - A bed that has heard no frame for `stall_s` while its stream holds frames this
          worker has not processed, seen on two rounds in a row (a frame in flight is not a
          stall): its delivery is stuck, so it is released (snapshot, lease) and claimed
          again with a new consumer. A quiet bed (a monitor switched off) costs one look-up
          every `stall_s` / 2; a bed whose frames flow, none.
        """
        now = time.monotonic()
        if self._ticking and now - self._progress_at > self.opt.stall_s:
            self.stalled = (f"a tick has made no progress for {now - self._progress_at:.1f} s "
                            f"(limit {self.opt.stall_s:g} s)")
            self._note(f"{self.stalled}: handing beds {sorted(self.beds)} over and stopping",
                       logging.ERROR)
            for key in list(self.beds):
                await self._drop(key)
                try:
                    await self.kv_leases.delete(key)
                except Exception:
                    pass
                self.released.append(key)
            try:
                await self._heartbeat()
            except Exception:
                pass
            self._stop.set()
            return True
        for key, b in list(self.beds.items()):
            if b.inbox or now - b.heard_at < self.opt.stall_s:
                b.suspect_seq = None
                continue
            if now - b.looked_at < self.opt.stall_s / 2:
                continue
            b.looked_at = now
            try:
                last = await self.js.get_last_msg(bus.FRAMES_STREAM,
                                                  bus.frames_subject(b.unit, b.bed))
            except Exception:
                continue                 # nothing stored for the bed (or the broker away)
            if int(last.seq) <= b.stream_seq:
                b.suspect_seq = None     # a quiet bed: nothing to deliver
                continue
            if b.suspect_seq is None:
                b.suspect_seq = int(last.seq)
                continue
            b.counters.resubscribed += 1
            self.resubscribed += 1
            self._note(f"{key}: stored frames up to stream seq {last.seq} not delivered for "
                       f"{now - b.heard_at:.1f} s (processed up to {b.stream_seq}): "
                       "subscribing again", logging.WARNING)
            await self._release(key)
        return False

    async def _renew(self) -> None:
        """Every lease renewed at once: the updates go out together and their answers come
        back together (one at a time, each a round trip, they cost ~3.5x the CPU in this
        process and the broker's: 0.28 ms against 0.08 ms a lease; BENCHMARKS.md, Ward)."""
        beds = list(self.beds.items())

        async def one(key: str, b: BedRun) -> None:
            b.lease_rev = await self.kv_leases.update(key, self.id.encode(), last=b.lease_rev)

        results = await asyncio.gather(*(one(k, b) for k, b in beds), return_exceptions=True)
        failure = None
        for (key, _), exc in zip(beds, results):
            if not isinstance(exc, BaseException):
                continue
            if "wrong last sequence" in str(exc).lower() or "not found" in str(exc).lower() \
                    or type(exc).__name__ in ("KeyWrongLastSequenceError", "KeyNotFoundError"):
                self._note(f"lost the lease of {key}: {exc!r}", logging.WARNING)
                await self._drop(key)
            elif failure is None:
                failure = exc
        if failure is not None:
            raise failure

    async def _keys(self, kv, bucket: str) -> list[str]:
        return await registry.list_keys(self.js, kv, bucket)

    async def _bed_keys(self) -> list[str]:
        """The registered beds, listed again only when the registry changed
        (edge_ecg.ward.registry: one stream-info request instead of a listing, ~3 ms)."""
        return await self._beds_listing.keys(self.js, self.kv_beds)

    async def _live_workers(self) -> set[str]:
        """The workers whose heartbeat is in `ward_workers` (not expired, not deleted): equal
        to listing the keys, at ~1/4 of its CPU with two workers (edge_ecg.ward.registry)."""
        return await registry.live_keys(self.js, self.kv_workers, bus.WORKERS_BUCKET,
                                        skip=self.id) | {self.id}

    async def _balance(self) -> None:
        beds = await self._bed_keys()
        workers = await self._live_workers()
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
        leased = set(await self._keys(self.kv_leases, bus.LEASES_BUCKET))
        claimed = []
        for key in beds:
            if len(self.beds) + len(claimed) >= quota or self._stop.is_set():
                break
            if key in leased or key in self.beds:
                continue
            try:
                claimed.append((key, await self.kv_leases.create(key, self.id.encode())))
            except Exception:
                continue                 # another worker was faster

        async def start(key: str, rev: int) -> None:
            try:
                await self._start_bed(key, rev)
            except Exception as exc:
                self._note(f"could not start {key}: {exc!r}", logging.WARNING)
                try:
                    await self.kv_leases.delete(key)
                except Exception:
                    pass
        # the claimed beds start side by side: their snapshot reads, look-ups and consumers
        # overlap, so the last of a dead worker's beds is not served a dozen starts later
        await asyncio.gather(*(start(k, r) for k, r in claimed))

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
                self._note(f"{key}: snapshot not used ({exc}); replaying from the stream start",
                           logging.WARNING)
                proc, meta = None, {"stream_seq": 0, "n": 0}
        commanded = self._commanded(key, meta.get("limits"))
        meta["limits_commanded"] = commanded
        if proc is None:
            proc = StreamProcessor(BedBackend(self.shared), hop_s=self.opt.hop_s)
        if proc.alarms is not None:
            # the limits a station set for the bed, else this worker's, whatever the
            # snapshot was taken under
            proc.alarms.set_limits(self._limits(key, commanded))
        suppress, why = await self._stored_upto(unit, bed, int(meta.get("n", 0)))
        b = BedRun(unit, bed, proc, meta, suppress, rev)
        if why:
            b.counters.implausible_seq += 1
            b.counters.last_error = why
            self._note(f"{key}: {why}", logging.WARNING)
        name = f"ward_{unit}_{bed}"
        try:
            await self.js.delete_consumer(bus.FRAMES_STREAM, name)
        except Exception:
            pass
        inbox = self.nc.new_inbox()

        async def on_msg(msg, b=b):
            b.inbox.append(msg)
            b.heard_at = time.monotonic()
            self._arrived.set()

        b.sub = await self.nc.subscribe(inbox, cb=on_msg, pending_msgs_limit=200_000,
                                        pending_bytes_limit=1 << 30)
        # the bed's frames and a station's commands, in the order the stream stored them
        cc = ConsumerConfig(durable_name=name, deliver_subject=inbox,
                            filter_subjects=[bus.frames_subject(unit, bed),
                                             bus.commands_subject(unit, bed)],
                            ack_policy=AckPolicy.ALL, ack_wait=60.0, max_ack_pending=50_000,
                            deliver_policy=DeliverPolicy.BY_START_SEQUENCE
                            if b.stream_seq else DeliverPolicy.ALL,
                            opt_start_seq=b.stream_seq + 1 if b.stream_seq else None)
        await self.js.add_consumer(bus.FRAMES_STREAM, cc)
        self.beds[key] = b
        self._note(f"claimed {key} from stream seq {b.stream_seq} (event {b.n}, stored up to "
                   f"{suppress})")

    async def _stored_upto(self, unit: str, bed: str, floor: int) -> tuple[int, str | None]:
        """The ordinal of the bed's last stored event, checked against its signal (a forged
        ordinal would suppress every event to come): `(n, None)`, or `(floor, why)` when it
        is implausible (`floor`: the snapshot's, certainly stored; events after it that are
        already stored are dropped by JetStream's Msg-Id deduplication)."""
        try:
            last = await self.js.get_last_msg(bus.EVENTS_STREAM, bus.events_subject(unit, bed))
        except Exception:
            return floor, None           # nothing stored yet
        try:
            ev = json.loads(last.data)
            n, index = ev["ward"]["n"], ev["index"]
        except (ValueError, KeyError, TypeError):
            return floor, "the last stored event is malformed: not trusted"
        origin, fs, end = 0, 500.0, None
        try:
            desc = json.loads((await self.kv_beds.get(bus.bed_key(unit, bed))).value)
            origin, fs = int(desc.get("origin", 0)), float(desc.get("fs_hz", 500.0))
            fr = await self.js.get_last_msg(bus.FRAMES_STREAM, bus.frames_subject(unit, bed))
            ch, _ = frames.decode(fr.data)
            end = ch.end
        except Exception:
            pass
        why = plausible_ordinal(n, index, origin, fs, end)
        if why:
            return floor, f"stored ordinal ignored: {why}"
        return max(int(n), floor), None

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
        if b.snapshot_put is not None:      # an earlier snapshot must not land after this one
            try:
                await b.snapshot_put
            except Exception:
                pass
        loop = asyncio.get_running_loop()
        # A tick may still be computing this bed (a stop cuts the tick loop after 1 s; a
        # catch-up tick takes longer): its events reach the outbox only when it ends, and a
        # snapshot taken after it would say they were stored. The compute thread is one, in
        # order: wait for it, then store the bed's events, then snapshot only if all are.
        try:
            await asyncio.wait_for(loop.run_in_executor(self._pool, _nothing), self.opt.stall_s)
        except asyncio.TimeoutError:
            # the compute thread is stuck (the watchdog's business): no snapshot, and the
            # next worker replays from the last one stored
            self._note(f"{key}: released without a snapshot: the compute thread has been "
                       f"busy {self.opt.stall_s:g} s", logging.WARNING)
        else:
            await self._publish_bed(b)
            if b.outbox:
                self._note(f"{key}: {len(b.outbox)} event(s) not stored before release: no "
                           "snapshot, the next worker replays them", logging.WARNING)
            else:
                try:
                    data = await loop.run_in_executor(self._pool, self._dump, b)
                    await self.obs.put(key, data)
                except Exception as exc:
                    self._note(f"{key}: snapshot on release failed: {exc!r}", logging.WARNING)
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
        """A tick at most every `tick_s`. An idle worker (no frame waiting, no event to
        resend) starts the next one when frames arrive, `gather_s` after the first, instead
        of on a fixed beat: frames sent together (a publisher's beds) wait ~`gather_s`
        instead of up to `tick_s` for their tick, and ride in one batch. Beds whose frames
        arrive at random times still wait up to `tick_s` while the worker is busy."""
        while not self._stop.is_set():
            t0 = time.perf_counter()
            self._arrived.clear()
            self._ticking, self._progress_at = True, time.monotonic()
            try:
                await self._flush()
                self._loop_ok()
            except Exception as exc:
                self._loop_failed("tick", exc)
            self._ticking = False
            dt = time.perf_counter() - t0
            if await self._stopped_within(max(self.opt.tick_s - dt, 0.0)):
                break
            if any(b.inbox or b.outbox for b in self.beds.values()):
                continue
            wake = asyncio.ensure_future(self._arrived.wait())
            stop = asyncio.ensure_future(self._stop.wait())
            try:
                await asyncio.wait({wake, stop}, timeout=self.opt.tick_s,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                wake.cancel()
                stop.cancel()
            if self._arrived.is_set() and await self._stopped_within(self.opt.gather_s):
                break

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return self._stop.is_set()

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
            # stored beside the ticks (a put of ~0.7 MB is ~9 broker round trips): the next
            # tick does not wait for it; one put at a time per bed, so they land in order
            if b.pending_snapshot is not None and not b.outbox and (
                    b.snapshot_put is None or b.snapshot_put.done()):
                data, b.pending_snapshot = b.pending_snapshot, None
                b.snapshot_put = asyncio.create_task(self._put_snapshot(b.key, data))

    async def _put_snapshot(self, key: str, data: bytes) -> None:
        try:
            await self.obs.put(key, data)
        except Exception as exc:
            self._note(f"{key}: snapshot put failed: {exc!r}", logging.WARNING)

    def _dump(self, b: BedRun) -> bytes:
        return snapshot.dump(b.proc, {"stream_seq": b.stream_seq, "n": b.n,
                                      "samples": b.samples, "unit": b.unit, "bed": b.bed,
                                      "next_index": b.guard.next_index,
                                      "last_fail_index": b.last_fail_index,
                                      "adc": b.adc,
                                      "limits": None if b.limits is None
                                      else asdict(b.limits),
                                      "worker": self.id, "t": time.time()})

    def _warm(self) -> None:
        """Load the runtime's code before the first bed is claimed. A processor's first feed
        imports scipy, numpy.fft and a dozen of the runtime's modules (~0.07-0.13 CPU s, ~2 %
        of a 30-s bench phase per worker): paid here, not inside the first tick of a takeover.
        Ten seconds of a flat 12-lead signal with a spike train, into a processor then
        dropped; nothing is published and the tick statistics are not touched."""
        from edge_ecg.signal.chunk import Chunk
        from edge_ecg.signal.leads import STANDARD_12

        fs, n = 500.0, 5000
        x = np.zeros((n, len(STANDARD_12)), np.int16)
        x[::400] = 200
        chunk = Chunk(0, 0, 0, x, np.full(len(STANDARD_12), 200.0),
                      np.zeros(len(STANDARD_12)), STANDARD_12, fs)
        proc = self._fresh_processor()
        got = run_tick(self.shared, {"warm": lambda: proc.feed(chunk)})
        if isinstance(got.get("warm"), Exception):    # a real bed will say it: noted only
            self._note(f"warm-up feed failed: {got['warm']!r}", logging.WARNING)

    def _limits(self, key: str, commanded=None):
        """Bed `key`'s alarm limits: those a station's command set (`commanded`), else the
        worker's file's for the bed (None: the engine's defaults)."""
        if commanded is not None:
            return commanded
        return None if self.opt.alarms is None else self.opt.alarms.for_bed(key)

    def _commanded(self, key: str, kept):
        """The commanded limits a snapshot kept, checked as a command's are (the store is
        shared: a snapshot is data); None when it kept none or they fail (noted)."""
        if kept is None:
            return None
        from edge_ecg.runtime.alarm_settings import AlarmSettingsError, apply_limits
        from edge_ecg.runtime.alarms import AlarmLimits

        try:
            return apply_limits(AlarmLimits(), kept, "the snapshot's limits")
        except AlarmSettingsError as exc:
            self._note(f"{key}: the snapshot's commanded limits not used ({exc}); the bed "
                       "runs this worker's", logging.WARNING)
            return None

    def _fresh_processor(self, key: str = "", commanded=None):
        from edge_ecg.runtime.stream_processor import StreamProcessor

        return StreamProcessor(BedBackend(self.shared), hop_s=self.opt.hop_s,
                               alarm_limits=self._limits(key, commanded))

    def _take_command(self, b: BedRun, m, sseq: int, pieces: list) -> None:
        """A station's command from the bed's stream, checked, queued in the frames' order."""
        from edge_ecg.ward.commands import CommandError, decode

        try:
            cmd = decode(m.data)
        except CommandError as exc:
            b.counters.bad_commands += 1
            b.counters.last_error = f"stream seq {sseq}: {exc}"[:300]
            self._note(f"{b.key}: command refused: {b.counters.last_error}", logging.WARNING)
            return
        pieces.append(("command", cmd, float("nan")))   # no frame: no latency to report

    def _command(self, b: BedRun, cmd) -> list:
        """Apply a station's command before the bed's next sample; its events."""
        from edge_ecg.runtime.alarm_settings import changed
        from edge_ecg.runtime.alarms import AlarmLimits
        from edge_ecg.runtime.events import StatusEvent

        p = b.proc
        started = getattr(p, "_started", False)
        index = int(p.origin) + int(p.raw.end) if started else int(b.guard.next_index or 0)
        fs = float(p.fs_in) if started else 500.0
        b.counters.commands += 1
        if cmd.kind == "relearn":
            ev = b.proc.relearned(index, fs)
            ev.info["by"] = cmd.by
            return [ev]
        b.limits = cmd.limits
        lim = self._limits(b.key, b.limits)
        if b.proc.alarms is not None:
            b.proc.alarms.set_limits(lim)
        return [StatusEvent(index=index, time_s=index / fs, state="limits",
                            info={"by": cmd.by, "alarm_limits": changed(lim or AlarmLimits()),
                                  "source": "station" if cmd.limits is not None
                                  else "worker file"})]

    def _compute(self, work: dict) -> None:
        """In the compute thread: decode and check, feed every bed in one batched tick,
        envelope."""
        fns, last_msg = {}, {}
        for key, (b, msgs) in work.items():
            pieces = []     # (chunk, sent), ("restart", [(chunk, sent), ...]) or ("command",
                            # BedCommand, sent), as stored
            cmd_subject = bus.commands_subject(b.unit, b.bed)
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
                if m.subject == cmd_subject:
                    self._take_command(b, m, sseq, pieces)
                    continue
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
                try:
                    t = float((m.headers or {}).get(bus.SENT_HEADER, "nan"))
                except ValueError:
                    t = float("nan")
                verdict, admitted = b.guard.admit(chunk, t)
                if verdict == "refused":
                    b.counters.index_refused += 1
                    b.counters.last_error = (
                        f"stream seq {sseq}: sample index {chunk.index} is more than "
                        f"{b.guard.max_jump_s:g} s from the bed's {b.guard.next_index}: refused")
                    continue
                if verdict == "restart":
                    b.counters.restarts += 1
                    pieces.append(("restart", admitted))
                else:
                    pieces.extend(admitted)
                b.samples += sum(c.n_samples for c, _ in admitted)
                b.scale_from(chunk)
            if not pieces:
                continue
            # fed frame by frame, as published: any chunking gives the same events, but
            # their order within a feed call follows the chunks (beats of a long chunk come
            # before a window it also closes), and the reference is the stream as sent

            def fn(b=b, pieces=pieces):
                out = []
                for piece in pieces:
                    if piece[0] == "command":
                        out.extend((e, piece[2], 0.0) for e in self._command(b, piece[1]))
                        continue
                    if piece[0] == "restart":
                        first, t0 = piece[1][0]
                        self._note(f"{b.key}: restarted at sample index {first.index} (frames "
                                   f"far from the bed's clock agreed)", logging.WARNING)
                        b.proc = self._fresh_processor(b.key, b.limits)
                        out.append(({"type": "gap", "index": int(first.index),
                                     "time_s": round(first.index / first.fs_hz, 4),
                                     "length": 0, "cause": "restart"}, t0, 0.0))
                        todo = piece[1]
                    else:
                        todo = [piece]
                    for c, t in todo:
                        dur = c.n_samples / c.fs_hz
                        out.extend((e, t, dur) for e in b.proc.feed(c))
                    # per piece: a tick catching many beds up is long, not stalled
                    self._progress_at = time.monotonic()
                return out
            fns[key] = (fn, pieces)
        results = run_tick(self.shared, {k: f for k, (f, _) in fns.items()}, self.tick_stats)
        for key, (b, _) in work.items():
            r = results.get(key, [])
            if isinstance(r, Exception):
                r = self._bed_failed(b, r, fns[key][1])
            subject = bus.events_subject(b.unit, b.bed)
            for ev, t, dur in r:
                d = ev if isinstance(ev, dict) else ev.to_json()
                b.n += 1
                # the id JetStream de-duplicates on (Nats-Msg-Id) and HL7/FHIR carry: the
                # bed's ordinal makes it unique (two alarms can start at one sample: ectopy
                # and tachy did, and the second was dropped as a duplicate) and stable (a
                # takeover replays the same ordinals from the snapshot's `n`)
                eid = f"{b.key}.{b.n}.{d['type']}.{d['index']}"
                if b.n <= b.suppress_upto:
                    b.counters.replayed += 1
                    continue
                d["ward"] = {"id": eid, "n": b.n, "unit": b.unit, "bed": b.bed,
                             "worker": self.id, "bundle": self.bundle,
                             "frame_sent": t if math.isfinite(t) else None,
                             "frame_s": round(dur, 6)}
                b.outbox.append((subject, self._json(b, d), eid))
            if key in last_msg:
                b.ack_msg = last_msg[key]
            period = self.opt.snapshot_s * getattr(b.proc, "fs_in", 500.0)
            if not b.guard.run and b.samples - b.samples_at_snapshot >= (
                    period * (1.0 - b.snapshot_phase)):
                # (not while frames wait to confirm a restart: a takeover would not see them)
                b.samples_at_snapshot = b.samples
                b.snapshot_phase = 0.0      # the first one comes early, then every period
                try:
                    b.pending_snapshot = self._dump(b)
                except StateError as exc:   # state the snapshot cannot hold: a takeover
                    b.counters.last_error = f"no snapshot: {exc}"   # replays from the start

    def _bed_failed(self, b: BedRun, exc: Exception, pieces: list) -> list:
        """One bed's processing raised: counted, logged, its processor replaced (its state may
        be half-updated), and a `bed_failed` event (at most one per `fail_event_s` of signal)
        so the station raises the alarm. The other beds of the tick are not touched."""
        b.counters.errors += 1
        b.counters.last_error = f"{type(exc).__name__}: {exc}"[:300]
        f = self.failures.setdefault(b.key, {"errors": 0, "last_error": ""})
        f["errors"] += 1
        f["last_error"] = b.counters.last_error
        self._note(f"{b.key}: processing failed ({b.counters.last_error}); the bed restarts "
                   "from its next frame", logging.ERROR)
        b.proc = self._fresh_processor(b.key, b.limits)
        idx = int(b.guard.next_index or 0)
        last = pieces[-1]
        c, t = last[1][-1] if last[0] == "restart" else last
        fs = float(c.fs_hz)
        if b.last_fail_index is not None and idx - b.last_fail_index < self.opt.fail_event_s * fs:
            return []
        b.last_fail_index = idx
        return [({"type": "bed_failed", "index": idx, "time_s": round(idx / fs, 4),
                  "error": b.counters.last_error, "failures": b.counters.errors}, t, 0.0)]

    @staticmethod
    def _json(b: BedRun, d: dict) -> bytes:
        """The event as JSON; a non-finite number (which JSON cannot carry and a browser's
        JSON.parse rejects) goes out as null, counted."""
        try:
            return _EVENT_JSON.encode(d).encode()
        except ValueError:
            pass

        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                b.counters.nonfinite += 1
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            return v
        return _EVENT_JSON.encode(clean(d)).encode()

    async def _publish(self, beds: list[BedRun]) -> None:
        """Store each bed's pending events in order (beds side by side, a bed's events one
        after another, stopping at the first failure so the stream keeps their order); then
        acknowledge the frames that released them."""
        if beds:
            await asyncio.gather(*(self._publish_bed(b) for b in beds))

    async def _publish_bed(self, b: BedRun) -> None:
        # one publisher of a bed's outbox at a time: the tick loop and a release (from the
        # lease loop) may both get here, and two would pop each other's events
        async with b.publishing:
            while b.outbox:
                subject, payload, eid = b.outbox[0]
                try:
                    await self.js.publish(subject, payload, stream=bus.EVENTS_STREAM,
                                          headers={bus.MSG_ID: eid}, timeout=5.0)
                except Exception:
                    self._progress_at = time.monotonic()
                    return      # retried next tick; its frames stay unacknowledged meanwhile
                self._progress_at = time.monotonic()
                b.outbox.pop(0)
                b.counters.events += 1
            if b.ack_msg is not None:
                try:
                    await b.ack_msg.ack()
                except Exception:
                    pass
                b.ack_msg = None


def _nothing() -> None:
    """A no-op for the compute thread: awaited, it returns once the work queued before it
    has finished."""


async def run_worker(url: str, bundle: str | None = None, variant: str | None = None,
                     options: WorkerOptions | None = None, max_seconds: float | None = None,
                     worker_id: str | None = None) -> dict:
    """Open the bundle and serve beds until stopped (SIGINT/SIGTERM in the CLI)."""
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.bundle import DEFAULT_BUNDLE

    # numerical libraries one thread each: `edge-ecg ward worker` set that before numpy loaded
    # (edge_ecg.runtime.blas_threads); here it would be too late
    backend = open_backend(bundle or str(DEFAULT_BUNDLE), variant=variant, threads=1)
    backend.warmup()
    w = Worker(url, backend, options, worker_id)
    try:
        return await w.run(max_seconds)
    finally:
        backend.close()
