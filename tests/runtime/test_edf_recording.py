"""EDF+/BDF+: exact round trips, pyedflib agreement, clear errors, crash-safe recording, and a
recorded session replaying through `edf:` with the same beats and predictions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from edge_ecg.data.edf import Annotation, EdfError, EdfReader, write_edf
from edge_ecg.errors import EdgeECGError, RecordError
from edge_ecg.runtime.edf_source import EdfSource
from edge_ecg.runtime.recording import FILL_TEXT, Recorder
from edge_ecg.runtime.replay import record_source
from edge_ecg.runtime.sources import open_source
from edge_ecg.signal.source import Source
from tests.runtime.conftest import DEFAULT_BUNDLE


def _read_all(src: Source) -> list:
    chunks = []
    with src:
        while True:
            try:
                c = src.read(1.0)
            except EOFError:
                return chunks
            if c is not None:
                chunks.append(c)


@pytest.mark.parametrize("ext", ["edf", "bdf"])
def test_round_trip_exact_digital_values_gain_and_annotations(tmp_path, ext):
    rng = np.random.default_rng(1)
    lim = 1 << (23 if ext == "bdf" else 15)
    x = rng.integers(-lim, lim, size=(3 * 360 + 17, 2)).astype(np.int32)
    x[:4] = [[-lim, lim - 1]] * 4                      # the rails themselves
    # exact in 8 characters: MIT-BIH's 200 counts/mV around 1024 in 16 bits (mV), 1 uV
    # counts in 24 bits (uV); 163.84 counts/mV is an awkward float32 that is not
    gain = np.array([200.0 if ext == "edf" else 1000.0, 163.84], np.float32)
    base = np.array([1024.0 if ext == "edf" else 0.0, 0.0], np.float32)
    long_text = json.dumps({"type": "prediction", "probs": {f"c{i}": 0.1 for i in range(60)}})
    assert len(long_text) > 512                        # longer than edflib reads back
    anns = [Annotation(0.5, 0.0, "beat"), Annotation(1.25, 0.5, long_text)]
    path = write_edf(tmp_path / f"r.{ext}", x, 360.0, ["ECG MLII", "ECG V1"], gain, base,
                     annotations=anns)
    with EdfReader(path) as r:
        assert r.header.bdf == (ext == "bdf") and r.header.plus == "C"
        assert [s.label for s in r.signals] == ["ECG MLII", "ECG V1",
                                               f"{ext.upper()} Annotations"]
        assert np.array_equal(r.digital(0)[:len(x)], x[:, 0])
        assert np.array_equal(r.digital(1)[:len(x)], x[:, 1])
    src = EdfSource(str(path), {"speed": "max"})
    chunks = _read_all(src)
    got = np.concatenate([c.samples for c in chunks])
    assert np.array_equal(got[:len(x)], x)
    assert src.leads == ("II", "V1") and src.fs_hz == 360.0
    assert chunks[0].gain[0] == gain[0] and chunks[0].baseline[0] == base[0]
    # (8 characters around 51200 mV leave 2 decimals: the baseline is then within a count)
    assert abs(chunks[0].gain[1] / gain[1] - 1) < 1e-6 and abs(chunks[0].baseline[1]) <= 1
    texts = [e.text for e in src.take_events(None)]
    assert texts == ["beat", long_text]


def test_pyedflib_reads_our_files_and_we_read_its(tmp_path):
    pyedflib = pytest.importorskip("pyedflib",
                                   reason="pyedflib (dev extra) is the reference reader")
    x = (np.arange(720 * 2).reshape(720, 2) % 2000 - 1000).astype(np.int32)
    path = write_edf(tmp_path / "ours.edf", x, 360.0, ["ECG II", "ECG V5"],
                     np.array([200.0, 200.0], np.float32), np.array([1024.0, 0.0], np.float32),
                     annotations=[Annotation(0.25, 0.0, "N")])
    f = pyedflib.EdfReader(str(path))
    try:
        assert f.getSignalLabels() == ["ECG II", "ECG V5"]
        assert np.array_equal(f.readSignal(0, digital=True), x[:, 0])
        assert f.getPhysicalDimension(0) == "mV"
        assert f.getPhysicalMinimum(0) == (-32768 - 1024) / 200
        onsets, _, texts = f.readAnnotations()
        assert list(texts) == ["N"] and onsets[0] == 0.25
    finally:
        f.close()
    # and a file edflib wrote reads the same through edf:
    theirs = tmp_path / "theirs.edf"
    w = pyedflib.EdfWriter(str(theirs), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    w.setSignalHeader(0, {"label": "ECG I", "dimension": "uV", "sample_frequency": 250,
                          "physical_min": -3276.8, "physical_max": 3276.7,
                          "digital_min": -32768, "digital_max": 32767})
    y = np.arange(500, dtype=np.int32) - 250
    w.writeDigitalSamples(y[:250])                    # edflib: one data record per call
    w.writeDigitalSamples(y[250:])
    w.writeAnnotation(1.0, -1, "lead off")
    w.close()
    src = EdfSource(str(theirs), {"speed": "max"})
    got = np.concatenate([c.samples for c in _read_all(src)])
    assert np.array_equal(got[:, 0], y)
    assert src.leads == ("I",) and float(src.gain[0]) == 10000.0     # 0.1 uV a count
    assert [(e.index, e.text) for e in src.take_events(None)] == [(250, "lead off")]


def test_garbage_and_truncated_files_raise_clear_errors_naming_the_file(tmp_path):
    garbage = tmp_path / "garbage.edf"
    garbage.write_bytes(os.urandom(3000))
    short = tmp_path / "short.edf"
    short.write_bytes(b"0       patient")
    good = write_edf(tmp_path / "good.edf", np.zeros((3600, 1), np.int32), 360.0, ["ECG II"],
                     np.array([200.0], np.float32), np.array([0.0], np.float32))
    cut = tmp_path / "cut.edf"
    cut.write_bytes(good.read_bytes()[:-1000])
    for path, what in ((garbage, "not an EDF"), (short, "shorter than an EDF header"),
                       (cut, "truncated"), (tmp_path / "missing.edf", "missing.edf")):
        with pytest.raises(EdfError) as err:
            open_source(f"edf:{path}").open()
        assert str(path) in str(err.value) and what in str(err.value)
        assert isinstance(err.value, RecordError) and isinstance(err.value, EdgeECGError)


class _DropOne(Source):
    """A replay that loses one chunk (a link outage): an index jump the recorder must keep."""

    def __init__(self, inner, drop: int) -> None:
        self.inner, self.drop, self.n, self.live = inner, drop, 0, False

    def open(self):
        self.inner.open()

    def read(self, timeout_s=0.1):
        c = self.inner.read(timeout_s)
        self.n += c is not None
        if self.n == self.drop:
            c = self.inner.read(timeout_s)
        return c

    def close(self):
        self.inner.close()


class _Collect:
    def __init__(self):
        self.events = []

    def emit(self, e):
        self.events.append(e.to_json())

    def close(self):
        pass


def _run(source, sinks, max_seconds=None):
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.pipeline import Pipeline

    backend = open_backend(DEFAULT_BUNDLE)
    try:
        return Pipeline(source, backend, sinks).run(max_seconds=max_seconds,
                                                    handle_signals=False)
    finally:
        backend.close()


def test_recorded_session_replays_with_the_same_beats_and_predictions(tmp_path, shared_data):
    if not (DEFAULT_BUNDLE / "manifest.json").is_file():
        pytest.skip("the bundled default model is not built")
    rec = record_source(str(shared_data / "mitdb" / "100"), {"speed": "max", "chunk_s": "2"})
    rec.adc = rec.adc[:360 * 45]                              # 45 s
    live, path = _Collect(), tmp_path / "session.edf"
    s1 = _run(_DropOne(rec, drop=7), [live, Recorder(str(path))])
    assert s1.gaps == 1 and s1.gap_samples == 720 and s1.predictions > 10
    replay = _Collect()
    src = EdfSource(str(path), {"speed": "max"})
    s2 = _run(src, [replay])

    def pick(events, kind):
        return [{k: v for k, v in e.items() if k != "latency_ms"}
                for e in events if e["type"] == kind]

    for kind in ("beat", "prediction", "gap", "withheld"):
        assert pick(replay.events, kind) == pick(live.events, kind), kind
    assert (s2.beats, s2.predictions, s2.gaps, s2.samples) == (s1.beats, s1.predictions,
                                                              s1.gaps, s1.samples)
    # the session's events come back as annotations (JSON), bookkeeping fills do not
    texts = [json.loads(e["text"]) for e in replay.events if e["type"] == "annotation"]
    recorded = [e for e in live.events if e["type"] in ("beat", "prediction", "gap")]
    key = lambda e: json.dumps(e, sort_keys=True)      # noqa: E731 - replayed in onset order
    assert sorted(map(key, (t for t in texts if t["type"] in ("beat", "prediction", "gap")))
                  ) == sorted(map(key, recorded))
    assert texts[0]["state"] == "start" and texts[-1]["state"] == "stop"
    assert all(FILL_TEXT not in e.get("text", "") for e in replay.events)
    assert src.stats()["skipped_fill_samples"] >= 720
    # a replay cut short passes on the annotations of what it played, no more
    part = _Collect()
    _run(EdfSource(str(path), {"speed": "max"}), [part], max_seconds=20)
    anns = [e["index"] for e in part.events if e["type"] == "annotation"]
    assert anns and max(anns) <= 20 * 360 + 720          # 20 s of samples, and the gap


def test_recording_killed_mid_session_is_readable(tmp_path):
    if not (DEFAULT_BUNDLE / "manifest.json").is_file():
        pytest.skip("the bundled default model is not built")
    path = tmp_path / "killed.edf"
    cmd = [sys.executable, "-m", "edge_ecg", "stream", "--source",
           "synth:sinus_rhythm?seconds=600&seed=3&speed=8", "--output", "jsonl:-",
           "--record", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for line in proc.stdout:                  # wait until the stream is well under way
            if json.loads(line)["type"] == "prediction" and json.loads(line)["index"] > 7500:
                break
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    with EdfReader(path) as r:
        n = r.n_records
        assert n >= 15 and r.header.n_records == n     # the header's count was kept current
        got = r.digital(0)
    truth = open_source("synth:sinus_rhythm?seconds=600&seed=3&speed=max")
    truth.open()
    assert np.array_equal(got, truth.adc[:n * 500, 0])   # every complete record, exact
    try:
        import pyedflib
    except ImportError:
        return                                         # the reference reader is optional (dev)
    f = pyedflib.EdfReader(str(path))                  # the standard reader accepts it too
    try:
        assert f.datarecords_in_file == n
        assert np.array_equal(f.readSignal(0, digital=True), got)
    finally:
        f.close()


def test_recorder_refuses_other_extensions_and_mid_stream_changes(tmp_path):
    from edge_ecg.errors import SourceError

    with pytest.raises(SourceError, match="edf"):
        Recorder(str(tmp_path / "x.txt"))
    src = open_source("synth:sinus_rhythm?seconds=2&speed=max")
    src.open()
    c = src.read()
    r = Recorder(str(tmp_path / "x.edf"))
    r.write_chunk(c)
    with pytest.raises(SourceError, match="mid-stream"):
        r.write_chunk(replace(c, index=c.end, gain=c.gain * 2))


def test_edf_plus_d_record_onsets_are_index_jumps(tmp_path):
    x = np.arange(4 * 250, dtype=np.int32)[:, None] % 700
    path = write_edf(tmp_path / "d.edf", x, 250.0, ["ECG II"], np.array([1000.0], np.float32),
                     np.array([0.0], np.float32))
    raw = bytearray(path.read_bytes())
    raw[192:197] = b"EDF+D"                            # discontinuous; records 2, 3 start 5 s late
    with EdfReader(path) as r:
        hb, rb, nb = r.header.header_bytes, r.header.record_bytes, 250 * 2
    for k, onset in ((2, b"+7"), (3, b"+8")):
        at = hb + k * rb + nb
        assert raw[at:at + 2] == f"+{k}".encode()
        raw[at:at + 2] = onset
    path.write_bytes(bytes(raw))
    src = EdfSource(str(path), {"speed": "max", "chunk_s": "0.5"})
    chunks = _read_all(src)
    idx = np.concatenate([np.arange(c.index, c.end) for c in chunks])
    assert np.array_equal(idx, np.r_[0:500, 1750:2250])
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), x)
    assert src.stats()["discontinuities"] == 1
