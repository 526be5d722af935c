"""Events as HL7 v2.5 ORU^R01 messages (the observation feed most hospital systems still
take): one message per prediction event, OBX segments for the FHIR module's measurements and
the model's calls, pipe-delimited with the standard encoding characters."""

from __future__ import annotations

import datetime as dt

from edge_ecg.ward.fhir import MEASUREMENTS, RHYTHM_LOINC


def _esc(v) -> str:
    s = str(v)
    for a, b in (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\")):
        s = s.replace(a, b)
    return s


def oru_r01(event: dict, unit: str, bed: str, effective_epoch: float,
            patient: str | None = None, control_id: str | None = None) -> str | None:
    """One ORU^R01 message (segments joined by CR) for a prediction event; None otherwise."""
    if event.get("type") != "prediction":
        return None
    ts = dt.datetime.fromtimestamp(effective_epoch, dt.timezone.utc).strftime("%Y%m%d%H%M%S")
    cid = control_id or (event.get("ward") or {}).get("id") or f"{unit}.{bed}.{event['index']}"
    segs = [f"MSH|^~\\&|EDGE-ECG|{_esc(unit)}|||{ts}||ORU^R01^ORU_R01|{_esc(cid)}|P|2.5",
            f"PID|||{_esc(patient or f'{unit}-{bed}')}",
            f"PV1||I|{_esc(unit)}^^{_esc(bed)}",
            f"OBR|1||{_esc(cid)}|ECG^Continuous ECG monitoring|||{ts}"]
    n = 0
    iv = event.get("intervals") or {}
    for key, (code, display, unit_s, _) in MEASUREMENTS.items():
        v = iv.get(key)
        if isinstance(v, (int, float)):
            n += 1
            segs.append(f"OBX|{n}|NM|{code}^{_esc(display)}^LN||{round(float(v), 1)}|"
                        f"{_esc(unit_s)}^^UCUM|||||P|||{ts}")
    rhythm = (event.get("outputs") or {}).get("arrhythmia")
    if rhythm:
        n += 1
        segs.append(f"OBX|{n}|ST|{RHYTHM_LOINC[0]}^{RHYTHM_LOINC[1]}^LN||"
                    f"{_esc(rhythm.get('label'))} (model call p={rhythm.get('prob')}, not a "
                    f"diagnosis)||||||P|||{ts}")
    return "\r".join(segs) + "\r"
