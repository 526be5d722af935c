"""The rows a per-beat stack is fitted on (`edge_ecg.model.beat_stacking`), through the
runtime's own chain: the record conditioned as a stream conditions it, the detector, the patient
context, windows every hop, and each beat's features and network probabilities taken from the
window `BeatClasses` picks for it, so the trees are fitted on exactly the numbers the runtime
hands them (`edge_ecg.runtime.beat_stack.stack_features`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ecg.runtime.beat_stack import FEATURES, stack_features
from edge_ecg.signal.contract import SignalContract


@dataclass(frozen=True)
class BeatRows:
    """One record's detected beats: stack features, reference class (-1: none), and the
    network's own probabilities from the window that classifies each beat."""

    record: str
    subject: str
    x: np.ndarray          # (D, len(FEATURES)) float64
    y: np.ndarray          # (D,) int64, index into the task's labels; -1 = no reference class
    p_net: np.ndarray      # (D, K) float32


def labelled_beats(path: str | Path, db: str, c: SignalContract, labels,
                   seconds: float | None = None):
    """`(lr, y, r, cls)` of one record: the loaded record, its signal conditioned as a stream
    conditions it `(T, L)`, the runtime's detected R peaks and each peak's reference class
    (index into `labels`; -1 none, or a class the task lacks)."""
    from edge_ecg.data.aami import AAMI_CLASSES
    from edge_ecg.data.mitbih import load_record
    from edge_ecg.data.windows import condition_signal, fill_invalid
    from edge_ecg.signal.qrs import detect_beats
    from edge_ecg.signal.scoring import MATCH_TOLERANCE_S, match_beats

    lr = load_record(Path(str(path).removesuffix(".hea")), (), db=db, seconds=seconds)
    x, _ = fill_invalid(lr.signal)
    y = condition_signal(x, float(lr.fs_hz), c)
    r = detect_beats(y, c.fs_hz)
    fs, src = float(c.fs_hz), float(lr.fs_hz)
    ref = np.round(np.asarray(lr.ref_beats) * (fs / src)).astype(np.int64)
    ref_cls = np.asarray(lr.meta.get("beat_classes", [-1] * ref.size), dtype=np.int64)
    to_task = np.array([list(labels).index(a) if a in labels else -1 for a in AAMI_CLASSES])
    mr, md = match_beats(ref, r, round(MATCH_TOLERANCE_S * fs))
    cls = np.full(r.size, -1, np.int64)
    ok = ref_cls[mr] >= 0
    cls[md[ok]] = to_task[ref_cls[mr[ok]]]
    return lr, y, r, cls


def record_rows(path: str | Path, db: str, backend, seconds: float | None = None) -> BeatRows:
    """The `BeatRows` of one record of database `db`, through `backend` (opened with
    `beat_stack=False`: the network's own probabilities)."""
    from edge_ecg.data.mitbih import subject_of
    from edge_ecg.data.windows import window_starts
    from edge_ecg.runtime.beat_classes import BeatClasses
    from edge_ecg.signal.contract import InputBatch
    from edge_ecg.signal.patient_context import context_rows

    c = SignalContract.from_dict(backend.manifest.signal)
    task = next((t for t in backend.manifest.tasks if t["kind"] == "beat"), None)
    if task is None or "beat_ctx" not in backend.manifest.inputs:
        raise ValueError("the bundle has no per-beat task reading the patient context")
    labels = list(task.get("labels", []))
    path = Path(str(path).removesuffix(".hea"))
    lr, y, r, cls = labelled_beats(path, db, c, labels, seconds)
    pre, post = c.beat_pre, c.beat_len - c.beat_pre
    ctx = context_rows(y, r, c.fs_hz, pre, post)
    starts = window_starts(y.shape[0], c, None)
    bc = BeatClasses(labels, pre, post, c.fs_hz, c.max_beats, c.window_len)
    w = c.window_len
    feats = np.zeros((r.size, len(FEATURES)))
    probs = np.zeros((r.size, len(labels)), np.float32)
    have = np.zeros(r.size, bool)
    where = {int(b): i for i, b in enumerate(r.tolist())}
    batch = InputBatch(c, capacity=16)
    lo, hi = np.searchsorted(r, starts), np.searchsorted(r, starts + w)
    leads = tuple(lr.leads)
    for i in range(0, len(starts), 16):
        part = range(i, min(i + 16, len(starts)))
        batch.clear()
        for k in part:
            batch.add(y[starts[k]:starts[k] + w], leads, r[lo[k]:hi[k]] - starts[k],
                      ctx_rows=ctx[lo[k]:hi[k]])
        arrays = batch.arrays()
        out = np.asarray(backend.run(arrays)[task["output"]])
        for j, k in enumerate(part):
            s, beats = int(starts[k]), r[lo[k]:hi[k]]
            claimed = bc.claim(beats, s, s + w)
            slot = {int(b): m for m, b in enumerate(bc.slots(beats, s, s + w).tolist())}
            for b in claimed:
                m = slot.get(b)
                if m is None or m >= out.shape[1] or b - pre < s:
                    continue
                d = where[b]
                feats[d] = stack_features(arrays["beat_rr"][j, m], arrays["beat_ctx"][j, m])
                probs[d] = out[j, m]
                have[d] = True
    return BeatRows(record=f"{db}-{path.name}", subject=subject_of(path, db), x=feats[have],
                    y=cls[have], p_net=probs[have])


def record_run_rows(path: str | Path, db: str, signal: dict, labels, runs: int,
                    seed: int = 0) -> BeatRows:
    """`BeatRows` of `runs` synthetic sustained runs made from the record's own V and S beats
    (edge_ecg.runtime.beat_stack_runs), for the trees' fits; no network probabilities
    (zeros). `signal`: the bundle's signal contract; the generator is seeded by `seed` and the
    record's name, so a record lends the same runs in whichever process makes them."""
    import zlib

    from edge_ecg.data.mitbih import subject_of
    from edge_ecg.runtime.beat_stack_runs import run_rows

    c = SignalContract.from_dict(signal)
    labels = list(labels)
    path = Path(str(path).removesuffix(".hea"))
    _, y, r, cls = labelled_beats(path, db, c, labels)
    rng = np.random.default_rng([seed, zlib.crc32(f"{db}-{path.name}".encode())])
    kinds = tuple(labels.index(k) for k in ("V", "S") if k in labels)
    x, lab = (run_rows(y, r, cls, c, kinds, runs, rng) if "V" in labels
              else (np.zeros((0, len(FEATURES))), np.zeros(0, np.int64)))
    return BeatRows(record=f"{db}-{path.name}", subject=subject_of(path, db), x=x, y=lab,
                    p_net=np.zeros((lab.size, len(labels)), np.float32))


__all__ = ["BeatRows", "labelled_beats", "record_rows", "record_run_rows"]
