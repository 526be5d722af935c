"""The central station over real HTTPS behind its login and in headless chromium at a
1280x800 tablet's viewport: every bed's tile appears and updates; unknown beds and other
bundles are dropped and shown; the page loads nothing from outside the station."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
import urllib.error
import urllib.request

import pytest
from station_kit import PASSWORDS, client_ssl, make_users

from edge_ecg.ward import bus

SPECS = {"b1": "synth:sinus_rhythm?seconds=90&seed=1",
         "b2": "synth:atrial_fibrillation?seconds=90&seed=2",
         "b3": "synth:sinus_bradycardia?seconds=90&seed=3"}


@pytest.fixture()
def ward(broker, backend, tmp_path):
    """Broker + worker + station + a publisher at 4x real time, in a background loop, live
    until the test ends (the beds have 22 s of signal at 4x: a busy machine's slow test does
    not outlive its ward)."""
    from edge_ecg.ward.publisher import Publisher, open_feed
    from edge_ecg.ward.station import Station, StationOptions
    from edge_ecg.ward.worker import Worker, WorkerOptions

    pytest.importorskip("aiohttp", reason="the ward extra (aiohttp) is not installed")
    make_users(tmp_path)
    st = Station(broker.url, StationOptions(port=0, state_dir=str(tmp_path),
                                            fhir_out=str(tmp_path / "obs.ndjson"),
                                            hl7_out=str(tmp_path / "oru.hl7")))
    w = Worker(broker.url, backend, WorkerOptions(tick_s=0.1))
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    done = asyncio.Event()

    async def main():
        ev = asyncio.Event()
        ts = asyncio.create_task(st.run(ready=ev))
        await ev.wait()
        tw = asyncio.create_task(w.run())
        pub = Publisher([open_feed(s, "icu", b) for b, s in SPECS.items()], broker.url, speed=4)
        tp = asyncio.create_task(pub.run())
        nc = await bus.connect(broker.url, "intruder")
        await nc.publish("ecg.icu.ghost", b"frames of a bed nobody registered")
        await nc.flush()
        ready.set()
        await asyncio.wait([tp, asyncio.ensure_future(done.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        pub.stop()
        await tp
        w.stop()
        st.stop()
        await nc.close()
        await asyncio.gather(tw, ts)

    th = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    th.start()
    try:
        assert ready.wait(60), "the ward did not start in 60 s"
        st.token = _login(st, tmp_path)
        st.ssl_ctx = client_ssl(tmp_path)
        yield st, tmp_path
    finally:                          # a failed setup stops its ward too (no thread left)
        loop.call_soon_threadsafe(done.set)
        th.join(60)


def _login(st, state):
    req = urllib.request.Request(
        f"https://127.0.0.1:{st.port}/login", method="POST",
        data=json.dumps({"user": "visitor", "password": PASSWORDS["visitor"][1]}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30, context=client_ssl(state)) as r:
        return json.loads(r.read())["token"]


def _open(st, path):
    req = urllib.request.Request(f"https://127.0.0.1:{st.port}{path}",
                                 headers={"Authorization": f"Bearer {st.token}"})
    return urllib.request.urlopen(req, timeout=30, context=st.ssl_ctx)


def _get(st, path):
    with _open(st, path) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def _wait_for(pred, timeout=25):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.3)
    return pred()


def test_station_serves_every_bed_live(ward):
    st, tmp = ward
    code, ctype, body = _get(st, "/")
    assert code == 200 and ctype.startswith("text/html")
    assert b"edge-ecg central station" in body

    def full():
        s = json.loads(_get(st, "/api/ward")[2])
        return s if len(s["beds"]) == 3 and all(b["events"] > 5 and b["strip"] and b["hr_bpm"]
                                                 and b["rhythm"] for b in s["beds"]) else None
    s = _wait_for(full)
    assert s, "not every bed's tile filled"
    assert "Not a diagnostic device" in s["disclaimer"]
    assert "cinc2017" in s["model"]["training_data"] and "synthetic" in s["model"]["training_data"]
    first = {b["key"]: b["events"] for b in s["beds"]}
    later = _wait_for(lambda: (lambda s2: s2 if all(
        b["events"] > first[b["key"]] for b in s2["beds"]) else None)(
        json.loads(_get(st, "/api/ward")[2])))
    assert later, "tiles did not update"
    assert later["counters"]["unknown_bed_frames"] >= 1 and "icu.ghost" in later["unknown_beds"]
    assert later["duplicates"] == 0 and later["missing"] == 0
    assert all(b["status"] == "live" and b["event_age_s"] < 5 for b in later["beds"])
    # sample-to-event adds the releasing frame's duration (0.5 s) to frame-to-event
    lat, slat = later["latency_ms"], later["sample_latency_ms"]
    assert slat["n"] == lat["n"] and slat["p50"] >= lat["p50"] + 499
    brady = next(b for b in later["beds"] if b["bed"] == "b3")
    assert brady["hr_bpm"] < 60
    with pytest.raises(urllib.error.HTTPError) as e:
        _get(st, "/api/beds/icu.ghost")
    assert e.value.code == 404 and b"unknown bed" in e.value.read()
    assert json.loads(_get(st, "/api/beds/icu.b1")[2])["bed"] == "b1"
    # server-sent events: the state once, then diffs
    with _open(st, "/api/stream") as r:
        assert r.readline() == b"event: full\n"
        line = r.readline()
        assert line.startswith(b"data: ") and len(json.loads(line[6:])["beds"]) == 3
        assert r.readline() == b"\n" and r.readline() == b"event: diff\n"
        d = json.loads(r.readline()[6:])
        assert set(d) == {"seq", "beds", "removed", "ward"}
    # FHIR and HL7 v2 written as the predictions came
    obs = [json.loads(x) for x in (tmp / "obs.ndjson").read_text().splitlines()]
    assert any(o["code"]["coding"][0]["code"] == "8867-4" for o in obs)
    assert "ORU^R01" in (tmp / "oru.hl7").read_text()


def _chromium():
    """Debian's chromium (.ci/run installs it), else another Chrome on PATH; playwright
    drives it through `executable_path`, so no browser download is needed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def _until(page, expr, timeout_s=15.0):
    """Poll a JS expression with page.evaluate (CDP, outside the page's CSP, which forbids
    the eval that playwright's wait_for_function uses)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if page.evaluate(expr):
            return
        time.sleep(0.2)
    raise AssertionError(f"not true within {timeout_s} s: {expr}")


def test_station_in_a_headless_browser(ward):
    sync = pytest.importorskip("playwright.sync_api",
                               reason="playwright not installed (the ward extra)")
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium found (apt-get install chromium): the page is tested over "
                    "HTTP and its JSON/SSE endpoints only")
    st, _ = ward
    base = f"https://127.0.0.1:{st.port}"
    outside = []
    with sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            # a clinic's tablet: 1280x800, touch; the station's certificate is self-signed
            ctx = browser.new_context(viewport={"width": 1280, "height": 800}, has_touch=True,
                                      ignore_https_errors=True)

            def only_the_station(route):
                if route.request.url.startswith(base):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()
            ctx.route("**/*", only_the_station)
            page = ctx.new_page()
            page.goto(f"{base}/")
            assert page.url == f"{base}/login"              # no session: the login form
            page.fill("#user", "visitor")
            page.fill("#password", "not the password")
            page.click("#submit")
            _until(page, "document.getElementById('error').textContent.length > 0")
            assert "wrong" in page.inner_text("#error")
            page.fill("#password", PASSWORDS["visitor"][1])
            page.tap("#submit")
            page.wait_for_url(f"{base}/")
            _until(page, "document.querySelectorAll('.tile').length === 3", 20)
            assert "Not a diagnostic device" in page.inner_text("#disclaimer")
            assert "Trained on" in page.inner_text("#model")
            assert "visitor (viewer)" in page.inner_text("#who")
            n0 = int(page.evaluate("document.body.dataset.updates"))
            _until(page, f"Number(document.body.dataset.updates) > {n0 + 2}", 10)
            _until(page, "[...document.querySelectorAll('.hr')].every(e => "
                   "/\\d+ bpm/.test(e.textContent))")
            for bed in SPECS:
                tile = page.locator(f"[data-bed='icu.{bed}']")
                assert "bpm" in tile.locator(".hr").inner_text()
                assert "s ago" in tile.locator(".age").inner_text()
            painted = page.evaluate("""() => [...document.querySelectorAll('canvas')].map(c =>
                c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v))""")
            assert all(painted)
            # the three tiles fit the tablet's width side by side, without sideways scrolling
            boxes = [page.locator(f"[data-bed='icu.{b}']").bounding_box() for b in SPECS]
            assert all(b["x"] + b["width"] <= 1280 for b in boxes)
            assert len({round(b["y"]) for b in boxes}) == 1
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            # a viewer gets no acknowledge buttons
            assert page.locator("button[data-ack]").count() == 0
        finally:
            browser.close()
    assert outside == []            # every asset is the station's own
