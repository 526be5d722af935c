"""`RecordingStack`: a small fitted model over recording-level features, applied with numpy.

The stack is data, not code: a JSON file in the bundle (`rhythm_stack.json`), hashed in the
manifest like every other file, so the signature covers its coefficients. It is fitted by
`edge-ecg stack` (edge_ecg.model.stacking, sklearn) and applied here without sklearn, in one
of two kinds, whichever won the fit's cross-validation:
- `logistic`: a standardised multinomial (or binary) logistic regression,
  softmax(((x - mean) / scale) W^T + b), equal to sklearn's `LogisticRegression.predict_proba`;
- `gbt`: gradient-boosted trees (edge_ecg.runtime.trees, read and bounded there), equal to
  sklearn's `HistGradientBoostingClassifier.predict_proba` on finite features.

The file is untrusted input: every field's type, shape and finiteness is checked, the feature
names must be the ones this code computes (a stack fitted on other features is refused, never
applied to the wrong columns), and its bytes must hash to the manifest's sha256.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ecg.errors import BundleError
from edge_ecg.runtime.bundle import read_bundle_json
from edge_ecg.runtime.trees import TreeEnsemble, parse_trees, tree_classes

FORMAT = "edge-ecg-recording-stack"
FORMAT_VERSION = 1
RHYTHM_STACK = "rhythm_stack.json"
KIND = "logistic"
KINDS = (KIND, "gbt")
_MAX_FEATURES = 512          # far above what is fitted (~30); bounds what a file can make us do
_MAX_CLASSES = 64
_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class RecordingStack:
    task: str                    # the bundle task whose classes it decides ("arrhythmia")
    classes: tuple[str, ...]
    features: tuple[str, ...]
    mean: np.ndarray             # (F,)
    scale: np.ndarray            # (F,)
    coef: np.ndarray             # (K, F), or (1, F) for two classes (sklearn's binary form)
    intercept: np.ndarray        # (K,) or (1,)
    info: dict                   # how and on what it was fitted, its cross-validated figures

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities `(n, K)` of feature rows `x` `(n, F)` (or one row `(F,)`)."""
        x = np.asarray(x, dtype=np.float64)
        one = x.ndim == 1
        x = np.atleast_2d(x)
        if x.shape[1] != self.mean.size:
            raise ValueError(f"expected {self.mean.size} features, got {x.shape[1]}")
        z = (x - self.mean) / self.scale @ self.coef.T + self.intercept   # (n, K) or (n, 1)
        if self.coef.shape[0] == 1:                 # binary: sigmoid of the one logit
            p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            p = np.stack([1.0 - p1, p1], axis=1)
        else:
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            p = e / e.sum(axis=1, keepdims=True)
        return p[0] if one else p

    def to_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": KIND,
                "task": self.task, "classes": list(self.classes),
                "features": list(self.features), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": self.intercept.tolist(), "info": self.info}

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))


