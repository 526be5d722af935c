"""AAMI EC57 scoring of classified beats: confusion matrix, gross Se and +P of V, S and F.

Per record, detections are matched one-to-one to the reference beats within 150 ms
(`edge_ecg.signal.scoring.match_beats`, closest pairs first, the EC57 / WFDB `bxb` window).
Reference classes are indices into `AAMI_CLASSES` (N S V F Q), -1 for a beat without a class
(a paced record, a symbol EC57 does not map): such a beat is left out of class scoring, and so is
the detection matched to it (it found a real beat, whose class nobody knows). Predicted classes
are indices too, -1 for a beat that was detected but not classified.

The confusion matrix `confusion` is 5 x 6: rows the reference class, columns the predicted class
and a last column `missed` (a reference beat the detector missed, or detected but left
unclassified). `extra` counts, per predicted class (and a last entry for unclassified), the
detections that match no reference beat at all.

Definitions (gross: counts summed over records before dividing, as EC57 and de Chazal et al.
2004 report; for class c):

    Se(c) = C[c, c] / (sum of row c, `missed` included)
            every reference beat of class c, whatever the detector did with it
    +P(c) = C[c, c] / (sum of column c over the five reference rows + extra[c])
            every detection called c: matched to a labelled reference beat of any class, or
            matched to no reference beat (a false detection called c)

So a missed V counts against V Se, and an extra detection called V counts against V +P.
`v_ppv_fusion_excused` is V +P with fusion beats called V left out of the denominator; the
headline `ppv` keeps them, the stricter reading. The published figures printed beside these
(de Chazal 2004) were scored on the reference beat positions, not on a detector's.

EC57 itself, as its reference comparator WFDB `bxb` implements it, scores less than every beat:

- the first 5 minutes of a record are the algorithm's learning period, not scored
  (`EC57_LEARNING_S`; bxb's default start, which the standard does not let a tester move);
- no beat inside a reference ventricular flutter/fibrillation episode (`[` ... `]`) is
  compared: the reference marks no beats there, and a detection there is not a false beat;
- V +P does not count fusion or unclassifiable reference beats called V against it, nor S +P
  an unclassifiable beat called S (bxb's VFP = Nv + Sv + Ov, SFP = Ns + Vs + Fs + Os).

`score_beat_classes(..., from_sample=, excluded=)` drops the first two; `ppv_ec57` is the third.
Both readings are reported: the EC57 one is what published and commercial figures mean, the
strict one is what a monitor's whole record shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_ecg.data.aami import AAMI_CLASSES
from edge_ecg.signal.scoring import MATCH_TOLERANCE_S, match_beats

N_CLASSES = len(AAMI_CLASSES)
MISSED = N_CLASSES                     # the confusion matrix's last column
SCORED = ("V", "S", "F")               # the classes EC57 reports Se and +P for
EC57_LEARNING_S = 300.0                # the learning period EC57 leaves unscored
# reference classes whose beats called `cls` bxb does not count against `cls` +P
EC57_NOT_AGAINST = {"V": ("F", "Q"), "S": ("Q",)}


@dataclass(frozen=True)
class BeatClassScore:
    """Class-by-class counts of one record (or of records pooled: `record` "gross")."""

    record: str
    confusion: np.ndarray      # (5, 6) int64: reference class x (predicted class, missed)
    extra: np.ndarray          # (6,) int64: unmatched detections per predicted class, unclassified
    n_unlabelled: int          # reference beats without a class (left out)
    n_unlabelled_detected: int  # ... of which matched by a detection (left out too)

    @property
    def n_ref(self) -> int:
        """Labelled reference beats."""
        return int(self.confusion.sum())

    @property
    def n_missed(self) -> int:
        return int(self.confusion[:, MISSED].sum())

    def se(self, cls: str) -> float:
        c = AAMI_CLASSES.index(cls)
        d = int(self.confusion[c].sum())
        return int(self.confusion[c, c]) / d if d else float("nan")

    def ppv(self, cls: str, excused: tuple[str, ...] = ()) -> float:
        """+P of `cls`; reference beats of the `excused` classes called `cls` are not counted
        against it."""
        c = AAMI_CLASSES.index(cls)
        rows = [AAMI_CLASSES.index(r) for r in excused]
        d = int(self.confusion[:, c].sum() + self.extra[c] - self.confusion[rows, c].sum())
        return int(self.confusion[c, c]) / d if d else float("nan")

    def ppv_ec57(self, cls: str) -> float:
        """+P as EC57 counts it (`EC57_NOT_AGAINST`, module docstring)."""
        return self.ppv(cls, EC57_NOT_AGAINST.get(cls, ()))

    @property
    def v_ppv_fusion_excused(self) -> float:
        return self.ppv("V", ("F",))

    @property
    def accuracy(self) -> float:
        """Labelled reference beats given their own class (missed ones count as wrong)."""
        n = self.n_ref
        return float(np.trace(self.confusion[:, :N_CLASSES])) / n if n else float("nan")

    def counts(self, cls: str) -> dict[str, int]:
        """TP, FN, FP of class `cls` as the definitions above count them."""
        c = AAMI_CLASSES.index(cls)
        tp = int(self.confusion[c, c])
        return {"tp": tp, "fn": int(self.confusion[c].sum()) - tp,
                "fp": int(self.confusion[:, c].sum() + self.extra[c]) - tp}

    def to_dict(self) -> dict:
        out = {
            "record": self.record,
            "classes": list(AAMI_CLASSES),
            "confusion_columns": [*AAMI_CLASSES, "missed"],
            "confusion": self.confusion.tolist(),
            "extra": dict(zip([*AAMI_CLASSES, "unclassified"], self.extra.tolist())),
            "n_ref": self.n_ref, "n_missed": self.n_missed,
            "n_unlabelled": self.n_unlabelled,
            "n_unlabelled_detected": self.n_unlabelled_detected,
            "accuracy": self.accuracy,
            "v_ppv_fusion_excused": self.v_ppv_fusion_excused,
        }
        for cls in AAMI_CLASSES:
            k = cls.lower()
            out[f"{k}_se"] = self.se(cls)
            out[f"{k}_ppv"] = self.ppv(cls)
            out[f"{k}_ppv_ec57"] = self.ppv_ec57(cls)
            out[f"n_{k}"] = int(self.confusion[AAMI_CLASSES.index(cls)].sum())
            out.update({f"{k}_{n}": v for n, v in self.counts(cls).items()})
        return out


def score_beat_classes(ref_samples, ref_classes, det_samples, det_classes, fs_hz: float,
                       record: str = "", tolerance_s: float = MATCH_TOLERANCE_S,
                       from_sample: int = 0, excluded=()) -> BeatClassScore:
    """Score classified detections of one record against its classified reference beats.

    `ref_samples` / `det_samples` are sample indices at `fs_hz`; `ref_classes` / `det_classes`
    class indices into `AAMI_CLASSES` per beat, -1 = no class (see the module docstring).
    Reference beats and detections before `from_sample`, or inside one of the `excluded`
    (start, end) sample intervals, are not scored (EC57's learning period and VF episodes).
    """
    rs = np.asarray(ref_samples, dtype=np.int64)
    rc = np.asarray(ref_classes, dtype=np.int64)
    ds = np.asarray(det_samples, dtype=np.int64)
    dc = np.asarray(det_classes, dtype=np.int64)
    if rs.shape != rc.shape or ds.shape != dc.shape:
        raise ValueError(f"{record or 'record'}: {rs.size} reference beats with {rc.size} "
                         f"classes, {ds.size} detections with {dc.size} classes")
    for name, c in (("reference", rc), ("predicted", dc)):
        if c.size and (c.min() < -1 or c.max() >= N_CLASSES):
            raise ValueError(f"{record or 'record'}: {name} classes must lie in -1..{N_CLASSES - 1}")
    if from_sample or len(excluded):
        rk, dk = _scored(rs, from_sample, excluded), _scored(ds, from_sample, excluded)
        rs, rc, ds, dc = rs[rk], rc[rk], ds[dk], dc[dk]
    ro, do = np.argsort(rs, kind="stable"), np.argsort(ds, kind="stable")
    rs, rc, ds, dc = rs[ro], rc[ro], ds[do], dc[do]
    mr, md = match_beats(rs, ds, round(tolerance_s * fs_hz))

    # a predicted class per reference beat: the matched detection's, MISSED where none
    pred_of_ref = np.full(rs.size, MISSED, dtype=np.int64)
    pred_of_ref[mr] = np.where(dc[md] >= 0, dc[md], MISSED)
    lab = rc >= 0
    confusion = np.zeros((N_CLASSES, N_CLASSES + 1), dtype=np.int64)
    np.add.at(confusion, (rc[lab], pred_of_ref[lab]), 1)

    unmatched = np.ones(ds.size, dtype=bool)
    unmatched[md] = False
    extra = np.bincount(np.where(dc[unmatched] >= 0, dc[unmatched], N_CLASSES),
                        minlength=N_CLASSES + 1).astype(np.int64)
    return BeatClassScore(record=record, confusion=confusion, extra=extra,
                          n_unlabelled=int((~lab).sum()),
                          n_unlabelled_detected=int((rc[mr] < 0).sum()))


def _scored(samples: np.ndarray, from_sample: int, excluded) -> np.ndarray:
    """Mask of the beats at or after `from_sample` and outside every [start, end] interval."""
    keep = samples >= from_sample
    for a, b in excluded:
        keep &= ~((samples >= a) & (samples <= b))
    return keep


def pool_class_scores(scores: list[BeatClassScore], record: str = "gross") -> BeatClassScore:
    """Gross counts: every record's beats summed (EC57's gross statistics)."""
    return BeatClassScore(
        record=record,
        confusion=sum((s.confusion for s in scores),
                      np.zeros((N_CLASSES, N_CLASSES + 1), np.int64)),
        extra=sum((s.extra for s in scores), np.zeros(N_CLASSES + 1, np.int64)),
        n_unlabelled=sum(s.n_unlabelled for s in scores),
        n_unlabelled_detected=sum(s.n_unlabelled_detected for s in scores))


def _pct(v: float) -> str:
    return "-" if not np.isfinite(v) else f"{100 * v:.1f}"


def record_table(scores: list[BeatClassScore], gross: bool = True) -> str:
    """Per-record table (beats per class, missed, Se / +P of V, S, F in %), gross last."""
    head = (f"{'record':<8}{'N':>7}{'S':>6}{'V':>6}{'F':>5}{'Q':>4}{'missed':>8}{'extra':>7}"
            + "".join(f"{c + ' Se':>8}{c + ' +P':>8}" for c in SCORED))
    rows = [head]
    for s in [*scores, *([pool_class_scores(scores)] if gross and scores else [])]:
        n = s.confusion.sum(1)
        rows.append(f"{s.record:<8}{n[0]:>7}{n[1]:>6}{n[2]:>6}{n[3]:>5}{n[4]:>4}"
                    f"{s.n_missed:>8}{int(s.extra.sum()):>7}"
                    + "".join(f"{_pct(s.se(c)):>8}{_pct(s.ppv(c)):>8}" for c in SCORED))
    return "\n".join(rows)


def confusion_table(score: BeatClassScore) -> str:
    """The confusion matrix with the unmatched detections as a last row."""
    cols = [*AAMI_CLASSES, "missed"]
    rows = ["ref \\ called" + "".join(f"{c:>9}" for c in cols)]
    for i, c in enumerate(AAMI_CLASSES):
        rows.append(f"{c:<12}" + "".join(f"{v:>9}" for v in score.confusion[i]))
    rows.append(f"{'no beat':<12}" + "".join(f"{v:>9}" for v in score.extra[:N_CLASSES])
                + f"{'-':>9}")
    return "\n".join(rows)


__all__ = ["EC57_LEARNING_S", "EC57_NOT_AGAINST", "MISSED", "SCORED", "BeatClassScore", "confusion_table", "pool_class_scores",
           "record_table", "score_beat_classes"]
