"""A station's commands to the worker serving a bed: relearn, and the bed's alarm limits.

A bedside monitor's relearn key and its alarm limits act where the signal is. In the ward the
signal is in a worker, and which worker changes (takeovers, restarts). So a command does not
go to a worker: it goes into the bed's own stream, on `ecg.<unit>.<bed>.cmd` in the frames'
stream (bus.commands_subject), and the worker reads it with the frames, in stream order. The
stream's order is fixed once stored, so every replay (a takeover from the last snapshot, a
restart) applies the command between the same two frames, and the bed's events and their
ordinals stay the same whoever computes them (tests/ward/test_commands.py).

Only a station may publish there (edge_ecg.ward.broker: `ecg.*.*.cmd`), and a publisher's
credential names its frames' subjects exactly, so no monitor can send one. The worker trusts
nothing in it all the same: a command over MAX_BYTES, not JSON, of an unknown kind, or with
limits out of range (edge_ecg.runtime.alarm_settings.apply_limits) is counted and skipped,
never half-applied.

    {"command": "relearn", "by": "nurse", "t": 1765000000.0}
    {"command": "limits", "limits": {"tachy_bpm": 135, ...}, "by": ..., "t": ...}
    {"command": "limits", "limits": null, ...}        back to the worker's --alarm-limits
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from edge_ecg.runtime.alarm_settings import AlarmSettingsError, apply_limits
from edge_ecg.runtime.alarms import AlarmLimits
from edge_ecg.ward.errors import WardError

SUFFIX = "cmd"
MAX_BYTES = 4096          # a full set of limits is ~700 bytes
KINDS = ("relearn", "limits")


class CommandError(WardError):
    """A command on a bed's stream that cannot be applied (the message says why)."""


class CommandNotSent(WardError):
    """The broker did not store a station's command (not connected, refused, timed out): the
    bed's worker will not apply it; send it again."""


@dataclass(frozen=True)
class BedCommand:
    """One command: `kind` "relearn" or "limits"; `limits` the bed's limits from now on
    (None: the worker's own for the bed); `by` and `t`, who sent it and when."""

    kind: str
    limits: AlarmLimits | None = None
    by: str = "?"
    t: float | None = None

    def to_json(self) -> bytes:
        d = {"command": self.kind, "by": self.by, "t": self.t}
        if self.kind == "limits":
            d["limits"] = None if self.limits is None else limits_dict(self.limits)
        return json.dumps(d, separators=(",", ":")).encode()


def limits_dict(limits: AlarmLimits) -> dict:
    """Every field of `limits` (a command carries them whole: the worker then runs what the
    station's tile shows, whatever file the worker was given)."""
    return asdict(limits)


def decode(data: bytes) -> BedCommand:
    """A command from the bus, checked whole; CommandError says what is wrong."""
    if len(data) > MAX_BYTES:
        raise CommandError(f"command of {len(data)} bytes (at most {MAX_BYTES})")
    try:
        d = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandError(f"command is not JSON ({exc})") from None
    if not isinstance(d, dict) or d.get("command") not in KINDS:
        got = d.get("command") if isinstance(d, dict) else type(d).__name__
        raise CommandError(f"unknown command {str(got)[:40]!r}; known: {', '.join(KINDS)}")
    by = str(d.get("by", "?"))[:64]
    t = d.get("t")
    t = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) \
        and math.isfinite(t) else None
    if d["command"] == "relearn":
        return BedCommand("relearn", by=by, t=t)
    raw = d.get("limits")
    if raw is None:
        return BedCommand("limits", None, by, t)
    try:
        return BedCommand("limits", apply_limits(AlarmLimits(), raw, "limits command"), by, t)
    except AlarmSettingsError as exc:
        raise CommandError(str(exc)) from None
