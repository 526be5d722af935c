"""The predictor: windows and their beats -> model inputs -> backend -> readable outputs.

Model inputs come from `edge_ecg.signal.contract.prepare_inputs` + `stack_inputs`, the very
functions the training windows go through (`edge_ecg.data.windows.make_windows`), so the
runtime never computes a feature its model was not trained on. The stream writes them straight
into a reused `InputBatch` (the same code as `prepare_inputs`, without a window's arrays being
allocated, stacked and cast each hop). Outputs are named by the
manifest: per task its value with unit (regression) or label and probabilities (binary,
multiclass); the experts used are read from the `gate_<path>` outputs and named from
`manifest.routing`. Optional smoothing averages the last few windows' outputs.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from edge_ecg.runtime.backends import Backend
from edge_ecg.runtime.recent import RecentValues
from edge_ecg.signal.contract import InputBatch, SignalContract

GATE_PREFIX = "gate_"
KEEP_BATCH = 32              # batch rows kept allocated between hops. A replay at max speed
                             # releases 16 windows a chunk (16-s chunks), at times 17: with 16
                             # kept, such a batch grew to 32 and was let go, and the next grew
                             # again 4 -> 8 -> 16 -> 32 (27 allocations, ~40 ms of a 5-min
                             # replay). Rows never written stay unmapped (zeroed pages); a
                             # real-time stream's batches hold 1-2 windows and never grow.
EXPERT_WEIGHT_MIN = 1e-4     # gate weight above which an expert counts as used (top-k scatter
                             # leaves exact zeros; int8 graphs leave tiny residues)


def expert_names(routing: dict, path: str, n: int) -> list[str]:
    """Names of the `n` experts a `gate_<path>` output spans, from the manifest's routing."""
    paths = routing.get("paths", routing) if isinstance(routing, dict) else {}
    entry = paths.get(path, {}) if isinstance(paths, dict) else {}
    names = entry.get("names") or entry.get("experts") if isinstance(entry, dict) else None
    kept = entry.get("kept") if isinstance(entry, dict) else None
    kept_names = entry.get("kept_names") if isinstance(entry, dict) else None
    if kept_names and len(kept_names) == n:
        return [str(x) for x in kept_names]
    if names and len(names) == n:
        return [str(x) for x in names]
    if names and kept and len(kept) == n:
        return [str(names[k]) if isinstance(k, int) and k < len(names) else str(k) for k in kept]
    if kept and len(kept) == n:
        return [f"{path}{k}" for k in kept]
    return [f"{path}{i}" for i in range(n)]


class Predictor:
    """Runs batches of windows through a backend and names what comes out."""

    def __init__(self, backend: Backend, contract: SignalContract, source_leads: tuple[str, ...],
                 smooth: int = 1) -> None:
        self.backend = backend
        self.contract = contract
        self.leads = tuple(source_leads)
        self.tasks = list(backend.manifest.tasks)
        self.routing = backend.manifest.routing or {}
        self.smooth = max(int(smooth), 1)
        self._history: deque[dict[str, np.ndarray]] = deque(maxlen=self.smooth)
        self._last_end: int | None = None
        self.latency_s = RecentValues()     # inference wall times, the most recent batches
        self._batch = InputBatch(contract)
        self._describe = _Describer(self.tasks, self.routing)

    # windows are written straight into a reused batch: the same numbers as
    # `prepare_inputs` + `stack_inputs`, without a window's arrays allocated, stacked and cast
    def add(self, window: np.ndarray, r_peaks: np.ndarray,
            seg_filled: np.ndarray | None = None, ctx_rows: np.ndarray | None = None) -> int:
        """Queue one window `(window_len, n_source_leads)` filtered mV + R peaks within it into
        the pending batch; returns its row. `seg_filled` `(n_valid_seg,)` bool: the validity
        segments holding filled samples; `ctx_rows`: each peak's patient-context row
        (`edge_ecg.signal.contract.prepare_inputs`)."""
        return self._batch.add(window, self.leads, r_peaks, seg_filled, ctx_rows)

    def add_leads(self, window: np.ndarray, r_peaks: np.ndarray, leads: tuple[str, ...],
                  seg_filled: np.ndarray | None = None,
                  ctx_rows: np.ndarray | None = None) -> int:
        """`add` for a window of some source leads only (`window` `(window_len, len(leads))`):
        the model's leads that none of them gives are zero and masked (`lead_mask`), exactly
        as for a monitor with fewer leads (limb leads derived only from a measured I and II)."""
        return self._batch.add(window, leads, r_peaks, seg_filled, ctx_rows)

    @property
    def pending(self) -> int:
        """Windows queued by `add` since the last `run_pending`."""
        return self._batch.n

    def pending_inputs(self) -> dict[str, np.ndarray]:
        """The queued windows' model inputs, `{name: (pending, ...)}` (views into the reused
        batch: valid until `run_pending` or `clear_pending`)."""
        return self._batch.arrays()

    def clear_pending(self) -> None:
        """Drop the windows queued by `add` and not run."""
        self._batch.clear()

    def run_pending(self) -> tuple[dict[str, np.ndarray], float]:
        """Backend outputs for the windows queued by `add` (then cleared), and the inference
        wall time in seconds."""
        try:
            return self._infer(self._batch.arrays())
        finally:
            self._batch.clear()
            if self._batch.capacity > KEEP_BATCH:   # a burst (end of stream, a stall): let
                self._batch = InputBatch(self.contract)   # its memory go, ~0.8 MB a window

    def _infer(self, batch: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float]:
        t0 = time.perf_counter()
        out = self.backend.run(batch)
        dt = time.perf_counter() - t0
        self.latency_s.add(dt)
        return out, dt

    def smoothed(self, row: dict[str, np.ndarray], end: int, contiguous: bool) -> dict:
        """Mean of this window's outputs and the previous ones (reset after a withheld one)."""
        if self.smooth == 1:
            return row
        if not contiguous:
            self._history.clear()
        self._history.append(row)
        return {k: np.mean([h[k] for h in self._history], axis=0) for k in row}

    def describe(self, row: dict[str, np.ndarray]) -> tuple[dict, dict]:
        """Readable outputs and experts used, from one window's output row."""
        return self._describe(row)

    def describe_batch(self, out: dict[str, np.ndarray], n: int) -> list[tuple[dict, dict]]:
        """`[describe(row) for row in split_rows(out, n)]`, with the array work done once for
        the batch (the stream's path when nothing is smoothed)."""
        return self._describe.batch(out, n)


