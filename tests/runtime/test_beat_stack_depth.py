"""The trees' depth (`trees.depth_of`, issue 27: relaxed level by level in numpy) is the
longest chain of children the plain forward pass finds, and anything past the limit is refused."""

from __future__ import annotations

import numpy as np
from test_beat_stack_walk import plain_raw  # the plain definition

from edge_ecg.runtime import beat_stack as bs
from edge_ecg.runtime import trees


def _plain_depth(left: np.ndarray, right: np.ndarray) -> int:
    d = [0] * left.size
    for i in range(left.size):              # parents before children: one forward pass
        for c in (int(left[i]), int(right[i])):
            if c >= 0:
                d[c] = max(d[c], d[i] + 1)
    return max(d) if d else 0


def test_depth_equals_the_forward_pass():
    rng = np.random.default_rng(4)
    seen = set()
    for trial in range(400):
        n = int(rng.integers(1, 120))
        left, right = np.full(n, -1), np.full(n, -1)
        for i in range(n - 1):
            if rng.random() < 0.6:          # children after the parent, shared at times
                left[i], right[i] = rng.integers(i + 1, n, 2)
        want = _plain_depth(left, right)
        got = trees.depth_of(left, right, np.array([0]))
        if want <= trees.MAX_DEPTH:
            assert got == want
        else:
            assert got > trees.MAX_DEPTH
        seen.add(min(want, trees.MAX_DEPTH + 1))
    assert len(seen) > 5
    assert trees.depth_of(np.array([], np.int64), np.array([], np.int64), np.array([], np.int64)) == 0


def test_a_chain_past_the_limit_is_reported_past_it():
    n = trees.MAX_DEPTH + 5
    chain = np.arange(1, n + 1)
    chain[-1] = -1
    assert trees.depth_of(chain, chain.copy(), np.array([0])) > trees.MAX_DEPTH
    ok = np.arange(1, trees.MAX_DEPTH + 2)
    ok[-1] = -1                              # exactly the limit: accepted, exact
    assert trees.depth_of(ok, ok.copy(), np.array([0])) == trees.MAX_DEPTH


def test_shallow_ensembles_walk_from_their_roots_exactly():
    """Depth 0 (every tree a leaf) and depth 1 (stumps and leaves): the first step, taken
    from the roots' own splits, gives the plain traversal's logits bit for bit."""
    rng = np.random.default_rng(9)
    x = np.round(rng.normal(size=(30, len(bs.FEATURES))), 1)
    x[::4, 2] = np.nan                                   # NaN goes right
    for depth in (0, 1):
        feature, threshold, left, right, value, roots = [], [], [], [], [], []
        for _ in range(25):
            roots.append(len(feature))
            split = depth == 1 and rng.random() < 0.7
            feature.append(int(rng.integers(len(bs.FEATURES))) if split else 0)
            threshold.append(float(np.round(rng.normal(), 1)) if split else 0.0)
            value.append(float(rng.normal()))
            left.append(len(feature) if split else -1)
            right.append(len(feature) + 1 if split else -1)
            if split:
                for _ in range(2):
                    feature.append(0)
                    threshold.append(0.0)
                    left.append(-1)
                    right.append(-1)
                    value.append(float(rng.normal()))
        t = trees.TreeEnsemble(feature=np.array(feature), threshold=np.array(threshold),
                            left=np.array(left), right=np.array(right), value=np.array(value),
                            roots=np.array(roots), tree_class=rng.integers(3, size=25),
                            baseline=rng.normal(size=3), depth=depth)
        assert t.raw(x).tobytes() == plain_raw(t, x).tobytes()
        assert t.raw(x[:0]).shape == (0, 3)
