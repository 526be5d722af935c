"""Alarm limits from a TOML file: what a unit sets on its monitors, as data, never code.

A bedside monitor's alarm limits are the care unit's choice (an adult ICU's VT run length is
not a step-down unit's, nor a neonatal unit's rates), so they come from a file the unit keeps,
not from the package's defaults alone. The file:

    description = "Adult ICU: the monitors' VT alarm chain"    # optional, shown in logs

    [alarms]                  # any field of edge_ecg.runtime.alarms.AlarmLimits; the rest
    vt_run = 5                # keep their defaults
    tachy_bpm = 130

    [beds."icu.3"]            # a ward station only: this bed's changes, over [alarms]
    brady_bpm = 40

Untrusted input all the same: every key is checked against the `AlarmLimits` fields, every
value's type and its range (`RANGES`: what a monitor lets a clinician set, and no more, so a
typo cannot turn an alarm off: an asystole delay of 60 s or a VT run of 50 beats is refused),
and the rates' order (extreme brady <= brady < tachy <= extreme tachy). A file that fails is
refused whole with the reason; nothing in it is half-applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from edge_ecg.errors import EdgeECGError
from edge_ecg.runtime.alarms import AlarmLimits
from edge_ecg.runtime.toml_input import read_toml

FORMAT_KEYS = ("description", "alarms", "beds")
MAX_BYTES = 256 << 10          # a limits file is a few hundred bytes; refuse anything large
MAX_BEDS = 1024
_BED = re.compile(r"^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}$")    # UNIT.BED, as the ward

# (low, high) inclusive, in each field's unit. The rate and delay ranges are those adult and
# neonatal monitors offer (IEC 60601-2-27 asks an asystole alarm within 10 s; no monitor lets
# a VT run limit go past ~12 beats); the detector constants are bounded where they still mean
# what their comments in alarms.py say.
RANGES: dict[str, tuple[float, float]] = {
    "asystole_s": (2.0, 10.0),
    "extreme_brady_bpm": (20.0, 100.0),
    "extreme_tachy_bpm": (100.0, 300.0),
    "brady_bpm": (20.0, 150.0),
    "tachy_bpm": (60.0, 300.0),
    "vt_qrs_ms": (80.0, 200.0),
    "vt_bpm": (60.0, 250.0),
    "vt_run": (3, 12),
    "vt_escalate_beats": (0, 12),     # 0 (off) or 3..12: checked in apply_limits
    "run_off": (1, 5),
    "svt_run": (0, 30),               # 0 (off) or 3..30: checked in apply_limits
    "svt_bpm": (100.0, 250.0),
    "vf_on": (1, 10),
    "vf_off": (1, 20),
    "af_rr": (8, 256),
    "af_rmssd": (0.01, 1.0),
    "af_entropy": (0.05, 1.0),
    "af_model_prob": (0.0, 1.0),
    "af_prob": (0.0, 1.0),
    "af_on": (1, 20),
    "af_off_beats": (1, 256),
    "af_confirm_beats": (1, 256),
    "af_p_absent": (0.0, 1.0),
    "ectopy_per_min": (0.5, 60.0),
    "advisory_hold_s": (0.0, 300.0),
    "on": (1, 20),
    "off": (1, 20),
}


class AlarmSettingsError(EdgeECGError):
    """An alarm limits file is unreadable, malformed or out of range (the message says where)."""


@dataclass(frozen=True)
class AlarmSettings:
    """The limits a file sets: `limits` for every bed, `beds` its per-bed changes."""

    limits: AlarmLimits = field(default_factory=AlarmLimits)
    beds: dict[str, AlarmLimits] = field(default_factory=dict)
    description: str = ""
    source: str = "defaults"

    def for_bed(self, key: str) -> AlarmLimits:
        """The limits of bed `key` ("unit.bed")."""
        return self.beds.get(key, self.limits)


def changed(limits: AlarmLimits) -> dict[str, float | int]:
    """The fields of `limits` that differ from the defaults (what a log or a tile shows)."""
    base = AlarmLimits()
    return {f.name: getattr(limits, f.name) for f in fields(AlarmLimits)
            if getattr(limits, f.name) != getattr(base, f.name)}


def _value(name: str, value, where: str):
    kind = {f.name: f.type for f in fields(AlarmLimits)}[name]
    want_int = kind in (int, "int")
    # bool is an int in Python; `vt_run = true` is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AlarmSettingsError(f"{where}: {name} must be a number, got {value!r}")
    if want_int and not isinstance(value, int):
        raise AlarmSettingsError(f"{where}: {name} counts beats or windows: a whole number, "
                                 f"got {value!r}")
    if value != value:
        raise AlarmSettingsError(f"{where}: {name} is NaN")
    lo, hi = RANGES[name]
    if not lo <= value <= hi:
        raise AlarmSettingsError(f"{where}: {name} = {value!r} is outside {lo:g}..{hi:g}, the "
                                 "range a monitor lets a unit set")
    return int(value) if want_int else float(value)


def apply_limits(base: AlarmLimits, table, where: str) -> AlarmLimits:
    """`base` with the changes of one TOML table, every key and value checked."""
    if not isinstance(table, dict):
        raise AlarmSettingsError(f"{where}: expected a table of alarm limits, got "
                                 f"{type(table).__name__}")
    known = {f.name for f in fields(AlarmLimits)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise AlarmSettingsError(f"{where}: unknown alarm limit(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(sorted(known))}")
    out = replace(base, **{k: _value(k, v, where) for k, v in table.items()})
    if not (out.extreme_brady_bpm <= out.brady_bpm < out.tachy_bpm <= out.extreme_tachy_bpm):
        raise AlarmSettingsError(
            f"{where}: the rate limits must keep extreme_brady_bpm <= brady_bpm < tachy_bpm <= "
            f"extreme_tachy_bpm (got {out.extreme_brady_bpm:g}, {out.brady_bpm:g}, "
            f"{out.tachy_bpm:g}, {out.extreme_tachy_bpm:g})")
    if out.vt_escalate_beats in (1, 2):
        raise AlarmSettingsError(
            f"{where}: vt_escalate_beats = {out.vt_escalate_beats} is too few: 0 (off) or 3 to "
            "12 V beats, a run's shortest length")
    if out.svt_run in (1, 2):
        raise AlarmSettingsError(
            f"{where}: svt_run = {out.svt_run} is too few: 0 (off) or 3 to 30 S beats")
    return out


def parse_alarm_settings(doc, where: str = "<alarm limits>") -> AlarmSettings:
    """`AlarmSettings` from a parsed TOML document."""
    if not isinstance(doc, dict):
        raise AlarmSettingsError(f"{where}: not a table")
    unknown = sorted(set(doc) - set(FORMAT_KEYS))
    if unknown:
        raise AlarmSettingsError(f"{where}: unknown key(s) {', '.join(unknown)}; an alarm limits "
                                 "file holds description, [alarms] and [beds.\"UNIT.BED\"]")
    description = doc.get("description", "")
    if not isinstance(description, str) or len(description) > 500:
        raise AlarmSettingsError(f"{where}: description must be text of at most 500 characters")
    limits = apply_limits(AlarmLimits(), doc.get("alarms", {}), f"{where} [alarms]")
    beds_doc = doc.get("beds", {})
    if not isinstance(beds_doc, dict):
        raise AlarmSettingsError(f"{where}: beds must be tables [beds.\"UNIT.BED\"]")
    if len(beds_doc) > MAX_BEDS:
        raise AlarmSettingsError(f"{where}: {len(beds_doc)} beds; at most {MAX_BEDS}")
    beds = {}
    for key, table in beds_doc.items():
        if not _BED.match(key):
            raise AlarmSettingsError(f"{where}: bed {key!r} is not UNIT.BED (letters, digits, - "
                                     "or _; write it quoted: [beds.\"icu.3\"])")
        beds[key] = apply_limits(limits, table, f"{where} [beds.\"{key}\"]")
    return AlarmSettings(limits=limits, beds=beds, description=description, source=where)


def read_alarm_settings(path: str | Path) -> AlarmSettings:
    """`AlarmSettings` from a TOML file (refused whole, with the reason, if anything is off)."""
    doc = read_toml(path, AlarmSettingsError, "alarm limits", MAX_BYTES)
    return parse_alarm_settings(doc, where=str(path))


def settings_from(path: str | Path | None) -> AlarmSettings:
    """A command's `--alarm-limits`: the file's settings, or the defaults where none is given."""
    return AlarmSettings() if path is None else read_alarm_settings(path)


def describe(settings: AlarmSettings) -> str:
    """One line for a log: where the limits came from and what they change."""
    diff = changed(settings.limits)
    what = ", ".join(f"{k}={v:g}" for k, v in diff.items()) if diff else "the defaults"
    src = "" if settings.source == "defaults" else f" from {settings.source}"
    extra = f" ({len(settings.beds)} bed(s) with their own)" if settings.beds else ""
    return f"alarm limits{src}: {what}{extra}"


__all__ = ["RANGES", "AlarmSettings", "AlarmSettingsError", "apply_limits", "changed",
           "describe", "parse_alarm_settings", "read_alarm_settings", "settings_from"]
