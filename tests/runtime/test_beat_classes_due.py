"""Which beats a window classifies (`BeatClasses.due` / `claim`, issue 27: a pass over Python
ints) is the array form's answer: whole by the window's end, ready (the next beat seen or
waited long enough), and not claimed before."""

from __future__ import annotations

import numpy as np

from edge_ecg.runtime.beat_classes import BeatClasses


def _array_due(bc: BeatClasses, b: np.ndarray, end: int) -> np.ndarray:
    if not b.size:
        return np.zeros(0, dtype=bool)
    nxt = np.append(b[1:], np.iinfo(np.int64).max)
    whole = b + bc.post <= end
    ready = (nxt < end) | (b + bc.wait <= end)
    done = np.fromiter((int(r) in bc._done for r in b), dtype=bool, count=b.size)
    return whole & ready & ~done


def test_due_and_claim_equal_the_array_form_over_a_stream():
    rng = np.random.default_rng(6)
    fs, win, hop = 250.0, 2500, 250
    bc = BeatClasses(["N", "S", "V", "F", "Q"], 62, 113, fs, 32, window_len=win)
    ref = BeatClasses(["N", "S", "V", "F", "Q"], 62, 113, fs, 32, window_len=win)
    beats = np.cumsum(rng.integers(60, 400, 400))
    n_claimed = 0
    for end in range(win, int(beats[-1]) + hop, hop):
        b = beats[(beats >= end - win) & (beats < end)]
        want = _array_due(ref, b, end)
        assert bc.due(b, end - win, end).tolist() == want.tolist()
        got = bc.claim(b, end - win, end)
        assert got == b[want].tolist()
        ref._done.update(got)
        n_claimed += len(got)
    assert n_claimed == len(set(beats.tolist()) & bc._done) and n_claimed > 300
    assert bc.due(np.zeros(0, np.int64), 0, 10).shape == (0,)
