"""A bed's state written and read back restores exactly: the proof the ward's resume rests on."""

import numpy as np
import pytest
from ward_reference import comparable, source_chunks

from edge_ecg.runtime.stream_processor import StreamProcessor
from edge_ecg.ward import snapshot
from edge_ecg.ward.errors import StateError

SPEC = "synth:sinus_rhythm+atrial_fibrillation?seconds=36&seed=3"


@pytest.fixture(scope="module")
def chunks():
    # 0.1-s chunks (not the bus default of 0.5 s): the cuts below fall at many points of the
    # processor's state, and chunks[233] exists
    return source_chunks(SPEC, frame_s=0.1)


def _events(proc, chunks):
    return [comparable(e.to_json()) for c in chunks for e in proc.feed(c)]


def test_restored_processor_gives_identical_events_at_any_cut(backend, chunks):
    ref = _events(StreamProcessor(backend), chunks)
    assert len(ref) > 40
    for cut in (1, 77, 151, 233, len(chunks) - 1):
        p = StreamProcessor(backend)
        got = _events(p, chunks[:cut])
        data = snapshot.dump(p, {"cut": cut})
        q, meta = snapshot.load(data, backend)
        assert meta == {"cut": cut}
        assert snapshot.dump(q, {"cut": cut}) == data          # every field restored
        got += _events(q, chunks[cut:])
        assert got == ref, cut


def test_snapshot_refuses_another_bundle_and_bad_bytes(backend, chunks):
    p = StreamProcessor(backend)
    _events(p, chunks[:30])
    data = snapshot.dump(p)

    class Other:
        manifest = type("M", (), {"model_version": "other"})()
        variant = type("V", (), {"name": "x"})()
    with pytest.raises(StateError, match="bundle"):
        snapshot.load(data, Other())
    with pytest.raises(StateError):
        snapshot.load(b"EWS1" + data[4:40], backend)
    with pytest.raises(StateError, match="magic"):
        snapshot.load(b"\x80\x04pickle", backend)


def test_only_runtime_classes_are_rebuilt(backend, chunks):
    import json
    import struct

    p = StreamProcessor(backend)
    _events(p, chunks[:10])
    data = snapshot.dump(p)
    (n,) = struct.unpack_from("<Q", data, 4)
    head = json.loads(data[12:12 + n])
    head["state"]["d"]["summary"]["O"] = "os:system"
    evil = json.dumps(head).encode()
    bad = data[:4] + struct.pack("<Q", len(evil)) + evil + data[12 + n:]
    with pytest.raises(StateError, match="not runtime state"):
        snapshot.load(bad, backend)


def test_state_outside_the_runtime_fails_loudly(backend):
    p = StreamProcessor(backend)
    p.extra = np.array([object()], dtype=object)
    with pytest.raises(StateError, match="dtype"):
        snapshot.dump(p)


def _adc(chunk) -> dict:
    return {"gain": [float(v) for v in chunk.gain], "baseline": [float(v) for v in chunk.baseline]}


def _head(data: bytes) -> dict:
    import json
    import struct

    (n,) = struct.unpack_from("<Q", data, 4)
    return json.loads(data[12:12 + n])


def _raw_node(data: bytes) -> dict:
    return dict(_head(data)["state"]["d"]["raw"]["d"]["_data"])


def test_raw_ring_as_counts_restores_the_same_bits_and_events(backend, chunks):
    """The raw ring written as int16 counts with the bed's gain and baseline: the restored
    ring has the very bits, the events are the uninterrupted ones, the snapshot is smaller by
    about half the ring, and trailing zero rows (unused template slots) are not written."""
    ref = _events(StreamProcessor(backend), chunks)
    for cut in (3, 151, len(chunks) - 1):
        p = StreamProcessor(backend)
        got = _events(p, chunks[:cut])
        meta = {"cut": cut, "adc": _adc(chunks[cut - 1])}
        data = snapshot.dump(p, meta)
        plain = snapshot.dump(p, {"cut": cut})
        node = _raw_node(data)
        assert "adc" in node and node["adc"]["n_bad"] == 0
        written = min(p.raw.end, p.raw.capacity) * p.raw.n_leads * 4    # float32 bytes
        # half of them saved, less the gain and baseline written twice (~1.5 kB of JSON)
        assert len(plain) - len(data) >= 0.5 * written - 2048
        q, meta2 = snapshot.load(data, backend)
        assert meta2 == meta
        assert np.array_equal(q.raw._data.view(np.uint32), p.raw._data.view(np.uint32))
        assert q.raw._data.flags.writeable and q.context.templates.flags.writeable
        assert snapshot.dump(q, meta) == data
        assert snapshot.dump(q, {"cut": cut}) == plain
        got += _events(q, chunks[cut:])
        assert got == ref, cut
    full = _head(data)["state"]["d"]["context"]["d"]["templates"]
    assert full["rows"] < full["sh"][0]         # the unused template slots were left out


