"""bench/stack_ideas.py: the neighbour columns come from the right rows, the local RR
irregularity leaves the beat's own intervals out and reads a regular rhythm as 0 and an
alternating one as irregular; a class-prior shift moves calls. (bench/ is not a package:
imported by path.)"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import stack_ideas  # noqa: E402

FEATURES = ("pre_rr_ms", *stack_ideas.NEIGHBOUR)


def test_neighbour_columns_are_the_rows_before_and_after():
    x = np.arange(5 * len(FEATURES), dtype=float).reshape(5, len(FEATURES))
    one, two = (stack_ideas.with_neighbours(x, FEATURES, k) for k in (1, 2))
    k = len(stack_ideas.NEIGHBOUR)
    assert one.shape == (5, len(FEATURES) + 2 * k) and two.shape == (5, len(FEATURES) + 4 * k)
    assert np.array_equal(one[:, :len(FEATURES)], x)
    assert np.array_equal(one[2, len(FEATURES):len(FEATURES) + k], x[1, 1:])      # previous
    assert np.array_equal(one[2, len(FEATURES) + k:], x[3, 1:])                    # next
    assert not one[0, len(FEATURES):len(FEATURES) + k].any() and not one[4, -k:].any()
    assert np.array_equal(two[2, -2 * k:-k], x[0, 1:]) and np.array_equal(two[2, -k:], x[4, 1:])


def test_local_irregularity_is_zero_in_a_regular_rhythm_and_not_in_an_alternating_one():
    def rows(rr):
        x = np.zeros((len(rr), len(FEATURES)))
        x[:, 0] = rr
        return stack_ideas.with_irregularity(x, FEATURES)[:, -3:]

    regular = rows([800.0] * 20)
    assert np.allclose(regular, 0.0)
    # one premature beat (its own pre and post RR are left out of its own figure)
    pvc = [800.0] * 20
    pvc[10], pvc[11] = 500.0, 1100.0
    assert np.allclose(rows(pvc)[10], 0.0)
    alternating = rows([600.0, 1000.0] * 10)
    assert alternating[10, 0] > 0.4 and alternating[10, 1] == 1.0


def test_a_prior_shift_moves_the_calls():
    z = np.log(np.array([[0.5, 0.4, 0.1, 0.0 + 1e-9, 1e-9]]))
    assert stack_ideas._shifted(z, 0.0, 0.0)[0] == 0
    assert stack_ideas._shifted(z, 0.5, 0.0)[0] == stack_ideas.LABELS.index("S")
