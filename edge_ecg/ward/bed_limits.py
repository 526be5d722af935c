"""A bed's own alarm limits, set by a clinician at the station and kept across restarts.

The unit's file (`--alarm-limits`, edge_ecg.runtime.alarm_settings) gives every bed its
limits. At the bedside a clinician then fits them to the patient (a tachycardia limit above a
septic patient's steady 125 /min, a VT run length for a patient with known salvos): the main
means monitors offer against alarm fatigue. Those changes belong to the bed until they are
reset, so they live in the station's state dir (`bed_limits.json`, 0600, replaced atomically)
as the changes over the unit's limits, each with who set it and when; the audit log has the
history.

The file is the station's own, but it is read back as untrusted data all the same: every
entry is checked as a unit file is (edge_ecg.runtime.alarm_settings.apply_limits), and one
that fails is dropped with a warning naming the bed, never half-applied; the bed then runs the
unit's limits and its tile says so.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import fields
from pathlib import Path

from edge_ecg.runtime.alarm_settings import AlarmSettings, AlarmSettingsError, apply_limits
from edge_ecg.runtime.alarms import AlarmLimits

log = logging.getLogger(__name__)

FILE = "bed_limits.json"
FORMAT = 1
MAX_BYTES = 1 << 20
MAX_BEDS = 4096


class BedLimits:
    """The per-bed changes over the unit's limits: `limits(key)`, `set`, `reset`."""

    def __init__(self, state_dir: str | Path, unit: AlarmSettings) -> None:
        self.path = Path(state_dir) / FILE
        self.unit = unit
        self.beds: dict[str, dict] = {}        # key -> {"changes": {...}, "by", "t"}
        self.dropped: list[str] = []           # beds whose kept entry failed its check
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            if self.path.stat().st_size > MAX_BYTES:
                raise ValueError(f"over {MAX_BYTES} bytes")
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or doc.get("format") != FORMAT \
                    or not isinstance(doc.get("beds"), dict):
                raise ValueError("not a bed limits file of format 1")
        except (OSError, ValueError) as exc:
            log.warning("%s: not read (%s); every bed runs the unit's limits", self.path, exc)
            self.dropped.append("*")
            return
        for key, rec in list(doc["beds"].items())[:MAX_BEDS]:
            try:
                if not isinstance(rec, dict):
                    raise AlarmSettingsError("not a table")
                apply_limits(self.unit.for_bed(key), rec.get("changes"), f"bed {key}")
                self.beds[key] = {"changes": rec["changes"], "by": str(rec.get("by", "?"))[:64],
                                  "t": rec.get("t") if isinstance(rec.get("t"), (int, float))
                                  else None}
            except (AlarmSettingsError, KeyError, TypeError) as exc:
                log.warning("%s: bed %s's limits dropped (%s); it runs the unit's", self.path,
                            key[:100], exc)
                self.dropped.append(key)

    def limits(self, key: str) -> AlarmLimits:
        """Bed `key`'s limits: the unit's, with a clinician's changes over them."""
        base = self.unit.for_bed(key)
        rec = self.beds.get(key)
        return base if rec is None else apply_limits(base, rec["changes"], f"bed {key}")

    def set_by(self, key: str) -> dict | None:
        """Who set bed `key`'s own limits and when (None: the unit's)."""
        rec = self.beds.get(key)
        return None if rec is None else {"by": rec["by"], "t": rec["t"]}

    def set(self, key: str, changes, user: str) -> AlarmLimits:
        """Bed `key`'s limits with `changes` (a table of `AlarmLimits` fields) over its
        current ones, checked whole (AlarmSettingsError, nothing changed, if any fails)."""
        new = apply_limits(self.limits(key), changes, f"bed {key}")
        base = self.unit.for_bed(key)
        # kept as the changes over the unit's (a later unit file moves what was not changed)
        diff = {f.name: getattr(new, f.name) for f in fields(AlarmLimits)
                if getattr(new, f.name) != getattr(base, f.name)}
        if diff:
            self.beds[key] = {"changes": diff, "by": user, "t": round(time.time(), 3)}
        else:
            self.beds.pop(key, None)
        self._save()
        return new

    def reset(self, key: str) -> AlarmLimits:
        """Bed `key` back on the unit's limits."""
        self.beds.pop(key, None)
        self._save()
        return self.unit.for_bed(key)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"format": FORMAT, "beds": self.beds}, f, indent=1, sort_keys=True,
                      allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


__all__ = ["FILE", "BedLimits"]
