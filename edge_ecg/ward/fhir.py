"""Events as HL7 FHIR R4 Observations (validated with fhir.resources' R4B models, the R4
revision it ships; an R4 Observation is an R4B one), written as NDJSON or POSTed.

Per prediction event: the measurements, with LOINC codes (heart rate 8867-4 /min, PR 8625-6,
QRS duration 8633-0, QT 8634-8, QTc by Bazett 76635-2 and Fridericia 76634-5, ms), and the model's outputs: the rhythm call as
LOINC 8884-9 "Heart rate rhythm" with the model's label and probability, the other tasks under
this package's own code system. Every model output carries the disclaimer and, for a task
learned from synthetic ECGs only (potassium), says so. Subject and device references are
`Patient/<id>` (from a bed -> patient map; by default the bed's own id, which an ADT feed
must replace) and `Device/edge-ecg-<unit>-<bed>`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from edge_ecg import DISCLAIMER

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


def _time(t_epoch: float) -> str:
    return dt.datetime.fromtimestamp(t_epoch, dt.timezone.utc).isoformat(timespec="milliseconds")


def observations(event: dict, unit: str, bed: str, effective_epoch: float,
                 patient: str | None = None) -> list[dict]:
    """FHIR R4 Observation resources (dicts) for one prediction event; [] for other types."""
    if event.get("type") != "prediction":
        return []
    eid = (event.get("ward") or {}).get("id") or f"{unit}.{bed}.prediction.{event.get('index')}"
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
        out.append({**base, "id": f"{eid}.{key}".replace("_", "-").replace(".", "-")[-64:],
                    "identifier": ident, **body})

    iv = event.get("intervals") or {}
    for key, (code, display, unit_s, ucum) in MEASUREMENTS.items():
        v = iv.get(key)
        if not isinstance(v, (int, float)):
            continue
        cat = "vital-signs" if key == "hr_bpm" else "procedure"
        add(key, {"category": [{"coding": [{"system": CATEGORY, "code": cat}]}],
                  "code": {"coding": [{"system": LOINC, "code": code, "display": display}],
                           "text": display},
                  "valueQuantity": {"value": round(float(v), 1), "unit": unit_s, "system": UCUM,
                                    "code": ucum}})
    for task, o in (event.get("outputs") or {}).items():
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
            if isinstance(o.get("prob"), (int, float)):
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
    """Observations to an NDJSON file and/or POSTed to a FHIR server's `[base]/Observation`."""

    def __init__(self, path: str | None = None, url: str | None = None,
                 timeout_s: float = 5.0) -> None:
        self.path = Path(path) if path else None
        self.url = url.rstrip("/") if url else None
        self.timeout_s = timeout_s
        self._f = open(self.path, "a", encoding="utf-8") if self.path else None  # noqa: SIM115
        self.written = 0
        self.posted = 0
        self.failed = 0
        self.invalid = 0
        self.last_error = ""

    def write(self, resources: list[dict]) -> None:
        for r in resources:
            try:
                r = validate(r)
            except Exception as exc:   # counted and shown, never a crash of the station
                self.invalid += 1
                self.last_error = f"invalid Observation: {exc}"[:300]
                continue
            if self._f is not None:
                self._f.write(json.dumps(r, separators=(",", ":")) + "\n")
                self.written += 1
            if self.url is not None:
                self._post(r)
        if self._f is not None:
            self._f.flush()

    def _post(self, r: dict) -> None:
        import urllib.request

        req = urllib.request.Request(f"{self.url}/Observation", data=json.dumps(r).encode(),
                                     headers={"Content-Type": "application/fhir+json"},
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
                resp.read()
            self.posted += 1
        except Exception as exc:
            self.failed += 1
            self.last_error = f"POST {self.url}/Observation: {exc}"[:300]

    def stats(self) -> dict:
        return {"written": self.written, "posted": self.posted, "failed": self.failed,
                "invalid": self.invalid, "last_error": self.last_error}

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