@dataclass(frozen=True)
class TreeRecordingStack:
    """The `gbt` kind: the same interface as `RecordingStack`, trees instead of a linear map."""

    task: str
    classes: tuple[str, ...]
    features: tuple[str, ...]
    tree_classes: tuple[int, ...]   # the class of each column the trees give (sklearn's
    trees: TreeEnsemble             # classes_: a class absent from the fit gets none)
    info: dict

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities `(n, K)` of feature rows `x` `(n, F)` (or one row `(F,)`)."""
        x = np.asarray(x, dtype=np.float64)
        one = x.ndim == 1
        x = np.atleast_2d(x)
        if x.shape[1] != len(self.features):
            raise ValueError(f"expected {len(self.features)} features, got {x.shape[1]}")
        p = np.zeros((x.shape[0], len(self.classes)))
        p[:, list(self.tree_classes)] = self.trees.predict_proba(x)
        return p[0] if one else p

    def to_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "gbt",
                "task": self.task, "classes": list(self.classes),
                "features": list(self.features), "tree_classes": list(self.tree_classes),
                **self.trees.to_fields(), "info": self.info}

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), separators=(",", ":")))


def _vector(doc: dict, key: str, n: int, where: str) -> np.ndarray:
    v = doc.get(key)
    if not (isinstance(v, list) and len(v) == n and all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a)
            for a in v)):
        raise BundleError(f"{where}: {key!r} must be a list of {n} finite numbers")
    return np.asarray(v, dtype=np.float64)


def _names(doc: dict, key: str, hi: int, where: str) -> list[str]:
    v = doc.get(key)
    if not (isinstance(v, list) and 2 <= len(v) <= hi and all(isinstance(s, str) for s in v)
            and len(set(v)) == len(v)):
        raise BundleError(f"{where}: {key!r} must be 2..{hi} distinct names")
    return v


def parse_stack(doc, where: str, expect_features: tuple[str, ...] | None = None
                ) -> RecordingStack | TreeRecordingStack:
    """The stack of a parsed JSON document (either kind), every field checked."""
    if not isinstance(doc, dict):
        raise BundleError(f"{where}: must hold a JSON object")
    if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{where}: not an {FORMAT} v{FORMAT_VERSION} file; refit it with "
                          "`edge-ecg stack`")
    if doc.get("kind") not in KINDS:
        raise BundleError(f"{where}: kind {doc.get('kind')!r} is not one of {list(KINDS)}")
    task = doc.get("task")
    if not isinstance(task, str):
        raise BundleError(f"{where}: 'task' must be a string")
    classes = _names(doc, "classes", _MAX_CLASSES, where)
    feats = _names(doc, "features", _MAX_FEATURES, where)
    if expect_features is not None and tuple(feats) != tuple(expect_features):
        missing = [n for n in expect_features if n not in feats]
        unknown = [n for n in feats if n not in expect_features]
        what = "; ".join(([f"this edge-ecg also computes {missing}"] if missing else [])
                         + ([f"it was fitted on {unknown}, which this edge-ecg does not "
                             "compute"] if unknown else [])) or "the same names in another order"
        raise BundleError(f"{where}: fitted on other features than this edge-ecg computes "
                          f"({what}); refit it with `edge-ecg stack --bundle BUNDLE`")
    k, f = len(classes), len(feats)
    info = doc.get("info", {})
    info = info if isinstance(info, dict) else {}
    if doc["kind"] == "gbt":
        tc = tree_classes(doc, k, where)
        trees = parse_trees(doc, f, 1 if tc.size == 2 else tc.size, where)
        return TreeRecordingStack(task=task, classes=tuple(classes), features=tuple(feats),
                                  tree_classes=tuple(tc.tolist()), trees=trees, info=info)
    rows = 1 if k == 2 and isinstance(doc.get("coef"), list) and len(doc["coef"]) == 1 else k
    coef = doc.get("coef")
    if not (isinstance(coef, list) and len(coef) == rows):
        raise BundleError(f"{where}: 'coef' must have {rows} row(s)")
    w = np.stack([_vector({"coef": r}, "coef", f, where) for r in coef])
    scale = _vector(doc, "scale", f, where)
    if np.any(scale <= 0):
        raise BundleError(f"{where}: 'scale' must be positive")
    return RecordingStack(task=task, classes=tuple(classes), features=tuple(feats),
                          mean=_vector(doc, "mean", f, where), scale=scale, coef=w,
                          intercept=_vector(doc, "intercept", rows, where), info=info)


def load_stack(bundle: str | Path, manifest, name: str = RHYTHM_STACK,
               expect_features: tuple[str, ...] | None = None
               ) -> RecordingStack | TreeRecordingStack | None:
    """The bundle's stack file `name`, or None where the manifest lists none. Its bytes are
    read once and must hash to the manifest's sha256 (a file changed after the bundle was
    verified is refused, not applied)."""
    got = read_bundle_json(bundle, manifest, name, _MAX_BYTES, "edge-ecg stack")
    if got is None:
        return None
    doc, where = got
    return parse_stack(doc, where, expect_features)


__all__ = ["RHYTHM_STACK", "RecordingStack", "TreeRecordingStack", "load_stack",
           "parse_stack"]
