"""Bounds on the numbers that arrive on the bus: sample indices and event ordinals.

Nothing on the bus is trusted to be sane. A frame's sample index drives allocations in the
runtime (a gap is filled), and an event's ordinal `n` decides what a station or a new worker
treats as already seen. Unchecked, one forged frame jumping 1e12 samples ahead made a bed
raise MemoryError for ever, and one forged event numbered 1e9 made every later real event
look like a duplicate. The limits here are stated and the refusals counted.

- `IndexGuard` (the worker, per bed): a frame whose first sample is more than `max_jump_s`
  away from where the bed stands (ahead or behind) is refused and counted, never allocated.
  `confirm` frames in a row, contiguous with each other, beyond the limit are a device that
  restarted its clock: the bed restarts there, with a `gap` event of cause `restart`.
- `plausible_ordinal` / `OrdinalCheck` (a new worker, the station): an event's ordinal can
  grow at most `MAX_EVENTS_PER_S` per second of the bed's signal (plus `EVENT_SLACK`), and
  its sample index can move at most `max_jump_s` from the last one seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Events a bed can produce per second of signal, an upper bound: beats (<= 5/s at 300 bpm,
# the detector's refractory period), one prediction or withheld window per hop (hops >= 0.5 s)
# and at most one gap per frame (frames >= 0.05 s: 20/s). Anything faster is not a bed.
MAX_EVENTS_PER_S = 50.0
EVENT_SLACK = 256
MAX_JUMP_S = 600.0        # 10 min: longer than the publisher's 5-min buffer of a broker outage
CONFIRM_FRAMES = 3


@dataclass
class IndexGuard:
    """Where a bed stands on its sample clock, and what it refused."""

    max_jump_s: float = MAX_JUMP_S
    confirm: int = CONFIRM_FRAMES
    next_index: int | None = None           # one past the last accepted sample
    refused: int = 0                        # frames refused for their index
    restarts: int = 0
    run: list = field(default_factory=list)  # refused frames contiguous with each other

    def admit(self, chunk, tag=None) -> tuple[str, list]:
        """`("ok", [(chunk, tag)])`, `("refused", [])` or `("restart", [(chunk, tag), ...])`:
        the frames of a confirmed run, to be fed to a fresh processor in order."""
        fs = float(chunk.fs_hz)
        idx = int(chunk.index)
        end = idx + int(chunk.n_samples)
        if self.next_index is None or abs(idx - self.next_index) <= self.max_jump_s * fs:
            self.run.clear()                # an in-range frame: any pending run was noise
            self.next_index = end if self.next_index is None else max(self.next_index, end)
            return "ok", [(chunk, tag)]
        self.refused += 1
        if self.run and idx != int(self.run[-1][0].index) + int(self.run[-1][0].n_samples):
            self.run.clear()
        self.run.append((chunk, tag))
        if len(self.run) < self.confirm:
            return "refused", []
        frames = list(self.run)
        self.run.clear()
        self.restarts += 1
        self.next_index = end
        return "restart", frames


def plausible_ordinal(n, index, origin: int, fs_hz: float, end_index: int | None) -> str | None:
    """Why event ordinal `n` at sample `index` cannot be a real event of a bed whose stream
    started at `origin` and whose frames reach `end_index` (None: unknown); None if it can."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        return f"ordinal {n!r} is not a positive integer"
    if not isinstance(index, int) or isinstance(index, bool):
        return f"sample index {index!r} is not an integer"
    if end_index is not None and index > end_index + MAX_JUMP_S * fs_hz:
        return f"sample index {index} lies beyond the bed's frames (up to {end_index})"
    span_s = max(index - origin, 0) / fs_hz if fs_hz > 0 else 0.0
    if n > MAX_EVENTS_PER_S * span_s + EVENT_SLACK:
        return (f"ordinal {n} at {span_s:.0f} s of signal exceeds {MAX_EVENTS_PER_S:g} events "
                f"a second + {EVENT_SLACK}")
    return None


@dataclass
class OrdinalCheck:
    """A consumer's view of one bed's event sequence (`n`, sample `index`): each event is
    "new", "duplicate" (at or before the last seen) or "implausible" (refused, counted:
    a jump in `n` faster than the bed's signal allows, or an index far from the last)."""

    fs_hz: float = 500.0
    origin: int | None = None           # the bed's first sample index (its descriptor's)
    max_jump_s: float = MAX_JUMP_S
    confirm: int = CONFIRM_FRAMES
    last_n: int | None = None
    last_index: int | None = None
    implausible: int = 0
    duplicates: int = 0
    missing: int = 0
    pending: list = field(default_factory=list)   # implausible events consistent in a row

    def _follows(self, n: int, index: int, last_n: int, last_index: int) -> bool:
        di = index - last_index
        return (abs(di) <= self.max_jump_s * self.fs_hz and
                n - last_n <= MAX_EVENTS_PER_S * max(di, 0) / self.fs_hz + EVENT_SLACK)

    def check(self, n, index) -> str:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1 or \
                not isinstance(index, int) or isinstance(index, bool):
            self.implausible += 1
            return "implausible"
        if self.last_n is None:
            if self.origin is not None and plausible_ordinal(n, index, self.origin, self.fs_hz,
                                                             None):
                return self._implausible(n, index)
        elif n <= self.last_n:
            self.duplicates += 1
            return "duplicate"
        elif not self._follows(n, index, self.last_n, self.last_index):
            return self._implausible(n, index)
        else:
            self.missing += n - self.last_n - 1
        self.pending.clear()
        self.last_n, self.last_index = n, index
        return "new"

    def _implausible(self, n: int, index: int) -> str:
        """Refused and counted; `confirm` such events in a row that follow each other are a
        bed restarted far away on its clock (a worker's `restart`): accepted from there."""
        self.implausible += 1
        if self.pending and not (n > self.pending[-1][0] and
                                 self._follows(n, index, *self.pending[-1])):
            self.pending.clear()
        self.pending.append((n, index))
        if len(self.pending) >= self.confirm:
            self.pending.clear()
            self.last_n, self.last_index = n, index
            return "new"
        return "implausible"
