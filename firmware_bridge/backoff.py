"""Reconnection backoff shared by the serial and BLE sources: exponential delays between
attempts, and the moment to give up.

Plain data and no waiting of its own: the serial source sleeps in its read loop, the BLE
source in its asyncio session; both ask this object when to try again and whether the link
has been down too long.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    """Delays from `first_s`, doubling up to `max_s`; expired once down for `timeout_s`."""

    first_s: float
    max_s: float
    timeout_s: float
    down_since: float | None = None     # monotonic time the link went down; None while up
    delay_s: float = 0.0                # wait before the next attempt
    retry_at: float = 0.0               # monotonic time of the next attempt

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def start(self, now: float) -> None:
        """The link went down at `now`: the first attempt falls due after `first_s`."""
        self.down_since = now
        self.delay_s = self.first_s
        self.retry_at = now + self.delay_s

    def failed(self, now: float) -> None:
        """An attempt failed at `now`: double the delay (up to `max_s`) before the next."""
        self.delay_s = min(self.delay_s * 2, self.max_s)
        self.retry_at = now + self.delay_s

    def expired(self, now: float) -> bool:
        """Down for longer than `timeout_s`: time to give up and say so."""
        return self.down_since is not None and now - self.down_since > self.timeout_s

    def recovered(self) -> None:
        self.down_since = None


__all__ = ["Backoff"]
