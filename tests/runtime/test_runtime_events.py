"""Event records and sinks: JSON shape, flushing, and the LSL outlet (where liblsl works)."""

import dataclasses
import json

import numpy as np
import pytest

from edge_ecg.errors import SourceError
from edge_ecg.runtime.events import (
    BeatEvent,
    GapEvent,
    JsonlSink,
    PredictionEvent,
    StatusEvent,
    WithheldEvent,
    open_output,
)


def test_events_serialise_with_type_index_and_time():
    evs = [BeatEvent(10, 0.02, 120.0), GapEvent(20, 0.04, 5), WithheldEvent(30, 0.06, 0, ("gap",)),
           StatusEvent(0, 0.0, "start", {"x": np.float32(1.5), "nan": float("nan")}),
           PredictionEvent(40, 0.08, 0, {"age": {"value": np.float32(50.0), "unit": "years"}},
                           {"rhythm": ["rhythm0"]}, 1.2345, 3)]
    for ev in evs:
        d = json.loads(json.dumps(ev.to_json()))     # plain JSON: numpy scalars converted
        assert {"type", "index", "time_s"} <= set(d)
    assert evs[3].to_json()["info"]["nan"] is None    # NaN is not JSON: null
    with pytest.raises(dataclasses.FrozenInstanceError):
        evs[0].index = 3                              # frozen


def test_jsonl_file_sink_flushes_each_event(tmp_path):
    path = tmp_path / "e.jsonl"
    sink = open_output(f"jsonl:{path}")
    sink.emit(BeatEvent(1, 0.002, 100.0))
    assert json.loads(path.read_text())["type"] == "beat"   # visible before close
    sink.emit(GapEvent(2, 0.004, 7))
    sink.close()
    assert len(path.read_text().splitlines()) == 2
    with pytest.raises(SourceError):
        open_output("csv:x")
    assert isinstance(open_output("jsonl:-"), JsonlSink)


# LSL discovery is multicast; this config keeps it on this machine (loopback only), so the
# test never sends a packet to the network.
LSL_MACHINE_ONLY = """[ports]
IPv6 = disable
[multicast]
ResolveScope = machine
MachineAddresses = {127.0.0.1}
[lab]
KnownPeers = {127.0.0.1}
"""

LSL_ROUND_TRIP = """
import json, sys
import pylsl
from edge_ecg.runtime.events import LslSink, WithheldEvent
sink = LslSink(name="edge-ecg-test", source_id="edge-ecg-test-outlet")
found = pylsl.resolve_byprop("source_id", "edge-ecg-test-outlet", timeout=5.0)
if not found:
    sys.exit(3)
inlet = pylsl.StreamInlet(found[0])
inlet.open_stream(timeout=5.0)
sink.emit(WithheldEvent(500, 1.0, 0, ("lead_off",)))
sample, _ = inlet.pull_sample(timeout=5.0)
sink.close()
assert sample is not None and json.loads(sample[0])["reasons"] == ["lead_off"], sample
"""


def test_lsl_outlet_round_trip(tmp_path):
    pytest.importorskip("pylsl")
    import os
    import subprocess
    import sys

    cfg = tmp_path / "lsl_api.cfg"
    cfg.write_text(LSL_MACHINE_ONLY)
    env = dict(os.environ, LSLAPICFG=str(cfg))
    res = subprocess.run([sys.executable, "-c", LSL_ROUND_TRIP], env=env, capture_output=True,
                         text=True, timeout=60)
    if res.returncode == 3:
        pytest.skip("no LSL discovery on this host's loopback")
    assert res.returncode == 0, res.stderr
