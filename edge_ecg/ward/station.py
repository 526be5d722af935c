"""The central station: every bed's live tile, its alarms, FHIR/HL7 out, behind a login.

Three parts, each small:

    Tile, Station   the ward's state: one tile per bed registered in `ward_beds`, alarms
                    (physiological from `bed_alarms`, technical from `technical.py`),
                    acknowledgements and silences, the per-bed diffs pushed to browsers
    WardFeed        the NATS side: `events.>` through the station's durable consumer
                    (`station_<name>` on EVENTS: each event acknowledged once taken, so a
                    station restarted, or a broker, resumes where it left off and shows and
                    exports what came while it was away), the beds' frames on `ecg.*.*` (the
                    strips), the bed registry and the workers' heartbeats; acknowledgements
                    go out on `acks.<unit>.<bed>`, a clinician's relearn and limits into the
                    bed's stream (`ecg.<unit>.<bed>.cmd`, edge_ecg.ward.commands)
    station_web     the web side (aiohttp, HTTPS, login, server-sent events): see there

It writes the bundle it expects into `ward_config` (a worker with another bundle refuses to
start), and drops and counts events from another bundle, frames and events of beds nobody
registered, malformed frames and events, and implausible event ordinals.

Exactly once into FHIR: an event is acknowledged only after its Observations are in the
outbox, whose ids are deterministic (`INSERT OR IGNORE`). An event whose acknowledgement was
lost (a crash or a stop between taking it and acknowledging it, a broker restart) comes again
after `ACK_WAIT_S`, behind newer ones: the tile has moved on and does not take it again, but
it is exported again, and the outbox keeps one row per id. The NDJSON and HL7 files are
append-only: across such a redelivery they may hold a line twice (the FHIR lines with the
same id), never none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_ecg import DISCLAIMER
from edge_ecg.errors import FrameError
from edge_ecg.runtime.alarm_settings import AlarmSettings, changed
from edge_ecg.ward import bus, frames, registry
from edge_ecg.ward.bed_limits import BedLimits
from edge_ecg.ward.commands import BedCommand, CommandNotSent
from edge_ecg.ward.finite_json import dumps, finite
from edge_ecg.ward.sequence import OrdinalCheck
from edge_ecg.ward.technical import TechnicalAlarms, TechnicalLimits

log = logging.getLogger(__name__)

STRIP_S = 6.0
STRIP_HZ = 125.0
STRIP_LEADS = ("II", "MLII", "I", "V1")
MAX_SILENCE_S = 300.0     # the longest a clinician may silence a bed (IEC 60601-1-8 leaves it
DEFAULT_SILENCE_S = 120.0  # to the maker; 2 min is the common default audio pause)
ACK_SUBJECT = bus.ACKS_SUBJECT
# The durable consumer: an event not acknowledged within ACK_WAIT_S comes again; at most
# MAX_ACK_PENDING are out unacknowledged (the backlog after a restart arrives in such steps,
# each taken well within ACK_WAIT_S). A station's place is kept while it is away up to the
# events' own retention (`WardConfig.events_max_age_s`), then the consumer goes.
ACK_WAIT_S = 30.0
COMMAND_TIMEOUT_S = 3.0   # a command the broker has not stored by then is reported not sent
MAX_ACK_PENDING = 5000


def bed_alarms(fs_hz: float, limits=None):
    """The bed's physiological alarm engine: the one place the station names it (another
    engine drops in here; it needs `observe(event)` and `active() -> [dict]`). `limits`: the
    bed's `AlarmLimits` (None: the defaults)."""
    from edge_ecg.ward.alarms import AlarmLimits, BedAlarms

    return BedAlarms(fs_hz=fs_hz, limits=limits or AlarmLimits())


@dataclass
class StationOptions:
    bundle: str | None = None
    variant: str | None = None
    host: str = "127.0.0.1"
    port: int = 8443
    state_dir: str = "edge-ecg-station"     # TLS key pair, FHIR outbox, audit log
    users: str | None = None                # users file (default <state_dir>/users.json)
    tls_cert: str | None = None             # PEM; both None: self-signed in <state_dir>/tls
    tls_key: str | None = None
    tls: bool = True                        # False only behind a TLS-terminating proxy
    fhir_out: str | None = None
    fhir_url: str | None = None
    fhir_token_file: str | None = None      # else $EDGE_ECG_FHIR_TOKEN
    fhir_backoff_s: float = 1.0
    fhir_max_backoff_s: float = 60.0
    fhir_timeout_s: float = 10.0
    hl7_out: str | None = None
    patients: dict | None = None            # "<unit>.<bed>" -> patient id for FHIR/HL7
    technical: TechnicalLimits = field(default_factory=TechnicalLimits)
    # the unit's alarm limits, each bed's own where the file names it (alarm_settings.py)
    alarms: AlarmSettings = field(default_factory=AlarmSettings)
    push_s: float = 0.5                     # diffs to the browsers this often
    header_timeout_s: float = 10.0          # a request's headers must arrive within this
    max_body_bytes: int = 16 * 1024
    max_streams: int = 64                   # live pages at once
    session_s: float = 12 * 3600.0
    nats_options: dict | None = None        # passed to bus.connect (TLS, credentials)
    name: str | None = None                 # its durable consumer's name (default: the
                                            # credential's user; a plain URL: "station")
    web: bool = True                        # False: no web side (bench/ward.py reads state())

    @property
    def users_path(self) -> Path:
        return Path(self.users) if self.users else Path(self.state_dir) / "users.json"


