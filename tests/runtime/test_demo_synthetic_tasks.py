"""The demo's live line hides the synthetic-only potassium task on a real patient unless asked,
and marks it synthetic-only wherever it shows."""

from __future__ import annotations

import io

from edge_ecg.cli.demo import LiveDisplay, SynthTruth


class _Event:
    def __init__(self, d):
        self.d = d

    def to_json(self):
        return self.d


class _RealTruth:            # the annotation interface the display reads, for a real record
    fs_hz = 360.0

    def condition_at(self, start, end):
        return "normal_sinus"

    def describe(self, start, end):
        return "sinus"


class _SynthTruth(SynthTruth):
    def __init__(self):       # no generator needed: the display only reads the annotation
        self.fs_hz = 500.0

    def condition_at(self, start, end):
        return "normal_sinus"

    def describe(self, start, end):
        return "sinus"


PRED = {"type": "prediction", "time_s": 12.0, "latency_ms": 1.0,
        "outputs": {"rr_interval": {"value": 800.0},
                    "potassium": {"label": "hyper", "prob": 0.71}}}


def _line(truth, **kw):
    out = io.StringIO()
    LiveDisplay(truth, out=out, **kw).emit(_Event(PRED))
    return out.getvalue()


def test_potassium_hidden_on_real_stream_by_default():
    line = _line(_RealTruth())
    assert "HR    75 bpm" in line and "K+" not in line


def test_potassium_shown_marked_when_asked_or_synthetic():
    for line in (_line(_RealTruth(), show_synthetic=True), _line(_SynthTruth())):
        assert "K+ hyper 0.71 (synthetic-only)" in line
