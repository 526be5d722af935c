"""The ward's registry read cheaply: which beds are registered, which workers are alive.

Listing a key-value bucket's keys makes, reads and deletes a consumer (~1.8 ms of the client's
CPU and ~1.25 ms of the broker's, BENCHMARKS.md, Ward); workers and the station asked every
second or so. Both answers come from cheaper requests, equal to the listing
(tests/ward/test_balance.py):
- the beds change only when one registers or goes: the bucket's stream state (last sequence,
  messages, first sequence: one stream-info request, ~0.4 ms) says whether to list again;
- a live worker is a heartbeat key whose latest entry is a value: the bucket's subjects from
  one stream-info request (an expired heartbeat has none left), then a get per key (a
  stopped worker's delete marker is not a value).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def list_keys(kv) -> list[str]:
    """A bucket's keys (its deleted ones left out); none is an empty list, not an error."""
    try:
        return await kv.keys()
    except Exception as exc:
        if type(exc).__name__ == "NoKeysError":
            return []
        raise


class Listing:
    """A bucket's sorted keys, listed again only when its stream has changed since."""

    def __init__(self, bucket: str,
                 lister: Callable[[object], Awaitable[list[str]]] = list_keys) -> None:
        self.stream = f"KV_{bucket}"
        self.lister = lister
        self._mark: tuple | None = None
        self._keys: list[str] = []

    async def keys(self, js, kv) -> list[str]:
        info = await js.stream_info(self.stream)
        mark = (info.state.last_seq, info.state.messages, info.state.first_seq)
        if mark != self._mark:
            self._keys = sorted(await self.lister(kv))
            self._mark = mark
        return self._keys


async def live_keys(js, kv, bucket: str, skip: str | None = None) -> set[str]:
    """The keys of `bucket` whose latest entry is a value (not deleted, not expired), `skip`
    left out (a worker knows it is alive)."""
    pre = f"$KV.{bucket}."
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"{pre}>")
    keys = [s[len(pre):] for s in (info.state.subjects or {})
            if s.startswith(pre) and s[len(pre):] != skip]

    async def live(key: str) -> bool:
        try:
            await kv.get(key)
            return True
        except Exception as exc:
            if type(exc).__name__ in ("KeyNotFoundError", "KeyDeletedError"):
                return False
            raise
    alive = await asyncio.gather(*(live(k) for k in keys))
    return {k for k, a in zip(keys, alive) if a}