class Tile:
    """What the station shows for one bed."""

    def __init__(self, unit: str, bed: str, desc: dict, limits: TechnicalLimits,
                 alarm_limits=None) -> None:
        self.unit, self.bed, self.desc = unit, bed, desc
        self.key = f"{unit}.{bed}"
        fs = desc.get("fs_hz", 500.0)
        self.fs = float(fs) if isinstance(fs, (int, float)) and 1.0 <= fs <= 20000.0 else 500.0
        self.alarms = bed_alarms(self.fs, alarm_limits)
        # what the tile shows of its limits: those set away from the defaults, and who set
        # the bed's own (None: the unit's)
        self.alarm_limits = changed(self.alarms.limits)
        self.limits_set: dict | None = None
        # what the bed's worker confirmed on its stream (status events `relearn`, `limits`)
        self.relearned: dict | None = None
        self.worker_limits: dict | None = None
        self.technical = TechnicalAlarms(limits)
        self.step = max(int(round(self.fs / STRIP_HZ)), 1)
        self.strip: deque = deque(maxlen=int(STRIP_S * self.fs / self.step))
        self.strip_total = 0               # samples ever appended (the diffs' clock)
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
        self.seen_t = time.time()
        self.last_event_t: float | None = None
        self.last_frame_t: float | None = None
        self.worker = None
        self.lead = None
        origin = desc.get("origin")
        self.ordinals = OrdinalCheck(fs_hz=self.fs, origin=origin if isinstance(origin, int)
                                     and not isinstance(origin, bool) else None)
        self.acks: dict[str, dict] = {}   # alarm code -> {"by", "t"} while the alarm holds
        self.silenced_until = 0.0
        self.silenced_by: str | None = None
        self.tech: list[dict] = []

    def set_limits(self, limits, set_by: dict | None) -> None:
        """Run the bed's alarms under `limits` from now on (the engine's state kept)."""
        self.alarms.set_limits(limits)
        self.alarm_limits = changed(limits)
        self.limits_set = set_by

    def accept(self, n, index, counters: dict) -> str:
        """Check an event's ordinal and index (`sequence.OrdinalCheck`): "new" to take it,
        "duplicate" or "implausible" (dropped and counted); no single forged event can make
        the bed's real events look like duplicates (one numbered 1e9 once froze a tile)."""
        o = self.ordinals
        before = (o.duplicates, o.missing, o.implausible)
        verdict = o.check(n, index)
        counters["duplicates"] += o.duplicates - before[0]
        counters["missing"] += o.missing - before[1]
        counters["implausible_events"] += o.implausible - before[2]
        return verdict

    def frame(self, chunk, now: float) -> int:
        """Add a frame's samples to the strip; returns how many were not finite."""
        self.last_frame_t = now
        if self.lead is None:
            names = list(chunk.leads)
            self.lead = next((ld for ld in STRIP_LEADS if ld in names), names[0])
        if self.lead not in chunk.leads:
            return 0
        j = list(chunk.leads).index(self.lead)
        start = (-chunk.index) % self.step          # keep samples on a common decimation grid
        # Chunk.to_mv's float32 operations on the drawn samples only (the same numbers; the
        # other leads and samples were converted and thrown away, every frame of every bed)
        with np.errstate(all="ignore"):
            mv = ((chunk.samples[start::self.step, j].astype(np.float32)
                   - np.float32(chunk.baseline[j])) / np.float32(chunk.gain[j]))
        pts = mv.astype(np.float64)                 # 0.96, not float32's 0.9599999785
        bad = ~np.isfinite(pts)
        vals = np.round(np.where(bad, 0.0, pts), 3).tolist()
        for i in np.flatnonzero(bad):
            vals[i] = None                          # a gap in the drawn strip, not Infinity
        self.strip.extend(vals)
        self.strip_total += len(vals)
        self.strip_end = chunk.end
        return int(bad.sum())

    def event(self, ev: dict, now: float) -> None:
        self.events += 1
        self.last_event_t = now
        w = (ev.get("ward") or {}).get("worker")
        self.worker = str(w)[:80] if w is not None else None
        self.alarms.observe(ev)
        self.technical.observe(ev, now)
        t = ev.get("type")
        if t == "beat":
            self.beats.append(int(ev["index"]))
            rr = ev.get("rr_ms")
            if isinstance(rr, (int, float)) and math.isfinite(rr) and 100 <= rr <= 5000:
                self.rr.append(float(rr))
            if "beat_class" in ev:
                self.classed = True
                self.ectopic.append((int(ev["index"]), ev.get("beat_class")))
        elif t == "prediction":
            self.last = ev
            r = (ev.get("outputs") or {}).get("arrhythmia")
            self.rhythm = r if isinstance(r, dict) else None
            self.quality = ev.get("quality")
            self.withheld = None
        elif t == "withheld":
            self.withheld = [str(r)[:40] for r in (ev.get("reasons") or [])][:10]
            self.quality = ev.get("quality")
        elif t == "status" and ev.get("state") in ("relearn", "limits"):
            info = ev.get("info") if isinstance(ev.get("info"), dict) else {}
            rec = {"index": int(ev["index"]), "time_s": finite(ev.get("time_s")),
                   "by": str(info.get("by", "?"))[:64], "t": round(now, 3)}
            if ev["state"] == "relearn":
                self.relearned = rec
            else:
                lim = info.get("alarm_limits")
                self.worker_limits = dict(rec, alarm_limits={
                    str(k)[:40]: v for k, v in list(lim.items())[:64]
                    if isinstance(v, (int, float)) and not isinstance(v, bool)}
                    if isinstance(lim, dict) else {})

    def update_technical(self, now: float, worker_silent_s: float | None) -> None:
        self.tech = self.technical.evaluate(now, self.seen_t, self.last_frame_t,
                                            self.last_event_t, worker_silent_s)

    def status(self) -> str:
        codes = {a["code"] for a in self.tech}
        return "no_data" if "no_data" in codes else (
            "no_analysis" if "stale_worker" in codes else "live")

    def active_alarms(self, now: float) -> list[dict]:
        """Technical and physiological alarms, highest priority first, each with who
        acknowledged it; acknowledgements of alarms that ended are forgotten."""
        from edge_ecg.ward.alarms import PRIORITY

        phys = [dict(a, kind="physiological") for a in self.alarms.active()]
        alarms = sorted(self.tech + phys, key=lambda a: -PRIORITY.get(a["priority"], 0))
        codes = {a["code"] for a in alarms}
        for c in [c for c in self.acks if c not in codes]:
            del self.acks[c]
        for a in alarms:
            if a["code"] in self.acks:
                a["acknowledged"] = self.acks[a["code"]]
        return alarms

    def to_json(self, now: float, strip: bool = True) -> dict:
        live = self.status() == "live"
        hr = None
        if self.rr and live:
            hr = round(60000.0 / float(np.median(self.rr)), 0)
        iv = self.last.get("intervals") or {} if live else {}
        now_idx = self.strip_end
        ect = None
        if self.classed and live:
            recent = [c for i, c in self.ectopic if i > now_idx - 60 * self.fs]
            ect = {"V": recent.count("V"), "S": recent.count("S")}
        lo = now_idx - len(self.strip) * self.step
        rh = self.rhythm if live else None
        out = {"unit": self.unit, "bed": self.bed, "key": self.key, "status": self.status(),
               "hr_bpm": hr, "window_hr_bpm": iv.get("hr_bpm"), "qrs_ms": iv.get("qrs_ms"),
               "rhythm": ({"label": str(rh.get("label"))[:60], "prob": rh.get("prob")}
                          if rh else None),
               "ectopic_per_min": ect, "quality": self.quality if live else None,
               "withheld": self.withheld if live else None,
               "alarms": self.active_alarms(now), "alarm_limits": self.alarm_limits,
               "alarm_limits_set": self.limits_set,
               "relearned": self.relearned, "worker_limits": self.worker_limits,
               "events": self.events,
               "event_age_s": round(now - self.last_event_t, 1)
               if self.last_event_t else None,
               "frame_age_s": round(now - self.last_frame_t, 1)
               if self.last_frame_t else None,
               "silenced_s": (round(self.silenced_until - now)
                              if self.silenced_until > now else 0),
               "silenced_by": self.silenced_by if self.silenced_until > now else None,
               "worker": self.worker, "lead": self.lead, "strip_hz": self.fs / self.step,
               "strip_len": self.strip.maxlen,
               "beats_s": [round((b - lo) / self.fs, 3) for b in self.beats if b >= lo],
               "source": str(self.desc.get("source"))[:200]}
        if strip:
            out["strip"] = list(self.strip)
        return finite(out)


