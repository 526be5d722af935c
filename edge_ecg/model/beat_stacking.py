"""Fit the per-beat stack (`edge_ecg.runtime.beat_stack`): gradient-boosted trees on the
beat's RR and patient context, and the share `w` they get beside the network.

- Rows: every detected beat of the training records (MIT-BIH, SVDB: the databases whose beats
  carry classes), through the runtime's own chain (`condition_signal`, the detector, the
  patient context, windows every hop, each beat taken from the window `BeatClasses` picks), so
  the trees read exactly the numbers the runtime hands them. The label is the reference beat
  matched to the detection (EC57's 150 ms); unmatched detections are left out.
- Trees: sklearn's HistGradientBoostingClassifier, depth GBT_DEPTH, GBT_ITER iterations,
  class weights the inverse square root of the class counts (bench/beats_classes.py's `gbt`
  peer, unchanged: chosen before any figure was seen).
- `w`: chosen where both the network and the trees see patients they never trained on. The
  score is the mean of the V and S F1 over those beats. Never a test fold: the caller passes
  training folds only. Two ways:
  - out of fold (`oof`, preferred): each training fold's records scored by a network trained
    without that fold (a proxy of the shipped one: same architecture and recipe, on the other
    training folds' beat data) and by trees fitted on the other training folds. Every
    training patient then votes, ~50 records instead of ~5.
  - on the network's VALIDATION patients (the subjects `edge-ecg train` held out of its
    training, named in the checkpoint's metrics.json), with the trees refitted without them.
    Measured on the bundle of 2026-12-06: those 5 records (mostly SVDB, where the network
    already finds S beats) chose w = 0.25, and on unseen MIT-BIH patients the network with
    that stack called too few S beats (BENCHMARKS, "peers against the network").

- Stacked (out of fold only): beside the shares, trees that read each beat's out-of-fold
  network log-probabilities as features too (kind "gbt-stacked", Wolpert's stacked
  generalization): scored the same way, fold k's trees fitted on the other folds' out-of-fold
  rows. Chosen only if its mean F1 beats every share's.

- Synthetic sustained runs (`runs`, edge_ecg.runtime.beat_stack_runs; off in the shipped
  recipe, see there): rows of runs laid from each training patient's own V and S beats (the
  shared training records hold no ventricular run beyond 18 beats). They join every trees'
  fit of the shares (fold k's trees take the other folds' runs only), never the rows `w` is
  scored on; fold k's own runs are scored by its trees as a figure of their own (how many of a
  held-out patient's run beats the trees call V).

The shipped trees are then refitted on all the rows, with the chosen `w`; a stacked choice is
refitted on all the out-of-fold rows (the shipped network's rows on its own training patients
would teach the trees to trust it more than it earns on new ones).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

GBT_DEPTH = 3
GBT_ITER = 150
GBT_LR = 0.1
MIN_LEAF = 50
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)      # w: the trees' share, 0 = the network alone
STACKED = "stacked"                        # the trees reading the network (kind gbt-stacked)
P_FLOOR = 1e-4                             # as edge_ecg.runtime.beat_stack floors them


def _sample_weights(y: np.ndarray) -> np.ndarray:
    counts = np.bincount(y).astype(np.float64)
    w = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1.0)), 0.0)
    w = w / w[y].mean()
    return w[y]


def fit_trees(x: np.ndarray, y: np.ndarray, seed: int = 0):
    from sklearn.ensemble import HistGradientBoostingClassifier

    m = HistGradientBoostingClassifier(max_depth=GBT_DEPTH, max_iter=GBT_ITER,
                                       learning_rate=GBT_LR, min_samples_leaf=MIN_LEAF,
                                       early_stopping=False, random_state=seed)
    m.fit(x, y, sample_weight=_sample_weights(y))
    return m


def export_trees(model) -> dict:
    """The fields of a beat-stack document that hold the fitted trees: flat node arrays (sklearn
    keeps each tree's nodes parents first), roots, each tree's class and the baseline.
    tests/runtime/test_beat_stack.py holds the numpy evaluation equal to `predict_proba`."""
    feature, threshold, left, right, value, roots, tree_class = [], [], [], [], [], [], []
    for stage in model._predictors:            # one list per iteration, one tree per class
        for k, tree in enumerate(stage):
            nodes = tree.nodes
            base = len(feature)
            roots.append(base)
            tree_class.append(k)
            leaf = nodes["is_leaf"].astype(bool)
            feature += np.where(leaf, 0, nodes["feature_idx"]).astype(int).tolist()
            threshold += np.where(leaf, 0.0, nodes["num_threshold"]).astype(float).tolist()
            left += np.where(leaf, -1, nodes["left"].astype(np.int64) + base).tolist()
            right += np.where(leaf, -1, nodes["right"].astype(np.int64) + base).tolist()
            value += nodes["value"].astype(float).tolist()
    baseline = np.asarray(model._baseline_prediction, dtype=np.float64).ravel()
    return {"nodes": {"feature": feature, "threshold": threshold, "left": left,
                      "right": right, "value": value},
            "roots": roots, "tree_class": tree_class, "baseline": baseline.tolist(),
            "tree_classes": [int(c) for c in model.classes_]}


def document(model, task: str, labels, features, weight: float, info: dict,
             stacked: bool = False) -> dict:
    """The stack's JSON document (`edge_ecg.runtime.beat_stack` reads and checks it).
    `stacked`: the trees read `features` and then the network's log-probabilities."""
    feats = list(stacked_features(features, labels)) if stacked else list(features)
    return {"format": "edge-ecg-beat-stack", "format_version": 1,
            "kind": "gbt-stacked" if stacked else "gbt",
            "task": task, "classes": list(labels), "features": feats,
            "weight": 1.0 if stacked else float(weight), **export_trees(model), "info": info}


def stacked_features(features, labels) -> tuple[str, ...]:
    """The stacked trees' feature names: `features`, then each class's network log-probability
    (the runtime holds its own list to the same names)."""
    return (*features, *(f"log_p_{c}" for c in labels))


def with_log_p(x: np.ndarray, p_net: np.ndarray) -> np.ndarray:
    """The stacked trees' rows: `x`, then the network's floored log-probabilities."""
    return np.concatenate([x, np.log(np.maximum(np.asarray(p_net, np.float64), P_FLOOR))],
                          axis=1)


def class_scores(y: np.ndarray, pred: np.ndarray, labels) -> dict:
    """Gross Se, +P and F1 of each class over beats with a reference class."""
    out = {}
    ok = y >= 0
    y, pred = y[ok], pred[ok]
    for i, name in enumerate(labels):
        tp = int(np.sum((y == i) & (pred == i)))
        n_ref, n_pred = int(np.sum(y == i)), int(np.sum(pred == i))
        se = tp / n_ref if n_ref else float("nan")
        ppv = tp / n_pred if n_pred else float("nan")
        # no such beat and none called: agreement (a record without S beats must not make a
        # stack that calls none look worse than one that calls some falsely)
        f1 = 2 * tp / (n_ref + n_pred) if (n_ref + n_pred) else 1.0
        out[name] = {"se": se, "ppv": ppv, "f1": f1, "n": n_ref}
    return out


def _objective(scores: dict) -> float:
    f = [scores[c]["f1"] for c in ("V", "S") if c in scores]
    f = [0.0 if np.isnan(v) else v for v in f]
    return float(np.mean(f)) if f else 0.0


def _score(ys: np.ndarray, pred: np.ndarray, labels, name: str, log) -> dict:
    sc = class_scores(ys, pred, labels)
    t = {"objective": _objective(sc),
         **{f"{c}_{k}": sc[c][k] for c in ("V", "S") if c in sc
            for k in ("se", "ppv") if not np.isnan(sc[c][k])}}
    log(f"  {name}: V Se {t.get('V_se', np.nan):.3f} +P {t.get('V_ppv', np.nan):.3f}, "
        f"S Se {t.get('S_se', np.nan):.3f} +P {t.get('S_ppv', np.nan):.3f}  "
        f"(mean F1 of V and S {t['objective']:.3f})")
    return t


def _score_weights(sets, task: str, labels, features, fuse, log) -> dict:
    """`{w: {"objective", "V_se", ...}}` over the pooled beats of `sets`: `(trees, x, y, p_net)`
    each, a set's beats fused with its own trees."""
    ys = np.concatenate([s[2] for s in sets])
    table = {}
    for w in WEIGHTS:
        pred = np.concatenate([np.argmax(fuse(document(m, task, labels, features, w, {}), p, x),
                                         axis=1) for m, x, _, p in sets])
        table[w] = _score(ys, pred, labels, f"w={w:.2f}", log)
    return table


def _score_stacked(held: dict, task: str, labels, features, fuse, seed: int, log) -> dict:
    """The stacked form scored out of fold: fold k's out-of-fold rows through trees fitted on
    the other folds' out-of-fold rows (`held`: `{fold: (x, y, p_net)}`)."""
    ys, pred = [], []
    for k, (x, y, p) in held.items():
        xt = np.concatenate([with_log_p(h[0], h[2]) for j, h in held.items() if j != k])
        yt = np.concatenate([h[1] for j, h in held.items() if j != k])
        doc = document(fit_trees(xt, yt, seed), task, labels, features, 1.0, {}, stacked=True)
        pred.append(np.argmax(fuse(doc, p, x), axis=1))
        ys.append(y)
    return _score(np.concatenate(ys), np.concatenate(pred), labels, STACKED, log)


def _xy(rs, with_p: bool = False):
    keep = np.concatenate([r.y for r in rs]) >= 0
    out = (np.concatenate([r.x for r in rs])[keep], np.concatenate([r.y for r in rs])[keep])
    return (*out, np.concatenate([r.p_net for r in rs])[keep]) if with_p else out


def _runs_score(model, runs, labels, name: str, log) -> float | None:
    """The share of held-out synthetic run beats labelled V that `model` calls V."""
    if not runs or "V" not in labels:
        return None
    x, y = _xy(runs)
    v = y == list(labels).index("V")
    if not v.any():
        return None
    classes = list(model.classes_)
    pred = np.asarray(classes)[np.argmax(model.predict_proba(x[v]), axis=1)]
    se = float(np.mean(pred == list(labels).index("V")))
    log(f"  {name}: the trees call {se:.3f} of {int(v.sum())} held-out synthetic run beats V")
    return se


def fit_beat_stack(rows, val_subjects: set[str] | None, task: str, labels, features,
                   fuse: Callable[[dict, np.ndarray, np.ndarray], np.ndarray],
                   seed: int = 0, log=print, oof: dict[int, list] | None = None,
                   fold_of: Callable[[str], int] | None = None,
                   runs: list | None = None) -> dict:
    """The fitted stack's document: `w` chosen (see the module docstring), then the trees
    refitted on all rows. `rows`: `BeatRows` (edge_ecg.runtime.beat_stack_rows) through the
    shipped network; `fuse(doc, p_net, x)`: the runtime's fused probabilities of feature rows
    `x` under a document (the model layer does not import the runtime: the caller hands its
    implementation in, so the choice is made with the very code that applies it).

    `oof`: `{fold: rows}`, each fold's records through a network trained without that fold,
    and `fold_of(subject)` the fold of a row's subject: `w` is then chosen out of fold, with
    the trees of fold k fitted on `rows` of the other folds. Otherwise `val_subjects` choose it.
    `runs`: synthetic run rows (`BeatRows`, one per record), added to the trees' fits only."""
    labelled = [r for r in rows if (r.y >= 0).any()]
    runs = [r for r in (runs or []) if (r.y >= 0).any()]
    runs_se: dict[str, float] = {}
    if oof:
        if fold_of is None:
            raise ValueError("out-of-fold rows need fold_of(subject)")
        sets, used, held_by_fold = [], [], {}
        for k in sorted(oof):
            held = [r for r in oof[k] if (r.y >= 0).any()]
            wrong = sorted({r.record for r in held if fold_of(r.subject) != k})
            if wrong:
                raise ValueError(f"out-of-fold rows of fold {k} hold records of other folds "
                                 f"({', '.join(wrong[:5])})")
            others = [r for r in labelled if fold_of(r.subject) != k]
            if not held or not others:
                raise ValueError(f"fold {k}: need labelled records in it and out of it")
            own_runs = [r for r in runs if fold_of(r.subject) == k]
            xt, yt = _xy(others + [r for r in runs if fold_of(r.subject) != k])
            log(f"beat stack: fold {k}: {len(held)} record(s) through its own network, trees "
                f"fitted on {len(others)} record(s) of the other folds ({yt.size} beats"
                + (", their synthetic runs included)" if runs else ")"))
            held_by_fold[k] = _xy(held, with_p=True)
            sets.append((fit_trees(xt, yt, seed), *held_by_fold[k]))
            se = _runs_score(sets[-1][0], own_runs, labels, f"fold {k}", log)
            if se is not None:
                runs_se[str(k)] = se
            used += [r.record for r in held]
        log(f"beat stack: choosing w out of fold on {len(used)} record(s), "
            f"{sum(s[2].size for s in sets)} beats")
        table = _score_weights(sets, task, labels, features, fuse, log)
        if len(held_by_fold) >= 2:
            table[STACKED] = _score_stacked(held_by_fold, task, labels, features, fuse, seed,
                                            log)
        chosen_on = (f"out of fold: folds {', '.join(str(k) for k in sorted(oof))}, each "
                     "through a network and trees trained without it (never a test fold)")
        val_records = sorted(used)
    else:
        val_subjects = set(val_subjects or ())
        val = [r for r in labelled if r.subject in val_subjects]
        train = [r for r in labelled if r.subject not in val_subjects]
        train_runs = [r for r in runs if r.subject not in val_subjects]
        if not val or not train:
            raise ValueError(f"need labelled records both in and out of the validation "
                             f"subjects (got {len(val)} in, {len(train)} out); pass the "
                             "checkpoint whose metrics.json names the network's validation "
                             "subjects")
        xt, yt = _xy(train + train_runs)
        log(f"beat stack: choosing w on {len(val)} validation record(s) "
            f"({', '.join(r.record for r in val)}); trees fitted on {len(train)} record(s), "
            f"{yt.size} beats")
        table = _score_weights([(fit_trees(xt, yt, seed), *_xy(val, with_p=True))],
                               task, labels, features, fuse, log)
        chosen_on = "the network's validation subjects (never a test fold)"
        val_records = sorted(r.record for r in val)
    best = max(WEIGHTS, key=lambda w: (table[w]["objective"], -w))
    stacked = STACKED in table and table[STACKED]["objective"] > table[best]["objective"]
    if stacked:
        parts = list(held_by_fold.values())
        xa = np.concatenate([with_log_p(x, p) for x, _, p in parts])
        ya = np.concatenate([y for _, y, _ in parts])
        log(f"beat stack: stacked; trees refitted on all {len(used)} record(s)' out-of-fold "
            f"rows, {ya.size} beats")
    else:
        xa, ya = _xy(labelled + runs)
        log(f"beat stack: w={best}; trees refitted on all {len(labelled)} record(s), "
            f"{ya.size} beats" + (" (their synthetic runs included)" if runs else ""))
    final = fit_trees(xa, ya, seed)
    info = {"trees": {"depth": GBT_DEPTH, "iterations": GBT_ITER, "learning_rate": GBT_LR,
                      "min_samples_leaf": MIN_LEAF, "class_weight": "inverse sqrt of counts"},
            "records": sorted(r.record for r in labelled),
            "validation_records": val_records,
            "beats": int(ya.size),
            "synthetic_runs": {"rows": int(sum(int((r.y >= 0).sum()) for r in runs)),
                               "records": len(runs),
                               "held_out_v_se": runs_se} if runs else None,
            "weight_choice": {str(k): v for k, v in table.items()},
            "chosen": STACKED if stacked else str(best), "chosen_on": chosen_on}
    return document(final, task, labels, features, best, info, stacked=stacked)


__all__ = ["STACKED", "WEIGHTS", "class_scores", "document", "export_trees", "fit_beat_stack",
           "fit_trees", "stacked_features", "with_log_p"]