def test_raw_ring_samples_not_exact_as_counts_are_kept_as_they_were(backend, chunks):
    """A gap's linear fill is not counts: those samples go as float32 exceptions; a wrong
    baseline makes every sample one, and the ring is written plain. Both restore exactly."""
    gappy = chunks[:60] + chunks[64:120]           # 0.4 s missing: a filled, marked gap
    p = StreamProcessor(backend)
    _events(p, gappy)
    assert p.raw.gap_samples > 0
    data = snapshot.dump(p, {"adc": _adc(gappy[-1])})
    assert _raw_node(data)["adc"]["n_bad"] > 0
    q, _ = snapshot.load(data, backend)
    assert np.array_equal(q.raw._data.view(np.uint32), p.raw._data.view(np.uint32))
    assert _events(q, chunks[120:]) == _events(p, chunks[120:])

    p = StreamProcessor(backend)
    _events(p, chunks[:100])
    wrong = _adc(chunks[0])
    wrong["baseline"] = [v + 0.5 for v in wrong["baseline"]]     # no count gives those bits
    data = snapshot.dump(p, {"adc": wrong})
    assert "adc" not in _raw_node(data)
    q, _ = snapshot.load(data, backend)
    assert np.array_equal(q.raw._data.view(np.uint32), p.raw._data.view(np.uint32))


def test_forged_encodings_are_refused(backend, chunks):
    import json
    import struct

    p = StreamProcessor(backend)
    _events(p, chunks[:100])
    data = snapshot.dump(p, {"adc": _adc(chunks[99])})
    (n,) = struct.unpack_from("<Q", data, 4)

    def forged(edit) -> bytes:
        head = json.loads(data[12:12 + n])
        edit(head["state"]["d"]["raw"]["d"]["_data"], head["state"]["d"]["context"]["d"])
        evil = json.dumps(head).encode()
        return data[:4] + struct.pack("<Q", len(evil)) + evil + data[12 + n:]

    def bad_count(raw, ctx):
        raw["adc"]["n_bad"] = 5

    def zero_gain(raw, ctx):
        raw["adc"]["g"][0] = 0.0

    def rows_beyond(raw, ctx):
        ctx["templates"]["rows"] = ctx["templates"]["sh"][0] + 1

    for edit in (bad_count, zero_gain, rows_beyond):
        with pytest.raises(StateError):
            snapshot.load(forged(edit), backend)


def test_a_restored_bed_runs_its_workers_limits(backend, chunks):
    """A worker applies its own limits to a bed restored from another worker's snapshot
    (`StreamAlarms.set_limits`, edge_ecg/ward/worker.py): the restored engine then reads them."""
    from edge_ecg.runtime.alarm_settings import parse_alarm_settings
    from edge_ecg.runtime.alarms import AlarmLimits
    from edge_ecg.ward.worker import Worker, WorkerOptions

    settings = parse_alarm_settings({"alarms": {"vf_on": 3}, "beds": {"icu.3": {"vt_run": 5}}})
    w = Worker("nats://127.0.0.1:9", backend, WorkerOptions(alarms=settings))
    assert w._fresh_processor("icu.3").alarms.limits.vt_run == 5
    assert w._fresh_processor("icu.4").alarms.limits == AlarmLimits(vf_on=3)
    p = StreamProcessor(backend)
    _events(p, chunks[:120])
    q, _ = snapshot.load(snapshot.dump(p, {}), backend)
    assert q.alarms.engine.limits == AlarmLimits()
    q.alarms.set_limits(settings.for_bed("icu.3"))
    assert q.alarms.limits.vt_run == 5 and q.alarms.engine.limits.vt_run == 5
    assert q.alarms.engine.limits.vf_on == 3
    _events(q, chunks[120:])                      # runs on under them