class Station:
    def __init__(self, url: str, options: StationOptions | None = None) -> None:
        self.url = url
        self.opt = options or StationOptions()
        self.name = station_name(self.opt.name, url)     # its durable consumer's
        self.tiles: dict[str, Tile] = {}
        self.counters = {"events": 0, "frames": 0, "malformed_frames": 0, "unknown_bed_frames": 0,
                         "unknown_bed_events": 0, "other_bundle_events": 0,
                         "malformed_events": 0, "nonfinite_samples": 0, "duplicates": 0,
                         "missing": 0, "implausible_events": 0, "acks_published": 0,
                         "acks_unpublished": 0, "redelivered": 0, "unacknowledged": 0,
                         "limits_events_refused": 0}
        self.unknown: dict[str, int] = {}
        self.latency_s: deque = deque(maxlen=20000)     # frame sent -> event here
        # + the releasing frame's duration: from its first sample, the longest a sample that
        # released an event waited (at the bedside for its frame to fill, then on the bus)
        self.sample_latency_s: deque = deque(maxlen=20000)
        self.worker_seen: dict[str, float] = {}       # worker id -> last time its heartbeat held
        # each bed's limits: the unit's file, with what a clinician set for the bed over them
        self.bed_limits = BedLimits(self.opt.state_dir, self.opt.alarms)
        self._stop = asyncio.Event()
        self.port = self.opt.port
        self.model = self._model()
        self.fhir = None           # FhirSink (NDJSON + outbox)
        self.fhir_client = None    # FhirClient (delivery)
        self.hl7 = None
        self.feed: WardFeed | None = None
        self.web = None            # station_web.Web once serving
        # the push: every tick, each tile's JSON is diffed against what was last sent
        self.seq = 0
        self._sent: dict[str, dict] = {}
        self._sent_total: dict[str, int] = {}
        self._sent_ward: dict = {}
        self.subscribers: set[asyncio.Queue] = set()
        self.dropped_streams = 0

    @property
    def duplicates(self) -> int:
        return self.counters["duplicates"]

    @property
    def missing(self) -> int:
        return self.counters["missing"]

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

    # --- state ---------------------------------------------------------------------------
    def ward_json(self) -> dict:
        """The ward's header: model, counters, latency, FHIR (no tiles)."""
        lat = np.asarray(self.latency_s, dtype=float)
        lat = lat[np.isfinite(lat)]
        slat = np.asarray(self.sample_latency_s, dtype=float)
        slat = slat[np.isfinite(slat)]
        fhir = None
        if self.fhir or self.fhir_client:
            fhir = {**(self.fhir.stats() if self.fhir else {}),
                    **({"delivery": self.fhir_client.stats()} if self.fhir_client else {})}
        return finite({
            "disclaimer": DISCLAIMER, "model": self.model, "counters": dict(self.counters),
            "unknown_beds": dict(list(self.unknown.items())[:50]),
            "duplicates": self.duplicates, "missing": self.missing,
            "latency_ms": ({"p50": round(float(np.percentile(lat, 50)) * 1e3, 1),
                            "p99": round(float(np.percentile(lat, 99)) * 1e3, 1),
                            "n": int(lat.size)} if lat.size else None),
            "sample_latency_ms": ({"p50": round(float(np.percentile(slat, 50)) * 1e3, 1),
                                   "p99": round(float(np.percentile(slat, 99)) * 1e3, 1),
                                   "n": int(slat.size)} if slat.size else None),
            "fhir": fhir,
            "web": self.web.stats() if self.web else None})

    def state(self) -> dict:
        now = time.time()
        return {**self.ward_json(),
                "beds": [self.tiles[k].to_json(now) for k in sorted(self.tiles)]}

    def tick(self, now: float | None = None) -> dict:
        """Technical alarms evaluated, then what changed since the last tick: per bed only
        the fields that changed (the strip as the samples appended), the ward header's
        changed fields. The message every live page receives (server-sent event `diff`)."""
        now = time.time() if now is None else now
        self.seq += 1
        beds: dict[str, dict] = {}
        for key in sorted(self.tiles):
            t = self.tiles[key]
            silent = None
            if t.worker is not None and t.worker in self.worker_seen:
                silent = now - self.worker_seen[t.worker]
            t.update_technical(now, silent)
            cur = t.to_json(now, strip=False)
            prev = self._sent.get(key)
            d = {k: v for k, v in cur.items() if prev is None or prev.get(k) != v}
            sent = self._sent_total.get(key, 0)
            new = t.strip_total - sent
            if prev is None or new >= len(t.strip):
                d["strip"] = list(t.strip)
            elif new > 0:
                d["strip_add"] = list(t.strip)[-new:]
            self._sent_total[key] = t.strip_total
            self._sent[key] = cur
            if d:
                beds[key] = d
        removed = [k for k in self._sent if k not in self.tiles]
        for k in removed:
            self._sent.pop(k, None)
            self._sent_total.pop(k, None)
        ward = self.ward_json()
        wd = {k: v for k, v in ward.items() if self._sent_ward.get(k) != v}
        self._sent_ward = ward
        return {"seq": self.seq, "beds": beds, "removed": removed, "ward": wd}

    def full(self) -> dict:
        """What a page starts from: the state as of the last tick (the diffs that follow
        apply to it), with each bed's whole strip."""
        beds = []
        for key in sorted(self._sent):
            t = self.tiles.get(key)
            if t is None:
                continue
            b = dict(self._sent[key])
            # the strip as of the last tick: drop what came since (the next diff adds it)
            extra = t.strip_total - self._sent_total.get(key, 0)
            s = list(t.strip)
            b["strip"] = s[:len(s) - extra] if extra > 0 else s
            beds.append(b)
        return {"seq": self.seq, **self._sent_ward, "beds": beds}

    def subscribe(self, maxsize: int = 32) -> tuple[asyncio.Queue, dict]:
        q: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
        self.subscribers.add(q)
        return q, self.full()

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self.subscribers.discard(q)

    def _publish_diff(self, msg: dict) -> None:
        data = dumps(msg)
        for q in list(self.subscribers):
            try:
                q.put_nowait(data)
            except asyncio.QueueFull:
                # a page that cannot keep up is cut off (it reconnects and starts from a
                # full state) rather than holding diffs without bound
                self.subscribers.discard(q)
                self.dropped_streams += 1
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(None)          # the page's stream ends; EventSource reconnects

    async def _push_loop(self) -> None:
        while not self._stop.is_set():
            self._publish_diff(self.tick())
            try:
                await asyncio.wait_for(self._stop.wait(), self.opt.push_s)
            except asyncio.TimeoutError:
                pass
        for q in list(self.subscribers):
            try:
                q.put_nowait(None)
            except asyncio.QueueFull:
                pass

    # --- clinicians' actions -------------------------------------------------------------
    def acknowledge(self, key: str, code: str, user: str) -> dict:
        """Acknowledge an active alarm of a bed (it stays shown, marked, until it ends)."""
        t = self.tiles.get(key)
        if t is None:
            raise KeyError(f"unknown bed {key!r}")
        active = {a["code"]: a for a in t.active_alarms(time.time())}
        if code not in active:
            raise LookupError(f"bed {key} has no active alarm {code!r}; active: "
                              f"{sorted(active)}")
        rec = {"by": user, "t": round(time.time(), 3)}
        t.acks[code] = rec
        self._announce(t, {"action": "acknowledge", "alarm": code, **rec})
        return {"bed": key, "alarm": code, "text": active[code]["text"], **rec}

    def silence(self, key: str, seconds: float | None, user: str) -> dict:
        t = self.tiles.get(key)
        if t is None:
            raise KeyError(f"unknown bed {key!r}")
        s = DEFAULT_SILENCE_S if seconds is None else float(seconds)
        if not (math.isfinite(s) and 0 <= s <= MAX_SILENCE_S):
            raise ValueError(f"silence for 0-{MAX_SILENCE_S:.0f} s, not {seconds!r}")
        t.silenced_until = time.time() + s
        t.silenced_by = user if s > 0 else None
        rec = {"by": user, "t": round(time.time(), 3), "seconds": s}
        self._announce(t, {"action": "silence", **rec})
        return {"bed": key, **rec}

    def set_limits(self, key: str, changes, user: str, reset: bool = False) -> dict:
        """A clinician's alarm limits for one bed (`changes` over its current ones), or
        (`reset`) the unit's again: checked whole (AlarmSettingsError, nothing changed, if
        any fails), then kept in the state dir and run by the bed's engine from now on, its
        state kept. VF's timing stays the worker's (it acts where the signal is)."""
        t = self.tiles.get(key)
        if t is None:
            raise KeyError(f"unknown bed {key!r}")
        new = (self.bed_limits.reset(key) if reset
               else self.bed_limits.set(key, changes, user))
        t.set_limits(new, self.bed_limits.set_by(key))
        return {"bed": key, "alarm_limits": t.alarm_limits, "set": t.limits_set}

    async def relearn(self, key: str, user: str) -> dict:
        """A clinician's relearn for one bed: into the bed's stream, where its worker forgets
        the patient's beat templates between two frames (edge_ecg.ward.commands); the tile
        shows it once the worker's `relearn` event comes back. CommandNotSent if the broker
        did not store it."""
        t = self.tiles.get(key)
        if t is None:
            raise KeyError(f"unknown bed {key!r}")
        rec = {"by": user, "t": round(time.time(), 3)}
        seq = await self._command(t, BedCommand("relearn", by=user, t=rec["t"]))
        return {"bed": key, "command": "relearn", "stream_seq": seq, **rec}

    async def send_limits(self, key: str, user: str) -> dict:
        """The bed's limits as the station now runs them, to its worker, where VF's timing
        acts (None after a reset: the worker's own file's, the unit's); what was sent."""
        t = self.tiles[key]
        lim = t.alarms.limits if key in self.bed_limits.beds else None
        try:
            seq = await self._command(t, BedCommand("limits", lim, user, round(time.time(), 3)))
        except CommandNotSent as exc:
            return {"sent": False, "error": str(exc)}
        return {"sent": True, "stream_seq": seq}

    async def _command(self, t: Tile, cmd: BedCommand) -> int:
        if self.feed is None:
            raise CommandNotSent("this station is not connected to a ward: nothing was sent")
        return await self.feed.send_command(t.unit, t.bed, cmd.to_json())

    def _announce(self, tile: Tile, rec: dict) -> None:
        if self.feed is not None and self.feed.publish_ack(tile.unit, tile.bed, rec):
            self.counters["acks_published"] += 1
        else:
            self.counters["acks_unpublished"] += 1

    # --- what the feed delivers ----------------------------------------------------------
    def add_bed(self, key: str, desc: dict) -> None:
        if key in self.tiles:
            return
        ub = bus.parse_subject(f"x.{key}")
        if ub is None or not isinstance(desc, dict):
            return
        self.tiles[key] = Tile(ub[0], ub[1], desc, self.opt.technical,
                               self.bed_limits.limits(key))
        self.tiles[key].limits_set = self.bed_limits.set_by(key)

    def on_frame(self, subject: str, data: bytes) -> None:
        ub = bus.parse_subject(subject)
        key = f"{ub[0]}.{ub[1]}" if ub else subject[:100]
        tile = self.tiles.get(key)
        if tile is None:
            self.counters["unknown_bed_frames"] += 1
            self._unknown(key)
            return
        try:
            chunk, _ = frames.decode(data)
        except FrameError:
            self.counters["malformed_frames"] += 1
            return
        self.counters["frames"] += 1
        self.counters["nonfinite_samples"] += tile.frame(chunk, time.time())

    def _unknown(self, key: str) -> None:
        if key in self.unknown or len(self.unknown) < 1000:      # bounded
            self.unknown[key] = self.unknown.get(key, 0) + 1

    def on_event(self, data: bytes, redelivered: bool = False) -> None:
        """Take one event (JSON). `redelivered`: the bus sent it before and its
        acknowledgement never arrived; if the tile has moved past it, it is exported again
        (idempotent in the outbox) but not shown again. Raises only when an export sink
        cannot take it (the outbox's disk): the event is then not acknowledged."""
        now = time.time()
        try:
            ev = json.loads(data)
            ward = ev["ward"]
            key = f"{ward['unit']}.{ward['bed']}"
            int(ev.get("index", 0))
        except (ValueError, KeyError, TypeError, OverflowError):
            self.counters["malformed_events"] += 1
            return
        if ward.get("bundle") != self.model["bundle"]:
            self.counters["other_bundle_events"] += 1
            return
        tile = self.tiles.get(key)
        if tile is None:
            self.counters["unknown_bed_events"] += 1
            self._unknown(key)
            return
        verdict = tile.accept(ward.get("n"), ev.get("index"), self.counters)
        if verdict != "new":
            if verdict == "duplicate" and redelivered and ev.get("type") == "prediction" \
                    and (self.fhir or self.hl7):
                self._export(tile, ev)
            return
        self.counters["events"] += 1
        sent = ward.get("frame_sent")
        if isinstance(sent, (int, float)) and math.isfinite(sent):
            self.latency_s.append(now - sent)
            dur = ward.get("frame_s")
            if isinstance(dur, (int, float)) and math.isfinite(dur):
                self.sample_latency_s.append(now - sent + dur)
        try:
            tile.event(ev, now)
        except Exception as exc:       # noqa: BLE001 - one odd event costs itself, not the bed
            self.counters["malformed_events"] += 1
            if self.counters["malformed_events"] <= 10:     # bounded: a flood is counted
                log.warning("bed %s: event %s not taken: %r", key, ward.get("n"), exc)
            return
        if ev.get("type") == "status" and ev.get("state") == "limits":
            self._follow_limits(tile, ev)
        if ev.get("type") == "prediction" and (self.fhir or self.hl7):
            self._export(tile, ev)

    def _follow_limits(self, tile: Tile, ev: dict) -> None:
        """The bed's limits as its worker now runs them, from a command in the bed's stream
        (this station's or another's): the limits are the bed's, so this station's engine
        switches to them at the same place in the bed's events, and keeps them across
        restarts. Checked as a clinician's are; one that fails is counted and ignored."""
        from edge_ecg.runtime.alarm_settings import AlarmSettingsError, apply_limits
        from edge_ecg.runtime.alarms import AlarmLimits

        info = ev.get("info") if isinstance(ev.get("info"), dict) else {}
        key = tile.key
        try:
            if info.get("source") == "station":
                full = apply_limits(AlarmLimits(), info.get("alarm_limits"),
                                    f"bed {key}'s limits event")
                if full == tile.alarms.limits:
                    return                  # this station's own, already run since it set them
                new = self.bed_limits.set(key, asdict(full), str(info.get("by", "?"))[:64])
            else:                           # back on the unit's (the worker's own file)
                if key not in self.bed_limits.beds:
                    return
                new = self.bed_limits.reset(key)
        except AlarmSettingsError as exc:
            self.counters["limits_events_refused"] += 1
            log.warning("bed %s: limits event %s not followed (%s)", key,
                        (ev.get("ward") or {}).get("n"), exc)
            return
        tile.set_limits(new, self.bed_limits.set_by(key))

    def _export(self, tile: Tile, ev: dict) -> None:
        from edge_ecg.ward import fhir, hl7v2

        d = tile.desc
        try:
            eff = float(d.get("registered", time.time())) + (
                int(ev["index"]) - int(d.get("origin", 0))) / tile.fs
            if not math.isfinite(eff) or not 0 < eff < 1e10:
                raise ValueError(eff)
        except (ValueError, TypeError, OverflowError):
            eff = time.time()
        pid = (self.opt.patients or {}).get(tile.key)
        if self.fhir:
            self.fhir.write(fhir.observations(ev, tile.unit, tile.bed, eff, pid))
            if self.fhir_client is not None:
                self.fhir_client.wake.set()
        if self.hl7:
            m = hl7v2.oru_r01(ev, tile.unit, tile.bed, eff, pid)
            if m:
                self.hl7.write(m + "\n")
                self.hl7.flush()

    # --- run -----------------------------------------------------------------------------
    async def run(self, max_seconds: float | None = None, ready: asyncio.Event | None = None):
        from edge_ecg.ward import station_web
        from edge_ecg.ward.fhir import FhirClient, FhirSink

        state = Path(self.opt.state_dir)
        if self.opt.web or self.opt.fhir_url:
            state.mkdir(parents=True, exist_ok=True)
        # the users file is checked before anything starts
        web = station_web.Web(self) if self.opt.web else None
        if self.opt.fhir_out or self.opt.fhir_url:
            outbox = None
            if self.opt.fhir_url:
                from edge_ecg.ward.outbox import Outbox

                outbox = Outbox(state / "fhir_outbox.sqlite")
                self.fhir_client = FhirClient(
                    self.opt.fhir_url, outbox, token_file=self.opt.fhir_token_file,
                    token=None if self.opt.fhir_token_file else _env_token(),
                    timeout_s=self.opt.fhir_timeout_s, backoff_s=self.opt.fhir_backoff_s,
                    max_backoff_s=self.opt.fhir_max_backoff_s)
            self.fhir = FhirSink(self.opt.fhir_out, outbox)
        if self.opt.hl7_out:
            self.hl7 = open(self.opt.hl7_out, "a", encoding="utf-8")  # noqa: SIM115
        self.feed = WardFeed(self, self.url)
        tasks = []
        try:
            await self.feed.start()
            if web is not None:
                await web.start()
                self.web = web
                self.port = web.port
                tasks.append(asyncio.create_task(self._push_loop()))
            if self.fhir_client is not None:
                tasks.append(asyncio.create_task(self.fhir_client.run(self._stop)))
            if ready is not None:
                ready.set()
            try:
                await asyncio.wait_for(self._stop.wait(), max_seconds)
            except asyncio.TimeoutError:
                pass
            self._stop.set()
            # a FHIR PUT in flight may take its whole timeout: the outbox keeps it, so the
            # stop does not wait for it beyond a short grace
            if tasks:
                _, late = await asyncio.wait(tasks, timeout=2.0)
                for t in late:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._stop.set()
            if web is not None:
                await web.close()
            await self.feed.close()
            if self.fhir:
                self.fhir.close()
            if self.fhir_client is not None:
                self.fhir_client.outbox.close()
            if self.hl7:
                self.hl7.close()


