"""Lead names and the derivation of limb leads III, aVR, aVL, aVF from I and II.

Einthoven/Goldberger: III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2.
A device may stream only the 8 independent leads (I, II, V1-V6); the rest is derived.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from edge_ecg.errors import SignalError

log = logging.getLogger(__name__)

STANDARD_12: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)
INDEPENDENT_8: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")

# Names found in WFDB headers and device descriptions, folded to the standard ones.
# MLII (modified lead II, MIT-BIH) is placed as II: close enough for rhythm and QRS timing.
_ALIASES = {
    "MLII": "II", "ML2": "II", "LEAD II": "II", "D1": "I", "D2": "II", "D3": "III",
    "AVR": "aVR", "AVL": "aVL", "AVF": "aVF", "-AVR": None,
}


def canonical_lead(name: str) -> str | None:
    """The standard name of a lead, or None for a lead outside the 12 standard ones."""
    key = name.strip().upper()
    if key in _ALIASES:
        return _ALIASES[key]
    for std in STANDARD_12:
        if std.upper() == key:
            return std
    return None


# Prefixes of signal labels in EDF files and LSL stream descriptions ("ECG II", "EKG-V1").
_LABEL_PREFIXES = ("ECG", "EKG")


def lead_of_label(label: str) -> str | None:
    """The standard lead a signal label names ("ECG II", "EKG-V1", "MLII"), or None."""
    s = label.strip()
    for p in _LABEL_PREFIXES:
        if s.upper().startswith(p):
            s = s[len(p):].strip(" -_:")
            break
    return canonical_lead(s) if s else None


# A channel given "-" in a lead assignment is not used (the name maps to no standard lead).
UNUSED = "-"


def parse_lead_assignment(text: str | None, where: str = "") -> tuple[str, ...] | None:
    """The lead names of a `?leads=II,V1` option, in channel order (None when not given).

    Each name must be a standard lead (aliases such as MLII allowed) or `-` (channel unused)."""
    if text is None or not text.strip():
        return None
    names = tuple(x.strip() for x in text.split(","))
    bad = [x for x in names if x != UNUSED and canonical_lead(x) is None]
    if bad:
        raise SignalError(f"{where}: leads={text!r}: {bad} are not standard lead names; use "
                          f"names from {list(STANDARD_12)} (or - to leave a channel unused)")
    return names


def assign_leads(channels, assignment: tuple[str, ...] | None = None,
                 defaults: Mapping[str, str] | None = None, where: str = "") -> tuple[str, ...]:
    """The lead name of each source channel, in order.

    `assignment` (a spec's `?leads=`) names every channel's lead explicitly. Otherwise a
    channel keeps its own name where that is a standard lead ("MLII", "ECG II"), else takes
    `defaults[name]` (a database's description, e.g. SVDB ECG1 -> II). A lone channel that
    names no lead ("ECG", "ECG1") is taken as lead II, the usual monitoring lead, with a
    warning; two or more such channels are an error, since any order guessed could swap the
    leads the model reads.
    """
    channels = tuple(str(c) for c in channels)
    if assignment is not None:
        if len(assignment) != len(channels):
            raise SignalError(f"{where}: leads= names {len(assignment)} lead(s) for "
                              f"{len(channels)} channel(s) {list(channels)}; give one per "
                              "channel, in order (- for a channel to leave unused)")
        return tuple(assignment)
    defaults = defaults or {}
    out = []
    for c in channels:
        if canonical_lead(c) is not None:
            out.append(c)
        elif lead_of_label(c) is not None:            # "ECG II", "EKG-V1"
            out.append(lead_of_label(c))
        elif c in defaults:
            out.append(defaults[c])
        else:
            out.append(c)
    if any(lead_of_label(n) is not None for n in out):
        return tuple(out)
    if len(channels) == 1:
        log.warning("%s: channel %r names no ECG lead; taking it as lead II (pass ?leads= to "
                    "say which lead it is)", where or "source", channels[0])
        return ("II",)
    raise SignalError(f"{where}: none of the channels {list(channels)} names a standard ECG "
                      f"lead; say which lead each is with ?leads=, e.g. ?leads=II,V1")


def derive_limb_leads(lead_i: np.ndarray, lead_ii: np.ndarray) -> dict[str, np.ndarray]:
    """III, aVR, aVL, aVF from I and II (any matching shapes)."""
    return {
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2,
        "aVL": lead_i - lead_ii / 2,
        "aVF": lead_ii - lead_i / 2,
    }


def to_standard_leads(x: np.ndarray, names: tuple[str, ...] | list[str],
                      target: tuple[str, ...] = STANDARD_12) -> tuple[np.ndarray, np.ndarray]:
    """Place a time-major signal `(T, len(names))` into the `target` lead order.

    Returns `(y, lead_mask)`: `y` is `(T, len(target))` float32 with absent leads zero, and
    `lead_mask` is `(len(target),)` bool, True where the lead was measured or derived.
    Limb leads are derived when I and II are both present and the lead itself is not.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"expected (T, {len(names)}) for leads {list(names)}, got {x.shape}")
    have: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        std = canonical_lead(name)
        if std is not None and std not in have:
            have[std] = x[:, j]
    if "I" in have and "II" in have:
        for name, sig in derive_limb_leads(have["I"], have["II"]).items():
            have.setdefault(name, sig)
    y = np.zeros((x.shape[0], len(target)), dtype=np.float32)
    mask = np.zeros(len(target), dtype=bool)
    for k, name in enumerate(target):
        if name in have:
            y[:, k] = have[name]
            mask[k] = True
    return y, mask


__all__ = ["INDEPENDENT_8", "STANDARD_12", "UNUSED", "assign_leads", "canonical_lead",
           "derive_limb_leads", "lead_of_label", "parse_lead_assignment", "to_standard_leads"]
