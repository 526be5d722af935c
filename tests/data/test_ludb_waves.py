"""LUDB wave annotations: typed boundaries, clear errors for bad files, and the delineation
thresholds this project reaches on the shared records (a regression guard, not the targets)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edge_ecg.data.ludb_waves import (
    BOUNDARIES,
    consensus_waves,
    list_records,
    pool,
    read_lead_waves,
    read_record_waves,
    score_boundary,
    score_ludb_record,
)
from edge_ecg.errors import RecordError


# every test here that reads LUDB (through the fixture below) needs its data/ folder
pytestmark = pytest.mark.needs_data("ludb/data")


@pytest.fixture(scope="module")
def ludb(shared_data):
    folder = shared_data / "ludb" / "data"
    if not (folder / "1.hea").is_file():
        pytest.skip(f"LUDB records not found in {folder}")
    return folder


def test_reads_triplets_as_typed_boundaries(ludb):
    w = read_lead_waves(ludb / "1", "ii")
    assert set(w.points) == set(BOUNDARIES) and w.fs_hz == 500.0
    for wave in ("p", "qrs", "t"):
        on, pk, off = w[f"{wave}_on"], w[f"{wave}_peak"], w[f"{wave}_off"]
        assert on.dtype == np.int64 and on.size == pk.size == off.size >= 5
        assert np.all(on < pk) and np.all(pk < off)
    assert w["qrs_on"][0] == 644 and w["t_off"][0] == 878      # record 1, lead II, as marked
    assert w.span == (644, int(max(v.max() for v in w.points.values())))


def test_consensus_is_the_median_over_leads(ludb):
    waves = read_record_waves(ludb / "1")
    cons = consensus_waves(waves)
    assert cons.lead == "consensus"
    assert cons["qrs_on"].size == waves["ii"]["qrs_on"].size
    assert abs(int(cons["qrs_on"][0]) - int(waves["ii"]["qrs_on"][0])) <= 10


def test_unreadable_or_missing_files_name_the_file(ludb, tmp_path):
    for ext in ("hea", "ii"):
        shutil.copy(ludb / f"1.{ext}", tmp_path / f"1.{ext}")
    (tmp_path / "1.v1").write_bytes(b"\x00\x01garbage" * 3)
    with pytest.raises(RecordError, match=r"1\.v1"):
        read_lead_waves(tmp_path / "1", "v1")
    with pytest.raises(RecordError, match=r"1\.v2.*not found"):
        read_lead_waves(tmp_path / "1", "v2")
    with pytest.raises(RecordError, match="no such LUDB folder"):
        list_records(tmp_path / "absent")


def test_scoring_counts_only_inside_the_marked_span(ludb):
    ref = read_lead_waves(ludb / "1", "ii")
    det = np.concatenate([[10], ref["qrs_on"] + 2, [4990]])   # two outside the span
    s = score_boundary("qrs_on", det, ref)
    assert (s.tp, s.fp, s.fn) == (ref["qrs_on"].size, 0, 0)
    assert s.mean_ms == pytest.approx(4.0) and s.sd_ms == pytest.approx(0.0)


def test_delineation_on_shared_records_holds_its_level(ludb):
    """Every 4th record (40 of 160), 12 leads combined vs the consensus of the leads' marks.
    Levels as measured (bench/delineate.py) with a margin: the issue's targets (Se, +P >= 0.99
    everywhere, SD within CSE) are not all reached; see the README figures."""
    recs = list_records(ludb)[::4]
    s = pool([score_ludb_record(r) for r in recs])
    for b in ("qrs_on", "qrs_off", "t_off"):
        assert s[b].sensitivity >= 0.98 and s[b].ppv >= 0.98, (b, s[b].to_dict())
    for b in ("p_on", "p_off"):
        assert s[b].sensitivity >= 0.93 and s[b].ppv >= 0.90, (b, s[b].to_dict())
    limits = {"p_on": 10.2, "p_off": 14.0, "qrs_on": 11.0, "qrs_off": 11.6, "t_off": 30.6}
    for b, sd in limits.items():
        assert s[b].sd_ms <= sd and abs(s[b].mean_ms) <= 10.0, (b, s[b].to_dict())


def test_cli_scores_a_folder_in_ludb_layout(ludb, capsys):
    import json

    from edge_ecg.cli import main

    assert main(["delineate", "--data", f"ludb:{ludb.parent}", "--records", "1,2",
                 "--lead", "ii", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["records"] == 2 and set(out["boundaries"]) == set(BOUNDARIES)
    assert out["boundaries"]["qrs_on"]["sensitivity"] > 0.9
    assert out["boundaries"]["t_off"]["cse_2sd_ms"] == 30.6
    assert main(["delineate", "--data", "ludb:/no/such/folder"]) == 1
