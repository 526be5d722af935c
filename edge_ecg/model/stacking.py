"""Fit a recording-level stacker: multinomial logistic regression over standardised features.

The CinC 2017 winners stacked hand-made RR-irregularity and morphology features on learned
ones (Clifford et al. 2017); this fits the transparent form of that: one weight per feature and
class over the network's recording-level probabilities and the numpy features of
edge_ecg.signal.rhythm_features. The result is a JSON document (edge_ecg.runtime.recording_stack
reads and applies it without sklearn).

Hyper-parameters (the L2 strength C and whether classes are balanced) are chosen by
leave-one-fold-out cross-validation over the folds given, by the CinC challenge score; the
caller passes only training folds, so nothing is chosen on the held-out fold.
"""

from __future__ import annotations

import numpy as np

from edge_ecg.metrics.tasks import f1_binary

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
WEIGHTS = (None, "balanced")
SCORED = {"normal_sinus": "N", "af_or_flutter": "A", "other_rhythm": "O"}   # challenge classes


def challenge_f1(y: np.ndarray, pred: np.ndarray, classes) -> dict:
    """The CinC 2017 score: F1 of N, A and O (one call per recording) and their mean."""
    out = {}
    for name, short in SCORED.items():
        if name in classes:
            c = list(classes).index(name)
            out[f"f1_{short}"] = f1_binary((y == c).astype(int), (pred == c).astype(int))
    out["challenge_f1"] = float(np.mean([v for v in out.values()])) if out else float("nan")
    return out


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0            # a constant column: leave it unscaled (weight ~0)
    return mean, scale


def _fit(x, y, c, weight):
    from sklearn.linear_model import LogisticRegression

    mean, scale = _standardise(x)
    m = LogisticRegression(C=c, class_weight=weight, max_iter=2000)
    m.fit((x - mean) / scale, y)
    return m, mean, scale


def fit_stack(x: np.ndarray, y: np.ndarray, groups: np.ndarray, classes, features,
              task: str, score=challenge_f1, key: str = "challenge_f1",
              cs=C_GRID, weights=WEIGHTS, network_cols: list[int] | None = None) -> dict:
    """The stack's JSON document, fitted on all rows after choosing C and the class weights
    by leave-one-group-out CV (`groups`: the subject folds). `info` holds the CV figures of the
    chosen setting and, with `network_cols` (the columns of the network's mean class
    probabilities), the network alone scored on the same rows."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    ok = y >= 0
    x, y, groups = x[ok], y[ok], np.asarray(groups)[ok]
    present = sorted(set(y.tolist()))
    if present != list(range(len(classes))):
        missing = [classes[i] for i in range(len(classes)) if i not in present]
        raise ValueError(f"the training rows lack the class(es) {missing}; give more data")
    folds = sorted(set(groups.tolist()))
    if len(folds) < 2:
        raise ValueError("cross-validation needs rows from at least two folds")
    trials = []
    for c in cs:
        for w in weights:
            pred = np.empty_like(y)
            for f in folds:
                tr, te = groups != f, groups == f
                m, mean, scale = _fit(x[tr], y[tr], c, w)
                pred[te] = m.predict((x[te] - mean) / scale)
            trials.append((score(y, pred, classes)[key], c, w, pred))
    best = max(trials, key=lambda t: t[0])
    _, c, w, pred = best
    m, mean, scale = _fit(x, y, c, w)
    info = {
        "model": "sklearn LogisticRegression (multinomial, L2), standardised features",
        "C": c, "class_weight": w or "none", "rows": int(y.size),
        "rows_per_class": {classes[i]: int(np.sum(y == i)) for i in range(len(classes))},
        "folds": [int(f) for f in folds],
        "cv": {"what": "leave-one-fold-out over the training folds, chosen setting",
               **score(y, pred, classes)},
        "cv_trials": [{"C": t[1], "class_weight": t[2] or "none", key: round(t[0], 4)}
                      for t in trials],
    }
    if network_cols is not None:
        info["cv_network_alone"] = score(y, np.argmax(x[:, network_cols], axis=1), classes)
    return {"format": "edge-ecg-recording-stack", "format_version": 1, "kind": "logistic",
            "task": task, "classes": list(classes), "features": list(features),
            "mean": mean.tolist(), "scale": scale.tolist(), "coef": m.coef_.tolist(),
            "intercept": m.intercept_.tolist(), "info": info}


__all__ = ["challenge_f1", "fit_stack"]
