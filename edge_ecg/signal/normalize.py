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
        if x.size and np.isfinite(x).all():
            med = np.moveaxis(median_last_axis(np.moveaxis(x, axis, -1)), -1, axis)
        else:       # NaN/inf or empty: numpy's own NaN-propagating median
            med = np.median(x, axis=axis, keepdims=True)
        y = x - med
        return np.clip(y, -CLIP_MV, CLIP_MV)
    if method == "zscore":
        mu = x.mean(axis=axis, keepdims=True)
        sd = x.std(axis=axis, keepdims=True)
        return ((x - mu) / np.maximum(sd, 1e-3)).astype(np.float32)
    if method == "none":
        return x
    raise SignalError(f"unknown normalisation {method!r}: use 'median_mv', 'zscore' or 'none'")


def median_last_axis(x: np.ndarray) -> np.ndarray:
    """`np.median(x, axis=-1, keepdims=True)` for a FINITE float array, ~3x faster.

    numpy's median partitions at three ranks (the two middle ones and the last, for its NaN
    check), which falls back to its scalar introselect; one rank (`n // 2`) takes the SIMD
    selection (x86-simd-sort), and the rank below it is the maximum of the left part. The two
    middle values are then averaged by `np.mean`, as `np.median` does, so the result is the same
    number (measured 0.12 vs 0.36 ms for 12 x 5000 float32). The caller guarantees finiteness:
    with a NaN the single-rank partition would not see it.
    """
    n = x.shape[-1]
    if n == 0:
        return np.median(x, axis=-1, keepdims=True)
    k = n // 2
    part = np.partition(x, k, axis=-1)
    if n % 2:
        return part[..., k:k + 1]
    mid = np.empty(x.shape[:-1] + (2,), dtype=part.dtype)
    np.max(part[..., :k], axis=-1, out=mid[..., 0])
    mid[..., 1] = part[..., k]
    return np.mean(mid, axis=-1, keepdims=True)


NORMALISATIONS = ("median_mv", "zscore", "none")


__all__ = ["CLIP_MV", "NORMALISATIONS", "median_last_axis", "normalize"]