def _env_token() -> str | None:
    from edge_ecg.ward.fhir import read_token

    return read_token(None)


class WardFeed:
    """The station's NATS side: subscriptions in, acknowledgements out. Kept apart from the
    web side; it calls `Station.add_bed / on_frame / on_event` and fills `worker_seen`."""

    def __init__(self, station: Station, url: str) -> None:
        self.st, self.url = station, url
        self.nc = None
        self.js = None
        self.durable = bus.station_durable(station.name)
        self.events_sub = None
        self._beds_kv = None
        self._beds_listing = registry.Listing(bus.BEDS_BUCKET)
        self._looked_up: dict[str, float] = {}      # unknown bed -> when the registry was asked
        self._tasks: list[asyncio.Task] = []
        self._sending: set[asyncio.Task] = set()     # held: a bare task may be collected

    async def start(self) -> None:
        st = self.st
        self.nc = await bus.connect(self.url, "edge-ecg-station", **(st.opt.nats_options or {}))
        js = self.js = self.nc.jetstream()
        # a plain URL: a local, unauthenticated ward that the station sets up and tells which
        # bundle to run; a credential (security.RoleConfig): a secure ward, whose admin made
        # the streams and wrote the bundle; the station only reads and checks it
        secure = not isinstance(self.url, str)
        kv = await bus.ensure(js, create=not secure)
        if not secure:
            await kv[bus.CONFIG_BUCKET].put("bundle", st.model["bundle"].encode())
        else:
            await self._check_bundle(kv[bus.CONFIG_BUCKET])
        self._beds_kv = kv[bus.BEDS_BUCKET]
        # the beds known before the first event: a backlog after a restart finds its tiles
        await self._registry_round(kv[bus.BEDS_BUCKET], kv[bus.WORKERS_BUCKET])
        self._tasks.append(asyncio.create_task(
            self._registry_loop(kv[bus.BEDS_BUCKET], kv[bus.WORKERS_BUCKET])))

        async def frame(msg):
            st.on_frame(msg.subject, msg.data)

        # frames only (ecg.<unit>.<bed>): a bed's commands share the stream, not the strip
        await self.nc.subscribe("ecg.*.*", cb=frame, pending_msgs_limit=500_000,
                                pending_bytes_limit=1 << 30)
        await self._subscribe_events(js)

    async def _subscribe_events(self, js) -> None:
        """The station's durable push consumer on EVENTS, delivered to a fixed subject in its
        own inbox, so a restart binds to the same consumer (made again with the same
        configuration, it is unchanged). Made the first time, it starts at new events; from
        then on it holds the station's place, acknowledged event by event."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        from edge_ecg.ward.errors import WardError

        deliver = f"{getattr(self.url, 'inbox_prefix', None) or '_INBOX'}.{self.durable}"
        try:
            before = await js.consumer_info(bus.EVENTS_STREAM, self.durable)
        except Exception:      # noqa: BLE001 - not there yet: made below
            before = None
        if before is not None and before.push_bound:
            log.warning("consumer %s is bound already: another station of that name is "
                        "running, or this one's previous connection is not yet gone",
                        self.durable)

        async def event(msg):
            await self._take(msg)

        self.events_sub = await self.nc.subscribe(deliver, cb=event, pending_msgs_limit=500_000,
                                                  pending_bytes_limit=1 << 30)
        cc = ConsumerConfig(durable_name=self.durable, deliver_subject=deliver,
                            filter_subject="events.>", ack_policy=AckPolicy.EXPLICIT,
                            ack_wait=ACK_WAIT_S, max_ack_pending=MAX_ACK_PENDING,
                            deliver_policy=DeliverPolicy.NEW,
                            inactive_threshold=bus.WardConfig().events_max_age_s)
        try:
            await js.add_consumer(bus.EVENTS_STREAM, cc)
        except Exception as exc:
            raise WardError(f"the station's consumer {self.durable} on {bus.EVENTS_STREAM} "
                            f"could not be made: {exc!r} (on a secure ward a station may use "
                            "only the consumer named after its user, station_<user>)") from None
        if before is None:
            log.info("events: durable consumer %s made; it starts at new events",
                     self.durable)
        else:
            log.info("events: durable consumer %s resumes after stream seq %d (%d waiting)",
                     self.durable, before.ack_floor.stream_seq if before.ack_floor else 0,
                     (before.num_pending or 0) + (before.num_ack_pending or 0))

    async def _take(self, msg) -> None:
        """One delivery of the durable consumer: shown and exported, then acknowledged."""
        st = self.st
        if not msg.reply or not msg.reply.startswith("$JS.ACK."):
            return                     # a status message (none are asked for): not an event
        ub = bus.parse_subject(msg.subject)
        if ub is not None and f"{ub[0]}.{ub[1]}" not in st.tiles:
            await self._look_up(f"{ub[0]}.{ub[1]}")
        try:
            redelivered = msg.metadata.num_delivered > 1
        except Exception:      # noqa: BLE001 - metadata from the reply subject; never absent
            redelivered = False
        st.counters["redelivered"] += redelivered
        try:
            st.on_event(msg.data, redelivered)
        except Exception as exc:       # noqa: BLE001 - an export sink failed: not acknowledged
            st.counters["unacknowledged"] += 1
            if st.counters["unacknowledged"] <= 10:
                log.error("event on %s not exported (%r): not acknowledged, it comes again "
                          "after %.0f s", msg.subject, exc, ACK_WAIT_S)
            return
        try:
            await msg.ack()
        except Exception as exc:       # noqa: BLE001 - broker away: it comes again, deduplicated
            log.debug("ack of an event on %s: %r", msg.subject, exc)

    async def _look_up(self, key: str) -> None:
        """A bed registered since the last registry round: read its descriptor now rather
        than drop its first events (at most once a second per unknown key, bounded)."""
        now = time.monotonic()
        if self._beds_kv is None or now - self._looked_up.get(key, -1e9) < 1.0:
            return
        if len(self._looked_up) > 1000:
            self._looked_up.clear()
        self._looked_up[key] = now
        try:
            desc = json.loads((await self._beds_kv.get(key)).value)
        except Exception:      # noqa: BLE001 - not registered (or malformed): it stays unknown
            return
        self.st.add_bed(key, desc)

    async def _check_bundle(self, config_kv) -> None:
        from edge_ecg.ward.errors import WardError

        try:
            want = (await config_kv.get("bundle")).value.decode()
        except Exception:      # noqa: BLE001 - no key (or no read): nothing to check against
            log.warning("ward_config names no bundle: the workers' bundle is not checked "
                        "(the ward's admin sets it: edge-ecg ward broker --dir DIR --bundle)")
            return
        if want != self.st.model["bundle"]:
            raise WardError(f"the ward runs bundle {want!r}; this station expects "
                            f"{self.st.model['bundle']!r}: start it with that --bundle")

    async def _registry_round(self, beds_kv, workers_kv) -> None:
        """Beds from `ward_beds`, live workers from `ward_workers` (their entries expire
        with the lease TTL)."""
        try:
            # the beds listed again only when the registry changed, live workers from their
            # heartbeats' subjects (edge_ecg.ward.registry: ~1/4 of two listings a second)
            for k in await self._beds_listing.keys(self.js, beds_kv):
                if k not in self.st.tiles:
                    try:
                        desc = json.loads((await beds_kv.get(k)).value)
                    except ValueError:
                        desc = None
                    self.st.add_bed(k, desc)
            now = time.time()
            for w in await registry.live_keys(self.js, workers_kv, bus.WORKERS_BUCKET):
                self.st.worker_seen[w] = now
        except Exception as exc:   # broker restarting: the next round finds them
            log.debug("registry poll: %r", exc)

    async def _registry_loop(self, beds_kv, workers_kv) -> None:
        """`_registry_round` once a second."""
        while not self.st._stop.is_set():
            await self._registry_round(beds_kv, workers_kv)
            try:
                await asyncio.wait_for(self.st._stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    def publish_ack(self, unit: str, bed: str, rec: dict) -> bool:
        """An acknowledgement or silence on `acks.<unit>.<bed>` (fire and forget: the audit
        log is the record; the bus tells other stations)."""
        if self.nc is None or not self.nc.is_connected:
            return False
        t = asyncio.ensure_future(self._publish(bus.acks_subject(unit, bed),
                                                dumps(rec).encode()))
        self._sending.add(t)
        t.add_done_callback(self._sending.discard)
        return True

    async def send_command(self, unit: str, bed: str, data: bytes) -> int:
        """A command into the bed's own stream (edge_ecg.ward.commands), where its worker
        reads it between two frames; the stream sequence it was stored at. Raises
        CommandNotSent, with the reason, when the bus does not store it."""
        if self.nc is None or not self.nc.is_connected or self.js is None:
            raise CommandNotSent("the broker is not connected: nothing was sent to the bed")
        try:
            ack = await self.js.publish(bus.commands_subject(unit, bed), data,
                                        stream=bus.FRAMES_STREAM, timeout=COMMAND_TIMEOUT_S,
                                        headers={bus.MSG_ID: f"{bus.bed_key(unit, bed)}.cmd."
                                                             f"{uuid.uuid4().hex}"})
        except Exception as exc:       # noqa: BLE001 - timeout, permission, stream full
            raise CommandNotSent(f"the broker did not store the command ({exc!r})") from None
        return int(ack.seq)

    async def _publish(self, subject: str, data: bytes) -> None:
        try:
            await self.nc.publish(subject, data)
        except Exception as exc:
            log.warning("acknowledgement not published on %s: %r", subject, exc)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.events_sub is not None:
            # no more deliveries; those already here are taken and acknowledged (bounded:
            # what is left comes again after ACK_WAIT_S to the next start)
            try:
                await asyncio.wait_for(self.events_sub.drain(), 1.0)
            except Exception:      # noqa: BLE001 - broker gone or slow: nothing to wait for
                pass
        if self.nc is not None:
            await bus.close(self.nc)       # within 2 s, broker or no broker


def station_name(name: str | None, target) -> str:
    """The station's name: given, else its credential's user, else "station". In a secure
    ward it must be the credential's user (its permissions name that consumer only)."""
    from edge_ecg.ward.errors import WardError

    user = getattr(target, "user", None)
    if name and user and name != user:
        raise WardError(f"station name {name!r}: a station on a secure ward is named after its "
                        f"credential's user ({user!r}), the only consumer it may use")
    return bus.check_token(name or user or "station", "station name")
