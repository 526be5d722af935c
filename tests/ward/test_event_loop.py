"""The ward roles' event loop (edge_ecg.ward.event_loop): uvloop when installed, asyncio's on
request, an unknown choice refused; a worker on uvloop over TLS stores the reference's events
(the CLI roles in the other ward tests run on it too)."""

from __future__ import annotations

import asyncio

import pytest

from edge_ecg.ward import event_loop


async def _which() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_the_loop_follows_the_environment(monkeypatch):
    pytest.importorskip("uvloop", reason="uvloop not installed (the ward extra on Linux/macOS)")
    monkeypatch.delenv(event_loop.ENV, raising=False)
    assert event_loop.name() == "uvloop" and event_loop.run(_which()) == "uvloop"
    monkeypatch.setenv(event_loop.ENV, "asyncio")
    assert event_loop.name() == "asyncio" and event_loop.run(_which()) == "asyncio"
    monkeypatch.setenv(event_loop.ENV, "trio")
    with pytest.raises(ValueError, match="'uvloop' or 'asyncio'"):
        event_loop.loop_factory()


def test_a_worker_on_uvloop_over_tls_stores_the_reference(ward, backend):
    """In-process, on uvloop: a secure ward (TLS, credentials) with a publisher and a worker;
    the stored events equal the single-process reference."""
    pytest.importorskip("uvloop", reason="uvloop not installed (the ward extra on Linux/macOS)")
    import time

    from ward_reference import comparable, reference_events, source_chunks, stored_events

    from edge_ecg.ward.publisher import Publisher, open_feed
    from edge_ecg.ward.worker import Worker, WorkerOptions

    specs = {"b1": "synth:sinus_rhythm?seconds=12&seed=1"}

    async def main():
        assert await _which() == "uvloop"
        w = Worker(ward.role("worker"), backend, WorkerOptions(tick_s=0.1))
        task = asyncio.create_task(w.run())
        pub = await Publisher([open_feed(s, "icu", b) for b, s in specs.items()],
                              ward.role("publisher-test"), speed=0.0).run()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            await asyncio.sleep(0.2)
            b = w.beds.get("icu.b1")
            if b is not None and not b.inbox and not b.outbox and b.samples >= 6000:
                break
        w.stop()
        await task
        return pub, await stored_events(ward.role("viewer"), "icu", "b1")

    pub, got = event_loop.run(main())
    assert pub["total"]["balanced"] and pub["total"]["dropped"] == 0
    assert [comparable(e) for e in got] == reference_events(source_chunks(specs["b1"]), backend)
