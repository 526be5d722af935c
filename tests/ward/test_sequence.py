"""Bounds on what arrives: sample-index jumps (IndexGuard), event ordinals (OrdinalCheck,
plausible_ordinal), the ring buffer's own limit, JSON log lines, credential files."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest

from edge_ecg.errors import SignalError
from edge_ecg.runtime.ring_buffer import MAX_GAP_SAMPLES, RingBuffer
from edge_ecg.signal.chunk import Chunk
from edge_ecg.ward.sequence import (EVENT_SLACK, MAX_EVENTS_PER_S, IndexGuard, OrdinalCheck,
                                    plausible_ordinal)


def _c(index, n=250, fs=500.0):
    return Chunk(index=index, seq=0, device_time_us=0, samples=np.zeros((n, 1), np.int32),
                 gain=np.ones(1, np.float32), baseline=np.zeros(1, np.float32), leads=("II",),
                 fs_hz=fs)


def test_index_guard_refuses_a_far_frame_and_goes_on():
    g = IndexGuard(max_jump_s=600.0)
    assert g.admit(_c(0))[0] == "ok"
    assert g.admit(_c(250))[0] == "ok"
    assert g.admit(_c(10 ** 12)) == ("refused", [])         # forged: 1e12 ahead
    assert g.admit(_c(500))[0] == "ok" and g.next_index == 750   # the real stream goes on
    assert g.admit(_c(750 + 600 * 500))[0] == "ok"          # a 10-min gap is a gap
    assert g.admit(_c(0))[0] == "refused"                   # 10 min back: refused too
    assert g.refused == 2 and g.restarts == 0


def test_index_guard_restarts_on_a_confirmed_run():
    g = IndexGuard(max_jump_s=600.0, confirm=3)
    g.admit(_c(0))
    far = 10 ** 9
    assert g.admit(_c(far), "a")[0] == "refused"
    assert g.admit(_c(far + 250), "b")[0] == "refused"
    verdict, frames = g.admit(_c(far + 500), "c")
    assert verdict == "restart" and [t for _, t in frames] == ["a", "b", "c"]
    assert g.next_index == far + 750 and g.restarts == 1
    # a run broken by a non-contiguous frame starts over
    g.admit(_c(5 * far), "x")
    g.admit(_c(7 * far), "y")
    assert g.admit(_c(7 * far + 250), "z")[0] == "refused"


def test_a_forged_ordinal_is_implausible_and_real_events_go_on():
    chk = OrdinalCheck(fs_hz=500.0, origin=0)
    assert chk.check(1, 400) == "new"
    assert chk.check(2, 500) == "new"
    assert chk.check(10 ** 9, 600) == "implausible"        # would blind the bed
    assert chk.check(3, 700) == "new"                     # the real stream is not blinded
    assert chk.check(3, 700) == "duplicate"
    assert chk.check(6, 800) == "new" and chk.missing == 2
    assert chk.check(7, 10 ** 12) == "implausible"        # index 1e12: far from the last
    assert chk.check(True, 900) == "implausible" and chk.check("8", 900) == "implausible"
    assert chk.implausible == 4 and chk.duplicates == 1
    # a first event is checked against the bed's signal too
    assert OrdinalCheck(fs_hz=500.0, origin=0).check(10 ** 9, 5000) == "implausible"


def test_ordinal_check_follows_a_restarted_bed_after_confirmation():
    chk = OrdinalCheck(fs_hz=500.0, confirm=3)
    chk.check(1, 0)
    far = 10 ** 10
    assert chk.check(2, far) == "implausible"
    assert chk.check(3, far + 100) == "implausible"
    assert chk.check(4, far + 200) == "new"               # three agree: a restart
    assert chk.check(5, far + 300) == "new"


def test_plausible_ordinal_bounds():
    # 60 s of signal: at most 50 events a second + the slack
    top = int(MAX_EVENTS_PER_S * 60 + EVENT_SLACK)
    assert plausible_ordinal(top, 30_000, 0, 500.0, 30_000) is None
    assert "exceeds" in plausible_ordinal(top + 1, 30_000, 0, 500.0, 30_000)
    assert "beyond" in plausible_ordinal(5, 10 ** 12, 0, 500.0, 30_000)
    assert "positive" in plausible_ordinal(0, 1, 0, 500.0, None)


def test_ring_buffer_refuses_an_unbounded_gap_without_allocating():
    rb = RingBuffer(1000, 2)
    rb.write(0, np.ones((10, 2)))
    with pytest.raises(SignalError, match="broken clock"):
        rb.write(10 ** 12, np.ones((10, 2)))
    assert rb.end == 10                                   # nothing changed
    rb.write(10 + MAX_GAP_SAMPLES // 1024, np.ones((10, 2)))   # a long real gap still fills
    assert rb.gap_samples == MAX_GAP_SAMPLES // 1024


def test_log_json_lines():
    from edge_ecg.ward import logs

    buf = io.StringIO()
    h = logs.setup(json_lines=True, level="INFO", stream=buf)
    try:
        logging.getLogger("edge_ecg.ward.worker").warning("lost the lease of %s", "icu.b1")
        logging.getLogger("edge_ecg.ward.worker").debug("not shown")
    finally:
        logging.getLogger("edge_ecg.ward").removeHandler(h)
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["level"] == "warning" and lines[0]["logger"] == "edge_ecg.ward.worker"
    assert lines[0]["msg"] == "lost the lease of icu.b1" and lines[0]["t"].endswith("+00:00")


def test_credentials_are_private_and_relocatable(tmp_path):
    import os
    import shutil

    from edge_ecg.ward.broker import BrokerSettings, WardDir, permissions
    from edge_ecg.ward.security import RoleConfig

    wd = WardDir(tmp_path / "w").create(BrokerSettings(port=4333), beds=["icu.7"])
    for f in ("ca.key", "server.key", "nats.conf", "roles/worker.json", "roles/worker.key"):
        assert os.stat(wd.path / f).st_mode & 0o077 == 0, f
    pw = wd.role("publisher-icu-7").password
    again = WardDir(tmp_path / "w").create(BrokerSettings(port=4334), beds=["icu.7", "icu.8"])
    assert again.role("publisher-icu-7").password == pw          # kept: running bridges work
    assert again.role("publisher-icu-7").url == "tls://127.0.0.1:4334"
    shutil.move(tmp_path / "w", tmp_path / "moved")
    r = RoleConfig.load(tmp_path / "moved" / "roles" / "publisher-icu-8.json")
    assert r.ca_file == str((tmp_path / "moved" / "ca.pem").resolve()) and r.beds == ("icu.8",)
    p = permissions("publisher", r.inbox_prefix, r.beds)
    assert p["publish"]["allow"][:2] == ["ecg.icu.8", "$KV.ward_beds.icu.8"]
    assert p["subscribe"]["allow"] == ["_INBOX_publisher-icu-8.>"]
    conf = json.loads((tmp_path / "moved" / "nats.conf").read_text())
    users = {u["user"]: u["permissions"] for u in conf["authorization"]["users"]}
    assert set(users) == {"admin", "worker", "station", "viewer", "publisher-icu-7",
                          "publisher-icu-8"}
    for name, perm in users.items():        # no client role administers streams
        if name != "admin":
            assert {"$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.EVENTS",
                    "$KV.ward_config.>"} <= set(perm["publish"]["deny"]), name
