"""`PatientAdaptation`: after a learning period, the patient's own beats veto V calls that
look like their normal beats.

A classifier fitted on other patients calls some of a new patient's normal beats V: a wide
normal QRS, a bundle branch block, an odd axis (MIT-BIH 203, 208; SVDB 851, 865, 887 in the
training folds). A bedside monitor learns the patient: it has minutes of the same person.
Here the learning period is the first `learn_s` (300 s, EC57's, which the standard leaves
unscored for this purpose) after the patient context starts (the stream's start, a relearn, a
lead change or a long gap). In it, the beats the beat stack calls with at least `tau`
probability are the patient's own labelled examples: no clinician labels anything. Where at
least two classes, N and V among them, have `min_beats` each, a linear discriminant (LDA with
Ledoit-Wolf shrinkage, in numpy) is fitted on them over the beat stack's features (RR,
prematurity, and QRS correlation, width and amplitude against the patient's dominant beat).
From then on, each beat's V probability is scaled by exp(`beta` times the discriminant's
log-odds of V against N) where those are negative, the mass taken going to N: the patient's
history can take a V call away, never make one, and S (a matter of timing) is left to the
stack.

Out of fold on the training patients, through the runtime (bench/beat_stack_folds.py
--adaptation off,on; BENCHMARKS.md "2026-12-07, night"): MIT-BIH V Se / +P 0.888 / 0.815 ->
0.877 / 0.912, false VT alarms 2.85 -> 1.42 per hour, SVDB V 0.752 / 0.828 -> 0.746 / 0.846,
S unchanged. The state is plain arrays, so
a ward snapshot holds it, and it changes only with the beats classified, in order, so any
chunking gives the same classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


P_LDA_FLOOR = 1e-4          # the discriminant's probabilities floored before their log-odds


@dataclass(frozen=True)
class AdaptationConfig:
    """The setting a bundle's `beat_stack.json` carries (`patient_adaptation`)."""

    tau: float = 0.98         # a learning-period call this sure is a pseudo-label
    beta: float = 0.5         # how hard the patient's discriminant vetoes a V call
    learn_s: float = 300.0    # the learning period, from the context's start
    min_beats: int = 20       # pseudo-labels a class needs to be modelled
    max_beats: int = 2048     # learning-period beats kept (300 s at 400 /min is 2 000)

    @staticmethod
    def parse(doc, where: str) -> AdaptationConfig:
        """From a bundle's JSON object, every field checked (a bundle is untrusted data)."""
        from edge_ecg.runtime.bundle import checked_setting

        return AdaptationConfig(**checked_setting(
            doc, "patient_adaptation", AdaptationConfig(),
            {"tau": (0.5, 1.0, False), "beta": (0.0, 10.0, False),
             "learn_s": (10.0, 3600.0, False), "min_beats": (2, 10_000, True),
             "max_beats": (10, 100_000, True)}, where))

    def to_dict(self) -> dict:
        return {"tau": self.tau, "beta": self.beta, "learn_s": self.learn_s,
                "min_beats": self.min_beats, "max_beats": self.max_beats}


def ledoit_wolf(x: np.ndarray) -> np.ndarray:
    """The Ledoit-Wolf shrunk covariance of `x` `(n, p)` (centred here), on standardised
    columns and scaled back, as scikit-learn's LDA with `shrinkage="auto"` takes it."""
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    xs = (x - x.mean(axis=0)) / scale
    n, p = xs.shape
    if p == 1:
        return np.atleast_2d((xs ** 2).mean()) * scale[:, None] * scale[None, :]
    emp = xs.T @ xs / n
    mu = np.trace(emp) / p
    x2 = xs ** 2
    beta = float(np.sum(x2.T @ x2))
    delta = float(np.sum(emp ** 2))
    beta = 1.0 / (p * n) * (beta / n - delta)
    delta = (delta - 2.0 * mu * float(x2.sum(axis=0).sum()) / n + p * mu ** 2) / p
    beta = min(beta, delta)
    shrink = 0.0 if beta == 0 else beta / delta
    cov = (1.0 - shrink) * emp
    cov.flat[:: p + 1] += shrink * mu
    return scale[:, None] * cov * scale[None, :]


