"""A clinician's alarm limits for one bed (edge_ecg/ward/bed_limits.py, the station's
POST /api/beds/<key>/limits): checked whole, run by the bed's engine at once with its state
kept, audited, kept across a station restart, and refused with the reason when wrong; the
kept file is read back as untrusted data."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from edge_ecg.runtime.alarm_settings import AlarmSettingsError, parse_alarm_settings
from edge_ecg.runtime.alarms import AlarmLimits
from edge_ecg.ward.bed_limits import FILE, BedLimits

UNIT = parse_alarm_settings({"alarms": {"tachy_bpm": 130}, "beds": {"icu.3": {"vt_run": 5}}})


def test_changes_are_kept_over_the_units_limits_and_reset_to_them(tmp_path):
    b = BedLimits(tmp_path, UNIT)
    assert b.limits("icu.1") == AlarmLimits(tachy_bpm=130.0) and b.set_by("icu.1") is None
    got = b.set("icu.1", {"tachy_bpm": 140, "brady_bpm": 45}, "nurse")
    assert (got.tachy_bpm, got.brady_bpm, got.vt_run) == (140.0, 45.0, 3)
    assert b.set_by("icu.1")["by"] == "nurse"
    b.set("icu.3", {"brady_bpm": 40}, "nurse")
    assert b.limits("icu.3").vt_run == 5                 # over the bed's own unit table
    # a change back to the unit's value is no change: nothing kept for it
    b.set("icu.1", {"brady_bpm": 50}, "nurse")
    kept = json.loads((tmp_path / FILE).read_text())
    assert kept["beds"]["icu.1"]["changes"] == {"tachy_bpm": 140.0}
    assert kept["beds"]["icu.3"]["changes"] == {"brady_bpm": 40.0}
    assert (tmp_path / FILE).stat().st_mode & 0o777 == 0o600
    # a restarted station reads them back
    again = BedLimits(tmp_path, UNIT)
    assert again.limits("icu.1").tachy_bpm == 140.0 and again.limits("icu.3").brady_bpm == 40.0
    assert again.reset("icu.1") == AlarmLimits(tachy_bpm=130.0)
    assert "icu.1" not in json.loads((tmp_path / FILE).read_text())["beds"]
    # refused whole: nothing changes
    with pytest.raises(AlarmSettingsError, match="asystole_s = 30 is outside"):
        again.set("icu.3", {"brady_bpm": 45, "asystole_s": 30}, "nurse")
    assert again.limits("icu.3").brady_bpm == 40.0


def test_a_tampered_file_is_checked_entry_by_entry(tmp_path, caplog):
    (tmp_path / FILE).write_text(json.dumps({"format": 1, "beds": {
        "icu.1": {"changes": {"tachy_bpm": 140}, "by": "nurse", "t": 1.0},
        "icu.2": {"changes": {"asystole_s": 60}, "by": "x"},
        "icu.4": {"changes": {"rm -rf": 1}},
        "icu.5": "not a table"}}))
    with caplog.at_level(logging.WARNING):
        b = BedLimits(tmp_path, UNIT)
    assert b.limits("icu.1").tachy_bpm == 140.0
    assert b.limits("icu.2") == b.limits("icu.4") == AlarmLimits(tachy_bpm=130.0)
    assert sorted(b.dropped) == ["icu.2", "icu.4", "icu.5"]
    assert "bed icu.2's limits dropped" in caplog.text
    (tmp_path / FILE).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert BedLimits(tmp_path, UNIT).dropped == ["*"]
    assert "every bed runs the unit's limits" in caplog.text


def test_a_clinician_sets_a_beds_limits_over_https_and_the_engine_runs_them(tmp_path):
    pytest.importorskip("aiohttp", reason="the ward extra (aiohttp) is not installed")
    pytest.importorskip("argon2", reason="the ward extra (argon2-cffi) is not installed")
    from station_kit import bed_desc, client_ssl, login, session, web_only

    def url(st, path):
        return f"https://127.0.0.1:{st.port}{path}"

    async def main():
        async with web_only(tmp_path, alarms=UNIT) as st, session() as viewer, \
                session() as nurse:
            ctx = client_ssl(tmp_path)
            st.add_bed("icu.b1", bed_desc())
            await login(viewer, st, tmp_path, "visitor")
            await login(nurse, st, tmp_path, "nurse")
            path = url(st, "/api/beds/icu.b1/limits")
            r = await viewer.post(path, ssl=ctx, json={"limits": {"vt_run": 5}})
            assert r.status == 403
            r = await nurse.post(path, ssl=ctx, json={"limits": {"vt_run": 50}})
            assert r.status == 400 and "vt_run = 50 is outside 3..12" in (await r.json())["error"]
            r = await nurse.post(path, ssl=ctx, json={"vt_run": 5})
            assert r.status == 400
            r = await nurse.post(url(st, "/api/beds/icu.zz/limits"), ssl=ctx,
                                 json={"limits": {"vt_run": 5}})
            assert r.status == 404
            r = await nurse.post(path, ssl=ctx, json={"limits": {"vt_run": 5}})
            assert r.status == 200
            assert (await r.json())["alarm_limits"] == {"tachy_bpm": 130.0, "vt_run": 5}
            tile = await (await viewer.get(url(st, "/api/beds/icu.b1"), ssl=ctx)).json()
            assert tile["alarm_limits"] == {"tachy_bpm": 130.0, "vt_run": 5}
            assert tile["alarm_limits_set"]["by"] == "nurse"
            # the bed's engine: a fast triplet is non-sustained VT now, not VT
            got = []
            for i, cls in enumerate("NNNNVVVN"):
                got += st.tiles["icu.b1"].alarms.observe({"type": "beat", "index": 100 * i,
                                                          "beat_class": cls})
            assert [a.code for a in got if a.state == "onset"] == ["nsvt"]
            r = await nurse.post(path, ssl=ctx, json={"reset": True})
            assert r.status == 200 and (await r.json())["alarm_limits"] == {"tachy_bpm": 130.0}
            r = await nurse.post(path, ssl=ctx, json={"limits": {"brady_bpm": 40}})
            assert r.status == 200
        # a restarted station: the bed keeps its own limits
        async with web_only(tmp_path, alarms=UNIT) as st:
            st.add_bed("icu.b1", bed_desc())
            return st.tiles["icu.b1"].to_json(0.0)
    tile = asyncio.run(main())
    assert tile["alarm_limits"] == {"tachy_bpm": 130.0, "brady_bpm": 40.0}
    audit = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    acts = [a for a in audit if a["action"] == "set_limits"]
    assert [(a["user"], a.get("changes"), a.get("reset")) for a in acts] == [
        ("nurse", {"vt_run": 5}, None), ("nurse", None, True), ("nurse", {"brady_bpm": 40}, None)]
