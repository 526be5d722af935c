"""Sustained runs made from a training patient's own beats, as beat-stack rows (an option of
`edge-ecg stack --beats --runs N`, off by default: measured, it raised false VT alarms).

The shared training records hold no ventricular run longer than 18 beats (MIT-BIH 124). So the
beat stack never saw what a sustained run looks like to the patient context: after ~4 beats the
local RR is the run's own, so its beats come "on time", with no compensatory pause, while their
QRS stays wide and unlike the dominant beat. It learned prematurity from isolated PVCs, and
calls much of a long run of a patient it never saw N (bench/vt_runs.py; fold 0 holds runs of
67, 97 and 105 beats).

These rows show it the case on the training patients themselves. For a record with `MIN_V`
whole beats of a run class, each run is a real stretch of the record's beats (`LEAD_IN`, so the
context has learned the patient), then `length` of the patient's own V beats, or S beats, laid
end to end at a tachycardia's rate (45-80 % of the sinus RR; a V run may also be an
idioventricular rhythm, 85-130 %), one morphology or two alternating, then the record's beats
again after a pause. S runs are made beside the V ones because a supraventricular run is as
fast and as "on time"; with V runs alone the trees would learn any fast string of
non-dominant beats as V. Every beat goes through the same `PatientContext` the runtime keeps,
and its features are taken from a window around it as the runtime's windows give them
(`beat_rr_context`, `beat_context`, `stack_features`). Only the sequence is synthetic: every
beat's samples are the record's own. The run's beats keep the class they were drawn from, and
the beats after it their reference class (the sinus beats after a run come "late" against the
run's RR).

The rows join the trees' fits only (the network never sees these sequences, so they have no
network probabilities), never the rows the share `w` is chosen on.

Measured out of fold on the training folds (BENCHMARKS.md, "sustained ventricular runs"):
trees fitted with them call more of a held-out patient's synthetic run beats V, but through
the runtime they raise false VT alarms on MIT-BIH and SVDB, so the bundle's stack is fitted
without them. Note too that in a long monomorphic run the context may hand the run the
dominant template (after 30-49 beats in tests/runtime/test_beat_stack_runs.py), after which its
rows look normal yet are labelled V.
"""

from __future__ import annotations

import numpy as np

from edge_ecg.runtime.beat_stack import FEATURES, stack_features
from edge_ecg.signal.contract import SignalContract, beat_rr_context
from edge_ecg.signal.patient_context import N_CONTEXT, PatientContext, beat_context

MIN_V = 5                  # beats of a class a record needs to lend runs of it
LEAD_IN = 120              # the record's beats before a run (the context learns the patient)
FOLLOW = 20                # the record's beats after it
LENGTHS = (3, 150)         # run lengths, log-uniform
VT_RR = (0.45, 0.80)       # a VT's RR, a share of the sinus RR before it
IVR_RR = (0.85, 1.30)      # an idioventricular rhythm's
IVR_SHARE = 0.25           # of the runs
TWO_SHAPES = 0.3           # share of runs alternating two morphologies (bidirectional)
TEMPLATE_POOL = 8          # a run draws its beats from the seed's most similar V beats


