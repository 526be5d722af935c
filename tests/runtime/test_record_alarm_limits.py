"""A record streamed with the alarm engine's limits chosen by the caller (`edge-ecg evaluate
--vt-run`): on the packaged MIT-BIH 223 excerpt, the default raises red VT on runs of 3 fast
V beats, and the monitors' chain (`vt_run = 5`) raises non-sustained VT for the same runs
where the runtime found fewer than 5 V in a row."""

from __future__ import annotations

from pathlib import Path

from edge_ecg.runtime.alarms import AlarmLimits
from edge_ecg.runtime.backends import open_backend
from edge_ecg.runtime.bundle import DEFAULT_BUNDLE
from edge_ecg.runtime.record_beats import stream_beat_classes

EXCERPT = Path(DEFAULT_BUNDLE).parent / "demo" / "mitdb_223_excerpt"


def _onsets(alarms, code):
    return [a["onset_index"] for a in alarms if a["code"] == code and a["state"] == "onset"]


def test_the_vt_run_limit_reaches_the_stream():
    be = open_backend(DEFAULT_BUNDLE)
    try:
        plain, chain = [], []
        s1, c1, _ = stream_beat_classes(be, str(EXCERPT), alarms_out=plain)
        s2, c2, _ = stream_beat_classes(be, str(EXCERPT), alarms_out=chain,
                                        alarm_limits=AlarmLimits(vt_run=5))
    finally:
        be.close()
    assert list(s1) == list(s2) and c1 == c2           # the beats are not the alarms' business
    vt = _onsets(plain, "vt")
    assert vt and not _onsets(plain, "nsvt")
    # every fast run is there still, as non-sustained VT or (5 V or more) VT, from its first beat
    assert set(_onsets(chain, "nsvt") + _onsets(chain, "vt")) == set(vt)
    assert len(_onsets(chain, "vt")) < len(vt)
