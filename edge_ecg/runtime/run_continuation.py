"""`RunContinuation`: a ventricular run, once called, goes on while its beats stay wide and
unlike the patient's dominant beat.

The beat stack learned prematurity from isolated PVCs: in a sustained run, after a few beats
the local RR is the run's own, so its beats come "on time", without a compensatory pause, and
the stack drifts back to N (MIT-BIH 223's long VTs read N after ~30 beats; BENCHMARKS.md,
"2026-12-07, evening"). The shared training records hold no ventricular run longer than 18
beats to learn it from. Bedside arrhythmia algorithms label a template, not a beat on its own:
once a run is declared, the beats that keep its shape keep its label until the dominant
(normal) beat returns. This is that rule, on the patient context the stack already reads:

    a beat the stack does not call V is called V when the `min_run` beats before it (the
    stream's beats, one after another, in the same context epoch) were all called V, its
    templates are learned, it did not join the dominant cluster, and its QRS is at least
    `width_ratio` times the dominant's width or correlates with it at most `qrs_corr`.

It only ever continues a run of `min_run` (3: the VT alarm's) V calls, so it never starts one
and never raises a VT alarm on its own: it lengthens runs and keeps one run from breaking into
pieces. A continued beat's probabilities swap V with the top class (a distribution still). The
state is three numbers that change only with the beats classified, in order, so any chunking
gives the same classes and a ward snapshot holds it.

Chosen on the training folds only, by a rule written before its runtime figures
(bench/beat_stack_folds.py --adaptation on --continuation on; BENCHMARKS.md, "2026-12-07, late
night"). Out of fold through the runtime, pooled over training folds 1-4, with the patient
adaptation on both sides: MIT-BIH V Se / +P 0.877 / 0.912 -> 0.879 / 0.906, false VT alarms
1.42 -> 1.28 per hour, VT runs +P 0.517 -> 0.537; SVDB V 0.746 / 0.846 -> 0.746 / 0.842, false
VT alarms 1.00 -> 0.68 per hour, VT runs +P 0.455 -> 0.541. Read once on fold 0 after: MIT-BIH
V Se / +P (as bxb scores them) 0.707 / 0.736 -> 0.767 / 0.698 (223's long runs: 41 more V
found, no new false one; 54 more false V, 26 of them in 108, 17 in 207), false VT alarms
0.77 -> 0.46 per hour. It is the `run_continuation` field of the bundle's `beat_stack.json`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ContinuationConfig:
    """The setting a bundle's `beat_stack.json` carries (`run_continuation`)."""

    min_run: int = 3            # V calls in a row before a run is continued
    width_ratio: float = 1.3    # a continued beat is this much wider than the dominant ...
    qrs_corr: float = 0.8       # ... or correlates with it at most this

    @staticmethod
    def parse(doc, where: str) -> ContinuationConfig:
        """From a bundle's JSON object, every field checked (a bundle is untrusted data)."""
        from edge_ecg.runtime.bundle import checked_setting

        return ContinuationConfig(**checked_setting(
            doc, "run_continuation", ContinuationConfig(),
            {"min_run": (2, 100, True), "width_ratio": (1.0, 10.0, False),
             "qrs_corr": (-1.0, 1.0, False)}, where))

    def to_dict(self) -> dict:
        return {"min_run": self.min_run, "width_ratio": self.width_ratio,
                "qrs_corr": self.qrs_corr}


class RunContinuation:
    """`apply(epoch, r, x, p)` per classified beat, in stream order: its probabilities, with a
    run continued where the rule says so. `features` names the columns of `x` (the beat
    stack's FEATURES)."""

    def __init__(self, cfg: ContinuationConfig, fs_hz: float, features, labels) -> None:
        self.cfg = cfg
        self.fs_hz = float(fs_hz)
        f = list(features)
        self.c_pre, self.c_learned = f.index("pre_rr_ms"), f.index("learned")
        self.c_dom, self.c_width = f.index("in_dominant"), f.index("width_ratio")
        self.c_corr = f.index("qrs_corr")
        self.v_cls = list(labels).index("V")
        self.epoch: int | None = None
        self.last_r: int | None = None      # model clock of the last beat classified
        self.run = 0                        # V calls in a row ending at it
        self.continued = 0                  # beats continued (the stream's count)

    def _follows(self, r: int, pre_rr_ms: float) -> bool:
        """Whether beat `r` is the next beat after the last one classified: its RR before
        is the distance between them (within one model sample)."""
        if self.last_r is None or pre_rr_ms <= 0:
            return False
        return abs((r - self.last_r) - pre_rr_ms * self.fs_hz / 1000.0) <= 1.0

    def apply(self, epoch: int, r: int, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        if epoch != self.epoch:
            self.epoch, self.last_r, self.run = int(epoch), None, 0
        follows = self._follows(int(r), float(x[self.c_pre]))
        run = self.run if follows else 0
        k = int(np.argmax(p))
        out = p
        if k != self.v_cls and run >= self.cfg.min_run and x[self.c_learned] > 0 \
                and x[self.c_dom] < 0.5 and (x[self.c_width] >= self.cfg.width_ratio
                                             or x[self.c_corr] <= self.cfg.qrs_corr):
            out = np.array(p, copy=True)
            out[self.v_cls], out[k] = p[k], p[self.v_cls]
            k = self.v_cls
            self.continued += 1
        self.run = run + 1 if k == self.v_cls else 0
        self.last_r = int(r)
        return out


__all__ = ["ContinuationConfig", "RunContinuation"]
