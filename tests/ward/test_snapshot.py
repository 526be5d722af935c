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
