"""Events as HL7 FHIR R4 Observations (validated with fhir.resources' R4B models, the R4
revision it ships; an R4 Observation is an R4B one), written as NDJSON and/or delivered to a
FHIR server through a durable outbox (`edge_ecg.ward.outbox`) by an async client.

Per prediction event: the measurements, with LOINC codes (heart rate 8867-4 /min, PR 8625-6,
QRS duration 8633-0, QT 8634-8, QTc by Bazett 76635-2 and Fridericia 76634-5, ms), and the model's outputs: the rhythm call as
LOINC 8884-9 "Heart rate rhythm" with the model's label and probability, the other tasks under
this package's own code system. Every model output carries the disclaimer and, for a task
learned from synthetic ECGs only (potassium), says so. Subject and device references are
`Patient/<id>` (from a bed -> patient map; by default the bed's own id, which an ADT feed
must replace) and `Device/edge-ecg-<unit>-<bed>`.

Delivery: `PUT [base]/Observation/<id>` (FHIR's update-as-create), the id deterministic from
the bed, the event's sample index and the output, so a resend stores nothing twice. Retries
back off exponentially (1 s doubling to 15 s, with jitter) on a refused connection, a timeout,
408, 429 or 5xx; while the server is away one request probes it at that pace (not the whole
queue), and once it answers every waiting resource is due at once. Any other 4xx rejects that
resource (kept in the outbox with the reason). An outage is logged once when it starts and
once when it ends, not per resource. The bearer token comes from a file or an environment
variable and is never logged or shown.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import math
import os
import random
import re
import time
from pathlib import Path

from edge_ecg import DISCLAIMER
from edge_ecg.ward.errors import WardError

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MODEL_SYSTEM = "https://github.com/edge-ecg/edge-ecg/fhir/CodeSystem/model-output"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
# window intervals (the runtime's keys) -> LOINC code, display
MEASUREMENTS = {
    "hr_bpm": ("8867-4", "Heart rate", "/min", "/min"),
    "pr_ms": ("8625-6", "P-R Interval", "ms", "ms"),
    "qrs_ms": ("8633-0", "QRS duration", "ms", "ms"),
    "qt_ms": ("8634-8", "Q-T Interval", "ms", "ms"),
    "qtc_bazett_ms": ("76635-2", "Q-T interval corrected based on Bazett formula", "ms", "ms"),
    "qtc_fridericia_ms": ("76634-5", "Q-T interval corrected based on Fridericia formula", "ms",
                          "ms"),
}
RHYTHM_LOINC = ("8884-9", "Heart rate rhythm")
TOKEN_ENV = "EDGE_ECG_FHIR_TOKEN"
# delivered rows are kept a day (a resource queued again within it is recognised and not
# sent), then forgotten, checked every 10 min: the outbox does not grow with the ward's age
KEEP_DELIVERED_S = 86400.0
PURGE_EVERY_S = 600.0
_ID_BAD = re.compile(r"[^A-Za-z0-9-]")

log = logging.getLogger(__name__)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def observation_id(event_id: str, key: str) -> str:
    """A FHIR id ([A-Za-z0-9-.]{1,64}) deterministic from the event id and the output key;
    longer ids keep their readable head and end in a hash of the whole (no two collide)."""
    raw = _ID_BAD.sub("-", f"{event_id}.{key}")
    if len(raw) <= 64:
        return raw
    return f"{raw[:47]}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}"


def _time(t_epoch: float) -> str:
    return dt.datetime.fromtimestamp(t_epoch, dt.timezone.utc).isoformat(timespec="milliseconds")


def observations(event: dict, unit: str, bed: str, effective_epoch: float,
                 patient: str | None = None) -> list[dict]:
    """FHIR R4 Observation resources (dicts) for one prediction event; [] for other types."""
    if event.get("type") != "prediction":
        return []
    # the id from what the station checked (the bed's key, an integer index), not from the
    # event's own `ward.id` string: an event cannot pick another resource's id
    idx = event.get("index")
    eid = f"{unit}.{bed}.prediction.{int(idx) if _finite(idx) else 'x'}"
    base = {
        "resourceType": "Observation",
        "status": "preliminary",
        "subject": {"reference": f"Patient/{patient or f'{unit}-{bed}'}"},
        "device": {"reference": f"Device/edge-ecg-{unit}-{bed}"},
        "effectiveDateTime": _time(effective_epoch),
    }
    out = []

    def add(key: str, body: dict) -> None:
        ident = [{"system": "urn:edge-ecg:event", "value": f"{eid}.{key}"}]
        out.append({**base, "id": observation_id(eid, key),
                    "identifier": ident, **body})

    iv = event.get("intervals") or {}
    for key, (code, display, unit_s, ucum) in MEASUREMENTS.items():
        v = iv.get(key)
        if not _finite(v):
            continue
        cat = "vital-signs" if key == "hr_bpm" else "procedure"
        add(key, {"category": [{"coding": [{"system": CATEGORY, "code": cat}]}],
                  "code": {"coding": [{"system": LOINC, "code": code, "display": display}],
                           "text": display},
                  "valueQuantity": {"value": round(float(v), 1), "unit": unit_s, "system": UCUM,
                                    "code": ucum}})
    for task, o in (event.get("outputs") or {}).items():
        if not isinstance(o, dict) or ("value" in o and not _finite(o["value"])):
            continue           # a non-finite estimate is no observation
        note = DISCLAIMER
        if o.get("trained_on") == "synthetic":
            note = f"Learned from synthetic ECGs only; says nothing about real patients. {note}"
        local = {"system": MODEL_SYSTEM, "code": task, "display": f"edge-ecg model: {task}"}
        body: dict = {"category": [{"coding": [{"system": CATEGORY, "code": "procedure"}]}],
                      "method": {"text": "edge-ecg ECG-MoE model output (not a diagnosis)"},
                      "note": [{"text": note}]}
        if "value" in o:
            body["code"] = {"coding": [local], "text": f"model estimate: {task}"}
            u = str(o.get("unit") or "")
            q = {"value": float(o["value"])}
            if u:
                q.update(unit=u, system=UCUM, code={"years": "a"}.get(u, u))
            body["valueQuantity"] = q
        else:
            coding = [local]
            if task == "arrhythmia":
                coding = [{"system": LOINC, "code": RHYTHM_LOINC[0],
                           "display": RHYTHM_LOINC[1]}, local]
            body["code"] = {"coding": coding, "text": f"model call: {task}"}
            body["valueCodeableConcept"] = {"text": str(o.get("label"))}
            if _finite(o.get("prob")):
                body["component"] = [{"code": {"text": "model probability"},
                                      "valueQuantity": {"value": float(o["prob"]), "unit": "1",
                                                        "system": UCUM, "code": "1"}}]
        add(task, body)
    return out


def validate(resource: dict) -> dict:
    """The resource checked against the FHIR R4(B) Observation model; returns it as JSON."""
    from fhir.resources.R4B.observation import Observation

    return json.loads(Observation.model_validate(resource).model_dump_json(exclude_none=True))


class FhirSink:
    """Observations validated, then written to an NDJSON file and/or queued in the outbox
    that a `FhirClient` drains. Never blocks on the network."""

    def __init__(self, path: str | None = None, outbox=None) -> None:
        self.path = Path(path) if path else None
        self.outbox = outbox
        self._f = open(self.path, "a", encoding="utf-8") if self.path else None  # noqa: SIM115
        self.written = 0
        self.queued = 0
        self.invalid = 0
        self.last_error = ""

    def write(self, resources: list[dict]) -> None:
        good = []
        for r in resources:
            try:
                good.append(validate(r))
            except Exception as exc:   # counted and shown, never a crash of the station
                self.invalid += 1
                self.last_error = f"invalid Observation: {exc}"[:300]
        if self._f is not None and good:
            for r in good:
                self._f.write(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n")
            self._f.flush()
            self.written += len(good)
        if self.outbox is not None and good:
            self.queued += self.outbox.put(good)

    def stats(self) -> dict:
        return {"written": self.written, "queued": self.queued, "invalid": self.invalid,
                "last_error": self.last_error}

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


class TokenError(WardError):
    """The FHIR bearer token cannot be read (file missing or empty)."""


def read_token(token_file: str | None = None, env: str = TOKEN_ENV) -> str | None:
    """The bearer token from a file (first line) or, without one, the environment; None when
    neither is set (a FHIR server that takes no token)."""
    if token_file:
        try:
            tok = Path(token_file).read_text(encoding="utf-8").strip().splitlines()
        except OSError as exc:
            raise TokenError(f"FHIR token file {token_file}: {exc.strerror}; write the token "
                             "to it (one line) or pass it in $" + env) from None
        if not tok or not tok[0].strip():
            raise TokenError(f"FHIR token file {token_file} is empty")
        return tok[0].strip()
    return os.environ.get(env) or None


class FhirClient:
    """Drains an `Outbox` into a FHIR server: PUT by id, a few requests at a time, retries
    with exponential backoff. `run(stop)` is a task on the station's loop; it awaits the
    network only, so a slow or absent server holds up nothing else."""

    RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})

    def __init__(self, url: str, outbox, token: str | None = None,
                 token_file: str | None = None, timeout_s: float = 10.0, concurrency: int = 4,
                 backoff_s: float = 1.0, max_backoff_s: float = 15.0, ssl=None) -> None:
        self.url = url.rstrip("/")
        self.outbox = outbox
        self._token = token
        self._token_file = token_file
        self.timeout_s, self.concurrency = timeout_s, concurrency
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.ssl = ssl
        self.delivered = 0
        self.retries = 0
        self.rejected = 0
        self.last_error = ""
        self._fails = 0               # consecutive rounds in which nothing got through
        self.wake = asyncio.Event()   # set when new resources are queued

    def __repr__(self) -> str:      # never the token
        return f"FhirClient({self.url!r}, pending={self.outbox.pending})"

    def _delay(self, attempts: int) -> float:
        d = min(self.backoff_s * 2.0 ** max(attempts - 1, 0), self.max_backoff_s)
        return d * random.uniform(0.5, 1.0)     # jitter: restarts do not retry in step

    def _headers(self) -> dict:
        h = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        tok = read_token(self._token_file) if self._token_file else self._token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        return h

    async def _put(self, session, rid: str, res: dict, attempts: int) -> bool:
        import aiohttp

        url = f"{self.url}/Observation/{rid}"
        try:
            async with session.put(url, data=json.dumps(res, allow_nan=False).encode(),
                                   headers=self._headers(), ssl=self.ssl) as resp:
                # the answer read whole when small (the connection is reused then), at most
                # 64 kB of it kept: a server's answer is bounded like any input
                body = (await resp.content.read(65536)).decode("utf-8", "replace")
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            err = f"PUT {url}: {type(exc).__name__}: {exc}"
            self._retry(rid, attempts, err)
            return False
        except TokenError as exc:
            self._retry(rid, attempts, str(exc))
            return False
        if 200 <= status < 300:
            self.outbox.delivered(rid)
            self.delivered += 1
            return True
        err = f"PUT {url}: HTTP {status}: {body[:200]}"
        if status in self.RETRY_STATUS or status in (401, 403):
            # 401/403: the token is wrong or expired; a new one in the token file is read on
            # the next try, so these wait and retry rather than losing the resource
            self._retry(rid, attempts, err)
            return False
        self.outbox.rejected(rid, err)
        self.rejected += 1
        self.last_error = err
        log.warning("FHIR server rejected Observation %s: %s", rid, err)
        return True

    async def _limited(self, sem, session, rid: str, res: dict, attempts: int) -> bool:
        async with sem:
            return await self._put(session, rid, res, attempts)

    def _retry(self, rid: str, attempts: int, err: str) -> None:
        self.retries += 1
        self.last_error = err
        self.outbox.retry(rid, self._delay(attempts + 1), err)

    async def run(self, stop: asyncio.Event) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        purged = time.monotonic()
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                if time.monotonic() - purged > PURGE_EVERY_S:
                    purged = time.monotonic()
                    self.outbox.purge_delivered(KEEP_DELIVERED_S)
                # while failing, one resource probes the server; the rest wait untouched
                batch = self.outbox.due(1 if self._fails else self.concurrency * 8)
                if batch:
                    sem = asyncio.Semaphore(self.concurrency)
                    ok = await asyncio.gather(*(self._limited(sem, session, *b) for b in batch))
                    if any(ok):
                        if self._fails:
                            log.warning("FHIR server %s answers again after %d failed rounds; "
                                        "%d Observations waiting", self.url, self._fails,
                                        self.outbox.pending)
                            self.outbox.retry_all_now()
                        self._fails = 0
                        continue
                    if not self._fails:
                        log.warning("FHIR delivery to %s failing (retrying with backoff, "
                                    "the outbox keeps every Observation): %s", self.url,
                                    self.last_error)
                    self._fails += 1
                    # the server is away: back off as a whole too, and new Observations do
                    # not cut the wait short (they would retry at the bedside's event rate)
                    try:
                        await asyncio.wait_for(stop.wait(), self._delay(self._fails))
                    except asyncio.TimeoutError:
                        pass
                    continue
                nxt = self.outbox.next_due()
                wait = 1.0 if nxt is None else min(max(nxt - time.time(), 0.01), 1.0)
                self.wake.clear()
                waits = [asyncio.ensure_future(stop.wait()),
                         asyncio.ensure_future(self.wake.wait())]
                await asyncio.wait(waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()

    def stats(self) -> dict:
        return {"url": self.url, "delivered": self.delivered, "pending": self.outbox.pending,
                "retries": self.retries, "rejected": self.rejected,
                "dropped_outbox_full": self.outbox.dropped, "last_error": self.last_error}
