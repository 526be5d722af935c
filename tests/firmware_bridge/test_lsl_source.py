"""lsl: an LSL outlet in the test -> the inlet source: the same samples, at the indices their
stamps say, with missing, duplicate and late samples and a backwards clock jump counted.

LSL discovery is multicast/UDP; the config below keeps it on this machine (ResolveScope =
machine), when this module is the first to load liblsl in the process.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid

import numpy as np
import pytest

_CFG = os.path.join(tempfile.gettempdir(), "edge-ecg-lsl_api.cfg")
with open(_CFG, "w") as _f:
    _f.write("[multicast]\nResolveScope = machine\n[ports]\nIPv6 = disable\n")
os.environ.setdefault("LSLAPICFG", _CFG)

try:
    import pylsl
except Exception as exc:   # noqa: BLE001 - ImportError, or liblsl missing
    pytest.skip(f"pylsl with liblsl not available ({exc}): pip install 'edge-ecg[lsl]'",
                allow_module_level=True)

from edge_ecg.errors import SourceError  # noqa: E402
from firmware_bridge.lsl_source import LslSource  # noqa: E402

FS = 500.0


def _outlet(name: str, labels=("ECG II", "ECG V1"), unit="microvolts"):
    info = pylsl.StreamInfo(name, "ECG", len(labels), FS, "float32", name)
    chans = info.desc().append_child("channels")
    for lab in labels:
        c = chans.append_child("channel")
        c.append_child_value("label", lab)
        c.append_child_value("unit", unit)
    return pylsl.StreamOutlet(info)


def _pull(src, n_samples: int, wall_s: float = 10.0) -> list:
    out, t0 = [], time.monotonic()
    while sum(c.n_samples for c in out) < n_samples and time.monotonic() - t0 < wall_s:
        c = src.read(0.2)
        if c is not None:
            out.append(c)
    return out


def test_inlet_gives_the_outlet_samples_with_loss_duplicates_late_and_clock_jumps():
    name = f"edge-ecg-test-{uuid.uuid4().hex[:8]}"
    out = _outlet(name)
    src = LslSource(name, {"timeout": "5"})
    src.open()
    try:
        assert src.leads == ("II", "V1") and src.fs_hz == FS
        t0 = pylsl.local_clock()

        def push(values, stamps):
            out.push_chunk([[float(v), -float(v)] for v in values], [float(t) for t in stamps])

        push(range(0, 100), t0 + np.arange(0, 100) / FS)
        time.sleep(0.05)
        push(range(110, 160), t0 + np.arange(110, 160) / FS)    # 100..109 never sent
        push([159], [t0 + 159 / FS])                               # a duplicate
        push([-1], [t0 + 150 / FS])                                # late, out of order
        push(range(160, 200), t0 + np.arange(160, 200) / FS)
        time.sleep(0.05)
        push(range(200, 250), t0 - 100 + np.arange(200, 250) / FS)  # sender clock reset
        chunks = _pull(src, 240)
    finally:
        src.close()
    idx = np.concatenate([np.arange(c.index, c.end) for c in chunks])
    vals = np.concatenate([c.samples for c in chunks])
    want = np.r_[0:100, 110:250]
    assert np.array_equal(idx, want)                     # index = slot, the gap kept
    assert np.array_equal(vals[:, 0], want) and np.array_equal(vals[:, 1], -want)
    st = src.stats()
    assert (st["missing_samples"], st["gaps"], st["duplicates"], st["late_samples"],
            st["clock_jumps"]) == (10, 1, 1, 1, 1)
    assert chunks[0].gain[0] == 1000.0 and vals.dtype == np.int32     # microvolt counts
    # time correction: the first chunk's device time is its stamp on this machine's clock
    assert abs(chunks[0].device_time_us - (t0 * 1e6 + st["clock_offset_us"])) < 10


def test_units_and_missing_streams():
    name = f"edge-ecg-test-{uuid.uuid4().hex[:8]}"
    out = _outlet(name, labels=("EKG",), unit="millivolts")
    src = LslSource(name, {"timeout": "5"})
    src.open()
    try:
        assert src.leads == ("II",)                       # one unnamed channel: lead II
        t0 = pylsl.local_clock()
        out.push_chunk([[1.5], [-0.25]], [t0, t0 + 1 / FS])
        c = _pull(src, 2)[0]
    finally:
        src.close()
    assert c.samples[:, 0].tolist() == [1500, -250]      # mV -> uV counts
    with pytest.raises(SourceError, match="no LSL stream"):
        LslSource(f"absent-{uuid.uuid4().hex[:8]}", {"timeout": "0.4"}).open()
