"""CinC 2017 recordings through the runtime into recording-level rhythm features.

What `edge-ecg stack` fits on and `edge-ecg evaluate` scores with: each recording's counts
replayed through a `StreamProcessor` into a `RhythmHistory` (edge_ecg.runtime.rhythm_history),
the same features `edge-ecg stream` computes live.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_ecg.runtime.rhythm_history import TASK, feature_names, stream_record_history


def rhythm_classes(manifest) -> tuple[str, ...]:
    task = next((t for t in manifest.tasks if t["name"] == TASK), None)
    if task is None:
        raise ValueError(f"the bundle has no {TASK!r} task")
    return tuple(task["labels"])


def select_entries(entries: list, keep=None, limit: int | None = None, seed: int = 0) -> list:
    """The CinC rows whose subject `keep` accepts; with `limit`, a seeded random subset
    stratified by class (each class's share kept), in file order."""
    rows = [e for e in entries if keep is None or keep(f"cinc-{e.record}")]
    if limit is None or limit >= len(rows):
        return rows
    rng = np.random.default_rng(seed)
    by: dict[str, list[int]] = {}
    for i, e in enumerate(rows):
        by.setdefault(e.label, []).append(i)
    chosen: list[int] = []
    for label, idx in sorted(by.items()):
        n = max(1, int(round(limit * len(idx) / len(rows))))
        chosen += rng.choice(idx, size=min(n, len(idx)), replace=False).tolist()
    return [rows[i] for i in sorted(chosen)]


def cinc_rows(backend, folder: str | Path, entries: list, progress: bool = False
              ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """`(record ids, X (n, F), y (n,))` of CinC `entries` (edge_ecg.data.cinc2017), `y` the
    index of each recording's class in the bundle's rhythm classes (-1 where it has none)."""
    from tqdm import tqdm

    from edge_ecg.data.cinc2017 import LEAD
    from edge_ecg.data.records import read_record

    classes = rhythm_classes(backend.manifest)
    ids, rows, ys = [], [], []
    for e in tqdm(entries, desc="CinC recordings (runtime)", unit="rec", disable=not progress):
        rec = read_record(Path(folder) / e.record)
        hist = stream_record_history(backend, rec.adc, rec.gain, rec.baseline, rec.fs_hz,
                                     (LEAD,), classes)
        ids.append(f"cinc-{e.record}")
        rows.append(hist.features())
        ys.append(classes.index(e.label) if e.label in classes else -1)
    x = np.stack(rows) if rows else np.zeros((0, len(feature_names(classes))))
    return ids, x, np.asarray(ys, dtype=np.int64)


__all__ = ["cinc_rows", "rhythm_classes", "select_entries"]
