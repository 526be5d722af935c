"""The station's web side over real HTTPS on loopback, without a broker (beds fed through the
calls the NATS feed makes): login and roles, the audit log, request limits, pushed diffs,
non-finite values, technical alarms, forged event ordinals."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import threading
import time

import pytest

pytest.importorskip("aiohttp", reason="the ward extra (aiohttp) is not installed")
pytest.importorskip("argon2", reason="the ward extra (argon2-cffi) is not installed")

from station_kit import (
    PASSWORDS,
    bed_desc,
    client_ssl,
    event,
    frame,
    login,
    session,
    strict_json,
    web_only,
)

from edge_ecg.ward.technical import TechnicalLimits


def _url(st, path):
    return f"https://127.0.0.1:{st.port}{path}"


def test_nothing_without_login_and_a_wrong_password_is_refused_counted_logged(tmp_path, caplog):
    async def main():
        async with web_only(tmp_path) as st, session() as s:
            ctx = client_ssl(tmp_path)
            st.add_bed("icu.b1", bed_desc())
            for path in ("/api/ward", "/api/stream", "/api/beds/icu.b1", "/api/whoami"):
                r = await s.get(_url(st, path), ssl=ctx)
                assert r.status == 401, path
                assert "log in first" in (await r.json())["error"]
            r = await s.get(_url(st, "/"), ssl=ctx, allow_redirects=False)
            assert r.status == 303 and r.headers["Location"] == "/login"
            r = await s.post(_url(st, "/api/beds/icu.b1/silence"), ssl=ctx, json={})
            assert r.status == 401
            with caplog.at_level(logging.WARNING, logger="edge_ecg.ward.station_web"):
                bad = await s.post(_url(st, "/login"), ssl=ctx,
                                   json={"user": "nurse", "password": "correct horse batterY"})
                ghost = await s.post(_url(st, "/login"), ssl=ctx,
                                     json={"user": "ghost", "password": "whatever it is"})
            assert bad.status == 401 and ghost.status == 401
            assert "Set-Cookie" not in bad.headers
            assert st.web.stats()["refused_logins"] == 2
            good = await s.post(_url(st, "/login"), ssl=ctx,
                                json={"user": "nurse", "password": PASSWORDS["nurse"][1]})
            assert good.status == 200
            cookie = good.headers["Set-Cookie"]
            for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
                assert flag in cookie
            r = await s.get(_url(st, "/api/whoami"), ssl=ctx)       # the cookie is the session
            assert (await r.json()) == {"user": "nurse", "role": "clinician",
                                        "may": ["acknowledge", "relearn", "set_limits", "silence",
                                                "view"]}
            await s.post(_url(st, "/logout"), ssl=ctx, json={})
            r = await s.get(_url(st, "/api/ward"), ssl=ctx)
            assert r.status == 401
    asyncio.run(main())
    refused = [r.getMessage() for r in caplog.records if "refused login" in r.getMessage()]
    assert len(refused) == 2 and "'ghost'" in refused[1]
    assert not any("correct horse" in r.getMessage() for r in caplog.records)
    audit = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    assert [a["action"] for a in audit] == ["login_refused", "login_refused", "login", "logout"]
    assert audit[0]["user"] == "nurse" and audit[0]["client"] == "127.0.0.1"


def test_guessing_is_throttled_per_address(tmp_path):
    async def main():
        async with web_only(tmp_path) as st, session() as s:
            ctx = client_ssl(tmp_path)
            codes = []
            for i in range(11):
                r = await s.post(_url(st, "/login"), ssl=ctx,
                                 json={"user": "nurse", "password": f"guess number {i}"})
                codes.append(r.status)
            # the right password is refused too while the address is throttled
            r = await s.post(_url(st, "/login"), ssl=ctx,
                             json={"user": "nurse", "password": PASSWORDS["nurse"][1]})
            return codes, r.status, st.web.stats()
    codes, last, stats = asyncio.run(main())
    assert codes == [401] * 10 + [429] and last == 429
    assert stats["refused_logins"] == 12 and stats["throttled_logins"] == 2


def test_viewer_cannot_acknowledge_clinician_can_and_the_audit_log_says_who_and_when(tmp_path):
    async def main():
        lim = TechnicalLimits(no_data_s=0.3, stale_worker_s=0.3)
        async with web_only(tmp_path, technical=lim, push_s=0.1) as st, \
                session() as viewer, session() as nurse:
            ctx = client_ssl(tmp_path)
            st.add_bed("icu.b1", bed_desc())
            await login(viewer, st, tmp_path, "visitor")
            await login(nurse, st, tmp_path, "nurse")
            await asyncio.sleep(0.6)                 # the bed has sent nothing: NO DATA
            b = await (await viewer.get(_url(st, "/api/beds/icu.b1"), ssl=ctx)).json()
            assert b["status"] == "no_data" and b["alarms"][0]["code"] == "no_data"
            ack = "/api/beds/icu.b1/alarms/no_data/ack"
            r = await viewer.post(_url(st, ack), ssl=ctx, json={})
            assert r.status == 403 and "clinician" in (await r.json())["error"]
            r = await viewer.post(_url(st, "/api/beds/icu.b1/silence"), ssl=ctx, json={})
            assert r.status == 403
            t0 = time.time()
            r = await nurse.post(_url(st, ack), ssl=ctx, json={})
            assert r.status == 200
            r = await nurse.post(_url(st, "/api/beds/icu.b1/alarms/asystole/ack"), ssl=ctx,
                                 json={})
            assert r.status == 409                   # not active: nothing to acknowledge
            r = await nurse.post(_url(st, "/api/beds/icu.b1/silence"), ssl=ctx,
                                 json={"seconds": 1e9})
            assert r.status == 400
            r = await nurse.post(_url(st, "/api/beds/icu.b1/silence"), ssl=ctx,
                                 json={"seconds": 60})
            assert r.status == 200
            # a cross-site page cannot act in the clinician's name
            r = await nurse.post(_url(st, "/api/beds/icu.b1/silence"), ssl=ctx, json={},
                                 headers={"Origin": "https://evil.example"})
            assert r.status == 403
            r = await nurse.post(_url(st, "/api/beds/icu.b1/silence"), ssl=ctx,
                                 data="seconds=60",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status == 415
            b = await (await viewer.get(_url(st, "/api/beds/icu.b1"), ssl=ctx)).json()
            return t0, b
    t0, b = asyncio.run(main())
    a = b["alarms"][0]
    assert a["acknowledged"]["by"] == "nurse" and abs(a["acknowledged"]["t"] - t0) < 2
    assert b["silenced_by"] == "nurse" and 55 <= b["silenced_s"] <= 60
    audit = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    acts = [a for a in audit if a["action"] in ("acknowledge", "silence")]
    assert [(a["user"], a["action"]) for a in acts] == [("nurse", "acknowledge"),
                                                         ("nurse", "silence")]
    assert acts[0]["bed"] == "icu.b1" and acts[0]["alarm"] == "no_data"
    assert abs(acts[0]["t"] - t0) < 2 and acts[0]["time"].endswith("Z")
    assert acts[1]["seconds"] == 60


def _slow_client(port, ctx, out):
    """Sends a request line, then one header byte a second: a slowloris."""
    raw = socket.create_connection(("127.0.0.1", port))
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    t0 = time.monotonic()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    try:
        for c in b"X-Slow: " + b"a" * 60:
            s.sendall(bytes([c]))
            s.settimeout(1.0)
            try:
                if s.recv(100) == b"":
                    break
            except TimeoutError:
                pass
    except (OSError, ssl.SSLError):
        pass
    out["closed_after_s"] = time.monotonic() - t0
    s.close()


def test_a_client_sending_headers_a_byte_a_second_holds_up_no_one(tmp_path):
    async def main():
        async with web_only(tmp_path, header_timeout_s=2.0) as st:
            ctx = client_ssl(tmp_path)
            out: dict = {}
            slow = [threading.Thread(target=_slow_client, args=(st.port, ctx, out))
                    for _ in range(5)]
            for t in slow:
                t.start()
            await asyncio.sleep(0.3)
            lat = []
            async with session() as s:
                for _ in range(20):
                    t0 = time.perf_counter()
                    r = await s.get(_url(st, "/healthz"), ssl=ctx)
                    assert r.status == 200
                    lat.append(time.perf_counter() - t0)
                    await asyncio.sleep(0.05)
            await asyncio.get_running_loop().run_in_executor(None, lambda: [t.join(10) for t
                                                                            in slow])
            return lat, out
    lat, out = asyncio.run(main())
    # the others are served while five slow clients hold connections open: a server that
    # waited on them would answer after the 2-s header timeout; bounds at half of it (wall
    # time on a shared 2-core machine: generous, still far from blocking)
    assert max(lat) < 1.0 and sorted(lat)[len(lat) // 2] < 0.25, lat
    # and a slow client is cut off at the header timeout (2 s), not after its 60 bytes
    assert 1.5 < out["closed_after_s"] < 4.0, out


def test_a_100_kB_header_is_refused_cleanly(tmp_path, caplog):
    async def main():
        async with web_only(tmp_path) as st:
            ctx = client_ssl(tmp_path)

            def send():
                with socket.create_connection(("127.0.0.1", st.port)) as raw, \
                        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000
                              + b"\r\n\r\n")
                    s.settimeout(5)
                    data = b""
                    try:
                        while chunk := s.recv(65536):
                            data += chunk
                    except (OSError, ssl.SSLError):
                        pass
                    return data
            with caplog.at_level(logging.DEBUG):
                reply = await asyncio.get_running_loop().run_in_executor(None, send)
            async with session() as s:        # still serving
                ok = (await s.get(_url(st, "/healthz"), ssl=ctx)).status
            return reply, ok, st.web.stats()["bad_requests"]
    reply, ok, bad = asyncio.run(main())
    status = reply.split(b"\r\n", 1)[0]
    assert status.split(b" ", 1)[1] in (b"400 Bad Request", b"431 Request Header Fields Too Large")
    assert ok == 200 and bad == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    warned = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(warned) == 1 and "127.0.0.1" in warned[0] and "8190" in warned[0]


def test_no_infinity_or_nan_reaches_json_and_a_forged_ordinal_blinds_no_bed(tmp_path):
    async def main():
        async with web_only(tmp_path, push_s=0.1) as st, session() as s:
            ctx = client_ssl(tmp_path)
            bundle = st.model["bundle"]
            st.add_bed("icu.b1", bed_desc())
            st.on_frame("ecg.icu.b1", frame(0))
            st.on_frame("ecg.icu.b1", frame(125, gain=1e-30))      # 1e32 mV: not finite
            # Python's json reads NaN and Infinity: an event may carry them
            st.on_event(event("icu", "b1", 1, "beat", rr_ms=float("inf"), bundle=bundle))
            st.on_event(event("icu", "b1", 2, "prediction", bundle=bundle,
                              intervals={"hr_bpm": float("nan"), "qrs_ms": float("inf")},
                              outputs={"arrhythmia": {"label": "sinus", "prob": float("inf")}}))
            st.on_event(event("icu", "b1", 10**9, "beat", bundle=bundle))   # forged ordinal
            for n in range(3, 8):
                st.on_event(event("icu", "b1", n, "beat", bundle=bundle))
            await login(s, st, tmp_path)
            ward = await (await s.get(_url(st, "/api/ward"), ssl=ctx)).text()
            async with s.get(_url(st, "/api/stream"), ssl=ctx) as r:
                lines = []
                while len([x for x in lines if x.startswith(b"data: ")]) < 3:
                    lines.append(await r.content.readline())
            return ward, lines, dict(st.counters), st.tiles["icu.b1"].events
    ward, lines, counters, events = asyncio.run(main())
    for text in [ward] + [x[6:].decode() for x in lines if x.startswith(b"data: ")]:
        strict_json(text)                 # raises on NaN / Infinity, as JSON.parse would
    assert "Infinity" not in ward and "NaN" not in ward
    b = strict_json(ward)["beds"][0]
    assert b["window_hr_bpm"] is None and b["rhythm"]["prob"] is None
    # the forged n = 1e9 is refused and counted; the real events after it are taken
    assert counters["implausible_events"] == 1 and events == 7 and counters["duplicates"] == 0
    # the 1e-30 gain frame: refused by the decoder or drawn as a gap, never a number
    assert counters["malformed_frames"] + counters["nonfinite_samples"] >= 1


def test_the_push_sends_per_bed_diffs_and_they_rebuild_the_state(tmp_path):
    async def main():
        async with web_only(tmp_path, push_s=0.2) as st, session() as s:
            ctx = client_ssl(tmp_path)
            bundle = st.model["bundle"]
            for b in range(8):
                st.add_bed(f"icu.b{b}", bed_desc())
                st.on_frame(f"ecg.icu.b{b}", frame(0, n=1500))
            await login(s, st, tmp_path)
            msgs = []
            idx, n = 1500, 1
            async with s.get(_url(st, "/api/stream"), ssl=ctx) as r:
                while len(msgs) < 10:
                    line = await r.content.readline()
                    if line.startswith(b"event: "):
                        kind = line[7:].strip().decode()
                    elif line.startswith(b"data: "):
                        msgs.append((kind, line[6:]))
                        if len(msgs) <= 7:                 # one bed moves, then all rest
                            st.on_frame("ecg.icu.b0", frame(idx, n=125))
                            st.on_event(event("icu", "b0", n, "beat", index=idx,
                                              bundle=bundle))
                            idx, n = idx + 125, n + 1
            return msgs, list(st.tiles["icu.b0"].strip)
    msgs, truth = asyncio.run(main())
    assert msgs[0][0] == "full" and {k for k, _ in msgs[1:]} == {"diff"}
    full = strict_json(msgs[0][1])
    state = {b["key"]: b for b in full["beds"]}
    sizes = [len(m) for _, m in msgs[2:]]
    for _, m in msgs[1:]:
        d = strict_json(m)
        for key, ch in d["beds"].items():
            b = state[key]
            add = ch.pop("strip_add", None)
            b.update(ch)
            if add:
                b["strip"] = (b["strip"] + add)[-b["strip_len"]:]
    # only the moving bed's strip travels after the first state; idle beds send at most their
    # ages, and a tick's diff is a small fraction of the full state
    assert len(msgs[0][1]) > 20 * max(sizes), (len(msgs[0][1]), sizes)
    later = [strict_json(m) for _, m in msgs[3:]]
    assert all("strip" not in ch for d in later for ch in d["beds"].values())
    assert any("strip_add" in d["beds"].get("icu.b0", {}) for d in later)
    # the diffs applied to the full state give the station's own strip, sample for sample
    assert state["icu.b0"]["strip"] == truth and len(truth) == 750


def _tablet_login(browser, st, user: str = "nurse"):
    """A 1280x800 touch tablet's context and page, logged in as `user`."""
    base = f"https://127.0.0.1:{st.port}"
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, has_touch=True,
                              ignore_https_errors=True)
    page = ctx.new_page()
    page.goto(f"{base}/login")
    page.fill("#user", user)
    page.fill("#password", PASSWORDS[user][1])
    page.tap("#submit")
    page.wait_for_url(f"{base}/")
    return ctx, page


