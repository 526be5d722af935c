"""The central station: every bed's live tile on one local web page, alarms, FHIR/HL7 out.

It follows `events.>` (a JetStream ordered consumer: it resumes where it was after a broker
restart) and the beds' frames on `ecg.>` (for the strips), keeps one tile per bed registered
in `ward_beds` and serves:

    GET /                 the page (no external assets: it works on an isolated network)
    GET /api/ward         every tile, the ward's counters, the model and the disclaimer (JSON)
    GET /api/beds/<u.b>   one tile; 404 with the reason for an unknown bed
    GET /api/stream       the same JSON as server-sent events, twice a second

It writes the bundle it expects into `ward_config` (a worker with another bundle refuses to
start), and drops, counts and shows events from another bundle, frames and events of beds
nobody registered, and malformed frames.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge_ecg import DISCLAIMER
from edge_ecg.errors import FrameError
from edge_ecg.ward import bus, frames
from edge_ecg.ward.alarms import BedAlarms
from edge_ecg.ward.station_page import PAGE

STRIP_S = 6.0
STRIP_HZ = 125.0
STRIP_LEADS = ("II", "MLII", "I", "V1")


@dataclass
class StationOptions:
    bundle: str | None = None
    variant: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    fhir_out: str | None = None
    fhir_url: str | None = None
    hl7_out: str | None = None
    patients: dict | None = None       # "<unit>.<bed>" -> patient id for FHIR/HL7


class Tile:
    """What the station shows for one bed."""

    def __init__(self, unit: str, bed: str, desc: dict) -> None:
        self.unit, self.bed, self.desc = unit, bed, desc
        self.fs = float(desc.get("fs_hz", 500.0))
        self.alarms = BedAlarms(fs_hz=self.fs)
        self.step = max(int(round(self.fs / STRIP_HZ)), 1)
        self.strip: deque = deque(maxlen=int(STRIP_S * self.fs / self.step))
        self.strip_end = 0                 # source index one past the strip's last sample
        self.beats: deque = deque(maxlen=64)
        self.rr: deque = deque(maxlen=8)
        self.ectopic: deque = deque(maxlen=500)
        self.classed = False
        self.last: dict = {}
        self.rhythm = None
        self.quality = None
        self.withheld: list[str] | None = None
        self.events = 0
        self.last_event_t = 0.0
        self.worker = None
        self.lead = None
        self.last_n: int | None = None

    def frame(self, chunk) -> None:
        if self.lead is None:
            names = list(chunk.leads)
            self.lead = next((ld for ld in STRIP_LEADS if ld in names), names[0])
        j = list(chunk.leads).index(self.lead)
        mv = chunk.to_mv()[:, j]
        start = (-chunk.index) % self.step          # keep samples on a common decimation grid
        self.strip.extend(np.round(mv[start::self.step], 3).tolist())
        self.strip_end = chunk.end

    def event(self, ev: dict) -> None:
        self.events += 1
        self.last_event_t = time.time()
        self.worker = (ev.get("ward") or {}).get("worker")
        self.alarms.observe(ev)
        t = ev.get("type")
        if t == "beat":
            self.beats.append(int(ev["index"]))
            if isinstance(ev.get("rr_ms"), (int, float)):
                self.rr.append(float(ev["rr_ms"]))
            if "beat_class" in ev:
                self.classed = True
                self.ectopic.append((int(ev["index"]), ev.get("beat_class")))
        elif t == "prediction":
            self.last = ev
            self.rhythm = (ev.get("outputs") or {}).get("arrhythmia")
            self.quality = ev.get("quality")
            self.withheld = None
        elif t == "withheld":
            self.withheld = list(ev.get("reasons", []))
            self.quality = ev.get("quality")

    def to_json(self) -> dict:
        hr = None
        if self.rr:
            hr = round(60000.0 / float(np.median(self.rr)), 0)
        iv = self.last.get("intervals") or {}
        now_idx = self.strip_end
        ect = None
        if self.classed:
            recent = [c for i, c in self.ectopic if i > now_idx - 60 * self.fs]
            ect = {"V": recent.count("V"), "S": recent.count("S")}
        lo = now_idx - len(self.strip) * self.step
        return {"unit": self.unit, "bed": self.bed, "key": f"{self.unit}.{self.bed}",
                "hr_bpm": hr, "window_hr_bpm": iv.get("hr_bpm"), "qrs_ms": iv.get("qrs_ms"),
                "rhythm": ({"label": self.rhythm.get("label"), "prob": self.rhythm.get("prob")}
                           if self.rhythm else None),
                "ectopic_per_min": ect, "quality": self.quality, "withheld": self.withheld,
                "alarms": self.alarms.active(), "events": self.events,
                "event_age_s": round(time.time() - self.last_event_t, 1)
                if self.last_event_t else None,
                "worker": self.worker, "lead": self.lead, "strip_hz": self.fs / self.step,
                "strip": list(self.strip),
                "beats_s": [round((b - lo) / self.fs, 3) for b in self.beats if b >= lo],
                "source": self.desc.get("source")}


class Station:
    def __init__(self, url: str, options: StationOptions | None = None) -> None:
        self.url = url
        self.opt = options or StationOptions()
        self.tiles: dict[str, Tile] = {}
        self.counters = {"events": 0, "frames": 0, "malformed_frames": 0, "unknown_bed_frames": 0,
                         "unknown_bed_events": 0, "other_bundle_events": 0,
                         "malformed_events": 0}
        self.unknown: dict[str, int] = {}
        self.latency_s: deque = deque(maxlen=20000)     # frame sent -> event here
        # + the releasing frame's duration: from its first sample, the longest a sample that
        # released an event waited (at the bedside for its frame to fill, then on the bus)
        self.sample_latency_s: deque = deque(maxlen=20000)
        self._stop = asyncio.Event()
        self.port = self.opt.port
        self.model = self._model()
        self.fhir = None
        self.hl7 = None
        self.duplicates = 0      # events with an ordinal already seen (never expected)
        self.missing = 0         # ordinals skipped (never expected)

    def _model(self) -> dict:
        from edge_ecg.runtime.bundle import DEFAULT_BUNDLE, load_bundle

        path = self.opt.bundle or str(DEFAULT_BUNDLE)
        m = load_bundle(path)
        variant = m.variant(self.opt.variant)
        return {"bundle": f"{m.model_version}/{variant.name}", "model_version": m.model_version,
                "training_data": m.training_data, "notes": m.notes,
                "tasks": [{"name": t["name"], "trained_on": t.get("trained_on")}
                          for t in m.tasks]}

    def stop(self) -> None:
        self._stop.set()

    def state(self) -> dict:
        lat = np.asarray(self.latency_s, dtype=float)
        lat = lat[np.isfinite(lat)]
        slat = np.asarray(self.sample_latency_s, dtype=float)
        slat = slat[np.isfinite(slat)]
        return {"disclaimer": DISCLAIMER, "model": self.model, "counters": self.counters,
                "unknown_beds": self.unknown, "duplicates": self.duplicates,
                "missing": self.missing,
                "latency_ms": ({"p50": round(float(np.percentile(lat, 50)) * 1e3, 1),
                                "p99": round(float(np.percentile(lat, 99)) * 1e3, 1),
                                "n": int(lat.size)} if lat.size else None),
                "sample_latency_ms": ({"p50": round(float(np.percentile(slat, 50)) * 1e3, 1),
                                       "p99": round(float(np.percentile(slat, 99)) * 1e3, 1),
                                       "n": int(slat.size)} if slat.size else None),
                "fhir": self.fhir.stats() if self.fhir else None,
                "beds": [self.tiles[k].to_json() for k in sorted(self.tiles)]}

    # --- bus -----------------------------------------------------------------------------
    async def _beds_loop(self, kv) -> None:
        while not self._stop.is_set():
            try:
                try:
                    keys = await kv.keys()
                except Exception as exc:
                    if type(exc).__name__ != "NoKeysError":
                        raise
                    keys = []
                for k in keys:
                    if k not in self.tiles:
                        desc = json.loads((await kv.get(k)).value)
                        unit, bed = k.split(".", 1)
                        self.tiles[k] = Tile(unit, bed, desc)
            except Exception:   # broker restarting: the next round finds the beds
                pass
            try:
                await asyncio.wait_for(self._stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    async def _on_frame(self, msg) -> None:
        ub = bus.parse_subject(msg.subject)
        key = f"{ub[0]}.{ub[1]}" if ub else msg.subject
        tile = self.tiles.get(key)
        if tile is None:
            self.counters["unknown_bed_frames"] += 1
            self.unknown[key] = self.unknown.get(key, 0) + 1
            return
        try:
            chunk, _ = frames.decode(msg.data)
        except FrameError:
            self.counters["malformed_frames"] += 1
            return
        self.counters["frames"] += 1
        tile.frame(chunk)

    async def _on_event(self, msg) -> None:
        now = time.time()
        try:
            ev = json.loads(msg.data)
            ward = ev["ward"]
            key = f"{ward['unit']}.{ward['bed']}"
        except (ValueError, KeyError, TypeError):
            self.counters["malformed_events"] += 1
            return
        if ward.get("bundle") != self.model["bundle"]:
            self.counters["other_bundle_events"] += 1
            return
        tile = self.tiles.get(key)
        if tile is None:
            self.counters["unknown_bed_events"] += 1
            self.unknown[key] = self.unknown.get(key, 0) + 1
            return
        n = ward.get("n")
        if isinstance(n, int) and tile.last_n is not None:
            if n <= tile.last_n:
                self.duplicates += 1
                return
            self.missing += n - tile.last_n - 1     # events the station never received
        if isinstance(n, int):
            tile.last_n = n
        self.counters["events"] += 1
        sent = ward.get("frame_sent")
        if isinstance(sent, (int, float)):
            self.latency_s.append(now - sent)
            dur = ward.get("frame_s")
            if isinstance(dur, (int, float)):
                self.sample_latency_s.append(now - sent + dur)
        tile.event(ev)
        if ev.get("type") == "prediction" and (self.fhir or self.hl7):
            self._export(tile, ev)

    def _export(self, tile: Tile, ev: dict) -> None:
        from edge_ecg.ward import fhir, hl7v2

        d = tile.desc
        eff = float(d.get("registered", time.time())) + (
            int(ev["index"]) - int(d.get("origin", 0))) / tile.fs
        pid = (self.opt.patients or {}).get(f"{tile.unit}.{tile.bed}")
        if self.fhir:
            self.fhir.write(fhir.observations(ev, tile.unit, tile.bed, eff, pid))
        if self.hl7:
            m = hl7v2.oru_r01(ev, tile.unit, tile.bed, eff, pid)
            if m:
                self.hl7.write(m + "\n")
                self.hl7.flush()

    # --- http ----------------------------------------------------------------------------
    async def _http(self, reader, writer) -> None:
        try:
            line = (await asyncio.wait_for(reader.readline(), 5)).decode("latin-1").split()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            path = line[1] if len(line) >= 2 else "/"
            if len(line) < 2 or line[0] != "GET":
                await self._reply(writer, 405, {"error": "only GET"})
            elif path == "/" or path.startswith("/?"):
                await self._reply(writer, 200, PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/api/ward":
                await self._reply(writer, 200, self.state())
            elif path.startswith("/api/beds/"):
                key = path[len("/api/beds/"):]
                t = self.tiles.get(key)
                if t is None:
                    await self._reply(writer, 404, {"error": f"unknown bed {key!r}: no "
                                                    f"publisher registered it; known: "
                                                    f"{sorted(self.tiles)}"})
                else:
                    await self._reply(writer, 200, t.to_json())
            elif path == "/api/stream":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n")
                while not self._stop.is_set():
                    writer.write(b"data: " + json.dumps(self.state()).encode() + b"\n\n")
                    await writer.drain()
                    try:
                        await asyncio.wait_for(self._stop.wait(), 0.5)
                    except asyncio.TimeoutError:
                        pass
            else:
                await self._reply(writer, 404, {"error": f"no page {path}"})
        except (ConnectionError, asyncio.TimeoutError, IndexError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def _reply(self, writer, status: int, body, ctype: str = "application/json") -> None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[status]
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: "
                     f"{len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
                     .encode() + body)
        await writer.drain()

    # --- run -----------------------------------------------------------------------------
    async def run(self, max_seconds: float | None = None, ready: asyncio.Event | None = None):
        from nats.js.api import DeliverPolicy

        from edge_ecg.ward.fhir import FhirSink

        if self.opt.fhir_out or self.opt.fhir_url:
            self.fhir = FhirSink(self.opt.fhir_out, self.opt.fhir_url)
        if self.opt.hl7_out:
            self.hl7 = open(self.opt.hl7_out, "a", encoding="utf-8")  # noqa: SIM115
        nc = await bus.connect(self.url, "edge-ecg-station")
        server = await asyncio.start_server(self._http, self.opt.host, self.opt.port)
        self.port = server.sockets[0].getsockname()[1]
        try:
            js = nc.jetstream()
            st = await bus.ensure(js)
            await st[bus.CONFIG_BUCKET].put("bundle", self.model["bundle"].encode())
            beds = asyncio.create_task(self._beds_loop(st[bus.BEDS_BUCKET]))
            await nc.subscribe("ecg.>", cb=self._on_frame, pending_msgs_limit=500_000,
                               pending_bytes_limit=1 << 30)
            # ordered: it resumes after the last event it saw when the broker restarts (the
            # heartbeat finds a consumer lost with the broker within a second)
            await js.subscribe("events.>", cb=self._on_event, ordered_consumer=True,
                               deliver_policy=DeliverPolicy.NEW, pending_msgs_limit=500_000,
                               idle_heartbeat=1.0)
            if ready is not None:
                ready.set()
            try:
                await asyncio.wait_for(self._stop.wait(), max_seconds)
            except asyncio.TimeoutError:
                pass
            self._stop.set()
            await beds
        finally:
            server.close()
            await nc.close()
            if self.fhir:
                self.fhir.close()
            if self.hl7:
                self.hl7.close()
