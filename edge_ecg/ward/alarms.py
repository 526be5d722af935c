"""Bedside alarms at the central station: the runtime's one alarm engine per bed.

`BedAlarms` is `edge_ecg.runtime.alarms.AlarmEngine` fed the bed's events as they arrive on
the bus (JSON dicts), so the station raises exactly what the bedside stream raises from the
same events: one implementation (rules, priorities, hysteresis: see that module). VF/flutter
needs the signal: the station takes it from the stream's own `alarm` events (code `vf`).
Station-level technical alarms (a bed gone quiet, a stale worker) stay with the station.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_ecg.runtime.alarms import PRIORITY, AlarmEngine, AlarmLimits

__all__ = ["PRIORITY", "AlarmLimits", "BedAlarms"]


@dataclass
class BedAlarms:
    """Alarm state of one bed; `observe(event)` for each of its events in order."""

    fs_hz: float = 500.0
    limits: AlarmLimits = field(default_factory=AlarmLimits)

    def __post_init__(self) -> None:
        self.engine = AlarmEngine(self.fs_hz, self.limits)

    def set_limits(self, limits: AlarmLimits) -> None:
        """The bed's limits from now on (a clinician's), the engine's state kept."""
        self.limits = limits
        self.engine.set_limits(limits)

    def observe(self, ev: dict) -> list:
        """The alarm events (onset/end) this event caused."""
        return self.engine.observe(ev)

    def active(self) -> list[dict]:
        """Active alarms, highest priority first (then the oldest)."""
        return [{k: a[k] for k in ("code", "priority", "text", "since_s")}
                for a in self.engine.active()]
