"""bench/vt_escalation.py, which measured `AlarmLimits.vt_escalate_beats`: a record streamed
as `edge-ecg evaluate` streams it, the alarm engine replayed on its logged inputs (the default
limits give the stream's own alarms), scored for each setting; and the lead assignment it
shares with bench/alarms.py is the databases' own (SVDB's ECG2 unused, as evaluate has it).
On the packaged MIT-BIH 223 excerpt (4 min; no ../shared/data needed)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import alarms as bench_alarms
import vt_escalation

from edge_ecg.runtime.alarms import AlarmLimits

EXCERPT = REPO / "edge_ecg" / "assets" / "demo" / "mitdb_223_excerpt"
BUNDLE = REPO / "edge_ecg" / "assets" / "default_bundle"


def test_leads_are_the_databases_own():
    assert bench_alarms.record_leads("svdb", ("ECG1", "ECG2")) == ("II", "-")
    assert bench_alarms.record_leads("cudb", ("ECG",)) == ("II",)
    assert bench_alarms.record_leads("mitdb", ("MLII", "V1")) == ("MLII", "V1")


def test_a_record_streamed_then_replayed_per_setting(engine_restored):
    r = vt_escalation.stream((BUNDLE, EXCERPT, "mitdb"))
    key = [(a["code"], a["state"], a["index"]) for a in r["alarms"]]
    assert r["ops"] and "vt" in {a["code"] for a in r["alarms"]}
    replayed = bench_alarms._replay_engine(r, AlarmLimits())
    assert [(a["code"], a["state"], a["index"]) for a in replayed] == key
    off = vt_escalation.alarm_figures([r], AlarmLimits())["mitdb"]
    on = vt_escalation.alarm_figures(
        [r], dataclasses.replace(AlarmLimits(), vt_escalate_beats=3))["mitdb"]
    assert off["hours"] == on["hours"] > 0.06
    # escalation only turns idioventricular runs into VT: never fewer red alarms found
    assert on["vt_alarm_tp"] >= off["vt_alarm_tp"]
    # the excerpt's fast runs: with its VT alarms each is found; without them, each is
    # listed as missed, with the stream's calls of its beats
    assert vt_escalation.missed_red_vt(r, r["alarms"]) == []
    missed = vt_escalation.missed_red_vt(r, [a for a in r["alarms"] if a["code"] != "vt"])
    assert missed and all(m["beats"] >= 5 and m["rate_bpm"] >= 100 for m in missed)
    assert all(len(m["called"]) == m["beats"] and "V" in m["called"] for m in missed)
    # EC57's 5-minute learning period covers the whole 4-min excerpt: nothing scored, NaN
    assert vt_escalation.beat_scores([r])["mitdb"]["v_se"] != \
        vt_escalation.beat_scores([r])["mitdb"]["v_se"]


def test_the_beat_scores_read_the_streamed_classes(engine_restored, monkeypatch):
    import edge_ecg.metrics.beats as beats_module

    r = vt_escalation.stream((BUNDLE, EXCERPT, "mitdb"))
    monkeypatch.setattr(beats_module, "EC57_LEARNING_S", 0.0)    # score the excerpt's beats
    got = vt_escalation.beat_scores([r])["mitdb"]
    assert 0.5 < got["v_se"] <= 1.0 and 0.5 < got["v_ppv_ec57"] <= 1.0
    r["classes"] = ["N" if c == "V" else c for c in r["classes"]]     # no V called: Se 0
    assert vt_escalation.beat_scores([r])["mitdb"]["v_se"] == 0.0


def test_the_svt_alarm_figures_count_reference_runs_and_alarms_on_none(capsys):
    """A stream of sinus at 1 s, a run of 10 S at 0.4 s (150 /min, annotated and called S),
    sinus, then 9 beats called S at 0.4 s that the reference calls N: one reference run found,
    two alarms, one on no reference S run. Slower reference runs are not counted."""
    fs = 100.0
    t = [float(k) for k in range(10)] + [9.4 + 0.4 * k for k in range(10)]
    t += [t[-1] + 1 + k for k in range(10)]
    t += [t[-1] + 0.4 * (k + 1) for k in range(9)] + [t[-1] + 5.0]
    beats = [int(round(v * fs)) for v in t]
    sym = ["N"] * 10 + ["A"] * 10 + ["N"] * 10 + ["N"] * 9 + ["N"]
    cls = ["N"] * 10 + ["S"] * 10 + ["N"] * 10 + ["S"] * 9 + ["N"]
    r = {"record": "x", "db": "svdb", "fs": fs, "n": beats[-1] + 10, "ext": "atr",
         "beats": beats, "classes": cls, "marks": (beats, tuple(sym))}
    assert vt_escalation.reference_s_runs(r, 8, 150.0) == [(beats[10], beats[19])]
    assert vt_escalation.reference_s_runs(r, 8, 151.0) == []
    got = vt_escalation.svt_alarm_figures([r])["svdb"]
    assert (got["runs"], got["found"], got["alarms"], got["false"]) == (1, 1, 2, 1)
    assert "1 of 1 such reference runs overlapped; 2 alarms, 1 on no reference S run" in \
        capsys.readouterr().out
