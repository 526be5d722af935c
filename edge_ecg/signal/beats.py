"""Beat windows aligned on the R peak: the morphology path's input."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def whole_beats(r_peaks: np.ndarray, pre: int, post: int, n: int, max_beats: int) -> np.ndarray:
    """The R peaks (int64, given order) whose `[r - pre, r + post)` lies wholly inside `[0, n)`,
    the first `max_beats` of them: the beats `beat_windows` keeps."""
    r = np.asarray(r_peaks, dtype=np.int64)
    return r[(r - pre >= 0) & (r + post <= n)][:max_beats]


def beat_windows(x: np.ndarray, r_peaks: np.ndarray, pre: int, post: int,
                 max_beats: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut `[r - pre, r + post)` around each R peak of a lead-major window `x` `(L, T)`.

    Only beats whose window lies wholly inside `x` are kept (a partial beat would teach the
    morphology experts a false shape); the first `max_beats` of them fill the output.
    Returns `beats` `(max_beats, L, pre + post)` float32 and `mask` `(max_beats,)` bool.
    """
    n_leads, n = x.shape
    beats = np.zeros((max_beats, n_leads, pre + post), dtype=np.float32)
    mask = np.zeros(max_beats, dtype=bool)
    nb = cut_beats(x, whole_beats(r_peaks, pre, post, n, max_beats), pre, post, beats)
    mask[:nb] = True
    return beats, mask


def cut_beats(x: np.ndarray, r: np.ndarray, pre: int, post: int, out: np.ndarray) -> int:
    """Copy the beats at `r` (already `whole_beats`) of `x` `(L, T)` into `out[:len(r)]`
    `(>= len(r), L, pre + post)`; returns `len(r)`. Rows of `out` past it are left as they are.

    One gather from a strided sliding-window view `(T - len + 1, L, len)` (no copy of `x`)
    lands each beat in the output layout directly, instead of an index matrix, a gather in
    `(L, B, len)` order and a transposing copy. The view is built with the `ndarray`
    constructor where `x` is contiguous (`sliding_window_view` costs ~50 us of Python checks
    per call, more than the copy itself).
    """
    nb = int(r.shape[0])
    if nb:
        n_leads, n = x.shape
        length = pre + post
        if x.flags.c_contiguous:
            s_lead, s_t = x.strides
            view = np.ndarray((n - length + 1, n_leads, length), dtype=x.dtype, buffer=x,
                              strides=(s_t, s_lead, s_t))
        else:
            view = sliding_window_view(x, length, axis=1).transpose(1, 0, 2)
        out[:nb] = view[r - pre]
    return nb


__all__ = ["beat_windows", "cut_beats", "whole_beats"]
