"""The event loop the ward's roles run on: uvloop where it is installed, asyncio's otherwise.

A worker, the station and a publisher spend a fair part of their CPU in the event loop
itself: every frame is a message delivered, every event a publish and an answer, each through
TLS on a secure ward. uvloop (libuv, with its own TLS transport) does that work in C; the
`ward` extra installs it where it has wheels (Linux, macOS). Nothing in the ward depends on
which loop runs: the same tests pass on both, and `EDGE_ECG_EVENT_LOOP=asyncio` chooses the
standard loop (to compare, or to rule the loop out when something looks wrong).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

ENV = "EDGE_ECG_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for asyncio's default (`ENV` set to "asyncio", or
    uvloop not installed). Another value of `ENV` is refused, not guessed at."""
    want = os.environ.get(ENV, "").strip().lower()
    if want not in ("", "uvloop", "asyncio"):
        raise ValueError(f"{ENV}={want!r}: use 'uvloop' or 'asyncio' (or leave it unset)")
    if want == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if want == "uvloop":
            raise ValueError(f"{ENV}=uvloop but uvloop is not installed: "
                             "pip install 'edge-ecg[ward]'") from None
        return None
    return uvloop.new_event_loop


def name() -> str:
    """The loop `run` uses: "uvloop" or "asyncio"."""
    return "asyncio" if loop_factory() is None else "uvloop"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """`asyncio.run(coro)` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
