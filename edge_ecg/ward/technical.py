"""Technical alarms of one bed at the central station, on the station's wall clock.

A bed that goes quiet is itself an alarm, never a frozen tile (DESIGN.md, Alarms). The
station evaluates these every push tick (0.5 s), so each is raised within its limit + 0.5 s:

    medium  no_data        no frame and no event from the bed for `no_data_s` (10 s): the
                           bedside, its link or the broker is gone
    medium  stale_worker   frames arrive but no event for `stale_worker_s` (10 s), or the
                           worker serving the bed has had no heartbeat for that long (a
                           failover moves a dead worker's beds within ~5 s, measured, so a
                           10-s silence is not a failover)
    medium  leads_off      the bed's last window reported a lead off (withheld for lead_off or
                           leads masked as off); raised with that event, cleared by the next
                           window with every lead on

10 s: the order of a bedside monitor's "ECG lost" delay and twice the failover bound, so a
normal failover raises nothing. Priorities follow IEC 60601-1-8 (technical alarms at medium:
the patient is unwatched, not known to be in danger).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TechnicalLimits:
    no_data_s: float = 10.0
    stale_worker_s: float = 10.0


class TechnicalAlarms:
    """Per bed: `observe(event)` for each event, `evaluate(...)` on each tick."""

    def __init__(self, limits: TechnicalLimits | None = None) -> None:
        self.limits = limits or TechnicalLimits()
        self.leads_off: list[str] = []
        self._since: dict[str, float] = {}       # code -> wall time it was raised
        self._leads_off_t: float | None = None

    def observe(self, ev: dict, now: float) -> None:
        t = ev.get("type")
        if t not in ("prediction", "withheld"):
            return
        q = ev.get("quality") if isinstance(ev.get("quality"), dict) else {}
        off = q.get("leads_off") if isinstance(q.get("leads_off"), dict) else {}
        leads = sorted(str(k)[:16] for k, v in off.items() if v == "lead_off")[:16]
        if t == "withheld" and "lead_off" in (ev.get("reasons") or ()) and not leads:
            leads = ["all"]
        self.leads_off = leads
        self._leads_off_t = now if leads else None

    def evaluate(self, now: float, seen_t: float, last_frame_t: float | None,
                 last_event_t: float | None, worker_silent_s: float | None) -> list[dict]:
        """Active technical alarms. `seen_t`: when the station first knew the bed (a bed
        that never sends anything is quiet since then); `worker_silent_s`: seconds since the
        bed's worker last heartbeat (None: unknown)."""
        L = self.limits
        last_any = max(x for x in (seen_t, last_frame_t, last_event_t) if x is not None)
        quiet = now - last_any
        events_quiet = now - (last_event_t if last_event_t is not None else seen_t)
        active: dict[str, str] = {}
        # texts name the limit, not the running count: an alarm's text changes only when
        # the alarm does (the tile shows how old the data is beside it)
        if quiet >= L.no_data_s:
            active["no_data"] = f"No data from the bed for over {L.no_data_s:g} s"
        else:
            if events_quiet >= L.stale_worker_s:
                active["stale_worker"] = (f"No analysis: no events for over "
                                          f"{L.stale_worker_s:g} s while the signal arrives")
            elif worker_silent_s is not None and worker_silent_s >= L.stale_worker_s:
                active["stale_worker"] = (f"No analysis: the bed's worker silent for over "
                                          f"{L.stale_worker_s:g} s")
            if self.leads_off:
                active["leads_off"] = "Leads off: " + ", ".join(self.leads_off)
        for code in list(self._since):
            if code not in active:
                del self._since[code]
        out = []
        for code, text in active.items():
            since = self._since.setdefault(code, now)
            out.append({"code": code, "priority": "medium", "text": text, "kind": "technical",
                        "raised_t": round(since, 3)})
        return out
