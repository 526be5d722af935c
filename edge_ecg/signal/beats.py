"""Beat windows aligned on the R peak: the morphology path's input."""

from __future__ import annotations

import numpy as np


def beat_windows(x: np.ndarray, r_peaks: np.ndarray, pre: int, post: int,
                 max_beats: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut `[r - pre, r + post)` around each R peak of a lead-major window `x` `(L, T)`.

    Only beats whose window lies wholly inside `x` are kept (a partial beat would teach the
    morphology experts a false shape); the first `max_beats` of them fill the output.
    Returns `beats` `(max_beats, L, pre + post)` float32 and `mask` `(max_beats,)` bool.
    """
    n_leads, n = x.shape
    r = np.asarray(r_peaks, dtype=np.int64)
    r = r[(r - pre >= 0) & (r + post <= n)][:max_beats]
    beats = np.zeros((max_beats, n_leads, pre + post), dtype=np.float32)
    mask = np.zeros(max_beats, dtype=bool)
    if r.size:
        idx = r[:, None] + np.arange(-pre, post)[None, :]          # (B, beat_len)
        beats[: r.size] = np.transpose(x[:, idx], (1, 0, 2))       # (L, B, len) -> (B, L, len)
        mask[: r.size] = True
    return beats, mask
