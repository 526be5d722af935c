"""`TreeEnsemble`: gradient-boosted trees applied with numpy, and their checked reading from an
untrusted JSON document (the beat stack's and the rhythm stack's files in a bundle).

sklearn's HistGradientBoostingClassifier fits them (edge_ecg.model.beat_stacking.export_trees
writes its trees as flat node arrays); this module evaluates them without sklearn. Every
array's length, every node index and the depth are bounded and checked before anything is
allocated from them, and children must come after their parent, so evaluation always ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge_ecg.errors import BundleError

MAX_NODES = 1 << 18        # ~10x what is fitted (150 iterations x 5 classes x <= 15 nodes)
MAX_TREES = 1 << 14
MAX_DEPTH = 32
_WALK_ROWS = 64            # rows walked at once (TreeEnsemble.raw)


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
        in a third of the time (measured 11.4 -> 3.8 ms for 200 rows of 750 trees). A row's
        logits are the same bits whatever rows are beside it (`_halving_sum`): the ward
        batches its beds' windows and must give each bed the events it would get alone."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        n, n_feat = x.shape
        if n and n_feat <= int(self.feature.max()):   # a flat index would read the next row
            raise IndexError(f"the trees split on feature {int(self.feature.max())}; x has "
                             f"{n_feat} columns")
        if n > _WALK_ROWS:
            # the walk's (rows, trees) arrays outgrow the core's cache past ~100 rows (750
            # trees walked whole: 8.2 us a row at 64 rows, 15.4 at 300; in blocks 8.6 at 300:
            # `python bench/trees.py`)
            return np.concatenate([self.raw(x[i:i + _WALK_ROWS])
                                   for i in range(0, n, _WALK_ROWS)])
        roots, k = self._class_roots
        node = self._leaves(x, roots) if self.depth else np.broadcast_to(roots, (n, roots.size))
        return self.baseline + _halving_sum(self._value0[node].reshape(n, k, roots.size // k))

    def _leaves(self, x: np.ndarray, roots: np.ndarray) -> np.ndarray:
        """The leaf each row of `x` (C-contiguous float64) reaches from each root `(n, R)`."""
        n, n_feat = x.shape
        feature, threshold, child = self._walk
        # the first step from the roots, whose split is the same for every row: x's columns
        # gathered once per tree, not four flat gathers over (n, T) node ids (made C order:
        # gathered along axis 1 the mask comes out column-major, and the steps below and the
        # leaf values' reshape would walk it across rows)
        go_left = np.ascontiguousarray(x[:, feature[roots]] <= threshold[roots])
        node = child[2 * roots + 1 - go_left]
        at = (np.arange(n, dtype=np.intp) * n_feat)[:, None]    # row starts in x.ravel()
        flat = x.ravel()
        for _ in range(self.depth - 1):
            # left where x[feature] <= threshold (NaN goes right, as before)
            go_left = flat[at + feature[node]] <= threshold[node]
            node = child[2 * node + 1 - go_left]
        return node

    @property
    def _walk(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(feature, threshold, child)` for `raw`: a leaf's feature 0 and both children
        itself; `child[2 i]` / `child[2 i + 1]` node i's left / right; one more node, N, a
        leaf of value 0 (`_value0`) that pads a logit with fewer trees (built once)."""
        w = self.__dict__.get("_walk_m")
        if w is None:
            leaf = np.append(self.left < 0, True)
            me = np.arange(leaf.size, dtype=np.intp)
            left, right = np.append(self.left, -1), np.append(self.right, -1)
            w = (np.where(leaf, 0, np.append(self.feature, 0)).astype(np.intp),
                 np.where(leaf, 0.0, np.append(self.threshold, 0.0)),
                 np.stack([np.where(leaf, me, left), np.where(leaf, me, right)],
                          axis=1).ravel().astype(np.intp))
            object.__setattr__(self, "_walk_m", w)
        return w

    @property
    def _value0(self) -> np.ndarray:
        """The node values and the padding node's 0.0."""
        v = self.__dict__.get("_value0_m")
        if v is None:
            v = np.append(self.value, 0.0)
            object.__setattr__(self, "_value0_m", v)
        return v

    @property
    def _class_roots(self) -> tuple[np.ndarray, int]:
        """The roots grouped by the logit they add to, in their order, each group padded to
        the largest with node N; and the number of logits (built once)."""
        m = self.__dict__.get("_class_roots_m")
        if m is None:
            k = self.baseline.size
            per = [self.roots[self.tree_class == c] for c in range(k)]
            r = np.full((k, max(len(c) for c in per)), self.value.size, dtype=np.intp)
            for c, got in enumerate(per):
                r[c, :len(got)] = got
            m = (r.ravel(), k)
            object.__setattr__(self, "_class_roots_m", m)
        return m

    def to_fields(self) -> dict:
        """The document fields `parse_trees` reads back (`baseline`, `nodes`, `roots`,
        `tree_class`)."""
        return {"baseline": self.baseline.tolist(),
                "nodes": {"feature": self.feature.tolist(), "threshold": self.threshold.tolist(),
                          "left": self.left.tolist(), "right": self.right.tolist(),
                          "value": self.value.tolist()},
                "roots": self.roots.tolist(), "tree_class": self.tree_class.tolist()}

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = self.raw(x)
        if self.baseline.size == 1:                         # binary: one logit
            p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def _halving_sum(v: np.ndarray) -> np.ndarray:
    """Sums over the last axis, the same bits for a row whatever rows are beside it: halves
    added element-wise (an odd one out added into the first), never a reduction whose order
    numpy or BLAS pick by the array's shape."""
    m = v.shape[-1]
    if m == 0:
        return np.zeros(v.shape[:-1])
    while m > 1:
        h = m // 2
        w = v[..., :h] + v[..., h:2 * h]
        if m % 2:
            w[..., 0] += v[..., 2 * h]
        v, m = w, h
    return v[..., 0]