class _Describer:
    """`Predictor.describe`, with what depends only on the manifest worked out once.

    Per task: regression `{"value", "unit"}` rounded to 3 places; binary `{"label", "prob"}`
    (label by p >= 0.5); multiclass `{"label", "prob", "probs"}` rounded to 4 places; a
    per-beat task is left to the stream, which knows the window's beats
    (`edge_ecg.runtime.beat_classes`). Per
    gated path: the names of the experts whose gate weight exceeds `EXPERT_WEIGHT_MIN` in
    some task. Values go through Python floats (`tolist`), the numbers `float()` gives.
    """

    def __init__(self, tasks: list[dict], routing: dict) -> None:
        self.routing = routing
        self.tasks = []
        for t in tasks:
            labels = list(t.get("labels", ()))
            self.tasks.append((t["name"], t["output"], t["kind"], t.get("unit", ""), labels,
                               [str(lb) for lb in labels]))
        # Tasks learned from synthetic signals only (potassium: no real labels exist) say so
        # beside every output of theirs (manifest `trained_on`).
        self.synthetic = {t["name"] for t in tasks if t.get("trained_on") == "synthetic"}
        self._names: dict[tuple[str, int], list[str]] = {}

    def __call__(self, row: dict[str, np.ndarray]) -> tuple[dict, dict]:
        return self.batch({k: np.asarray(v)[None] for k, v in row.items()}, 1)[0]

    def batch(self, out: dict[str, np.ndarray], n: int) -> list[tuple[dict, dict]]:
        """Per row of a batched output dict: `(outputs, experts)`."""
        rows: list[tuple[dict, dict]] = [({}, {}) for _ in range(n)]
        for name, key, kind, unit, labels, keys in self.tasks:
            if kind == "beat":          # per beat slot: the stream reads it with the beats
                continue
            v = np.asarray(out[key]).reshape(n, -1)
            if kind == "regression":
                for (outputs, _), x in zip(rows, v[:, 0].tolist()):
                    outputs[name] = {"value": round(float(x), 3), "unit": unit}
            elif kind == "binary":
                for (outputs, _), p in zip(rows, v[:, 0].tolist()):
                    p = float(p)
                    lab = labels[int(p >= 0.5)] if len(labels) == 2 else int(p >= 0.5)
                    outputs[name] = {"label": lab, "prob": round(p, 4)}
            else:
                n_lab = len(labels)
                names = [keys[i] if i < n_lab else str(i) for i in range(v.shape[1])]
                for (outputs, _), k, probs in zip(rows, np.argmax(v, axis=1).tolist(),
                                                  v.tolist()):
                    outputs[name] = {
                        "label": labels[k] if k < n_lab else k,
                        "prob": round(float(probs[k]), 4),
                        "probs": {nm: round(float(p), 4) for nm, p in zip(names, probs)},
                    }
            if name in self.synthetic:
                for outputs, _ in rows:
                    outputs[name]["trained_on"] = "synthetic"
        for name, g in out.items():
            if not name.startswith(GATE_PREFIX):
                continue
            g = np.asarray(g)
            if g.ndim < 2:
                continue
            n_exp = g.shape[-1]
            used = (g.reshape(n, -1, n_exp).max(axis=1) > EXPERT_WEIGHT_MIN).tolist()
            path = name[len(GATE_PREFIX):]
            gate_names = self._names.get((path, n_exp))
            if gate_names is None:
                gate_names = self._names[(path, n_exp)] = expert_names(self.routing, path, n_exp)
            for (_, experts), u in zip(rows, used):
                experts[path] = [nm for nm, on in zip(gate_names, u) if on]
        return rows


def split_rows(out: dict[str, np.ndarray], n: int) -> list[dict[str, np.ndarray]]:
    """Per-window rows of a batched output dict."""
    return [{k: np.asarray(v)[i] for k, v in out.items()} for i in range(n)]


__all__ = ["EXPERT_WEIGHT_MIN", "GATE_PREFIX", "KEEP_BATCH", "Predictor", "expert_names",
           "split_rows"]
