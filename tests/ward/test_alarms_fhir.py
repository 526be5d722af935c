"""Alarms rank and hold as monitors do; FHIR R4 Observations and HL7 v2 from events."""

import pytest

from edge_ecg.ward import fhir, hl7v2
from edge_ecg.ward.alarms import BedAlarms

FS = 500.0


def _pred(i, hr=None, qrs=90.0, af=0.0):
    return {"type": "prediction", "index": int(i * FS), "intervals": {"hr_bpm": hr, "qrs_ms": qrs},
            "outputs": {"arrhythmia": {"label": "x", "probs": {"af_or_flutter": af}}}}


def _beat_then(a, ev):
    a.observe({"type": "beat", "index": ev["index"] - int(0.3 * FS)})
    a.observe(ev)


def _codes(a):
    return [x["code"] for x in a.active()]


def test_tachycardia_needs_two_windows_and_three_to_clear():
    a = BedAlarms(fs_hz=FS)
    _beat_then(a, _pred(10, hr=170))
    assert _codes(a) == []                        # one window does not raise it
    _beat_then(a, _pred(11, hr=170))
    assert _codes(a) == ["extreme_tachy"]
    _beat_then(a, _pred(12, hr=80))
    _beat_then(a, _pred(13, hr=170))                  # one normal window does not clear it
    assert _codes(a) == ["extreme_tachy"]
    for i in range(14, 17):
        _beat_then(a, _pred(i, hr=80))
    assert _codes(a) == []


def test_asystole_is_high_priority_and_ranks_first():
    a = BedAlarms(fs_hz=FS)
    a.observe({"type": "beat", "index": 0})
    for i in range(2, 6):
        a.observe(_pred(i, hr=None, af=0.9))
    for i in range(6, 9):
        a.observe({"type": "withheld", "index": int(i * FS), "reasons": ["beat_count"]})
    act = a.active()
    assert act[0]["code"] == "asystole" and act[0]["priority"] == "high"
    assert "new_af" in _codes(a)
    a.observe({"type": "beat", "index": int(9 * FS)})
    a.observe({"type": "beat", "index": int(9.8 * FS)})
    assert "asystole" not in _codes(a)


def test_wide_fast_rhythm_is_vt_and_noise_is_technical():
    a = BedAlarms(fs_hz=FS)
    for i in range(3):
        _beat_then(a, _pred(i, hr=180, qrs=150))
    assert {"vt_vf", "extreme_tachy"} <= set(_codes(a))
    b = BedAlarms(fs_hz=FS)
    for i in range(3):
        b.observe({"type": "withheld", "index": int(i * FS), "reasons": ["noise"]})
    assert b.active()[0]["priority"] == "low" and "noise" in b.active()[0]["text"]


EV = {"type": "prediction", "index": 5000, "time_s": 10.0,
      "outputs": {"rr_interval": {"value": 833.9, "unit": "ms"},
                  "age": {"value": 56.7, "unit": "years"},
                  "sex": {"label": "female", "prob": 0.97},
                  "potassium": {"label": "normal", "prob": 0.1, "trained_on": "synthetic"},
                  "arrhythmia": {"label": "af_or_flutter", "prob": 0.8, "probs": {}}},
      "intervals": {"hr_bpm": 72.0, "qrs_ms": 88.0, "qt_ms": 380.0, "pr_ms": None},
      "ward": {"id": "icu.b1.prediction.5000"}}


def test_fhir_observations_validate_with_loinc_and_references():
    pytest.importorskip("fhir.resources", reason="the ward extra (fhir.resources) is not installed")
    obs = [fhir.validate(o) for o in fhir.observations(EV, "icu", "b1", 1.7e9, patient="p42")]
    hr = next(o for o in obs if o["code"]["coding"][0]["code"] == "8867-4")
    assert hr["valueQuantity"] == {"value": 72.0, "unit": "/min", "system": fhir.UCUM,
                                   "code": "/min"}
    assert hr["subject"]["reference"] == "Patient/p42"
    assert hr["device"]["reference"] == "Device/edge-ecg-icu-b1"
    rhythm = next(o for o in obs if o["code"]["coding"][0]["code"] == "8884-9")
    assert rhythm["valueCodeableConcept"]["text"] == "af_or_flutter"
    k = next(o for o in obs if o["code"]["coding"][0]["code"] == "potassium")
    assert "synthetic" in k["note"][0]["text"]
    assert all("Not a diagnostic device" in o["note"][0]["text"] for o in obs if "note" in o)
    assert not any(o["code"]["coding"][0]["code"] == "8625-6" for o in obs)   # PR None: none
    with pytest.raises(ValueError):             # the model does check: code is required
        fhir.validate({k: v for k, v in obs[0].items() if k != "code"})


def test_hl7_v2_oru_r01():
    m = hl7v2.oru_r01(EV, "icu", "b1", 1.7e9)
    segs = m.strip("\r").split("\r")
    assert segs[0].startswith("MSH|^~\\&|EDGE-ECG|icu|") and "ORU^R01" in segs[0]
    assert [s[:3] for s in segs] == ["MSH", "PID", "PV1", "OBR", "OBX", "OBX", "OBX", "OBX"]
    assert "8867-4^Heart rate^LN||72.0|/min" in m
    assert hl7v2.oru_r01({"type": "beat", "index": 1}, "icu", "b1", 0.0) is None
