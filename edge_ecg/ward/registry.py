"""The ward's registry read cheaply and exactly: which beds are registered, which workers are
alive, which beds are leased.

Never through nats-py's `KeyValue.keys()`: its watcher can signal the end of the initial
replay before the entries already sent have been read (nats-io/nats.py#842; #995 is the fix,
not released in the nats-py installed here), so a listing comes back short or empty
(`NoKeysError`) while the keys exist. A worker that once read the bed registry that way, and
kept the answer until the registry changed, served none of the beds it should have: alive,
heartbeat kept, half the ward without analysis (BENCHMARKS.md, Ward). Every answer here comes
from the stream's own state instead (tests/ward/test_balance.py):
- a bucket's keys: the subjects holding an entry, from one stream-info request, then a get
  per key (a deleted key's marker is not a value; an expired key has no subject left);
- the beds change only when one registers or goes: the bucket's stream state (last sequence,
  messages, first sequence) says whether to list again;
- a live worker is a heartbeat key whose latest entry is a value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def list_keys(js, kv, bucket: str) -> list[str]:
    """A bucket's keys (deleted and expired ones left out), sorted; none is an empty list."""
    return sorted(await live_keys(js, kv, bucket))


class Listing:
    """A bucket's sorted keys, listed again only when its stream has changed since."""

    def __init__(self, bucket: str,
                 lister: Callable[[object], Awaitable[list[str]]] | None = None) -> None:
        self.bucket = bucket
        self.stream = f"KV_{bucket}"
        self.lister = lister
        self._mark: tuple | None = None
        self._keys: list[str] = []

    async def keys(self, js, kv) -> list[str]:
        info = await js.stream_info(self.stream)
        mark = (info.state.last_seq, info.state.messages, info.state.first_seq)
        if mark != self._mark:
            got = await (self.lister(kv) if self.lister is not None
                         else list_keys(js, kv, self.bucket))
            self._keys = sorted(got)
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
