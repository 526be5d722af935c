"""The predictor: windows and their beats -> model inputs -> backend -> readable outputs.

Model inputs come from `edge_ecg.signal.contract.prepare_inputs` + `stack_inputs`, the very
functions the training windows go through (`edge_ecg.data.windows.make_windows`), so the
runtime never computes a feature its model was not trained on. Outputs are named by the
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
from edge_ecg.signal.contract import ModelInputs, SignalContract, prepare_inputs, stack_inputs

GATE_PREFIX = "gate_"
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

    def inputs(self, window: np.ndarray, r_peaks: np.ndarray) -> ModelInputs:
        """One window `(window_len, n_source_leads)` filtered mV + R peaks within it."""
        return prepare_inputs(window, self.leads, r_peaks, self.contract)

    def run(self, items: list[ModelInputs]) -> tuple[dict[str, np.ndarray], float]:
        """Backend outputs for a batch, and the inference wall time in seconds."""
        batch = stack_inputs(items)
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
        outputs = {}
        for t in self.tasks:
            v = np.asarray(row[t["output"]], dtype=np.float64)
            labels = list(t.get("labels", ()))
            if t["kind"] == "regression":
                outputs[t["name"]] = {"value": round(float(v.reshape(-1)[0]), 3),
                                      "unit": t.get("unit", "")}
            elif t["kind"] == "binary":
                p = float(v.reshape(-1)[0])
                name = labels[int(p >= 0.5)] if len(labels) == 2 else int(p >= 0.5)
                outputs[t["name"]] = {"label": name, "prob": round(p, 4)}
            else:
                probs = v.reshape(-1)
                k = int(np.argmax(probs))
                outputs[t["name"]] = {
                    "label": labels[k] if k < len(labels) else k,
                    "prob": round(float(probs[k]), 4),
                    "probs": {str(labels[i]) if i < len(labels) else str(i): round(float(p), 4)
                              for i, p in enumerate(probs)},
                }
        experts = {}
        for name, g in row.items():
            if not name.startswith(GATE_PREFIX):
                continue
            g = np.asarray(g)
            if g.ndim < 1:
                continue
            used = np.flatnonzero(g.reshape(-1, g.shape[-1]).max(axis=0) > EXPERT_WEIGHT_MIN)
            path = name[len(GATE_PREFIX):]
            names = expert_names(self.routing, path, g.shape[-1])
            experts[path] = [names[i] for i in used]
        return outputs, experts


def split_rows(out: dict[str, np.ndarray], n: int) -> list[dict[str, np.ndarray]]:
    """Per-window rows of a batched output dict."""
    return [{k: np.asarray(v)[i] for k, v in out.items()} for i in range(n)]
