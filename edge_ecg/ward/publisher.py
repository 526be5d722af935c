"""The bedside bridge: a monitor's chunks -> bus frames on `ecg.<unit>.<bed>` (JetStream).

One process can bridge one bed (`edge-ecg ward publish`) or many (the bench). Per bed, frames
wait in a bounded buffer and are published strictly in order, each with a deterministic
`Nats-Msg-Id` (`<unit>.<bed>.<session>.<seq>`): a frame whose acknowledgement was lost in a
broker restart is resent and JetStream drops the copy. While the broker is away the buffer
holds `buffer_frames` (600: 5 min of 0.5-s frames); beyond that the oldest frame is dropped
and counted (the worker then sees the index jump and reports a gap):
`produced == published + dropped + buffered`, always.

Replays (record:, synth:, edf:) are read as fast as they come, cut into `frame_s` frames
(`frames.DEFAULT_FRAME_S`, 0.5 s) and paced here by their sample clock (`speed` x real time),
so one process can play a whole ward; live devices are read in a thread at their own pace and
chunk size.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from edge_ecg.errors import SourceError
from edge_ecg.ward import bus, frames
from edge_ecg.ward.errors import WardError

REPLAY_KINDS = ("record", "synth", "edf")
STOP_S = 4.0          # on stop: what is buffered goes out within this, then the rest is counted

log = logging.getLogger(__name__)


@dataclass
class BedStats:
    produced: int = 0          # frames made from the source
    published: int = 0         # acknowledged by JetStream (stored once)
    duplicates: int = 0        # resends JetStream recognised as already stored
    dropped: int = 0           # oldest frames dropped from a full buffer (counted, never hidden)
    retries: int = 0           # publish attempts that failed and were retried
    samples: int = 0
    max_buffered: int = 0
    refused: str = ""          # why the broker refused this bed (its frames stay counted)

    def to_dict(self, buffered: int) -> dict:
        d = dict(self.__dict__)
        d["buffered"] = buffered
        d["balanced"] = self.produced == self.published + self.dropped + buffered
        return d


@dataclass
class BedFeed:
    """One bed: its id, source (not opened) and whether the publisher paces it."""

    unit: str
    bed: str
    source: object
    spec: str = ""
    paced: bool = True
    stats: BedStats = field(default_factory=BedStats)
    buffer: deque = field(default_factory=deque)
    done: bool = False


def open_feed(spec: str, unit: str, bed: str,
              frame_s: float = frames.DEFAULT_FRAME_S) -> BedFeed:
    """A `BedFeed` for a source spec: replays read unpaced in `frame_s` chunks (the publisher
    paces them), live devices as they come."""
    from edge_ecg.runtime.sources import open_source
    from edge_ecg.signal.source import SourceSpec

    bus.check_token(unit, "unit")
    bus.check_token(bed, "bed")
    s = SourceSpec.parse(spec)
    if s.kind in REPLAY_KINDS:
        opts = {**s.options, "speed": "max"}
        opts.setdefault("chunk_s", str(frame_s))
        return BedFeed(unit, bed, open_source(SourceSpec(s.kind, s.target, opts)), spec, True)
    return BedFeed(unit, bed, open_source(s), spec, False)


class Publisher:
    """Publishes the frames of `feeds` to JetStream until their sources end or `stop()`."""

    def __init__(self, feeds: list[BedFeed], url, speed: float = 1.0,
                 buffer_frames: int = 600, cfg: bus.WardConfig | None = None,
                 publish_timeout_s: float = 2.0) -> None:
        self.feeds = feeds
        self.url = url
        self.speed = float(speed)        # replays: x real time (0: as fast as possible)
        self.buffer_frames = int(buffer_frames)
        self.cfg = cfg or bus.WardConfig()
        self.timeout = publish_timeout_s
        self.session = f"{int(time.time() * 1000):x}"
        self._stop = asyncio.Event()
        self.reconnects = 0
        self.disconnects = 0
        self.conn = bus.ConnectionCounters()
        self.stop_timeout_s = STOP_S
        # a credential names the beds it may publish: another bed would only be refused by
        # the broker, frame after frame, so it is refused here, before anything is sent
        allowed = getattr(url, "beds", ())
        if allowed:
            other = [f"{f.unit}.{f.bed}" for f in feeds if f"{f.unit}.{f.bed}" not in allowed]
            if other:
                raise WardError(f"the credential of {getattr(url, 'user', None)!r} may publish "
                                f"only {', '.join(allowed)}, not {', '.join(other)}: use each "
                                "bed's own credential, or give the bridge these beds "
                                "(`edge-ecg ward broker --dir DIR --bridge NAME=UNIT.BED,...`)")

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> dict:
        per = {f"{f.unit}.{f.bed}": f.stats.to_dict(len(f.buffer)) for f in self.feeds}
        tot = {k: sum(p[k] for p in per.values()) for k in
               ("produced", "published", "duplicates", "dropped", "retries", "samples",
                "buffered")}
        tot["balanced"] = all(p["balanced"] for p in per.values())
        tot["reconnects"], tot["disconnects"] = self.reconnects, self.disconnects
        tot["refused"] = self.conn.permission_errors
        tot["beds_refused"] = sorted(k for k, p in per.items() if p["refused"])
        return {"total": tot, "beds": per}

    def _refused(self, f: BedFeed) -> bool:
        """Whether the broker refused this bed's frames or its registration (a credential
        that does not cover it): the bed stops, logged once, its frames counted as buffered;
        retrying would only be refused again (permissions hold for the connection's life)."""
        if f.stats.refused:
            return True
        key = bus.bed_key(f.unit, f.bed)
        mine = {bus.frames_subject(f.unit, f.bed), f"$KV.{bus.BEDS_BUCKET}.{key}"}
        hit = self.conn.refused(mine)
        if not hit:
            return False
        f.stats.refused = (f"the broker refused {', '.join(hit)} to this publisher's "
                           f"credential: bed {key} is not one it may publish")
        log.error("publisher %s: %s; the bed stops (its other beds go on)", key,
                  f.stats.refused)
        return True

    async def run(self, max_seconds: float | None = None) -> dict:
        async def on_disc():
            self.disconnects += 1

        async def on_reconn():
            self.reconnects += 1

        nc = await bus.connect(self.url, "edge-ecg-publisher", self.conn,
                               disconnected_cb=on_disc, reconnected_cb=on_reconn)
        try:
            js = nc.jetstream()
            stores = await bus.ensure(js, self.cfg)
            wakes = {id(f): asyncio.Event() for f in self.feeds}
            t0 = time.perf_counter()
            tasks = [asyncio.create_task(self._produce(f, stores[bus.BEDS_BUCKET], wakes[id(f)],
                                                       t0, max_seconds)) for f in self.feeds]
            tasks += [asyncio.create_task(self._send(js, f, wakes[id(f)])) for f in self.feeds]
            main = asyncio.gather(*tasks)
            stopped = asyncio.create_task(self._stop.wait())
            await asyncio.wait({main, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not main.done():
                # stopping: what is buffered goes out while the broker takes it, then the
                # rest stays counted as buffered (produced = published + dropped + buffered)
                try:
                    await asyncio.wait_for(main, self.stop_timeout_s)
                except asyncio.TimeoutError:
                    log.warning("publisher: stopped with %d frames unsent (broker away?)",
                                sum(len(f.buffer) for f in self.feeds))
            else:
                await main
        finally:
            for f in self.feeds:
                try:
                    f.source.close()
                except Exception:
                    pass
            await bus.close(nc, 1.0)
        return self.stats()

    async def _register(self, kv, f: BedFeed, chunk) -> bool:
        """The bed in the registry (retried while the broker is away); False when the broker
        refuses it or the publisher stops first."""
        desc = {"unit": f.unit, "bed": f.bed, "leads": list(chunk.leads),
                "fs_hz": float(chunk.fs_hz), "source": f.spec, "session": self.session,
                "origin": int(chunk.index), "registered": time.time()}
        tries = 0
        while not self._stop.is_set():
            try:
                await kv.put(bus.bed_key(f.unit, f.bed), json.dumps(desc).encode())
                return True
            except Exception as exc:
                if self._refused(f):
                    return False
                tries += 1
                if tries == 1 or tries % 100 == 0:
                    log.warning("publisher %s.%s: not registered yet (%d tries): %r",
                                f.unit, f.bed, tries, exc)
                await asyncio.sleep(0.25)
        return False

    async def _produce(self, f: BedFeed, beds_kv, wake: asyncio.Event, t0: float,
                       max_seconds: float | None) -> None:
        try:
            f.source.open()
        except SourceError:
            f.done = True
            wake.set()
            raise
        origin = None
        try:
            while not self._stop.is_set():
                try:
                    if f.paced:
                        chunk = f.source.read(0.0)
                    else:
                        chunk = await asyncio.to_thread(f.source.read, 0.1)
                except EOFError:
                    break
                if chunk is None:
                    await asyncio.sleep(0)
                    continue
                if origin is None:
                    origin = chunk.index
                    if not await self._register(beds_kv, f, chunk):
                        break
                if f.stats.refused:
                    break
                if max_seconds is not None and chunk.index - origin >= max_seconds * chunk.fs_hz:
                    break
                if f.paced and self.speed > 0:
                    due = t0 + (chunk.end - origin) / (chunk.fs_hz * self.speed)
                    wait = due - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                data = frames.encode(chunk, f.stats.produced)
                f.buffer.append((f.stats.produced, data, time.time()))
                f.stats.produced += 1
                f.stats.samples += chunk.n_samples
                if len(f.buffer) > self.buffer_frames:
                    f.buffer.popleft()
                    f.stats.dropped += 1
                f.stats.max_buffered = max(f.stats.max_buffered, len(f.buffer))
                wake.set()
                if not f.paced or self.speed <= 0:
                    await asyncio.sleep(0)
        finally:
            f.done = True
            wake.set()

    async def _send(self, js, f: BedFeed, wake: asyncio.Event) -> None:
        subject = bus.frames_subject(f.unit, f.bed)
        key = bus.bed_key(f.unit, f.bed)
        while True:
            if not f.buffer:
                if f.done or self._stop.is_set():
                    return
                wake.clear()
                await wake.wait()
                continue
            seq, data, sent = f.buffer[0]
            try:
                ack = await js.publish(subject, data, stream=bus.FRAMES_STREAM, timeout=self.timeout,
                                       headers={bus.MSG_ID: f"{key}.{self.session}.{seq}",
                                                bus.SENT_HEADER: f"{sent:.6f}"})
            except Exception as exc:
                if self._refused(f):
                    return
                f.stats.retries += 1
                if f.stats.retries == 1 or f.stats.retries % 100 == 0:
                    log.warning("publisher %s: frame %d not stored (%d retries so far): %r",
                                key, seq, f.stats.retries, exc)
                if self._stop.is_set():
                    return
                await asyncio.sleep(0.2)
                continue
            if f.buffer and f.buffer[0][0] == seq:
                f.buffer.popleft()
            else:   # dropped by a full buffer while in flight, yet stored: published, not lost
                f.stats.dropped -= 1
            f.stats.published += 1
            if getattr(ack, "duplicate", False):
                f.stats.duplicates += 1
