"""Bedside alarms from a bed's events, ranked as monitors rank them, with hysteresis.

Priorities follow IEC 60601-1-8's three levels (high: act now; medium: act promptly; low:
be aware). Each condition turns on only after it holds for `on` consecutive observations and
off only after it has been absent for `off` (one window never flaps an alarm):

    high    asystole          no beat for `asystole_s` in a window predicted on or withheld only
                              for its beat count or flat leads
    high    vt_vf             wide-complex tachycardia: window HR >= 150 and QRS >= 120 ms
                              (a rule on the runtime's intervals: the model has no VT/VF class,
                              and VF without detectable QRS shows as asystole or withheld)
    high    extreme_brady     window HR < 40 bpm
    high    extreme_tachy     window HR > 150 bpm
    medium  new_af            the model calls AF/flutter (p >= 0.6) on consecutive windows
    medium  brady / tachy     HR < 50 / > 120 bpm
    low     signal            windows withheld (leads off, noise, gaps): no analysis
    low     ectopy            beats classed V or S by the runtime (when it classes beats),
                              >= 6 a minute

Thresholds are data (`AlarmLimits`), defaults of common adult monitor presets; the clock is
the bed's own sample index, so a replay raises the same alarms as the live stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PRIORITY = {"high": 3, "medium": 2, "low": 1}


@dataclass(frozen=True)
class AlarmLimits:
    asystole_s: float = 4.0
    extreme_brady_bpm: float = 40.0
    extreme_tachy_bpm: float = 150.0
    brady_bpm: float = 50.0
    tachy_bpm: float = 120.0
    vt_qrs_ms: float = 120.0
    af_prob: float = 0.6
    ectopy_per_min: float = 6.0
    on: int = 2             # consecutive windows for a condition to raise its alarm
    off: int = 3            # consecutive windows without it to clear
    af_on: int = 3


@dataclass
class _Cond:
    priority: str
    text: str
    on_n: int
    off_n: int
    hits: int = 0
    misses: int = 0
    active: bool = False
    since: int | None = None

    def observe(self, present: bool, index: int) -> None:
        if present:
            self.hits, self.misses = self.hits + 1, 0
            if not self.active and self.hits >= self.on_n:
                self.active, self.since = True, index
        else:
            self.misses, self.hits = self.misses + 1, 0
            if self.active and self.misses >= self.off_n:
                self.active, self.since = False, None


@dataclass
class BedAlarms:
    """Alarm state of one bed; `observe(event)` for each of its events in order."""

    fs_hz: float = 500.0
    limits: AlarmLimits = field(default_factory=AlarmLimits)

    def __post_init__(self) -> None:
        L = self.limits
        self.conds = {
            "asystole": _Cond("high", "Asystole", 1, 2),
            "vt_vf": _Cond("high", "VT/VF suspected (wide-complex tachycardia)", L.on, L.off),
            "extreme_brady": _Cond("high", "Extreme bradycardia", L.on, L.off),
            "extreme_tachy": _Cond("high", "Extreme tachycardia", L.on, L.off),
            "new_af": _Cond("medium", "New AF/flutter (model call)", L.af_on, L.off),
            "brady": _Cond("medium", "Bradycardia", L.on, L.off),
            "tachy": _Cond("medium", "Tachycardia", L.on, L.off),
            "signal": _Cond("low", "ECG not analysable", L.on, L.off),
            "ectopy": _Cond("low", "Frequent ectopic beats", 1, L.off),
        }
        self.last_beat: int | None = None
        self.first_index: int | None = None
        self.ectopic: list[int] = []
        self.af_seen_before = False
        self.signal_reasons: list[str] = []

    def observe(self, ev: dict) -> None:
        t, idx = ev.get("type"), int(ev.get("index", 0))
        if self.first_index is None:
            self.first_index = idx
        L, fs = self.limits, self.fs_hz
        if t == "beat":
            self.last_beat = idx
            cls = ev.get("beat_class")
            if cls in ("V", "S"):
                self.ectopic.append(idx)
            self.ectopic = [i for i in self.ectopic if i > idx - 60 * fs]
            self.conds["asystole"].observe(False, idx)
            return
        if t not in ("prediction", "withheld"):
            return
        ref = self.last_beat if self.last_beat is not None else self.first_index
        usable = t == "prediction"
        # a window withheld for too few beats, or with every lead flat (no electrode-
        # impedance signal tells a flat line from leads off here), is asystole when no beat
        # came for asystole_s: a missed asystole costs more than a false one
        flat_or_slow = set(ev.get("reasons", ())) <= {"beat_count", "lead_off"}
        self.conds["asystole"].observe((usable or flat_or_slow)
                                       and idx - ref >= L.asystole_s * fs, idx)
        self.conds["signal"].observe(not usable, idx)
        self.signal_reasons = list(ev.get("reasons", [])) if not usable else []
        self.conds["ectopy"].observe(len(self.ectopic) >= L.ectopy_per_min, idx)
        if not usable:
            return
        iv = ev.get("intervals") or {}
        hr, qrs = iv.get("hr_bpm"), iv.get("qrs_ms")
        hr_ok = isinstance(hr, (int, float))
        self.conds["extreme_brady"].observe(hr_ok and hr < L.extreme_brady_bpm, idx)
        self.conds["extreme_tachy"].observe(hr_ok and hr > L.extreme_tachy_bpm, idx)
        self.conds["brady"].observe(hr_ok and L.extreme_brady_bpm <= hr < L.brady_bpm, idx)
        self.conds["tachy"].observe(hr_ok and L.tachy_bpm < hr <= L.extreme_tachy_bpm, idx)
        wide = isinstance(qrs, (int, float)) and qrs >= L.vt_qrs_ms
        self.conds["vt_vf"].observe(hr_ok and hr >= 150 and wide, idx)
        rhythm = (ev.get("outputs") or {}).get("arrhythmia") or {}
        p_af = (rhythm.get("probs") or {}).get("af_or_flutter")
        af = isinstance(p_af, (int, float)) and p_af >= L.af_prob
        was = self.conds["new_af"].active
        self.conds["new_af"].observe(af and not self.af_seen_before, idx)
        if was and not self.conds["new_af"].active:
            self.af_seen_before = False
        # an AF alarm acknowledged by time: AF present for 10 min is no longer "new"
        c = self.conds["new_af"]
        if c.active and c.since is not None and idx - c.since > 600 * fs:
            self.af_seen_before, c.active, c.since = True, False, None

    def active(self) -> list[dict]:
        """Active alarms, highest priority first (then the oldest)."""
        out = [{"code": k, "priority": c.priority, "text": c.text
                + (f": {', '.join(self.signal_reasons)}" if k == "signal" and
                   self.signal_reasons else ""),
                "since_s": round(c.since / self.fs_hz, 1) if c.since is not None else None}
               for k, c in self.conds.items() if c.active]
        return sorted(out, key=lambda a: (-PRIORITY[a["priority"]], a["since_s"] or 0))
