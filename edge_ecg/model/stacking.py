"""Fit a recording-level stacker over the network's recording-level probabilities and the
numpy features of edge_ecg.signal.rhythm_features.

The CinC 2017 winners stacked hand-made RR-irregularity and morphology features on learned
ones (Clifford et al. 2017). Two forms compete here:
- multinomial logistic regression over standardised features (one weight per feature and
  class: the transparent form), for each L2 strength C and with or without balanced classes;
- gradient-boosted trees (sklearn's HistGradientBoostingClassifier, the form the beat stack
  already uses), a few fixed settings: interactions a linear map cannot draw (an irregular
  RR *and* P waves present is not AF).

The one with the best leave-one-fold-out cross-validated CinC challenge score over the folds
given is refitted on all rows. The caller passes only training folds, so nothing is chosen on
the held-out fold. The result is a JSON document (edge_ecg.runtime.recording_stack reads and
applies either kind without sklearn).
"""

from __future__ import annotations

import numpy as np

from edge_ecg.metrics.tasks import f1_binary

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
WEIGHTS = (None, "balanced")
# (depth, iterations, learning rate, min samples a leaf): the beat stack's setting with
# smaller leaves (a few thousand recordings, not 120 000 beats), one shallower with more
# iterations, one with larger leaves
GBT_GRID = ((3, 150, 0.1, 20), (2, 300, 0.1, 20), (3, 100, 0.1, 50))
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


def _fit_gbt(x, y, setting, seed: int = 0):
    from sklearn.ensemble import HistGradientBoostingClassifier

    depth, iters, lr, leaf = setting
    return HistGradientBoostingClassifier(max_depth=depth, max_iter=iters, learning_rate=lr,
                                          min_samples_leaf=leaf, early_stopping=False,
                                          random_state=seed).fit(x, y)


def fit_stack(x: np.ndarray, y: np.ndarray, groups: np.ndarray, classes, features,
              task: str, score=challenge_f1, key: str = "challenge_f1",
              cs=C_GRID, weights=WEIGHTS, network_cols: list[int] | None = None,
              gbt=GBT_GRID) -> dict:
    """The stack's JSON document, fitted on all rows after choosing the form and its setting
    (C and class weights; the trees' setting) by leave-one-group-out CV (`groups`: the
    subject folds). `info` holds the CV figures of the chosen setting and, with
    `network_cols` (the columns of the network's mean class probabilities), the network
    alone scored on the same rows. `gbt=()` keeps to the logistic form."""
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
            trials.append((score(y, pred, classes)[key], ("logistic", c, w), pred))
    for setting in gbt:
        pred = np.empty_like(y)
        for f in folds:
            tr, te = groups != f, groups == f
            pred[te] = _fit_gbt(x[tr], y[tr], setting).predict(x[te])
        trials.append((score(y, pred, classes)[key], ("gbt", *setting), pred))
    # the first of equal scores: the logistic form (the more transparent) before the trees
    best = max(trials, key=lambda t: t[0])
    _, spec, pred = best
    info = {"rows": int(y.size),
        "rows_per_class": {classes[i]: int(np.sum(y == i)) for i in range(len(classes))},
        "folds": [int(f) for f in folds],
        "cv": {"what": "leave-one-fold-out over the training folds, chosen setting",
               **score(y, pred, classes)},
        "cv_trials": [{**_setting(t[1]), key: round(t[0], 4)} for t in trials],
    }
    if network_cols is not None:
        info["cv_network_alone"] = score(y, np.argmax(x[:, network_cols], axis=1), classes)
    head = {"format": "edge-ecg-recording-stack", "format_version": 1, "task": task,
            "classes": list(classes), "features": list(features)}
    info.update(_setting(spec))
    if spec[0] == "gbt":
        from edge_ecg.model.beat_stacking import export_trees

        info["model"] = "sklearn HistGradientBoostingClassifier on the raw features"
        return {**head, "kind": "gbt", **export_trees(_fit_gbt(x, y, spec[1:])), "info": info}
    _, c, w = spec
    m, mean, scale = _fit(x, y, c, w)
    info["model"] = "sklearn LogisticRegression (multinomial, L2), standardised features"
    return {**head, "kind": "logistic", "mean": mean.tolist(), "scale": scale.tolist(),
            "coef": m.coef_.tolist(), "intercept": m.intercept_.tolist(), "info": info}


def _setting(spec: tuple) -> dict:
    if spec[0] == "gbt":
        return {"form": "gbt", **dict(zip(("depth", "iterations", "learning_rate",
                                            "min_samples_leaf"), spec[1:]))}
    return {"form": "logistic", "C": spec[1], "class_weight": spec[2] or "none"}


__all__ = ["C_GRID", "GBT_GRID", "challenge_f1", "fit_stack"]
