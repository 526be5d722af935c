"""`BeatStack`: the per-beat classes of the network fused with gradient-boosted trees on the
patient context, applied with numpy.

On patients never seen, a transparent classifier on the beat's RR and its patient context
(`beat_rr` + `beat_ctx`: prematurity, compensatory pause, QRS correlation, width and
amplitude against the patient's dominant beat) calls fewer false V than the network, which
also reads the beat's raw morphology and learns the training patients' shapes with it
(bench/beats_classes.py measures both side by side). The stack keeps both: the final class
probabilities are the normalised weighted geometric mean

    p  proportional to  p_network ** (1 - w)  *  p_trees ** w

where `w` was chosen on the network's validation patients (never on a test fold; see
`edge_ecg.model.beat_stacking`, which fits it). A slot whose context is unknown (`known` = 0)
keeps the network's probabilities.

The stack is data, not code: `beat_stack.json` in the bundle, hashed in the manifest like every
other file, so the bundle's signature covers it. Untrusted input all the same: every array's
length, every node index and the depth are bounded and checked before anything is allocated
from them, and children must come after their parent, so evaluation always ends.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ecg.errors import BundleError
from edge_ecg.runtime.bundle import read_bundle_json
from edge_ecg.signal.contract import BEAT_RR_COLUMNS
from edge_ecg.signal.patient_context import CONTEXT_COLUMNS

FORMAT = "edge-ecg-beat-stack"
FORMAT_VERSION = 1
BEAT_STACK = "beat_stack.json"
KIND = "gbt"
# The features, computed from the model's own inputs (`beat_rr`, `beat_ctx`) per beat slot:
# the RR before and after the beat and the window's mean RR, their ratios, and the patient
# context (its `known` column decides whether the stack applies at all).
FEATURES: tuple[str, ...] = (*BEAT_RR_COLUMNS, "pre_mean", "post_mean",
                             *(c for c in CONTEXT_COLUMNS if c != "known"))
P_FLOOR = 1e-4             # a class the trees never saw keeps a small probability, not zero
_MAX_NODES = 1 << 18       # ~10x what is fitted (150 iterations x 5 classes x <= 15 nodes)
_MAX_TREES = 1 << 14
_MAX_DEPTH = 32
_MAX_CLASSES = 64
_MAX_BYTES = 16 << 20


def stack_features(beat_rr: np.ndarray, beat_ctx: np.ndarray) -> np.ndarray:
    """`(..., len(FEATURES))` from `beat_rr` `(..., 3)` and `beat_ctx` `(..., N_CONTEXT)`."""
    rr = np.asarray(beat_rr, dtype=np.float64)
    ctx = np.asarray(beat_ctx, dtype=np.float64)
    pre, post, mean = rr[..., 0], rr[..., 1], rr[..., 2]
    ok = mean > 0
    safe = np.where(ok, mean, 1.0)
    ratios = np.stack([np.where(ok & (pre > 0), pre / safe, 0.0),
                       np.where(ok & (post > 0), post / safe, 0.0)], axis=-1)
    return np.concatenate([rr, ratios, ctx[..., 1:]], axis=-1)


@dataclass(frozen=True)
class TreeEnsemble:
    """Additive trees, one class logit each: `raw = baseline + sum of each tree's leaf value`.

    Nodes of all trees in flat arrays; a leaf has `left == right == -1`; an inner node sends a
    row left when `x[feature] <= threshold` (sklearn's rule for non-missing values)."""

    feature: np.ndarray        # (N,) int64
    threshold: np.ndarray      # (N,) float64
    left: np.ndarray           # (N,) int64, -1 at leaves
    right: np.ndarray          # (N,) int64
    value: np.ndarray          # (N,) float64 (leaves)
    roots: np.ndarray          # (T,) int64
    tree_class: np.ndarray     # (T,) int64: the logit each tree adds to
    baseline: np.ndarray       # (K,)
    depth: int                 # the deepest leaf: traversal steps

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Logits `(n, K)` of rows `x` `(n, F)`: every tree at once, one step per level.

        Leaves point to themselves (`_walk`), so every row takes `depth` steps without a
        leaf mask, and each step is four flat gathers: the same leaves as stopping at them,
        in a third of the time (measured 11.4 -> 3.8 ms for 200 rows of 750 trees)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        n, n_feat = x.shape
        feature, threshold, child = self._walk
        if n and n_feat <= int(feature.max()):   # a flat index would read the next row
            raise IndexError(f"the trees split on feature {int(feature.max())}; x has "
                             f"{n_feat} columns")
        roots = self.roots.astype(np.intp)
        if self.depth == 0:
            node = np.broadcast_to(roots, (n, roots.size))
        else:
            # the first step from the roots, whose split is the same for every row: x's
            # columns gathered once per tree, not four flat gathers over (n, T) node ids
            # (C order: gathered along axis 1 the mask comes out column-major, and the leaf
            # values' product below would then sum in another order, not the same bits)
            go_left = np.ascontiguousarray(x[:, feature[roots]] <= threshold[roots])
            node = child[2 * roots + 1 - go_left]
        at = (np.arange(n, dtype=np.intp) * n_feat)[:, None]    # row starts in x.ravel()
        flat = x.ravel()
        for _ in range(self.depth - 1):
            # left where x[feature] <= threshold (NaN goes right, as before)
            go_left = flat[at + feature[node]] <= threshold[node]
            node = child[2 * node + 1 - go_left]
        # (n, T) @ (T, K), the leaf values row-major as the walk has always made them
        return self.baseline + np.ascontiguousarray(self.value[node]) @ self._onehot

    @property
    def _walk(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(feature, threshold, child)` for `raw`: a leaf's feature 0 and both children
        itself; `child[2 i]` / `child[2 i + 1]` node i's left / right (built once)."""
        w = self.__dict__.get("_walk_m")
        if w is None:
            leaf = self.left < 0
            me = np.arange(self.left.size, dtype=np.intp)
            w = (np.where(leaf, 0, self.feature).astype(np.intp),
                 np.where(leaf, 0.0, self.threshold),
                 np.stack([np.where(leaf, me, self.left), np.where(leaf, me, self.right)],
                          axis=1).ravel().astype(np.intp))
            object.__setattr__(self, "_walk_m", w)
        return w

    @property
    def _onehot(self) -> np.ndarray:
        """(T, K): which logit each tree adds to (built once; the stream asks per window)."""
        m = self.__dict__.get("_onehot_m")
        if m is None:
            m = np.zeros((self.roots.size, self.baseline.size))
            m[np.arange(self.roots.size), self.tree_class] = 1.0
            object.__setattr__(self, "_onehot_m", m)
        return m

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = self.raw(x)
        if self.baseline.size == 1:                         # binary: one logit
            p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class BeatStack:
    task: str                      # the bundle's per-beat task ("beat")
    classes: tuple[str, ...]       # the task's labels, in its output order
    tree_classes: tuple[int, ...]  # the task class of each column the trees give
    features: tuple[str, ...]
    trees: TreeEnsemble
    weight: float                  # w: the trees' share in the geometric mean
    info: dict                     # how and on what it was fitted, its validation figures

    def tree_proba(self, x: np.ndarray) -> np.ndarray:
        """The trees' probabilities over the task's classes `(n, len(classes))`."""
        p = np.full((x.shape[0], len(self.classes)), 0.0)
        p[:, list(self.tree_classes)] = self.trees.predict_proba(x)
        return p

    def fuse(self, probs: np.ndarray, beat_rr: np.ndarray, beat_ctx: np.ndarray
             ) -> np.ndarray:
        """The fused per-slot probabilities `(B, M, K)` from the network's `probs` `(B, M, K)`
        and the same windows' `beat_rr` `(B, M, 3)` and `beat_ctx` `(B, M, N_CONTEXT)`."""
        p = np.asarray(probs)
        out = np.array(p, dtype=np.float32, copy=True)
        known = np.asarray(beat_ctx)[..., 0] > 0
        if self.weight <= 0.0 or not known.any():
            return out
        # features of the known slots only (row by row: the same numbers as all, then picked)
        out[known] = self.fuse_features(p[known], stack_features(np.asarray(beat_rr)[known],
                                                                 np.asarray(beat_ctx)[known]))
        return out

    def fuse_features(self, probs: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The fused probabilities `(n, K)` of beats with the network's `probs` `(n, K)` and
        stack features `x` `(n, len(FEATURES))` (`stack_features`)."""
        x = np.where(np.isfinite(x), x, 0.0)
        pt = np.maximum(self.tree_proba(x), P_FLOOR)
        pn = np.maximum(np.asarray(probs, dtype=np.float64), P_FLOOR)
        w = self.weight
        z = (1.0 - w) * np.log(pn) + w * np.log(pt)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def to_dict(self) -> dict:
        t = self.trees
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": KIND,
                "task": self.task, "classes": list(self.classes),
                "tree_classes": list(self.tree_classes), "features": list(self.features),
                "weight": self.weight, "baseline": t.baseline.tolist(),
                "nodes": {"feature": t.feature.tolist(), "threshold": t.threshold.tolist(),
                          "left": t.left.tolist(), "right": t.right.tolist(),
                          "value": t.value.tolist()},
                "roots": t.roots.tolist(), "tree_class": t.tree_class.tolist(),
                "info": self.info}

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), separators=(",", ":")))


# -- reading an untrusted file -------------------------------------------------------------------
def _numbers(v, n_max: int, where: str, key: str, integer: bool = False) -> np.ndarray:
    if not (isinstance(v, list) and len(v) <= n_max):
        raise BundleError(f"{where}: {key!r} must be a list of at most {n_max} numbers")
    kind = "integers" if integer else "finite numbers"
    if set(map(type, v)) <= ({int} if integer else {int, float}):
        # what JSON gives (no bool among them): checked as arrays, ~10 ms less of start-up
        arr = np.asarray(v, dtype=np.int64 if integer else np.float64)
        if not integer and not np.isfinite(arr).all():
            raise BundleError(f"{where}: {key!r} must hold {kind} only")
        return arr
    ok = (lambda a: isinstance(a, int) and not isinstance(a, bool)) if integer else (
        lambda a: isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a))
    if not all(ok(a) for a in v):
        raise BundleError(f"{where}: {key!r} must hold {kind} only")
    return np.asarray(v, dtype=np.int64 if integer else np.float64)


def _depth(left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> int:
    """The deepest leaf: the longest chain of children from any node (children come after
    their parent: checked), or `_MAX_DEPTH + 1` for any deeper. Relaxed level by level over
    all parents at once (the chain grows by one a round; a fitted stack's trees are 3-4 deep,
    ~7 ms of a Python loop over 11 000 nodes at every start-up before)."""
    n = left.size
    if n == 0:
        return 0
    inner = np.flatnonzero(left >= 0)
    kids = np.concatenate([left[inner], right[inner]])
    d = np.zeros(n, dtype=np.int64)
    for _ in range(_MAX_DEPTH + 1):
        nd = d.copy()
        np.maximum.at(nd, kids, np.concatenate([d[inner], d[inner]]) + 1)
        if np.array_equal(nd, d):
            return int(d.max())
        d = nd
    nd = d.copy()
    np.maximum.at(nd, kids, np.concatenate([d[inner], d[inner]]) + 1)
    return int(d.max()) if np.array_equal(nd, d) else _MAX_DEPTH + 1


def parse_beat_stack(doc, where: str) -> BeatStack:
    """A `BeatStack` from a parsed JSON document, every field checked."""
    if not isinstance(doc, dict):
        raise BundleError(f"{where}: must hold a JSON object")
    if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{where}: not an {FORMAT} v{FORMAT_VERSION} file; refit it with "
                          "`edge-ecg stack --beats`")
    if doc.get("kind") != KIND:
        raise BundleError(f"{where}: kind {doc.get('kind')!r} is not {KIND!r}")
    task, classes, feats = doc.get("task"), doc.get("classes"), doc.get("features")
    if not isinstance(task, str):
        raise BundleError(f"{where}: 'task' must be a string")
    if not (isinstance(classes, list) and 2 <= len(classes) <= _MAX_CLASSES
            and all(isinstance(s, str) for s in classes) and len(set(classes)) == len(classes)):
        raise BundleError(f"{where}: 'classes' must be 2..{_MAX_CLASSES} distinct names")
    if feats != list(FEATURES):
        raise BundleError(f"{where}: fitted on features {feats}, but this edge-ecg computes "
                          f"{list(FEATURES)}; refit it with `edge-ecg stack --beats`")
    tc = _numbers(doc.get("tree_classes"), len(classes), where, "tree_classes", integer=True)
    if tc.size < 2 or len(set(tc.tolist())) != tc.size or tc.min() < 0 or tc.max() >= len(classes):
        raise BundleError(f"{where}: 'tree_classes' must be distinct indices of 'classes'")
    w = doc.get("weight")
    if not (isinstance(w, (int, float)) and not isinstance(w, bool) and 0.0 <= w <= 1.0):
        raise BundleError(f"{where}: 'weight' must be a number in [0, 1]")
    k = 1 if tc.size == 2 else tc.size
    baseline = _numbers(doc.get("baseline"), k, where, "baseline")
    if baseline.size != k:
        raise BundleError(f"{where}: 'baseline' must have {k} value(s)")
    nodes = doc.get("nodes")
    if not isinstance(nodes, dict):
        raise BundleError(f"{where}: 'nodes' must be an object")
    feature = _numbers(nodes.get("feature"), _MAX_NODES, where, "nodes.feature", integer=True)
    n = feature.size
    arrays = {"threshold": _numbers(nodes.get("threshold"), _MAX_NODES, where, "nodes.threshold"),
              "left": _numbers(nodes.get("left"), _MAX_NODES, where, "nodes.left", True),
              "right": _numbers(nodes.get("right"), _MAX_NODES, where, "nodes.right", True),
              "value": _numbers(nodes.get("value"), _MAX_NODES, where, "nodes.value")}
    if n == 0 or any(a.size != n for a in arrays.values()):
        raise BundleError(f"{where}: the node arrays must be non-empty and of one length")
    left, right = arrays["left"], arrays["right"]
    leaf = left < 0
    idx = np.arange(n)
    if (np.any((left < 0) != (right < 0)) or np.any(leaf & ((left != -1) | (right != -1)))
            or np.any(~leaf & ((left <= idx) | (right <= idx) | (left >= n) | (right >= n)))):
        raise BundleError(f"{where}: a node's children must both be -1 (a leaf) or both "
                          "come after it in the node arrays")
    if np.any(~leaf & ((feature < 0) | (feature >= len(FEATURES)))):
        raise BundleError(f"{where}: a node splits on a feature outside 0..{len(FEATURES) - 1}")
    roots = _numbers(doc.get("roots"), _MAX_TREES, where, "roots", integer=True)
    tree_class = _numbers(doc.get("tree_class"), _MAX_TREES, where, "tree_class", integer=True)
    if (roots.size == 0 or roots.size != tree_class.size or roots.min() < 0
            or roots.max() >= n or tree_class.min() < 0 or tree_class.max() >= k):
        raise BundleError(f"{where}: 'roots' and 'tree_class' must be one non-empty length, "
                          f"roots within the nodes and classes within 0..{k - 1}")
    depth = _depth(left, right, roots)
    if depth > _MAX_DEPTH:
        raise BundleError(f"{where}: trees deeper than {_MAX_DEPTH}")
    info = doc.get("info", {})
    trees = TreeEnsemble(feature=np.where(leaf, 0, feature), threshold=arrays["threshold"],
                         left=left, right=right, value=arrays["value"], roots=roots,
                         tree_class=tree_class, baseline=baseline, depth=depth)
    return BeatStack(task=task, classes=tuple(classes), tree_classes=tuple(tc.tolist()),
                     features=FEATURES, trees=trees, weight=float(w),
                     info=info if isinstance(info, dict) else {})


def load_beat_stack(bundle: str | Path, manifest) -> BeatStack | None:
    """The bundle's `beat_stack.json`, or None where the manifest lists none. Its bytes are
    read once and must hash to the manifest's sha256, and its task and classes must be the
    manifest's per-beat task's."""
    got = read_bundle_json(bundle, manifest, BEAT_STACK, _MAX_BYTES, "edge-ecg stack --beats")
    if got is None:
        return None
    doc, where = got
    stack = parse_beat_stack(doc, where)
    task = next((t for t in manifest.tasks if t.get("kind") == "beat"), None)
    if task is None or task.get("name") != stack.task or \
            tuple(task.get("labels", ())) != stack.classes:
        raise BundleError(f"{where}: fitted for task {stack.task!r} with classes "
                          f"{list(stack.classes)}, which is not this bundle's per-beat task; "
                          "refit it with `edge-ecg stack --beats`")
    return stack


__all__ = ["BEAT_STACK", "FEATURES", "BeatStack", "TreeEnsemble", "load_beat_stack",
           "parse_beat_stack", "stack_features"]
