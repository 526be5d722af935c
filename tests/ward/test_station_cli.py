"""`edge-ecg ward adduser` writes Argon2id hashes (never a password) to a 0600 users file; the
station refuses to start without users, saying which command makes them."""

from __future__ import annotations

import io
import json
import stat

import pytest

pytest.importorskip("argon2", reason="the ward extra (argon2-cffi) is not installed")

from edge_ecg.cli import main  # noqa: E402
from edge_ecg.ward import auth  # noqa: E402


def test_adduser_writes_a_hash_and_the_station_checks_it(tmp_path, monkeypatch, capsys):
    users = tmp_path / "users.json"
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert main(["ward", "adduser", "--users", str(users), "--name", "nurse1", "--role",
                 "clinician", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["ward", "adduser", "--users", str(users), "--name", "nurse2", "--role",
                 "viewer", "--password-stdin"]) == 1
    assert "at least 10 characters" in capsys.readouterr().err
    text = users.read_text()
    assert "a long enough secret" not in text
    doc = json.loads(text)
    assert list(doc["users"]) == ["nurse1"]
    assert doc["users"]["nurse1"]["hash"].startswith("$argon2id$")
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    u = auth.Users(users)
    assert u.verify("nurse1", "a long enough secret") == auth.User("nurse1", "clinician")
    assert u.verify("nurse1", "a long enough secreT") is None
    assert u.verify("nobody", "a long enough secret") is None
    assert u.verify("nurse1", "x" * 5000) is None            # bounded before hashing


def test_the_station_refuses_to_start_without_users(tmp_path):
    pytest.importorskip("aiohttp", reason="the ward extra (aiohttp) is not installed")
    from edge_ecg.ward.station import Station, StationOptions
    from edge_ecg.ward.station_web import Web

    st = Station("nats://127.0.0.1:9", StationOptions(state_dir=str(tmp_path)))
    with pytest.raises(auth.AuthError, match="edge-ecg ward adduser"):
        Web(st)
    (tmp_path / "users.json").write_text('{"format": 1, "users": {"x": {"role": "root", '
                                         '"hash": "plain"}}}')
    with pytest.raises(auth.AuthError, match="no role in"):
        Web(st)


def test_the_station_refuses_a_bad_alarm_limits_file_at_start(tmp_path, capsys):
    bad = tmp_path / "unit.toml"
    bad.write_text('[beds."icu.3"]\nvt_run = 1\n')
    assert main(["ward", "station", "--insecure", "--state-dir", str(tmp_path),
                 "--alarm-limits", str(bad), "--seconds", "0.1"]) == 1
    err = capsys.readouterr().err
    assert '[beds."icu.3"]: vt_run = 1 is outside 3..12' in err and "Traceback" not in err
