"""The packaged excerpts of real records (tests/fixtures/records/README.md) through the stream,
so messy real files are tested everywhere, with or without ../shared/data: a Holter-rate record
whose channels name no lead, and a record with invalid (NaN) samples."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.errors import SourceError
from edge_ecg.runtime.backends import open_backend
from edge_ecg.runtime.replay import replay_events
from edge_ecg.runtime.sources import open_source
from edge_ecg.runtime.stream_processor import StreamProcessor

RECORDS = Path(__file__).resolve().parents[1] / "fixtures" / "records"


@pytest.fixture(scope="module")
def backend(e2e_bundle):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        be = open_backend(e2e_bundle)
    yield be
    be.close()


def _run(backend, spec):
    src = open_source(spec)
    events = [e for part in replay_events(src, StreamProcessor(backend)) for e in part]
    return src, events


def _reference(path):
    import wfdb

    ann = wfdb.rdann(str(path), "atr")
    return np.asarray(ann.sample), np.asarray(ann.symbol)


def test_svdb_excerpt_needs_its_leads_named_then_streams_every_beat(backend):
    path = RECORDS / "svdb_821_excerpt"
    with pytest.raises(SourceError, match=r"\?leads="):
        open_source(f"record:{path}?speed=max")          # ECG1, ECG2: no lead named
    src, events = _run(backend, f"record:{path}?speed=max&leads=II,-")
    assert src.leads == ("II", "-")                       # ECG2 left unused
    beats = [e for e in events if type(e).__name__ == "BeatEvent"]
    got = np.array([e.index for e in beats])
    s, sym = _reference(path)
    ref = s[np.isin(sym, ["N", "S", "V"])]
    tol = round(0.15 * 128)                               # EC57's 150 ms at 128 Hz
    assert ref.size == 106 and got.size == ref.size
    assert all(np.min(np.abs(got - r)) <= tol for r in ref)
    # classes on a training-fold patient: a regression check of the chain, not an accuracy
    # figure (held-out figures: BENCHMARKS.md)
    cls = {int(e.index): e.beat_class for e in beats}
    s_beats = s[sym == "S"]
    called_s = [cls[min(cls, key=lambda b: abs(b - r))] == "S" for r in s_beats]
    assert s_beats.size == 30 and np.mean(called_s) >= 0.8


def test_cudb_excerpt_replays_its_nan_runs_as_gaps_on_one_unnamed_lead(backend, caplog):
    path = RECORDS / "cudb_cu06_excerpt"
    with caplog.at_level(logging.WARNING, logger="edge_ecg.signal.leads"):
        src, events = _run(backend, f"record:{path}?speed=max")
    assert "taking it as lead II" in caplog.text
    assert src.leads == ("II",) and src.invalid_samples == 62
    gaps = [(e.index, e.length) for e in events if type(e).__name__ == "GapEvent"]
    # cu06's four NaN runs (70163, 70195, 83241, 83275 in the whole record) minus 270 s
    assert gaps == [(2663, 4), (2695, 4), (15741, 16), (15775, 38)]
    got = np.array([e.index for e in events if type(e).__name__ == "BeatEvent"])
    s, sym = _reference(path)
    ref = s[sym == "N"]
    assert ref.size == 27 and all(np.min(np.abs(got - r)) <= round(0.15 * 250) for r in ref)
    # the stream goes on after the last gap (beats there; the excerpt ends before a clean
    # 10-s window after it could)
    assert any(type(e).__name__ == "BeatEvent" and e.index > 15775 + 38 for e in events)
