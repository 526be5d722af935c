"""The patient context in the stream == in training: the `beat_ctx` rows the stream hands the
backend, in random chunkings, are those `make_windows` gives the same record offline.

Real signal: the packaged MIT-BIH 223 excerpt (PVCs, a VT run, bigeminy; 2 leads at 360 Hz,
resampled to the fixture bundle's 500 Hz as a monitor's would be), no ../shared/data needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_ecg.data.records import read_record
from edge_ecg.data.windows import make_windows
from edge_ecg.runtime.backends import open_backend
from edge_ecg.runtime.stream_processor import StreamProcessor
from edge_ecg.signal.chunk import Chunk
from edge_ecg.signal.contract import SignalContract
from edge_ecg.signal.patient_context import CONTEXT_COLUMNS

REPO = Path(__file__).resolve().parents[2]
EXCERPT = REPO / "edge_ecg" / "assets" / "demo" / "mitdb_223_excerpt"
SECONDS = 50
C = {k: i for i, k in enumerate(CONTEXT_COLUMNS)}


@pytest.fixture(scope="module")
def spied(fixture_bundle):
    """The fixture backend, recording the `beat_ctx` of every batch it runs."""
    be = open_backend(fixture_bundle)
    assert "beat_ctx" in be.manifest.inputs
    seen: list[np.ndarray] = []
    run = be.run

    def spy(inputs):
        seen.append(np.array(inputs["beat_ctx"], copy=True))
        return run(inputs)

    be.run = spy
    yield be, seen
    be.close()


def test_stream_beat_ctx_equals_make_windows_in_random_chunks(spied):
    be, seen = spied
    rec = read_record(EXCERPT)
    n = int(SECONDS * rec.fs_hz)
    adc, fs = rec.adc[:n], rec.fs_hz
    mv = ((adc - rec.baseline) / rec.gain).astype(np.float32)
    contract = SignalContract.from_dict(be.manifest.signal)
    starts, items = make_windows(mv, fs, rec.leads, contract, hop_s=contract.hop_s)
    offline = {int(s): it.beat_ctx for s, it in zip(starts, items)}
    # the record has context worth comparing: learned rows, and PVCs premature against it
    allrows = np.concatenate([it.beat_ctx[it.beat_ctx[:, C["known"]] > 0] for it in items])
    assert allrows[:, C["learned"]].mean() > 0.9
    assert (allrows[:, C["pre_local"]] < 0.85).sum() >= 5
    for seed in (0, 1, 2):
        seen.clear()
        proc = StreamProcessor(be, keep_outputs=True)
        rng, pos = np.random.default_rng(seed), 0
        while pos < n:
            k = int(rng.integers(1, 900))
            proc.feed(Chunk(index=pos, seq=0, device_time_us=0, samples=adc[pos:pos + k],
                            gain=rec.gain, baseline=rec.baseline, leads=rec.leads, fs_hz=fs))
            pos += k
        proc.finish()
        got = np.concatenate(seen) if seen else np.zeros((0,))
        stream_starts = [int(s) for s, _ in proc.outputs]
        assert stream_starts == [int(s) for s in starts], seed
        assert got.shape[0] == len(stream_starts)
        for s, row in zip(stream_starts, got):
            np.testing.assert_allclose(row, offline[s], rtol=0, atol=1e-5,
                                       err_msg=f"seed {seed}, window at {s}")
