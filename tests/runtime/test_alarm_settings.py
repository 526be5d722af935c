"""A unit's alarm limits from a TOML file (edge_ecg/runtime/alarm_settings.py): read, checked
and refused whole with the reason; then carried to the stream (`edge-ecg stream
--alarm-limits`, on the packaged MIT-BIH 223 excerpt) and to a ward station's beds."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from edge_ecg.runtime.alarm_settings import (RANGES, AlarmSettings, AlarmSettingsError, changed,
                                             describe, parse_alarm_settings,
                                             read_alarm_settings)
from edge_ecg.runtime.alarms import AlarmLimits
from edge_ecg.runtime.bundle import DEFAULT_BUNDLE

EXCERPT = Path(DEFAULT_BUNDLE).parent / "demo" / "mitdb_223_excerpt"


def test_every_limit_has_a_range_and_the_defaults_lie_inside():
    names = [f.name for f in fields(AlarmLimits)]
    assert sorted(RANGES) == sorted(names)
    base = AlarmLimits()
    for n in names:
        lo, hi = RANGES[n]
        assert lo <= getattr(base, n) <= hi, n


def test_a_file_changes_what_it_names_and_beds_change_over_it(tmp_path):
    p = tmp_path / "icu.toml"
    p.write_text('description = "Adult ICU"\n[alarms]\nvt_run = 5\ntachy_bpm = 130\n'
                 '[beds."icu.3"]\nbrady_bpm = 40\n[beds."icu.4"]\nvt_run = 3\n')
    s = read_alarm_settings(p)
    assert s.description == "Adult ICU" and s.source == str(p)
    assert (s.limits.vt_run, s.limits.tachy_bpm, s.limits.brady_bpm) == (5, 130.0, 50.0)
    assert isinstance(s.limits.tachy_bpm, float) and isinstance(s.limits.vt_run, int)
    assert changed(s.limits) == {"vt_run": 5, "tachy_bpm": 130.0}
    # a bed's table is over [alarms], not over the defaults
    assert changed(s.for_bed("icu.3")) == {"vt_run": 5, "tachy_bpm": 130.0, "brady_bpm": 40.0}
    assert changed(s.for_bed("icu.4")) == {"tachy_bpm": 130.0}
    assert s.for_bed("icu.9") == s.limits
    line = describe(s)
    assert str(p) in line and "vt_run=5" in line and "2 bed(s)" in line
    assert describe(AlarmSettings()) == "alarm limits: the defaults"


@pytest.mark.parametrize("text, says", [
    ("[alarms]\nvt_runs = 5\n", "unknown alarm limit(s) vt_runs"),
    ("[alarms]\nasystole_s = 60\n", "asystole_s = 60 is outside 2..10"),
    ("[alarms]\nvt_run = 50\n", "vt_run = 50 is outside 3..12"),
    ("[alarms]\nvt_run = 5.5\n", "whole number"),
    ("[alarms]\nvt_escalate_beats = 2\n", "vt_escalate_beats = 2 is too few"),
    ("[alarms]\nvt_escalate_beats = 13\n", "vt_escalate_beats = 13 is outside 0..12"),
    ("[alarms]\nsvt_run = 2\n", "svt_run = 2 is too few"),
    ("[alarms]\nsvt_bpm = 90\n", "svt_bpm = 90"),
    ("[alarms]\nvt_run = true\n", "must be a number"),
    ("[alarms]\ntachy_bpm = \"fast\"\n", "must be a number"),
    ("[alarms]\ntachy_bpm = nan\n", "NaN"),
    ("[alarms]\nbrady_bpm = 130\ntachy_bpm = 120\n", "extreme_brady_bpm <= brady_bpm < "),
    ("alarms = 5\n", "expected a table"),
    ("[limits]\nvt_run = 5\n", "unknown key(s) limits"),
    ("[beds.icu]\nvt_run = 5\n", "is not UNIT.BED"),
    ('[beds."icu.3"]\nasystole_s = 1\n', '[beds."icu.3"]'),
    ("description = 3\n", "description must be text"),
    ("[alarms\nvt_run = 5\n", "not valid TOML"),
])
def test_a_bad_file_is_refused_whole_with_the_reason(tmp_path, text, says):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(AlarmSettingsError) as exc:
        read_alarm_settings(p)
    assert says in str(exc.value) and str(p) in str(exc.value)


def test_files_that_are_not_limits_text_are_refused(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (300 << 10) + "\n")
    with pytest.raises(AlarmSettingsError, match="at most"):
        read_alarm_settings(big)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe[alarms]\n")
    with pytest.raises(AlarmSettingsError, match="not UTF-8"):
        read_alarm_settings(binary)
    with pytest.raises(AlarmSettingsError, match="cannot read"):
        read_alarm_settings(tmp_path / "missing.toml")


def _stream(*extra):
    return subprocess.run([sys.executable, "-m", "edge_ecg", "stream", "--source",
                           f"record:{EXCERPT}", "--speed", "max", "--no-beats", *extra],
                          capture_output=True, text=True, timeout=300)


def test_the_stream_runs_under_the_files_limits_and_says_so(tmp_path):
    p = tmp_path / "chain.toml"
    p.write_text("[alarms]\nvt_run = 5\n")
    res = _stream("--alarm-limits", str(p))
    assert res.returncode == 0, res.stderr
    assert f"alarm limits from {p}: vt_run=5" in res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events[0]["info"]["alarm_limits"] == {"source": str(p), "changed": {"vt_run": 5}}
    codes = {e["code"] for e in events if e["type"] == "alarm" and e["state"] == "onset"}
    # 223's runs of 3-4 fast V are non-sustained VT under the chain (the default calls them
    # VT: tests/runtime/test_record_alarm_limits.py)
    assert "nsvt" in codes


def test_the_stream_refuses_a_bad_file_before_it_opens_anything(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[alarms]\nasystole_s = 30\n")
    res = _stream("--alarm-limits", str(p))
    assert res.returncode != 0
    assert "asystole_s = 30 is outside 2..10" in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""


def test_a_station_bed_runs_its_own_limits():
    from edge_ecg.ward.station import Tile
    from edge_ecg.ward.technical import TechnicalLimits

    s = parse_alarm_settings({"alarms": {"vt_run": 5}, "beds": {"icu.3": {"vt_run": 3}}})
    t3 = Tile("icu", "3", {"fs_hz": 250.0}, TechnicalLimits(), s.for_bed("icu.3"))
    t4 = Tile("icu", "4", {"fs_hz": 250.0}, TechnicalLimits(), s.for_bed("icu.4"))
    assert t3.alarms.engine.limits.vt_run == 3 and t4.alarms.engine.limits.vt_run == 5
    assert t3.to_json(0.0)["alarm_limits"] == {} and t4.to_json(0.0)["alarm_limits"] == {
        "vt_run": 5}
    # the same fast run of three V beats: red VT at bed 3, non-sustained VT at bed 4
    for tile, code in ((t3, "vt"), (t4, "nsvt")):
        got = []
        for i, cls in enumerate("NNNNVVVN"):
            got += tile.alarms.observe({"type": "beat", "index": 1000 + 125 * i,
                                        "beat_class": cls})
        assert [a.code for a in got if a.state == "onset"] == [code]
    assert AlarmSettings().for_bed("icu.3") == AlarmLimits()


def test_the_shipped_example_parses_and_evaluate_puts_vt_run_over_a_file(tmp_path):
    from argparse import Namespace

    from edge_ecg.cli.evaluate import alarm_limits

    example = Path(__file__).resolve().parents[2] / "profiles" / "alarms" / "vt_chain.toml"
    assert changed(read_alarm_settings(example).limits) == {"vt_run": 5}
    escalate = example.with_name("vt_escalate.toml")
    assert changed(read_alarm_settings(escalate).limits) == {"vt_escalate_beats": 10}
    assert changed(read_alarm_settings(example.with_name("svt.toml")).limits) == {"svt_run": 8}
    p = tmp_path / "unit.toml"
    p.write_text("[alarms]\nvt_run = 5\ntachy_bpm = 130\n")
    assert changed(alarm_limits(Namespace(alarm_limits=str(p), vt_run=None))) == {
        "vt_run": 5, "tachy_bpm": 130.0}
    assert changed(alarm_limits(Namespace(alarm_limits=str(p), vt_run=3))) == {
        "tachy_bpm": 130.0}
    assert alarm_limits(Namespace(alarm_limits=None, vt_run=None)) == AlarmLimits()
    with pytest.raises(AlarmSettingsError, match="--vt-run: vt_run = 2 is outside 3..12"):
        alarm_limits(Namespace(alarm_limits=None, vt_run=2))


def test_the_docs_table_of_limits_is_the_codes():
    """docs/runtime.md lists every limit a unit may set with its default and range: the
    same as AlarmLimits and RANGES, in order."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "runtime.md").read_text()
    table = doc[doc.index("| key | default | a unit may set | what |"):]
    table = table[:table.index("\n\n")]
    rows = [line.split("|")[1:4] for line in table.splitlines() if line.startswith("| `")]
    got = [(k.strip().strip("`"), d.strip(), r.strip()) for k, d, r in rows]
    base = AlarmLimits()
    want = [(f.name, f"{getattr(base, f.name):g}",
             f"{RANGES[f.name][0]:g}-{RANGES[f.name][1]:g}") for f in fields(AlarmLimits)]
    assert got == want


def test_any_document_is_either_limits_in_range_or_refused():
    """Untrusted input: whatever the document, a clear AlarmSettingsError or limits inside
    RANGES with the rates in order; never another exception."""
    hyp = pytest.importorskip("hypothesis")
    st = hyp.strategies
    names = sorted(RANGES) + ["vt_runs", ""]
    value = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.booleans(),
                      st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2))
    table = st.dictionaries(st.sampled_from(names), value, max_size=6)
    doc = st.fixed_dictionaries({}, optional={
        "alarms": st.one_of(table, value), "description": value,
        "beds": st.one_of(st.dictionaries(st.sampled_from(["icu.3", "icu", "a.b.c", "x.1"]),
                                          st.one_of(table, value), max_size=3), value),
        "other": value})

    @hyp.settings(max_examples=300, deadline=None)
    @hyp.given(doc)
    def check(d):
        try:
            s = parse_alarm_settings(d)
        except AlarmSettingsError:
            return
        for lim in [s.limits, *s.beds.values()]:
            for name, (lo, hi) in RANGES.items():
                assert lo <= getattr(lim, name) <= hi
            assert lim.extreme_brady_bpm <= lim.brady_bpm < lim.tachy_bpm
    check()
