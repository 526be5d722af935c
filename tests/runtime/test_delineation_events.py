"""Per-beat intervals on `beat` events and window medians on `prediction` events: present,
plausible, and the same in any chunking."""

import json

import numpy as np
import pytest

from edge_ecg.data.synth import synthesize
from edge_ecg.runtime.backends import open_backend
from edge_ecg.runtime.events import BeatEvent, PredictionEvent
from edge_ecg.runtime.replay import SYNTH_GAIN, quantise
from edge_ecg.runtime.stream_processor import StreamProcessor
from edge_ecg.signal.chunk import Chunk

FS = 500.0
BEAT_FIELDS = {"pr_ms", "qrs_ms", "qt_ms", "rr_ms", "waves_delay_ms"}
WINDOW_FIELDS = {"hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_bazett_ms", "qtc_fridericia_ms",
                 "n_delineated"}


def _run(backend, adc, leads, rng):
    proc = StreamProcessor(backend)
    events, pos = [], 0
    while pos < len(adc):
        n = int(rng.integers(1, 700))
        s = adc[pos:pos + n]
        events += proc.feed(Chunk(index=pos, seq=0, device_time_us=0, samples=s,
                                  gain=np.full(len(leads), SYNTH_GAIN, np.float32),
                                  baseline=np.zeros(len(leads), np.float32), leads=leads,
                                  fs_hz=FS))
        pos += n
    return [e.to_json() for e in events + proc.finish()]


@pytest.fixture(scope="module")
def streams(fixture_bundle):
    rec = synthesize("sinus_rhythm", seconds=16.0, seed=4)
    adc = quantise(rec.signal)
    be = open_backend(fixture_bundle)
    try:
        return rec, [_run(be, adc, rec.leads, np.random.default_rng(k)) for k in (0, 1)]
    finally:
        be.close()


def test_beat_events_carry_intervals(streams):
    _, (ev, _) = streams
    beats = [e for e in ev if e["type"] == "beat"]
    assert len(beats) >= 15
    for b in beats:
        assert BEAT_FIELDS <= set(b)
    full = [b for b in beats if b["qrs_ms"] is not None]
    assert len(full) >= len(beats) - 2          # the last beats end with the stream
    assert all(60 <= b["qrs_ms"] <= 140 for b in full)
    assert all(250 <= b["qt_ms"] <= 500 for b in full if b["qt_ms"] is not None)
    assert sum(b["qt_ms"] is None for b in full) <= 1   # a T cut by the end is left out
    assert all(abs(b["waves_delay_ms"] - 800.0) < 1e-6 for b in full[3:-1])


def test_prediction_events_carry_window_medians(streams):
    rec, (ev, _) = streams
    preds = [e for e in ev if e["type"] == "prediction"]
    assert preds
    true_hr = 60000.0 / float(np.median(np.diff(rec.r_peaks) * 1000.0 / FS))
    for p in preds:
        iv = p["intervals"]
        assert set(iv) == WINDOW_FIELDS and iv["n_delineated"] >= 8
        assert abs(iv["hr_bpm"] - true_hr) < 3.0
        assert iv["qtc_bazett_ms"] == pytest.approx(iv["qt_ms"] / np.sqrt(60.0 / iv["hr_bpm"]),
                                                    abs=0.2)


def test_intervals_do_not_depend_on_chunking(streams):
    _, (a, b) = streams
    for kind in ("beat", "prediction"):
        pa = [{k: v for k, v in e.items() if k not in ("latency_ms", "outputs")}
              for e in a if e["type"] == kind]
        pb = [{k: v for k, v in e.items() if k not in ("latency_ms", "outputs")}
              for e in b if e["type"] == kind]
        assert pa == pb, kind


def test_event_json_is_additive():
    plain = BeatEvent(10, 0.02, 120.0).to_json()
    assert set(plain) == {"type", "index", "time_s", "delay_ms"}
    full = BeatEvent(10, 0.02, 120.0, waves={"pr_ms": 160.0, "qrs_ms": None}).to_json()
    assert full["pr_ms"] == 160.0 and full["qrs_ms"] is None
    p = PredictionEvent(5, 0.01, 0, {}, {}, 1.0, 3, intervals={"hr_bpm": float("nan")})
    assert json.loads(json.dumps(p.to_json()))["intervals"]["hr_bpm"] is None
