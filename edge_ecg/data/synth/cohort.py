"""A cohort plan: a balanced, deterministic mix of synthetic patients (conditions, potassium
states, ages, sexes, seeds)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_ecg.data.synth.record import CONDITIONS, POTASSIUM
from edge_ecg.errors import SignalError


@dataclass(frozen=True)
class CohortEntry:
    """The plan of one synthetic patient of a cohort."""

    condition: str
    potassium: str
    age: float
    sex: int
    seed: int
    subject_id: str


def cohort_plan(n: int, seed: int = 0, conditions=None, potassium=None,
                age_range: tuple[float, float] = (18.0, 90.0)) -> list[CohortEntry]:
    """A balanced mix of `n` patients: conditions cycled in a shuffled order, half of them with
    a potassium abnormality (hyper and hypo alternating), ages uniform over `age_range`, sexes
    alternating. Deterministic for `seed`."""
    conditions = tuple(conditions or CONDITIONS)
    for cnd in conditions:
        if cnd not in CONDITIONS:
            raise SignalError(f"unknown condition {cnd!r}; known: {', '.join(CONDITIONS)}")
    if potassium is None:
        k_cycle = ("normal", "hyper", "normal", "hypo")
    else:
        k_cycle = tuple(potassium)
        for k in k_cycle:
            if k not in POTASSIUM:
                raise SignalError(f"unknown potassium state {k!r}; known: {POTASSIUM}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7919]))
    conds = [conditions[i % len(conditions)] for i in range(n)]
    rng.shuffle(conds)
    ks = [k_cycle[i % len(k_cycle)] for i in range(n)]
    rng.shuffle(ks)
    sexes = np.arange(n) % 2
    rng.shuffle(sexes)
    ages = rng.uniform(age_range[0], age_range[1], n)
    seeds = rng.integers(0, 2 ** 31 - 1, n)
    return [CohortEntry(condition=conds[i], potassium=ks[i], age=round(float(ages[i]), 1),
                        sex=int(sexes[i]), seed=int(seeds[i]),
                        subject_id=f"synth-{int(seed)}-{i:05d}") for i in range(n)]