def _corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Correlation of one flattened beat `a` with each row of `b`."""
    a = a - a.mean()
    b = b - b.mean(axis=1, keepdims=True)
    d = np.sqrt((a @ a) * np.einsum("ij,ij->i", b, b))
    return np.where(d > 1e-12, b @ a / np.where(d > 1e-12, d, 1.0), 0.0)


def run_rows(y: np.ndarray, r: np.ndarray, cls: np.ndarray, contract: SignalContract,
             run_classes: tuple[int, ...], runs: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
    """`(x, labels)`: stack-feature rows (`FEATURES`) of `runs` synthetic runs in one record.

    `y` `(T, L)`: the record filtered at `contract.fs_hz`; `r`: its detected R peaks; `cls`:
    each peak's reference class (task index, -1 none); `run_classes`: the classes runs are
    made of, V first (only V runs may be slow, an idioventricular rhythm), then S. Each run is
    of one class, drawn among those the record has `MIN_V` whole beats of; a
    record with none, or too short for a lead-in, gives no rows."""
    c = contract
    fs = float(c.fs_hz)
    pre, post = c.beat_pre, c.beat_len - c.beat_pre
    n = y.shape[0]
    whole = (r - pre >= 0) & (r + post <= n)
    pools_of = {k: np.flatnonzero(whole & (cls == k)) for k in run_classes}
    pools_of = {k: v for k, v in pools_of.items() if v.size >= MIN_V}
    empty = np.zeros((0, len(FEATURES))), np.zeros(0, np.int64)
    if not pools_of or r.size < LEAD_IN + FOLLOW + 2 or runs <= 0:
        return empty
    beats = lambda i: y[r[i] - pre:r[i] + post].T      # noqa: E731  (L, pre + post)
    flat = {k: np.stack([beats(i).ravel() for i in v]) for k, v in pools_of.items()}
    kinds = sorted(pools_of)
    xs, ys = [], []
    for _ in range(runs):
        kind = kinds[int(rng.integers(len(kinds)))]
        v, flat_v = pools_of[kind], flat[kind]
        i0 = int(rng.integers(LEAD_IN, r.size - FOLLOW - 1))
        lead = np.arange(i0 - LEAD_IN, i0 + 1)
        rr = np.diff(r[lead]) / fs
        sinus = float(np.median(rr[(rr > 0.25) & (rr < 2.5)])) if rr.size else 0.8
        length = int(round(np.exp(rng.uniform(*np.log(LENGTHS)))))
        slow = kind == run_classes[0] and rng.random() < IVR_SHARE    # V's escape rhythm
        share = rng.uniform(*(IVR_RR if slow else VT_RR))
        run_rr = max(share * sinus, 0.24)
        pools = []
        for _shape in range(2 if rng.random() < TWO_SHAPES else 1):
            seed = int(rng.integers(v.size))
            near = np.argsort(-_corr_rows(flat_v[seed], flat_v))[:TEMPLATE_POOL]
            pools.append(v[near])
        # the sequence: each beat's R sample, its samples (None: not whole) and its label
        seq_r = [int(x) for x in r[lead]]
        seq_b = [beats(i) if whole[i] else None for i in lead]
        seq_y = [int(cls[i]) for i in lead]
        t = float(seq_r[-1])
        for k in range(length):
            t += run_rr * fs * (1 + rng.uniform(-0.03, 0.03))
            seq_r.append(int(round(t)))
            seq_b.append(beats(int(rng.choice(pools[k % len(pools)]))))
            seq_y.append(kind)
        first_run = len(lead)
        t += sinus * fs * rng.uniform(1.0, 1.5)            # the pause before sinus resumes
        back = np.arange(i0 + 1, i0 + 1 + FOLLOW)
        shift = t - float(r[back[0]])
        for i in back:
            seq_r.append(int(round(r[i] + shift)))
            seq_b.append(beats(i) if whole[i] else None)
            seq_y.append(int(cls[i]))
        x, lab = _sequence_rows(np.array(seq_r), seq_b, seq_y, c, y.shape[1],
                                range(first_run, len(seq_r)))
        xs.append(x)
        ys.append(lab)
    x, lab = np.concatenate(xs), np.concatenate(ys)
    keep = lab >= 0
    return x[keep], lab[keep]


def _sequence_rows(seq_r: np.ndarray, seq_b: list, seq_y: list, c: SignalContract,
                   n_leads: int, rows_of: range) -> tuple[np.ndarray, np.ndarray]:
    """The stack features of the beats `rows_of` of a beat sequence, each from a window of
    `c.window_len` around it, as the runtime's windows hand them to the stack."""
    pre, post = c.beat_pre, c.beat_len - c.beat_pre
    ctx = PatientContext(c.fs_hz, n_leads, pre, post)
    raw = np.stack([ctx.observe(int(rr), b) for rr, b in zip(seq_r, seq_b)])
    w = c.window_len
    out_x, out_y = [], []
    beat_ctx = np.zeros((c.max_beats, N_CONTEXT))
    for m in rows_of:
        s = int(seq_r[m]) - w // 2
        lo, hi = int(np.searchsorted(seq_r, s)), int(np.searchsorted(seq_r, s + w))
        peaks = seq_r[lo:hi] - s
        inside = (peaks >= pre) & (peaks <= w - post)
        slot = int(inside[:m - lo].sum())
        if slot >= c.max_beats:                  # a fast run: the beat first in its window
            s = int(seq_r[m]) - pre
            lo, hi = m, int(np.searchsorted(seq_r, s + w))
            peaks = seq_r[lo:hi] - s
            inside = (peaks >= pre) & (peaks <= w - post)
            slot = 0
        rr = beat_rr_context(peaks, pre, post, w, c.max_beats, c.fs_hz)
        kept = np.flatnonzero(inside)[:c.max_beats] + lo
        beat_context(raw[kept], rr[:kept.size, 1], beat_ctx)
        out_x.append(stack_features(rr[slot], beat_ctx[slot]))
        out_y.append(seq_y[m])
    return np.array(out_x), np.array(out_y, np.int64)


__all__ = ["FOLLOW", "IVR_RR", "IVR_SHARE", "LEAD_IN", "LENGTHS", "MIN_V", "TEMPLATE_POOL",
           "TWO_SHAPES", "VT_RR", "run_rows"]
