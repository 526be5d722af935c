"""Record replay: invalid (NaN) samples become marked gaps on the record's own clock, as a live
source's lost frames do, and lead assignment (`?leads=`) for unnamed channels."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edge_ecg.data.synth import synthesize
from edge_ecg.errors import SourceError
from edge_ecg.runtime.backends import open_backend
from edge_ecg.runtime.replay import SYNTH_GAIN, ReplaySource, quantise
from edge_ecg.runtime.sources import open_source
from edge_ecg.runtime.stream_processor import StreamProcessor


@pytest.fixture(scope="module")
def backend(fixture_bundle):
    be = open_backend(fixture_bundle)
    yield be
    be.close()


def _drain(src):
    chunks = []
    with src:
        while True:
            try:
                c = src.read()
            except EOFError:
                return chunks
            if c is not None:
                chunks.append(c)


def _stream(backend, src):
    proc = StreamProcessor(backend)
    events = []
    for c in _drain(src):
        events += proc.feed(c)
    events += proc.finish()
    return proc, events


def test_replay_skips_invalid_runs_and_keeps_the_clock():
    adc = np.arange(1000, dtype=np.int32)[:, None]
    invalid = np.zeros(1000, bool)
    invalid[:5] = invalid[300:340] = invalid[990:] = True
    src = ReplaySource(adc, np.ones(1), np.zeros(1), 100.0, ("II",), speed=None,
                       chunk_s=1.0, invalid=invalid)
    chunks = _drain(src)
    sent = np.concatenate([c.samples[:, 0] for c in chunks])
    # every valid sample once, in order, at its own index; no invalid one
    np.testing.assert_array_equal(sent, np.flatnonzero(~invalid))
    assert all((c.samples[:, 0] == np.arange(c.index, c.end)).all() for c in chunks)
    assert [(c.index, c.end) for c in chunks] == [(5, 105), (105, 205), (205, 300),
                                                 (340, 440), (440, 540), (540, 640),
                                                 (640, 740), (740, 840), (840, 940),
                                                 (940, 990)]
    assert all(c.device_time_us == c.index * 10_000 for c in chunks)
    assert src.stats()["invalid_samples"] == 5 + 40 + 10


def test_synthetic_invalid_runs_stream_as_gap_events(backend):
    rec = synthesize("sinus_rhythm", seconds=30, fs_hz=500, seed=2, leads=("II", "V1"))
    adc = quantise(rec.signal)
    invalid = np.zeros(adc.shape[0], bool)
    runs = [(4000, 4030), (9000, 9400), (12001, 12002)]
    for a, b in runs:
        invalid[a:b] = True
    src = ReplaySource(adc, np.full(2, SYNTH_GAIN, np.float32), np.zeros(2, np.float32), 500.0,
                       ("II", "V1"), speed=None, chunk_s=0.04, invalid=invalid)
    proc, events = _stream(backend, src)
    gaps = [(e.index, e.index + e.length, e.cause) for e in events if type(e).__name__ ==
            "GapEvent"]
    assert gaps == [(a, b, "sequence") for a, b in runs]
    beats = np.array([e.index for e in events if type(e).__name__ == "BeatEvent"])
    ref = rec.r_peaks
    # the beats outside the long gap are all found (within 50 ms); none reported inside it
    outside = ref[(ref < 9000 - 100) | (ref > 9400 + 100)]
    assert all(np.min(np.abs(beats - r)) <= 25 for r in outside)
    assert not ((beats > 9000 + 50) & (beats < 9400 - 50)).any()


@pytest.mark.needs_data("cudb/cu06")
def test_cu06_replays_its_nan_runs_as_gaps_and_beats_elsewhere(backend, shared_data):
    path = shared_data / "cudb" / "cu06"
    if not path.with_suffix(".hea").is_file():
        pytest.skip(f"{path}.hea absent")
    src = open_source(f"record:{path}?speed=max")
    assert src.leads == ("II",) and src.invalid_samples == 62
    proc, events = _stream(backend, src)
    gaps = [(e.index, e.length) for e in events if type(e).__name__ == "GapEvent"]
    # the four NaN runs of cu06 (samples 70163-70167, 70195-70199, 83241-83257, 83275-83313)
    assert gaps == [(70163, 4), (70195, 4), (83241, 16), (83275, 38)]
    beats = np.array([e.index for e in events if type(e).__name__ == "BeatEvent"])
    import wfdb

    ann = wfdb.rdann(str(path), "atr")
    ref = np.asarray(ann.sample)[np.isin(ann.symbol, ["N"])]
    before_vf = ref[ref < 46089 - 250]
    hit = np.array([np.min(np.abs(beats - r)) <= 37 for r in before_vf])   # EC57's 150 ms
    assert before_vf.size == 285 and hit.mean() >= 0.99


def test_record_leads_option_assigns_and_refuses(tmp_path, caplog):
    import wfdb

    rec = synthesize("sinus_rhythm", seconds=12, fs_hz=250, seed=4, leads=("II", "V1"))
    d = quantise(rec.signal, 200.0)
    wfdb.wrsamp("two", fs=250, units=["mV", "mV"], sig_name=["ECG1", "ECG2"], d_signal=d,
                fmt=["16", "16"], adc_gain=[200.0, 200.0], baseline=[0, 0],
                write_dir=str(tmp_path))
    with pytest.raises(SourceError, match=r"\?leads="):
        open_source(f"record:{tmp_path / 'two'}?speed=max")
    assert open_source(f"record:{tmp_path / 'two'}?speed=max&leads=II,V1").leads == ("II", "V1")
    with pytest.raises(SourceError, match="1 lead"):
        open_source(f"record:{tmp_path / 'two'}?speed=max&leads=II")
    wfdb.wrsamp("one", fs=250, units=["mV"], sig_name=["ECG"], d_signal=d[:, :1], fmt=["16"],
                adc_gain=[200.0], baseline=[0], write_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="edge_ecg.signal.leads"):
        assert open_source(f"record:{tmp_path / 'one'}?speed=max").leads == ("II",)
    assert "taking it as lead II" in caplog.text


def test_serial_leads_option_renames_announced_channels():
    from firmware_bridge.emulator import VirtualMonitor

    t = np.arange(500) / 250.0
    x = np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)], axis=1).astype(np.float32)
    with VirtualMonitor(x, 250.0, ("X1", "X2"), speed=5) as vm:
        with open_source(f"serial:{vm.path}?leads=II,V1") as src:
            assert src.info.leads == ("II", "V1")
            chunk = None
            for _ in range(50):
                chunk = src.read(0.1)
                if chunk is not None:
                    break
            assert chunk is not None and chunk.leads == ("II", "V1")
    with VirtualMonitor(x, 250.0, ("X1", "X2"), speed=5) as vm:
        src = open_source(f"serial:{vm.path}?leads=II")
        with pytest.raises(SourceError, match="announces 2"):
            src.open()
    with pytest.raises(SourceError, match="not standard lead names"):
        open_source("serial:/dev/null?leads=II,QQ")


def test_ble_leads_option():
    assert open_source("ble:AA:BB:CC:DD:EE:FF?leads=II").lead == "II"
    assert open_source("ble:AA:BB:CC:DD:EE:FF").lead == "I"
    with pytest.raises(SourceError, match="one lead"):
        open_source("ble:AA:BB:CC:DD:EE:FF?leads=I,II")
