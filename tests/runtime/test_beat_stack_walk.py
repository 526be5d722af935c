"""The beat stack's vectorised tree walk (`TreeEnsemble.raw`) gives exactly the logits of the
plain definition: each row down each tree, left where `x[feature] <= threshold`, each logit's
leaf values (its trees in order, padded with zeros to the largest group) summed by halves. A
row's logits are the same bits alone as in any batch: the ward batches beds' windows."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.runtime.beat_stack import FEATURES
from edge_ecg.runtime.trees import TreeEnsemble


def _random_trees(rng, n_trees=120, n_classes=5, max_depth=4) -> TreeEnsemble:
    """Trees of uneven shape (leaves at every depth), children after their parent."""
    feature, threshold, left, right, value, roots = [], [], [], [], [], []

    def grow(depth: int) -> int:
        i = len(feature)
        feature.append(0)
        threshold.append(0.0)
        left.append(-1)
        right.append(-1)
        value.append(float(rng.normal()))
        if depth < max_depth and rng.random() < 0.8:
            feature[i] = int(rng.integers(len(FEATURES)))
            threshold[i] = float(np.round(rng.normal(), 1))
            left[i] = grow(depth + 1)
            right[i] = grow(depth + 1)
        return i

    for _ in range(n_trees):
        roots.append(grow(0))
    return TreeEnsemble(feature=np.array(feature), threshold=np.array(threshold),
                        left=np.array(left), right=np.array(right), value=np.array(value),
                        roots=np.array(roots), tree_class=rng.integers(n_classes, size=n_trees),
                        baseline=rng.normal(size=n_classes), depth=max_depth)


def _halves(vals: list[float]) -> float:
    """Plain Python: the halves added pairwise, an odd one out into the first, until one."""
    m = len(vals)
    while m > 1:
        h = m // 2
        w = [vals[i] + vals[h + i] for i in range(h)]
        if m % 2:
            w[0] = w[0] + vals[2 * h]
        vals, m = w, h
    return vals[0] if vals else 0.0


def _plain_leaves(t: TreeEnsemble, x: np.ndarray) -> np.ndarray:
    """(n, T): each row's leaf value in each tree."""
    out = np.zeros((x.shape[0], t.roots.size))
    for i, row in enumerate(x):
        for j, node in enumerate(t.roots.tolist()):
            while t.left[node] >= 0:
                node = (t.left[node] if row[t.feature[node]] <= t.threshold[node]
                        else t.right[node])
            out[i, j] = t.value[node]
    return out


def plain_raw(t: TreeEnsemble, x: np.ndarray) -> np.ndarray:
    k = t.baseline.size
    groups = [[j for j in range(t.roots.size) if t.tree_class[j] == c] for c in range(k)]
    width = max(len(g) for g in groups)
    out = np.zeros((x.shape[0], k))
    for i, leaf in enumerate(_plain_leaves(t, x).tolist()):
        for c, g in enumerate(groups):
            out[i, c] = t.baseline[c] + _halves([leaf[j] for j in g] + [0.0] * (width - len(g)))
    return out


def test_tree_walk_equals_the_plain_traversal_bit_for_bit():
    rng = np.random.default_rng(0)
    t = _random_trees(rng)
    # values on the thresholds (x <= threshold goes left) and around them
    x = np.round(rng.normal(size=(80, len(FEATURES))), 1)
    x[::5] += rng.choice([-1e-9, 0.0, 1e-9], size=x[::5].shape)
    x[::7, 3] = np.nan                # NaN goes right: `x <= threshold` is False
    assert np.array_equal(t.raw(x), plain_raw(t, x))
    assert t.raw(x[:0]).shape == (0, t.baseline.size)
    with pytest.raises(IndexError):   # too few columns: refused, never read across rows
        t.raw(x[:, :2])


def test_a_rows_logits_do_not_depend_on_the_rows_beside_it():
    """Alone, in a batch, in a batch past the walk's row blocks: the same bits (a matrix
    product's sums did depend on the batch, in the last bit), and within 1e-12 of it."""
    rng = np.random.default_rng(3)
    t = _random_trees(rng, n_trees=300)
    x = rng.normal(size=(300, len(FEATURES))) * 2
    whole = t.raw(x)
    alone = np.concatenate([t.raw(x[i:i + 1]) for i in range(0, 300, 13)])
    assert np.array_equal(alone, whole[::13])
    assert np.array_equal(t.raw(x[5:77]), whole[5:77])
    onehot = np.zeros((t.roots.size, t.baseline.size))
    onehot[np.arange(t.roots.size), t.tree_class] = 1.0
    assert np.allclose(whole[:20], t.baseline + _plain_leaves(t, x[:20]) @ onehot,
                       rtol=0, atol=1e-12)
