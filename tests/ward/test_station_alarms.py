"""Technical alarms on a real ward (broker, worker, publisher, station): a worker that stops
while frames still arrive raises NO ANALYSIS, a bedside that stops raises NO DATA, each
within its stated time; the tile then shows no heart rate instead of the last one. Limits
are shortened (1.5 s) to keep the test short; the defaults are 10 s."""

from __future__ import annotations

import asyncio
import time

import pytest

from edge_ecg.ward.technical import TechnicalAlarms, TechnicalLimits

LIMIT_S = 1.5
PUSH_S = 0.25
SLACK_S = 1.0          # the event loop's own delays on a busy 2-core machine


def test_technical_alarms_from_the_clock_alone():
    a = TechnicalAlarms(TechnicalLimits(no_data_s=10, stale_worker_s=10))
    t0 = 1000.0
    assert a.evaluate(t0 + 5, t0, t0 + 4, t0 + 4.5, 1.0) == []
    # frames go on, events stop: no analysis at 10 s, not at 9.9
    assert a.evaluate(t0 + 14.4, t0, t0 + 14, t0 + 4.5, 1.0) == []
    assert [x["code"] for x in a.evaluate(t0 + 14.5, t0, t0 + 14, t0 + 4.5, 1.0)] == [
        "stale_worker"]
    # the worker's heartbeat silent 10 s: the same alarm, though its last events are recent
    assert [x["code"] for x in a.evaluate(t0 + 15, t0, t0 + 15, t0 + 14, 10.0)] == [
        "stale_worker"]
    # everything stops: no data, which says more than no analysis and replaces it
    got = a.evaluate(t0 + 25, t0, t0 + 15, t0 + 14, None)
    assert [x["code"] for x in got] == ["no_data"] and got[0]["priority"] == "medium"
    # a bed that never sent anything is quiet from when the station first knew it
    assert [x["code"] for x in TechnicalAlarms().evaluate(t0 + 10, t0, None, None, None)] == [
        "no_data"]
    # leads off from the window's quality, cleared by a window with every lead on
    a = TechnicalAlarms()
    a.observe({"type": "prediction", "quality": {"leads_off": {"V1": "lead_off",
                                                               "V2": "saturation"}}}, t0)
    got = a.evaluate(t0 + 1, t0, t0 + 1, t0 + 1, 0.5)
    assert [(x["code"], x["text"]) for x in got] == [("leads_off", "Leads off: V1")]
    a.observe({"type": "withheld", "reasons": ["lead_off"], "quality": {}}, t0 + 2)
    assert a.evaluate(t0 + 2, t0, t0 + 2, t0 + 2, 0.5)[0]["text"] == "Leads off: all"
    a.observe({"type": "prediction", "quality": {"leads_off": {}}}, t0 + 3)
    assert a.evaluate(t0 + 3, t0, t0 + 3, t0 + 3, 0.5) == []


def test_a_stopped_worker_then_a_stopped_bedside_raise_their_alarms_in_time(broker, backend,
                                                                             tmp_path):
    pytest.importorskip("aiohttp", reason="the ward extra (aiohttp) is not installed")
    from station_kit import make_users

    from edge_ecg.ward.publisher import Publisher, open_feed
    from edge_ecg.ward.station import Station, StationOptions
    from edge_ecg.ward.worker import Worker, WorkerOptions

    make_users(tmp_path)
    lim = TechnicalLimits(no_data_s=LIMIT_S, stale_worker_s=LIMIT_S)

    async def until(pred, timeout_s):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if pred():
                return time.monotonic() - t0
            await asyncio.sleep(0.02)
        raise AssertionError("not within the time")

    async def main():
        st = Station(broker.url, StationOptions(port=0, state_dir=str(tmp_path), technical=lim,
                                                push_s=PUSH_S))
        ready = asyncio.Event()
        ts = asyncio.create_task(st.run(ready=ready))
        await ready.wait()
        w = Worker(broker.url, backend, WorkerOptions(tick_s=0.1))
        tw = asyncio.create_task(w.run())
        pub = Publisher([open_feed("synth:sinus_rhythm?seconds=60&seed=1", "icu", "b1",
                                   frame_s=0.25)], broker.url, speed=4.0)
        tp = asyncio.create_task(pub.run())
        tile = None

        def live():
            t = st.tiles.get("icu.b1")
            return t is not None and t.status() == "live" and t.rr
        await until(live, 15)
        tile = st.tiles["icu.b1"]
        assert st.tick()["beds"] is not None and tile.to_json(time.time())["hr_bpm"]
        w.stop()
        await tw
        t_stop = time.monotonic()
        await until(lambda: tile.status() == "no_analysis", 10)
        no_analysis_s = time.monotonic() - t_stop
        # raised how long after the bed's last event (the stated time runs from there)
        late_a = tile.tech[0]["raised_t"] - tile.last_event_t
        shown = tile.to_json(time.time())
        pub.stop()
        await tp
        t_quiet = time.monotonic()
        await until(lambda: tile.status() == "no_data", 10)
        no_data_s = time.monotonic() - t_quiet
        late_d = tile.tech[0]["raised_t"] - max(tile.last_frame_t, tile.last_event_t)
        quiet = tile.to_json(time.time())
        st.stop()
        await ts
        return no_analysis_s, late_a, shown, no_data_s, late_d, quiet

    no_analysis_s, late_a, shown, no_data_s, late_d, quiet = asyncio.run(main())
    # raised at the first tick past the limit, counted from the bed's last frame; no
    # analysis may come sooner than its last event + limit: the stopped worker's heartbeat
    # went first (read once a second), and on a starved machine events can trail it
    assert late_a <= LIMIT_S + PUSH_S + SLACK_S, late_a
    # never before the limit: raised_t is reported to the millisecond (rounded), the last
    # frame's time is not, so "at the limit" can read up to 0.5 ms under it
    assert LIMIT_S - 5e-4 <= late_d <= LIMIT_S + PUSH_S + SLACK_S, late_d
    assert no_analysis_s <= LIMIT_S + PUSH_S + SLACK_S, no_analysis_s
    assert shown["hr_bpm"] is None and shown["rhythm"] is None
    assert shown["alarms"][0]["code"] == "stale_worker"
    # frames every 0.25 s: the last one precedes the publisher's stop by at most that
    assert no_data_s <= LIMIT_S + PUSH_S + SLACK_S, no_data_s
    assert quiet["status"] == "no_data" and quiet["alarms"][0]["code"] == "no_data"
    assert quiet["frame_age_s"] >= LIMIT_S
    print(f"\nno analysis {no_analysis_s:.2f} s after the worker stopped ({late_a:.2f} s after "
          f"its last event), no data {no_data_s:.2f} s after the bedside stopped ({late_d:.2f} "
          f"s after its last frame); limits {LIMIT_S} s, tick {PUSH_S} s")
