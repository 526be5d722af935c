"""nats.conf holds bcrypt hashes of the roles' passwords, never a password: each role still
connects with its own 0600 credential file; a wrong password, and the hash itself offered as
a password, are refused."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import stat

import pytest

pytest.importorskip("nats", reason="the ward extra (nats-py) is not installed")
bcrypt = pytest.importorskip("bcrypt", reason="the ward extra (bcrypt) is not installed")

from edge_ecg.ward import bus  # noqa: E402
from edge_ecg.ward.errors import WardError  # noqa: E402


def test_the_broker_config_holds_hashes_and_every_role_still_connects(ward):
    wd = ward.ward
    conf_path = wd.path / "nats.conf"
    conf_text = conf_path.read_text()
    conf = json.loads(conf_text)
    roles = {r.user: r for r in wd.roles()}
    users = {u["user"]: u["password"] for u in conf["authorization"]["users"]}
    assert set(users) == set(roles) and len(roles) == 7
    assert stat.S_IMODE(conf_path.stat().st_mode) == 0o600
    for user, r in roles.items():
        assert r.password and r.password not in conf_text          # no plaintext anywhere
        assert users[user].startswith("$2a$")
        assert bcrypt.checkpw(r.password.encode(), users[user].encode())
        f = wd.roles_dir / f"{user}.json"                           # plaintext: its own file
        assert stat.S_IMODE(f.stat().st_mode) == 0o600 and r.password in f.read_text()

    async def connects(role) -> bool:
        try:
            nc = await bus.connect(role, "t", allow_reconnect=False)
        except WardError:
            return False
        ok = nc.is_connected
        await bus.close(nc)
        return ok

    async def main():
        got = {u: await connects(r) for u, r in roles.items()}
        w = roles["worker"]
        # the last character changed (to "x" unless it is one: the passwords are
        # token_urlsafe, so 1 in 64 ends in "x" and "wrong" was then the password itself)
        last = "y" if w.password.endswith("x") else "x"
        wrong = await connects(dataclasses.replace(w, password=w.password[:-1] + last))
        the_hash = await connects(dataclasses.replace(w, password=users["worker"]))
        other = await connects(dataclasses.replace(w, password=roles["viewer"].password))
        return got, wrong, the_hash, other

    got, wrong, the_hash, other = asyncio.run(main())
    assert all(got.values()), got
    assert (wrong, the_hash, other) == (False, False, False)
    assert ward.refusals()["auth_failed"] >= 3


def test_a_restart_writes_fresh_hashes_of_the_same_passwords(ward):
    """The conf is written at every start; the credentials the clients hold stay valid."""
    wd = ward.ward
    before = {u["user"]: u["password"]
              for u in json.loads((wd.path / "nats.conf").read_text())["authorization"]["users"]}
    ward.stop()
    ward.start()
    after = {u["user"]: u["password"]
             for u in json.loads((wd.path / "nats.conf").read_text())["authorization"]["users"]}
    assert set(before) == set(after) and all(before[u] != after[u] for u in before)  # new salt

    async def main():
        nc = await bus.connect(wd.role("station"), "t", allow_reconnect=False)
        await bus.close(nc)
    asyncio.run(main())
