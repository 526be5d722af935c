"""The central station over real HTTP and, where a browser is installed, in headless chromium:
every bed's tile appears and updates; unknown beds and other bundles are dropped and shown."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
import urllib.error
import urllib.request

import pytest

from edge_ecg.ward import bus

SPECS = {"b1": "synth:sinus_rhythm?seconds=40&seed=1",
         "b2": "synth:atrial_fibrillation?seconds=40&seed=2",
         "b3": "synth:sinus_bradycardia?seconds=40&seed=3"}


@pytest.fixture()
def ward(broker, backend, tmp_path):
    """Broker + worker + station + a publisher at 4x real time, in a background loop."""
    from edge_ecg.ward.publisher import Publisher, open_feed
    from edge_ecg.ward.station import Station, StationOptions
    from edge_ecg.ward.worker import Worker, WorkerOptions

    st = Station(broker.url, StationOptions(port=0, fhir_out=str(tmp_path / "obs.ndjson"),
                                            hl7_out=str(tmp_path / "oru.hl7")))
    w = Worker(broker.url, backend, WorkerOptions(tick_s=0.1))
    ready = threading.Event()
    loop = asyncio.new_event_loop()

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
        await tp
        await asyncio.sleep(1.0)
        w.stop()
        st.stop()
        await nc.close()
        await asyncio.gather(tw, ts)

    th = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    th.start()
    assert ready.wait(30)
    yield st, tmp_path
    th.join(60)


def _get(st, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{st.port}{path}", timeout=5) as r:
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
    # sample-to-event adds the releasing frame's duration (0.5 s) to frame-to-event
    lat, slat = later["latency_ms"], later["sample_latency_ms"]
    assert slat["n"] == lat["n"] and slat["p50"] >= lat["p50"] + 499
    brady = next(b for b in later["beds"] if b["bed"] == "b3")
    assert brady["hr_bpm"] < 60
    with pytest.raises(urllib.error.HTTPError) as e:
        _get(st, "/api/beds/icu.ghost")
    assert e.value.code == 404 and b"unknown bed" in e.value.read()
    assert json.loads(_get(st, "/api/beds/icu.b1")[2])["bed"] == "b1"
    # server-sent events carry the same state
    with urllib.request.urlopen(f"http://127.0.0.1:{st.port}/api/stream", timeout=5) as r:
        line = r.readline()
        assert line.startswith(b"data: ") and len(json.loads(line[6:])["beds"]) == 3
    # FHIR and HL7 v2 written as the predictions came
    obs = [json.loads(x) for x in (tmp / "obs.ndjson").read_text().splitlines()]
    assert any(o["code"]["coding"][0]["code"] == "8867-4" for o in obs)
    assert "ORU^R01" in (tmp / "oru.hl7").read_text()


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def test_station_in_a_headless_browser(ward):
    sync = pytest.importorskip("playwright.sync_api",
                               reason="playwright not installed (the ward extra)")
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium found (apt-get install chromium): the page is tested over "
                    "HTTP and its JSON/SSE endpoints only")
    st, _ = ward
    with sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{st.port}/")
            page.wait_for_function("document.querySelectorAll('.tile').length === 3",
                                   timeout=20000)
            assert "Not a diagnostic device" in page.inner_text("#disclaimer")
            assert "Trained on" in page.inner_text("#model")
            n0 = int(page.evaluate("document.body.dataset.updates"))
            page.wait_for_function(f"Number(document.body.dataset.updates) > {n0 + 2}",
                                   timeout=10000)
            for bed in SPECS:
                tile = page.locator(f"[data-bed='icu.{bed}']")
                assert "bpm" in tile.locator(".hr").inner_text()
            page.wait_for_function(
                "[...document.querySelectorAll('.hr')].every(e => /\\d/.test(e.textContent))",
                timeout=15000)
            painted = page.evaluate("""() => [...document.querySelectorAll('canvas')].map(c =>
                c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v))""")
            assert all(painted)
        finally:
            browser.close()