def numbers(v, n_max: int, where: str, key: str, integer: bool = False) -> np.ndarray:
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


def depth_of(left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> int:
    """The deepest leaf: the longest chain of children from any node (children come after
    their parent: checked), or `MAX_DEPTH + 1` for any deeper. Relaxed level by level over
    all parents at once (the chain grows by one a round; a fitted stack's trees are 3-4 deep,
    ~7 ms of a Python loop over 11 000 nodes at every start-up before)."""
    n = left.size
    if n == 0:
        return 0
    inner = np.flatnonzero(left >= 0)
    kids = np.concatenate([left[inner], right[inner]])
    d = np.zeros(n, dtype=np.int64)
    for _ in range(MAX_DEPTH + 1):
        nd = d.copy()
        np.maximum.at(nd, kids, np.concatenate([d[inner], d[inner]]) + 1)
        if np.array_equal(nd, d):
            return int(d.max())
        d = nd
    nd = d.copy()
    np.maximum.at(nd, kids, np.concatenate([d[inner], d[inner]]) + 1)
    return int(d.max()) if np.array_equal(nd, d) else MAX_DEPTH + 1


def tree_classes(doc: dict, n_classes: int, where: str) -> np.ndarray:
    """A stack document's `tree_classes`: the task class of each column the trees give, distinct
    indices of its `n_classes` classes (sklearn's `classes_`: a class absent from the fit has
    none)."""
    tc = numbers(doc.get("tree_classes"), n_classes, where, "tree_classes", integer=True)
    if tc.size < 2 or len(set(tc.tolist())) != tc.size or tc.min() < 0 or tc.max() >= n_classes:
        raise BundleError(f"{where}: 'tree_classes' must be distinct indices of 'classes'")
    return tc


def parse_trees(doc: dict, n_features: int, k: int, where: str) -> TreeEnsemble:
    """The trees of a stack document (`baseline`, `nodes`, `roots`, `tree_class`) with `k`
    logits (1 for two classes) over `n_features` columns, every field checked."""
    baseline = numbers(doc.get("baseline"), k, where, "baseline")
    if baseline.size != k:
        raise BundleError(f"{where}: 'baseline' must have {k} value(s)")
    nodes = doc.get("nodes")
    if not isinstance(nodes, dict):
        raise BundleError(f"{where}: 'nodes' must be an object")
    feature = numbers(nodes.get("feature"), MAX_NODES, where, "nodes.feature", integer=True)
    n = feature.size
    arrays = {"threshold": numbers(nodes.get("threshold"), MAX_NODES, where, "nodes.threshold"),
              "left": numbers(nodes.get("left"), MAX_NODES, where, "nodes.left", True),
              "right": numbers(nodes.get("right"), MAX_NODES, where, "nodes.right", True),
              "value": numbers(nodes.get("value"), MAX_NODES, where, "nodes.value")}
    if n == 0 or any(a.size != n for a in arrays.values()):
        raise BundleError(f"{where}: the node arrays must be non-empty and of one length")
    left, right = arrays["left"], arrays["right"]
    leaf = left < 0
    idx = np.arange(n)
    if (np.any((left < 0) != (right < 0)) or np.any(leaf & ((left != -1) | (right != -1)))
            or np.any(~leaf & ((left <= idx) | (right <= idx) | (left >= n) | (right >= n)))):
        raise BundleError(f"{where}: a node's children must both be -1 (a leaf) or both "
                          "come after it in the node arrays")
    if np.any(~leaf & ((feature < 0) | (feature >= n_features))):
        raise BundleError(f"{where}: a node splits on a feature outside 0..{n_features - 1}")
    roots = numbers(doc.get("roots"), MAX_TREES, where, "roots", integer=True)
    tree_class = numbers(doc.get("tree_class"), MAX_TREES, where, "tree_class", integer=True)
    if (roots.size == 0 or roots.size != tree_class.size or roots.min() < 0
            or roots.max() >= n or tree_class.min() < 0 or tree_class.max() >= k):
        raise BundleError(f"{where}: 'roots' and 'tree_class' must be one non-empty length, "
                          f"roots within the nodes and classes within 0..{k - 1}")
    depth = depth_of(left, right, roots)
    if depth > MAX_DEPTH:
        raise BundleError(f"{where}: trees deeper than {MAX_DEPTH}")
    return TreeEnsemble(feature=np.where(leaf, 0, feature), threshold=arrays["threshold"],
                        left=left, right=right, value=arrays["value"], roots=roots,
                        tree_class=tree_class, baseline=baseline, depth=depth)


__all__ = ["MAX_DEPTH", "TreeEnsemble", "depth_of", "numbers", "parse_trees",
           "tree_classes"]
