"""`edge-ecg stream` and `edge-ecg demo` end to end (subprocesses, real files, real ptys)."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from edge_ecg import DISCLAIMER
from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.runtime.events import EVENT_TYPES
from edge_ecg.runtime.quality import REASONS

KEYS = {
    # a beat is emitted once delineated, with its intervals (edge_ecg.signal.delineate), and
    # classified (the fixture bundle has a beat task: edge_ecg.runtime.beat_classes)
    "beat": {"index", "time_s", "delay_ms", "pr_ms", "qrs_ms", "qt_ms", "rr_ms",
             "waves_delay_ms", "beat_class", "beat_class_prob", "beat_class_reason"},
    "prediction": {"index", "time_s", "start", "outputs", "experts", "latency_ms", "n_beats",
                   "intervals", "quality"},
    "gap": {"index", "time_s", "length", "cause"},
    "withheld": {"index", "time_s", "start", "reasons", "quality"},
    "status": {"index", "time_s", "state", "info"},
}


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "edge_ecg", *args], capture_output=True,
                          text=True, timeout=timeout)


def _contract(bundle):
    from edge_ecg.signal.contract import SignalContract

    return SignalContract.from_dict(json.loads((bundle / "manifest.json").read_text())["signal"])


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_events_jsonl_schema(fixture_bundle, tmp_path):
    out = tmp_path / "ev.jsonl"
    res = _cli("stream", "--source", "synth:sinus_rhythm+atrial_fibrillation?seconds=16&seed=2",
               "--bundle", str(fixture_bundle), "--speed", "max", "--output", f"jsonl:{out}")
    assert res.returncode == 0, res.stderr
    assert DISCLAIMER in res.stderr
    events = _read_jsonl(out)
    assert events[0]["type"] == "status" and events[0]["state"] == "start"
    assert events[-1]["type"] == "status" and events[-1]["state"] == "stop"
    assert events[0]["info"]["disclaimer"] == DISCLAIMER
    for ev in events:
        assert ev["type"] in EVENT_TYPES
        assert set(ev) == KEYS[ev["type"]] | {"type"}, ev
        assert isinstance(ev["index"], int) and ev["time_s"] == pytest.approx(ev["index"] / 500,
                                                                             abs=1e-3)
        if ev["type"] == "withheld":
            assert set(ev["reasons"]) <= set(REASONS)
    preds = [e for e in events if e["type"] == "prediction"]
    assert len(preds) == 7                      # windows ending at 10, 11, ..., 16 s
    assert [p["index"] for p in preds] == list(range(5000, 8001, 500))
    for p in preds:
        assert p["index"] - p["start"] == 5000
        o = p["outputs"]
        assert o["rr_interval"]["unit"] == "ms" and 300 < o["rr_interval"]["value"] < 2000
        assert o["sex"]["label"] in ("male", "female") and 0 <= o["sex"]["prob"] <= 1
        a = o["arrhythmia"]
        assert list(a["probs"]) == list(DEFAULT_TASKS["arrhythmia"].labels)
        assert a["label"] == max(a["probs"], key=a["probs"].get)
        assert sum(a["probs"].values()) == pytest.approx(1.0, abs=1e-3)
        assert set(p["experts"]) == {"morphology", "rhythm"}
        assert all(n.startswith(("morphology", "rhythm")) for v in p["experts"].values() for n in v)
        assert p["latency_ms"] > 0
    beats = [e["index"] for e in events if e["type"] == "beat"]
    assert beats == sorted(beats) and len(beats) >= 12
    stop = events[-1]["info"]
    assert stop["samples"] == 8000 and stop["predictions"] == 7 and stop["beats"] == len(beats)
    assert stop["dropped_chunks"] == 0 and stop["gaps"] == 0


def test_sigint_stops_cleanly_with_summary(fixture_bundle, tmp_path):
    out = tmp_path / "live.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_ecg", "stream", "--source",
         "synth:sinus_rhythm?seconds=120&speed=8", "--bundle", str(fixture_bundle),
         "--output", f"jsonl:{out}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:             # wait for the first prediction
            if out.exists() and '"type":"prediction"' in out.read_text():
                break
            time.sleep(0.2)
        else:
            pytest.fail("no prediction within 60 s")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    events = _read_jsonl(out)                     # every line complete: flushed, not cut
    assert events[-1]["type"] == "status" and events[-1]["state"] == "stop"
    summary = events[-1]["info"]
    n_pred = sum(e["type"] == "prediction" for e in events)
    assert summary["predictions"] == n_pred >= 1
    assert 10 * 500 <= summary["samples"] < 120 * 500
    assert "predictions" in err and "latency" in err and err.strip().endswith(DISCLAIMER)


def test_stream_beats_on_mitdb_100_score_f1(shared_data, e2e_bundle, tmp_path):
    from edge_ecg.data.records import beat_annotations
    from edge_ecg.signal.scoring import score_beats

    rec = shared_data / "mitdb" / "100"
    out = tmp_path / "100.jsonl"
    minutes = 10                                  # the first 10 min: ~740 beats, test budget
    res = _cli("stream", "--source", f"record:{rec}", "--speed", "max", "--bundle",
               str(e2e_bundle), "--output", f"jsonl:{out}", "--seconds", str(60 * minutes),
               timeout=300)
    assert res.returncode == 0, res.stderr
    events = _read_jsonl(out)
    det = np.array([e["index"] for e in events if e["type"] == "beat"])
    n = minutes * 60 * 360
    ref = beat_annotations(rec).sample
    ref = ref[ref < n - 54]                       # a beat in the last 150 ms may be undecided
    det = det[det < n - 54]
    score = score_beats(ref, det, 360.0)
    f1 = 2 * score.tp / (2 * score.tp + score.fp + score.fn)
    assert f1 >= 0.99, (score.tp, score.fp, score.fn)
    c = _contract(e2e_bundle)
    n_windows = (int(np.ceil(n * c.fs_hz / 360)) - c.window_len) // c.hop_len + 1
    held = [e for e in events if e["type"] == "withheld"]
    preds = [e for e in events if e["type"] == "prediction"]
    assert len(preds) + len(held) == n_windows
    assert len(held) < 0.05 * n_windows          # a clean record is mostly predicted


def test_demo_runs_end_to_end(e2e_bundle, tmp_path):
    png = tmp_path / "demo.png"
    ev = tmp_path / "demo.jsonl"
    res = _cli("demo", "--patient", "synth", "--seconds", "15", "--speed", "10", "--bundle",
               str(e2e_bundle), "--report", str(png), "--events", str(ev), timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == DISCLAIMER and lines[-1] == DISCLAIMER
    shown = [ln for ln in lines if ln.startswith("t=")]
    assert len(shown) >= 4 and all("annotated:" in ln for ln in shown)
    assert any("HR" in ln for ln in shown)
    assert png.stat().st_size > 20_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = _read_jsonl(ev)
    stop = events[-1]["info"]
    assert stop["samples"] == 15 * 500 and stop["crc_errors"] == 0 and stop["gaps"] == 0
    c = _contract(e2e_bundle)
    assert stop["predictions"] + stop["withheld"] == (15 - c.window_s) // c.hop_s + 1


def test_demo_plays_the_packaged_real_patient(e2e_bundle, tmp_path):
    png = tmp_path / "demo.png"
    res = _cli("demo", "--seconds", "50", "--speed", "20", "--bundle", str(e2e_bundle),
               "--report", str(png), timeout=120)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "MIT-BIH record 223" in out and "2 leads x 360 Hz" in out
    shown = [ln for ln in out.splitlines() if ln.startswith("t=")]
    # the cardiologists' rhythm beside each call: sinus, then the run of VT (38-93 s)
    assert any("annotated: sinus" in ln for ln in shown)
    assert any("(VT" in ln and "other rhythm" in ln for ln in shown)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
