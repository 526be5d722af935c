"""Patient folds for cross-validation: a split by patient that is the same on every machine."""

from __future__ import annotations

import hashlib


def subject_fold(subject: str, k: int = 5) -> int:
    """The cross-validation fold of a subject: sha256 of its id, modulo k. Depends on nothing
    but the id, so every machine, run and data subset puts a patient in the same fold."""
    return int(hashlib.sha256(subject.encode()).hexdigest()[:12], 16) % k
