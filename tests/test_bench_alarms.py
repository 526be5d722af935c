"""bench/alarms.py's replay of the alarm engine (`--choose-af` chooses on it): the engine
replayed on the inputs it logged while a record streamed raises exactly the stream's alarms,
a second record streamed in the same process logs only its own, and a changed limit changes
the replay. On the packaged MIT-BIH 223 excerpt (4 min, PVCs and VT runs; no ../shared/data
needed). (bench/ is not a package: imported by path.)"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import alarms as bench_alarms

from edge_ecg.runtime.alarms import AlarmLimits

EXCERPT = REPO / "edge_ecg" / "assets" / "demo" / "mitdb_223_excerpt"
BUNDLE = str(REPO / "edge_ecg" / "assets" / "default_bundle")


def _key(alarms: list[dict]) -> list[tuple]:
    return [(a["code"], a["state"], a["index"], a.get("onset_index")) for a in alarms]


def test_the_engine_replayed_on_its_logged_inputs_raises_the_streams_alarms(engine_restored):
    r = bench_alarms.stream_record((BUNDLE, EXCERPT, "mitdb", True))
    assert r["ops"] and {"vt", "couplet"} <= {a["code"] for a in r["alarms"]}
    assert _key(bench_alarms._replay_engine(r, AlarmLimits())) == _key(r["alarms"])
    again = bench_alarms.stream_record((BUNDLE, EXCERPT, "mitdb", True))
    assert len(again["ops"]) == len(r["ops"])          # its own inputs only
    plain = bench_alarms.stream_record((BUNDLE, EXCERPT, "mitdb"))
    assert "ops" not in plain and _key(r["alarms"]) == _key(
        bench_alarms._replay_engine(again, AlarmLimits()))
    # no run is fast enough to be VT at 1000 /min: the replay raises v_run instead
    slow = {a["code"] for a in bench_alarms._replay_engine(
        r, dataclasses.replace(AlarmLimits(), vt_bpm=1000.0))}
    assert "vt" not in slow and "v_run" in slow
