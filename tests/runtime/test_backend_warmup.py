"""Backend.warmup runs the model on every input of the bundle's contract (with one input
missing from its shape table it used to return without running anything)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_ecg.runtime.backends import open_backend

BUNDLE = Path(__file__).resolve().parents[2] / "edge_ecg" / "assets" / "default_bundle"


def test_warmup_runs_every_input_at_batch_1():
    backend = open_backend(BUNDLE, threads=1)
    seen = []
    run = backend.run

    def spy(inputs):
        seen.append({k: v.shape for k, v in inputs.items()})
        return run(inputs)

    backend.run = spy
    backend.warmup(runs=2)
    assert len(seen) == 2
    assert sorted(seen[0]) == sorted(backend.input_names)
    assert all(shape[0] == 1 for shape in seen[0].values())
    out = run({k: np.zeros(s, np.float32) for k, s in seen[0].items()})
    assert set(backend.output_names) <= set(out)
