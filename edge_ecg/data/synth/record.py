"""What the generator makes: its conditions, potassium states, and the record it returns with
its ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_ecg.errors import SignalError

# The conditions the generator makes (each maps to a rhythm class of tasks.toml in rhythms.toml).
CONDITIONS: tuple[str, ...] = (
    "sinus_rhythm",
    "sinus_bradycardia",
    "sinus_tachycardia",
    "sinus_arrhythmia",
    "atrial_fibrillation",
    "af_rapid_ventricular_response",
    "atrial_flutter",
    "premature_atrial_contractions",
    "premature_ventricular_contractions",
    "first_degree_av_block",
    "ventricular_paced",
    "left_bundle_branch_block",
    "right_bundle_branch_block",
    "supraventricular_tachycardia",
)
POTASSIUM: tuple[str, ...] = ("normal", "hyper", "hypo")


@dataclass(frozen=True)
class SynthRecord:
    """One synthetic record with its ground truth.

    `signal` is time-major `(T, L)` float32 millivolts; `r_peaks` the sample of each beat's
    largest lead-II QRS deflection (clean signal), `beat_types` 'N', 'A' (premature atrial),
    'V' (premature ventricular) or 'P' (paced) per beat; `segments` the (start, end, condition)
    sample ranges of the rhythm schedule.
    """

    signal: np.ndarray
    fs_hz: float
    leads: tuple[str, ...]
    r_peaks: np.ndarray
    beat_types: tuple[str, ...]
    labels: dict
    segments: list = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.signal.shape[0] / self.fs_hz

    def condition_at(self, start: int, end: int) -> str:
        """The condition covering most of the samples `[start, end)`."""
        best, best_n = self.labels["condition"], -1
        for s0, s1, cond in self.segments:
            n = min(end, s1) - max(start, s0)
            if n > best_n:
                best, best_n = cond, n
        return best


def arrhythmia_index(condition: str) -> int:
    """Index of a condition's rhythm class (rhythms.toml) in the arrhythmia task's labels."""
    from edge_ecg.data.rhythms import synth_class
    from edge_ecg.data.tasks import DEFAULT_TASKS
    from edge_ecg.errors import RecordError

    labels = DEFAULT_TASKS["arrhythmia"].labels
    try:
        cls = synth_class(condition)
    except RecordError as exc:
        raise SignalError(str(exc)) from None
    if cls not in labels:
        raise SignalError(f"rhythm class {cls!r} of {condition!r} is not a label of tasks.toml")
    return labels.index(cls)