def lda_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes, coef `(k, p)`, intercept `(k,)`) of a shrinkage LDA: class means, the
    priors' mixture of each class's shrunk covariance, solved by least squares."""
    classes, counts = np.unique(y, return_counts=True)
    priors = counts / counts.sum()
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    cov = sum(pk * ledoit_wolf(x[y == c]) for c, pk in zip(classes, priors))
    coef = np.linalg.lstsq(cov, means.T, rcond=None)[0].T
    intercept = -0.5 * np.einsum("kp,kp->k", means, coef) + np.log(priors)
    return classes, coef, intercept


class PatientAdaptation:
    """The learning period's pseudo-labels, then the patient's discriminant.

    `observe(epoch, r, x, p)` for each classified beat, in order (model clock `r`, its stack
    features `x`, the beat stack's probabilities `p`); `adjust(r, x, p)` gives the
    probabilities of any beats with the veto applied once the discriminant exists.
    """

    def __init__(self, cfg: AdaptationConfig, fs_hz: float, n_features: int,
                 labels: list[str]) -> None:
        self.cfg = cfg
        self.fs_hz = float(fs_hz)
        labels = list(labels)
        self.n_cls, self.v_cls = labels.index("N"), labels.index("V")
        self.epoch: int | None = None
        self.start = 0                       # model clock of the epoch's first beat
        self.x = np.zeros((cfg.max_beats, n_features), np.float64)
        self.lab = np.zeros(cfg.max_beats, np.int64)
        self.n = 0
        self.settled = False                 # the learning period is over (fitted or not)
        # the discriminant, once fitted (None before, and where it could not be)
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.coef: np.ndarray | None = None
        self.intercept: np.ndarray | None = None
        self.classes: np.ndarray | None = None

    def _reset(self, epoch: int, r: int) -> None:
        self.epoch, self.start, self.n, self.settled = int(epoch), int(r), 0, False
        self.mean = self.scale = self.coef = self.intercept = self.classes = None

    def observe(self, epoch: int, r: int, x: np.ndarray, p: np.ndarray) -> None:
        """One classified beat (in stream order) of context `epoch`."""
        if epoch != self.epoch:
            self._reset(epoch, r)
        if self.settled:
            return
        if r - self.start >= self.cfg.learn_s * self.fs_hz:
            self._fit()
            return
        k = int(np.argmax(p))
        if float(p[k]) >= self.cfg.tau and self.n < self.cfg.max_beats:
            self.x[self.n] = x
            self.lab[self.n] = k
            self.n += 1

    def _fit(self) -> None:
        self.settled = True
        x, lab = self.x[: self.n], self.lab[: self.n]
        cls, cnt = np.unique(lab, return_counts=True)
        keep_cls = cls[cnt >= self.cfg.min_beats]
        if len(keep_cls) < 2 or self.n_cls not in keep_cls or self.v_cls not in keep_cls:
            return                  # nothing to learn the patient's N against V from
        keep = np.isin(lab, keep_cls)
        self.mean = x[keep].mean(axis=0)
        self.scale = x[keep].std(axis=0) + 1e-6
        self.classes, self.coef, self.intercept = lda_fit((x[keep] - self.mean) / self.scale,
                                                          lab[keep])

    def adjust(self, r: np.ndarray, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        """`p` `(n, K)` of beats at model clock `r` with stack features `x` `(n, F)`: V lowered
        where the patient's discriminant says N, for beats after the learning period."""
        if self.coef is None or self.mean is None or self.scale is None \
                or self.intercept is None or self.classes is None:
            return p
        after = np.asarray(r) - self.start >= self.cfg.learn_s * self.fs_hz
        if not after.any():
            return p
        d = ((np.asarray(x, np.float64)[after] - self.mean) / self.scale) @ self.coef.T \
            + self.intercept
        d -= d.max(axis=1, keepdims=True)
        q = np.exp(d)
        q /= q.sum(axis=1, keepdims=True)
        cls = self.classes.tolist()
        lo = np.log(np.maximum(q[:, cls.index(self.v_cls)], P_LDA_FLOOR)) \
            - np.log(np.maximum(q[:, cls.index(self.n_cls)], P_LDA_FLOOR))
        out = np.array(p, dtype=np.float64, copy=True)
        rows = out[after]
        # what the veto takes from V goes to N, the class the patient's beats say it is (not
        # spread over S, F and Q by a renormalisation: a vetoed V is not an S call)
        taken = rows[:, self.v_cls] * (1.0 - np.exp(self.cfg.beta * np.minimum(lo, 0.0)))
        rows[:, self.v_cls] -= taken
        rows[:, self.n_cls] += taken
        out[after] = rows
        return out.astype(np.asarray(p).dtype)
