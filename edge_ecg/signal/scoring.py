"""Beat-by-beat scoring of detections against reference beats (AAMI EC57 style).

A detection matches a reference beat when they lie within a tolerance (150 ms, EC57 and the
WFDB `bxb` default match window); each reference beat and each detection is used at most once,
closest pairs first. Sensitivity = TP / (TP + FN), positive predictivity = TP / (TP + FP).

Kept rather than `wfdb.processing.compare_annotations` because it also returns the matched
pairs' timing errors and trims record edges; its counts equal wfdb's wherever beats and
detections are each >= 100 ms apart (tests/signal/test_scoring.py: random sequences and
MIT-BIH records with our detector); sequences closer than that, which no beat series is, can
differ either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MATCH_TOLERANCE_S = 0.150


@dataclass(frozen=True)
class BeatScore:
    """Counts and rates of one record (or pooled over records)."""

    n_ref: int
    n_det: int
    tp: int
    fp: int
    fn: int
    errors_ms: np.ndarray     # detection - reference for each matched pair, ms (float64)

    @property
    def sensitivity(self) -> float:
        return self.tp / (self.tp + self.fn) if (self.tp + self.fn) else float("nan")

    @property
    def ppv(self) -> float:
        return self.tp / (self.tp + self.fp) if (self.tp + self.fp) else float("nan")

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else float("nan")

    @property
    def median_abs_error_ms(self) -> float:
        return float(np.median(np.abs(self.errors_ms))) if self.errors_ms.size else float("nan")

    def to_dict(self) -> dict:
        return {
            "n_ref": self.n_ref, "n_det": self.n_det, "tp": self.tp, "fp": self.fp,
            "fn": self.fn, "sensitivity": self.sensitivity, "ppv": self.ppv, "f1": self.f1,
            "median_abs_error_ms": self.median_abs_error_ms,
        }


def match_beats(ref: np.ndarray, det: np.ndarray, tolerance: int) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching within `tolerance` samples, closest pairs first.

    Returns `(ref_idx, det_idx)` int64 arrays of matched positions into `ref` and `det`
    (both taken as sorted ascending).
    """
    ref = np.sort(np.asarray(ref, dtype=np.int64))
    det = np.sort(np.asarray(det, dtype=np.int64))
    if ref.size == 0 or det.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # candidate pairs: every detection within the window of each reference beat
    lo = np.searchsorted(det, ref - tolerance, side="left")
    hi = np.searchsorted(det, ref + tolerance, side="right")
    counts = hi - lo
    ri = np.repeat(np.arange(ref.size), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)     # position of each run's start
    di = np.repeat(lo, counts) + (np.arange(counts.sum()) - first)
    dist = np.abs(det[di] - ref[ri])
    order = np.lexsort((ri, dist))
    used_r = np.zeros(ref.size, bool)
    used_d = np.zeros(det.size, bool)
    out_r, out_d = [], []
    for k in order:  # pairs only exist near beats: a few per reference beat
        r, d = ri[k], di[k]
        if not used_r[r] and not used_d[d]:
            used_r[r] = used_d[d] = True
            out_r.append(r)
            out_d.append(d)
    matched_r = np.asarray(out_r, dtype=np.int64)
    matched_d = np.asarray(out_d, dtype=np.int64)
    order = np.argsort(matched_r)
    return matched_r[order], matched_d[order]


def score_beats(ref: np.ndarray, det: np.ndarray, fs_hz: float,
                tolerance_s: float = MATCH_TOLERANCE_S, exclude_edges_s: float = 0.0,
                n_samples: int | None = None) -> BeatScore:
    """Score detections `det` against reference beats `ref` (sample indices at `fs_hz`).

    `exclude_edges_s` > 0 drops reference beats and detections within that time of the start
    and of the end (`n_samples`, required then): a beat in the last ~150 ms of a finite record
    cannot be confirmed by any causal detector. The default scores everything.
    """
    ref = np.sort(np.asarray(ref, dtype=np.int64))
    det = np.sort(np.asarray(det, dtype=np.int64))
    if exclude_edges_s > 0:
        if n_samples is None:
            raise ValueError("exclude_edges_s needs n_samples (the record length)")
        edge = int(round(exclude_edges_s * fs_hz))
        ref = ref[(ref >= edge) & (ref < n_samples - edge)]
        det = det[(det >= edge) & (det < n_samples - edge)]
    tol = int(round(tolerance_s * fs_hz))
    mr, md = match_beats(ref, det, tol)
    tp = int(mr.size)
    errors = (det[md] - ref[mr]).astype(np.float64) * (1000.0 / fs_hz)
    return BeatScore(n_ref=int(ref.size), n_det=int(det.size), tp=tp, fp=int(det.size - tp),
                     fn=int(ref.size - tp), errors_ms=errors)


def pool_scores(scores: list[BeatScore]) -> BeatScore:
    """Pooled (gross) statistics: counts summed over records, as EC57 reports them."""
    return BeatScore(
        n_ref=sum(s.n_ref for s in scores), n_det=sum(s.n_det for s in scores),
        tp=sum(s.tp for s in scores), fp=sum(s.fp for s in scores),
        fn=sum(s.fn for s in scores),
        errors_ms=np.concatenate([s.errors_ms for s in scores]) if scores else np.zeros(0),
    )


__all__ = ["MATCH_TOLERANCE_S", "BeatScore", "match_beats", "pool_scores", "score_beats"]
