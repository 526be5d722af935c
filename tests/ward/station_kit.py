"""What the station's tests share: users made in the test's temp dir (never committed), the
station's web side served without a broker (beds fed through the same calls the NATS feed
makes), an HTTPS client that trusts the station's self-signed certificate, events and frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from pathlib import Path

import numpy as np

PASSWORDS = {"nurse": ("clinician", "correct horse battery"),
             "visitor": ("viewer", "just looking, thanks")}


def make_users(state: Path) -> Path:
    from edge_ecg.ward.auth import add_user

    path = state / "users.json"
    for name, (role, pw) in PASSWORDS.items():
        add_user(path, name, pw, role)
    return path


def client_ssl(state: Path) -> ssl.SSLContext:
    """Trusts exactly the station's certificate (made at its first start), checks the name."""
    return ssl.create_default_context(cafile=str(state / "tls" / "station.crt"))


@contextlib.asynccontextmanager
async def web_only(state: Path, **opt):
    """The station's web side and push loop on this loop, no broker: tests feed beds with
    `add_bed`, `on_frame`, `on_event`, as `WardFeed` does."""
    from edge_ecg.ward.station import Station, StationOptions
    from edge_ecg.ward.station_web import Web

    if not (state / "users.json").exists():
        make_users(state)
    st = Station("nats://127.0.0.1:9", StationOptions(port=0, state_dir=str(state), **opt))
    web = Web(st)
    await web.start()
    st.web, st.port = web, web.port
    push = asyncio.create_task(st._push_loop())
    try:
        yield st
    finally:
        st.stop()
        await push
        await web.close()


async def login(session, st, state: Path, user: str = "nurse") -> str:
    r = await session.post(f"https://127.0.0.1:{st.port}/login", ssl=client_ssl(state),
                           json={"user": user, "password": PASSWORDS[user][1]})
    assert r.status == 200, await r.text()
    return (await r.json())["token"]


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as a browser's JSON.parse does."""
    def refuse(c):
        raise ValueError(f"non-JSON constant {c}")
    return json.loads(text, parse_constant=refuse)


def bed_desc(fs: float = 250.0) -> dict:
    return {"fs_hz": fs, "leads": ["MLII"], "source": "test"}


def event(unit: str, bed: str, n: int, typ: str = "beat", index: int | None = None,
          bundle: str = "", **fields) -> bytes:
    ev = {"type": typ, "index": index if index is not None else n * 200,
          "ward": {"unit": unit, "bed": bed, "n": n, "bundle": bundle, "worker": "w1",
                   "frame_sent": time.time(), "frame_s": 0.5}, **fields}
    return json.dumps(ev).encode()


def frame(index: int, n: int = 125, fs: float = 250.0, gain: float = 200.0, seq: int = 0) -> bytes:
    from edge_ecg.signal.chunk import Chunk
    from edge_ecg.ward import frames

    t = (index + np.arange(n)) / fs
    counts = np.round(np.sin(2 * np.pi * 1.2 * t) * 200).astype(np.int32)[:, None]
    ch = Chunk(seq=seq, device_time_us=int(index / fs * 1e6), index=index, fs_hz=fs,
               samples=counts, gain=np.array([gain], np.float32),
               baseline=np.array([0.0], np.float32), leads=("MLII",))
    return frames.encode(ch, seq)


def session():
    """An aiohttp client keeping cookies from an IP address (aiohttp's jar drops them
    unless told: the station's URL here is https://127.0.0.1)."""
    import aiohttp

    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


@contextlib.contextmanager
def web_in_thread(state: Path, **opt):
    """`web_only` on its own loop in a thread, for synchronous clients (playwright's sync
    API); `call(fn)` runs fn on that loop (the station is not thread-safe)."""
    import threading

    box: dict = {}
    started, done = threading.Event(), None
    loop = asyncio.new_event_loop()

    async def main():
        nonlocal done
        done = asyncio.Event()
        async with web_only(state, **opt) as st:
            box["st"] = st
            started.set()
            await done.wait()

    th = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    th.start()
    assert started.wait(30), "the station's web side did not start"
    st = box["st"]

    def call(fn):
        fut = asyncio.run_coroutine_threadsafe(_call(fn), loop)
        return fut.result(10)
    st.call = call
    try:
        yield st
    finally:
        loop.call_soon_threadsafe(done.set)
        th.join(20)


async def _call(fn):
    return fn()
