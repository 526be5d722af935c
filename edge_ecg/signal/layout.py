"""The stream layout every signal function takes: time-major `(n_samples, n_leads)`."""

from __future__ import annotations

import numpy as np

from edge_ecg.errors import SignalError


def as_time_major(x: np.ndarray) -> np.ndarray:
    """`x` as `(T, L)`: a single lead `(T,)` becomes `(T, 1)`; other shapes are refused."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise SignalError(f"signal must be (T,) or (T, n_leads), got shape {x.shape}")
    return x


__all__ = ["as_time_major"]
