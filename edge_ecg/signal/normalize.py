"""Per-lead normalisation of a model window, named in the bundle manifest.

`median_mv` keeps millivolts (amplitudes carry potassium and sex information: peaked T waves,
voltage differences) and only removes each lead's median and clips artefact spikes.
`zscore` scales each lead to unit variance, for encoders trained that way.
"""

from __future__ import annotations

import numpy as np

from edge_ecg.errors import SignalError

CLIP_MV = 8.0  # beyond any physiological QRS amplitude; clips electrode pops and saturation


def normalize(x: np.ndarray, method: str = "median_mv", axis: int = -1) -> np.ndarray:
    """Normalise each lead of `x` along the time `axis`; returns float32."""
    x = np.asarray(x, dtype=np.float32)
    if method == "median_mv":
        y = x - np.median(x, axis=axis, keepdims=True)
        return np.clip(y, -CLIP_MV, CLIP_MV)
    if method == "zscore":
        mu = x.mean(axis=axis, keepdims=True)
        sd = x.std(axis=axis, keepdims=True)
        return ((x - mu) / np.maximum(sd, 1e-3)).astype(np.float32)
    if method == "none":
        return x
    raise SignalError(f"unknown normalisation {method!r}: use 'median_mv', 'zscore' or 'none'")


NORMALISATIONS = ("median_mv", "zscore", "none")
