"""Where a window came from: its database, by its record id, and where each task's labels came
from (real databases, synthetic patients or both)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:        # annotation only: the metrics import this module without the data set
    from edge_ecg.data.dataset import WindowDataset


# The database a window comes from, by its record id's prefix (each loader names its records).
_PREFIX = {"cinc-": "cinc2017", "ptbxl-": "ptbxl", "ludb-": "ludb", "mitdb-": "mitdb",
           "svdb-": "svdb", "cudb-": "cudb", "synth": "synth"}


def source_of(record_id: str) -> str:
    for prefix, name in _PREFIX.items():
        if record_id.startswith(prefix):
            return name
    return "other"


def label_provenance(ds: WindowDataset) -> dict[str, dict[str, int]]:
    """{task: {database: labelled windows}}: where each task's labels came from."""
    src = np.asarray([source_of(m["record"]) for m in ds.meta])
    out = {}
    for task, y in ds.labels.items():
        ok = np.isfinite(y) if y.ndim == 1 else np.isfinite(y).any(axis=1)   # per-beat: any slot
        names, counts = np.unique(src[ok], return_counts=True)
        out[task] = {str(n): int(c) for n, c in zip(names, counts)}
    return out


def provenance_kind(by: dict[str, int]) -> str | None:
    """"real", "synthetic" or "real+synthetic" for one task's {database: windows}; None if
    it had no labels."""
    if not by:
        return None
    synth, real = "synth" in by, any(k != "synth" for k in by)
    return "real+synthetic" if synth and real else "synthetic" if synth else "real"