def test_a_clinician_acknowledges_and_silences_by_touch_in_a_headless_browser(tmp_path):
    """At a 1280x800 touch viewport: log in, a bed gone quiet shows NO DATA with its alarm,
    the clinician taps Ack and Silence; the audit log names them."""
    from station_kit import web_in_thread
    from test_station import _chromium, _until

    sync = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium found (apt-get install chromium)")
    lim = TechnicalLimits(no_data_s=0.5, stale_worker_s=0.5)
    with web_in_thread(tmp_path, technical=lim, push_s=0.2) as st, \
            sync.sync_playwright() as p:
        st.call(lambda: st.add_bed("icu.b1", bed_desc()))
        browser = p.chromium.launch(executable_path=exe, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            ctx, page = _tablet_login(browser, st)
            _until(page, "document.querySelector('.tile .hr') && "
                   "document.querySelector('.tile .hr').textContent === 'NO DATA'", 10)
            ack = page.locator("button[data-ack='no_data']")
            ack.wait_for(timeout=5000)
            box = ack.bounding_box()
            assert box["height"] >= 44 and box["width"] >= 44      # a finger's target
            ack.tap()
            _until(page, "document.querySelector('.alarm').textContent.includes('ack nurse')")
            page.locator("button[data-silence='120']").tap()
            _until(page, "document.querySelector('.age').textContent.includes('silenced')")
            cookies = {c["name"]: c for c in ctx.cookies()}
            c = cookies["edge_ecg_session"]
            assert c["httpOnly"] and c["secure"] and c["sameSite"] == "Strict"
            assert page.evaluate("document.cookie") == ""          # HttpOnly: not readable
        finally:
            browser.close()
    audit = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    acts = [(a["user"], a["action"]) for a in audit]
    assert acts == [("nurse", "login"), ("nurse", "acknowledge"), ("nurse", "silence")]
    assert audit[1]["alarm"] == "no_data" and audit[2]["seconds"] == 120


def test_a_clinician_sets_a_beds_alarm_limits_by_touch_and_a_wrong_one_says_why(tmp_path):
    """The tile's Limits editor: a value out of range is refused with the station's reason,
    the editor staying open; a good one is run and shown on the tile, and audited."""
    from station_kit import web_in_thread
    from test_station import _chromium, _until

    sync = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium found (apt-get install chromium)")
    with web_in_thread(tmp_path, push_s=0.2) as st, sync.sync_playwright() as p:
        st.call(lambda: st.add_bed("icu.b1", bed_desc()))
        browser = p.chromium.launch(executable_path=exe, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            ctx, page = _tablet_login(browser, st)
            opener = page.locator("button[data-limits='open']")
            opener.wait_for(timeout=5000)
            assert opener.bounding_box()["height"] >= 44
            opener.tap()
            page.fill(".limits-in", "vt_run=50")
            page.locator("button[data-limits='set']").tap()
            _until(page, "document.querySelector('.limits-err') && document.querySelector("
                   "'.limits-err').textContent.includes('outside 3..12')")
            page.fill(".limits-in", "vt_run=5, tachy_bpm=135")
            page.locator("button[data-limits='set']").tap()
            _until(page, "document.querySelector('.info').textContent.includes("
                   "'alarm limits tachy_bpm 135, vt_run 5')")
            assert page.locator(".limits-in").count() == 0         # closed once set
            # what the bed's worker confirms: limits other than the tile's are shown as such
            # (VF's timing runs there), and a relearn with who asked for it
            bundle = st.model["bundle"]
            st.call(lambda: st.on_event(event("icu", "b1", 1, "status", 500, bundle,
                                              state="limits", info={"by": "nurse",
                                              "alarm_limits": {"vt_run": 5}})))
            _until(page, "document.querySelector('.info').textContent.includes("
                   "'worker runs vt_run 5')")
            st.call(lambda: st.on_event(event("icu", "b1", 2, "status", 750, bundle,
                                              state="relearn", time_s=3.0,
                                              info={"by": "nurse"})))
            _until(page, "document.querySelector('.info').textContent.includes("
                   "'relearned by nurse at 3 s')")
            # no ward behind this station: the relearn is refused with the reason, not lost
            page.locator("button[data-limits='relearn']").tap()
            _until(page, "document.querySelector('.limits-err') && document.querySelector("
                   "'.limits-err').textContent.includes('not connected to a ward')")
        finally:
            browser.close()
    audit = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    assert [a["action"] for a in audit].count("relearn_not_sent") == 1
    acts = [a for a in audit if a["action"] == "set_limits"]
    assert [(a["user"], a["changes"]) for a in acts] == [("nurse",
                                                          {"vt_run": 5, "tachy_bpm": 135})]
