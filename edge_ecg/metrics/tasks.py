"""Per-task metrics, numpy only (the runtime and `evaluate --bundle` use it without torch).

Regression: MAE in task units. Binary: F1 of the positive class (threshold 0.5) plus accuracy.
Multiclass: accuracy and macro F1 over the classes present in labels or predictions. Per-beat
(kind `beat`): the same over every labelled beat slot, plus sensitivity and positive
predictivity per class (slots, not beats: a beat in two overlapping windows counts twice; the
field's figure is EC57 over a record's stream, `edge_ecg.metrics.beats`).
Windows whose label is NaN (missing) are skipped; `n` says how many were scored.
"""

from __future__ import annotations

import numpy as np

from edge_ecg.data.tasks import TaskSet


def f1_binary(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    tp = float(np.sum((y_pred == 1) & (y_true == 1)))
    fp = float(np.sum((y_pred == 1) & (y_true == 0)))
    fn = float(np.sum((y_pred == 0) & (y_true == 1)))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 1.0


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    classes = np.union1d(y_true, y_pred)
    return float(np.mean([f1_binary((y_true == c).astype(int), (y_pred == c).astype(int))
                          for c in classes])) if classes.size else float("nan")


def task_metrics(tasks: TaskSet, outputs: dict[str, np.ndarray],
                 labels: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """`{task: {metric: value}}` for every task present in both `outputs` and `labels`."""
    result: dict[str, dict[str, float]] = {}
    for t in tasks:
        if t.name not in outputs or t.name not in labels:
            continue
        if t.per_beat:
            result[t.name] = beat_slot_metrics(t.labels, outputs[t.name], labels[t.name])
            continue
        y = np.asarray(labels[t.name], dtype=np.float64).reshape(-1)
        out = np.asarray(outputs[t.name], dtype=np.float64)
        ok = np.isfinite(y)
        n = int(ok.sum())
        if n == 0:
            result[t.name] = {"n": 0}
            continue
        y, out = y[ok], out[ok]
        if t.kind == "regression":
            result[t.name] = {"mae": float(np.mean(np.abs(out.reshape(-1) - y))), "n": n}
        elif t.kind == "binary":
            pred = (out.reshape(-1) >= 0.5).astype(int)
            yt = y.astype(int)
            result[t.name] = {"f1": f1_binary(yt, pred), "accuracy": float(np.mean(pred == yt)),
                              "n": n}
        else:
            pred = np.argmax(out.reshape(n, -1), axis=1)
            yt = y.astype(int)
            result[t.name] = {"accuracy": float(np.mean(pred == yt)),
                              "macro_f1": macro_f1(yt, pred), "n": n}
    return result


def beat_slot_metrics(classes, probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Per-beat-slot scores: `probs` `(N, M', C)` (M' <= M slots), `labels` `(N, M)` NaN =
    unlabelled. Per class: `{name}_n` reference beats, `{name}_se`, `{name}_ppv`."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)[:, : probs.shape[1]]
    ok = np.isfinite(y)
    n = int(ok.sum())
    if n == 0:
        return {"n": 0}
    yt = y[ok].astype(int)
    pred = np.argmax(probs[ok], axis=-1)
    out = {"accuracy": float(np.mean(pred == yt)), "macro_f1": macro_f1(yt, pred), "n": n}
    for c, name in enumerate(classes):
        tp = int(np.sum((pred == c) & (yt == c)))
        n_true, n_pred = int(np.sum(yt == c)), int(np.sum(pred == c))
        out[f"{name}_n"] = n_true
        if n_true:
            out[f"{name}_se"] = tp / n_true
        if n_pred:
            out[f"{name}_ppv"] = tp / n_pred
    return out


def format_metrics(metrics: dict[str, dict[str, float]], units: dict[str, str] | None = None) -> str:
    lines = []
    for task, ms in metrics.items():
        parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in ms.items()]
        unit = f" ({units[task]})" if units and units.get(task) else ""
        lines.append(f"  {task:<13}{unit:<10} " + "  ".join(parts))
    return "\n".join(lines)
