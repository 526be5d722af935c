"""Per-patient beat context, as bedside monitors learn it: running RR averages and the
patient's dominant-beat template, and each beat judged against them.

A 10-s window is not a patient: a wide QRS may be this patient's normal beat (bundle branch
block) and an early beat is early only against this patient's rhythm. Monitors learn each
patient over the first beats and judge every later beat against what they learned (de Chazal
et al. 2004 normalised RR; Mondejar-Guerra et al. 2019 divided RR features by the patient's
average; Lin & Yang 2014: normalised RR "greatly improves" S). So does this module:

- RR statistics: a local average (the median of the last `LOCAL_N` RR intervals: a premature
  beat and its pause do not drag it) and a long one (an exponential average over about
  `LONG_N` beats, a few minutes);
- morphology clusters learned online on the filtered leads present (correlation over the QRS,
  up to `MAX_CLUSTERS` templates, each a running mean of its members); the dominant cluster is
  the most frequent of those whose beats are not, on average, premature (the bigeminy case:
  as many ectopic beats as normal ones, but only the normal ones come on time);
- a learning period (`LEARN_BEATS`) at the start, after a gap longer than `RELEARN_GAP_S`, a
  change of the leads, or an explicit `relearn()`; beats in it carry `learned = 0`.

Each beat gets one row of `RAW_COLUMNS` (`observe`), computed from that beat and the ones
before it only, so a stream fed in any chunking and a record processed offline give the same
rows (tests/signal/test_patient_context.py). The RR interval AFTER a beat (the compensatory
pause) is known only once the next beat is: `beat_context` joins it at window time, from the
window's own peaks, exactly as `beat_rr` does.

State is plain data (numbers and NumPy arrays), so a ward bed's snapshot carries it.
"""

from __future__ import annotations

import math

import numpy as np

LOCAL_N = 8                # RR intervals in the local average (the last 8-10 beats, as monitors)
LONG_N = 128               # beats in the long exponential average (~2 min at 70 bpm)
LEARN_BEATS = 8            # beats before the templates count as learned
RELEARN_GAP_S = 10.0       # a longer gap between beats starts learning again
MAX_CLUSTERS = 6           # morphology templates kept (least used replaced)
JOIN_CORR = 0.85           # QRS correlation to join a cluster ...
JOIN_AMP = (0.6, 1.6)      # ... with a peak-to-peak amplitude within this ratio of its template
MAX_TEMPLATE_N = 16        # a template is the running mean of at most this many recent members
COUNT_DECAY = 0.99         # cluster counts decay per beat (~100 beats of memory)
QRS_S = (-0.08, 0.12)      # QRS region around R (s): the region templates are matched on
P_S = (-0.25, -0.09)       # P-wave region before R (s)
RR_MIN_S, RR_MAX_S = 0.2, 3.0   # RR intervals outside are not rhythm (a pause, a missed beat)

# One row per beat from `observe`; `beat_context` turns rows into the model's `beat_ctx`.
RAW_COLUMNS: tuple[str, ...] = (
    "known",            # 1: the row exists (0 in an empty slot or where no context was kept)
    "learned",          # templates past their learning period
    "pre_rr_ms",        # RR before the beat, from the stream (0 = unknown)
    "local_rr_ms",      # local and long averages BEFORE this beat (0 = none yet)
    "long_rr_ms",
    "qrs_corr",         # correlation of the QRS with the dominant template
    "width_ratio",      # QRS width / the dominant template's
    "amp_ratio",        # QRS peak-to-peak / the dominant template's
    "p_corr",           # correlation of the P region with the dominant template's
    "p_ratio",          # P-region amplitude / the dominant template's
    "cluster_share",    # share of recent beats in this beat's cluster
    "in_dominant",      # 1 if the beat joined the dominant cluster
)
N_RAW = len(RAW_COLUMNS)

# The model's and the classical peer's per-beat context features (`beat_ctx`).
CONTEXT_COLUMNS: tuple[str, ...] = (
    "known", "learned",
    "pre_local",        # pre RR / local average: prematurity
    "post_local",       # post RR / local average: the compensatory pause (0 = unknown)
    "post_pre",         # post / pre RR (0 = unknown)
    "pre_long",         # pre RR / long average
    "local_long",       # local / long average (a rate change, not one beat)
    "qrs_corr", "width_ratio", "amp_ratio", "p_corr", "p_ratio",
    "cluster_share", "in_dominant",
)
N_CONTEXT = len(CONTEXT_COLUMNS)
_RAW = {k: i for i, k in enumerate(RAW_COLUMNS)}
# the reductions `.sum()`, `.max()`, `.min()` make, called directly (a beat makes ~30 of them
# on small arrays, where the methods' Python wrappers cost as much as the work)
_SUM, _MAX, _MIN = np.add.reduce, np.maximum.reduce, np.minimum.reduce


def _centred(a: np.ndarray) -> np.ndarray:
    """`a - a.mean()` for a 1-D float64 array, without `mean`'s wrapper: the same sum
    (`np.add.reduce`) divided by the count, the same numbers."""
    return a - float(_SUM(a)) / a.size


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = _centred(a)
    return _corr_centred(a, float(a @ a), b)


def _corr_centred(a: np.ndarray, aa: float, b: np.ndarray) -> float:
    """`_corr(a0, b)` with `a = a0 - a0.mean()` and `aa = a @ a` worked out by the caller
    (a beat's QRS is matched against every template: centred once, the same numbers)."""
    b = _centred(b)
    d = math.sqrt(aa * float(b @ b))
    return float(a @ b) / d if d > 1e-12 else 0.0


def _width(q: np.ndarray) -> float:
    """QRS width proxy (samples): the summed absolute slope over the leads divided by its peak
    (a wide beat spreads its slope energy over more samples)."""
    e = _SUM(np.abs(q[:, 1:] - q[:, :-1]), axis=0)       # np.diff, .sum(0)
    m = float(_MAX(e)) if e.size else 0.0
    return float(_SUM(e)) / m if m > 1e-9 else 0.0


def _ptp(q: np.ndarray) -> float:
    return float(_MAX(_MAX(q, axis=1) - _MIN(q, axis=1))) if q.size else 0.0


class PatientContext:
    """The context of one patient's stream: `observe` each beat in order, `relearn` on demand.

    `fs_hz`: the rate of the beats handed in; beats are `(L, pre + post)` windows of the
    filtered leads around R (`pre` samples before it), all leads of the stream (a lead that is
    off is flat: the caller says so with `set_leads`, which starts learning again).
    """

    def __init__(self, fs_hz: float, n_leads: int, pre: int, post: int) -> None:
        self.fs_hz = float(fs_hz)
        self.n_leads, self.pre, self.post = int(n_leads), int(pre), int(post)
        q0, q1 = (int(round(s * self.fs_hz)) for s in QRS_S)
        p0, p1 = (int(round(s * self.fs_hz)) for s in P_S)
        # region bounds inside a beat window (clipped to it)
        self.q = (max(self.pre + q0, 0), min(self.pre + q1, self.pre + self.post))
        self.p = (max(self.pre + p0, 0), max(min(self.pre + p1, self.pre), 0))
        self.leads_key = ""
        self.rr = np.zeros(LOCAL_N, np.float64)     # last RR intervals (ms), ring
        self.n_rr = 0
        self.long_rr = 0.0
        self.last_r: int | None = None
        self._reset_templates()

    def _reset_templates(self) -> None:
        n = self.pre + self.post
        self.templates = np.zeros((MAX_CLUSTERS, self.n_leads, n), np.float64)
        self.members = np.zeros(MAX_CLUSTERS, np.int64)     # beats averaged in (capped)
        self.counts = np.zeros(MAX_CLUSTERS, np.float64)    # decayed membership counts
        self.prem = np.ones(MAX_CLUSTERS, np.float64)       # mean prematurity of members
        self.n_clusters = 0
        self.learn_left = LEARN_BEATS
        # which learning period this is: what learns the patient downstream starts again
        # with it (edge_ecg.runtime.patient_adaptation)
        self.epoch = getattr(self, "epoch", -1) + 1

    def relearn(self) -> None:
        """Forget the templates (a lead change, a long gap, or asked for); RR averages stay."""
        self._reset_templates()

    def set_leads(self, key: str) -> None:
        """The leads analysed (any string naming them): a change starts learning again."""
        if key != self.leads_key:
            if self.leads_key:
                self.relearn()
            self.leads_key = key

    # --- per beat ------------------------------------------------------------------------
    def _local(self) -> float:
        k = min(self.n_rr, LOCAL_N)
        if not k:
            return 0.0
        # np.median of <= 8 finite values, in Python floats: the middle one, or the two
        # middle ones' mean ((a + b) / 2, as np.mean takes it), the same number
        v = sorted(self.rr[:k].tolist())
        h = k // 2
        return v[h] if k % 2 else (v[h - 1] + v[h]) / 2

    def dominant(self) -> int:
        """Index of the dominant cluster (-1 with none): the most frequent of the clusters
        whose members come on time on average, else the most frequent."""
        if not self.n_clusters:
            return -1
        c = self.counts[: self.n_clusters]
        on_time = self.prem[: self.n_clusters] >= 0.9
        if on_time.any():
            return int(np.argmax(np.where(on_time, c, -1.0)))
        return int(np.argmax(c))

    def observe(self, r: int, beat: np.ndarray | None) -> np.ndarray:
        """The row (`RAW_COLUMNS`) of the beat at absolute sample `r` (beats in increasing
        order), and the state updated with it. `beat`: its `(L, pre + post)` window, or None
        where the samples are not whole (the stream's first beat): RR only."""
        row = np.zeros(N_RAW, np.float64)
        row[_RAW["known"]] = 1.0
        ms = 1000.0 / self.fs_hz
        pre_rr = 0.0
        if self.last_r is not None:
            gap_s = (r - self.last_r) / self.fs_hz
            if gap_s > RELEARN_GAP_S:
                self.relearn()
            elif RR_MIN_S <= gap_s <= RR_MAX_S:
                pre_rr = (r - self.last_r) * ms
        self.last_r = int(r)
        local = self._local()
        row[_RAW["pre_rr_ms"]] = pre_rr
        row[_RAW["local_rr_ms"]] = local
        row[_RAW["long_rr_ms"]] = self.long_rr
        prem = pre_rr / local if (pre_rr and local) else 1.0
        if beat is not None:
            self._morphology(np.asarray(beat, np.float64), prem, row)
        if pre_rr:
            self.rr[self.n_rr % LOCAL_N] = pre_rr
            self.n_rr += 1
            a = 1.0 / min(self.n_rr, LONG_N)
            self.long_rr += a * (pre_rr - self.long_rr)
        return row

    def _morphology(self, b: np.ndarray, prem: float, row: np.ndarray) -> None:
        q0, q1 = self.q
        p0, p1 = self.p
        bq = b[:, q0:q1]
        n = self.n_clusters
        best, best_c = -1, -2.0
        cq = _centred(bq.ravel())          # flat_q - flat_q.mean(): the same numbers
        cqq = float(cq @ cq)
        for k in range(n):
            c = _corr_centred(cq, cqq, self.templates[k, :, q0:q1].ravel())
            if c > best_c:
                best, best_c = k, c
        amp = _ptp(bq)
        join = False
        if best >= 0 and best_c >= JOIN_CORR:
            ta = _ptp(self.templates[best, :, q0:q1])
            join = ta > 1e-9 and JOIN_AMP[0] <= amp / ta <= JOIN_AMP[1]
        self.counts[:n] *= COUNT_DECAY
        if not join:                      # a new cluster (or the least used one replaced)
            best = n if n < MAX_CLUSTERS else int(np.argmin(self.counts[:n]))
            self.templates[best] = b
            self.members[best] = 0
            self.counts[best] = 0.0
            self.prem[best] = prem
            self.n_clusters = max(n, best + 1)
        dom = self.dominant() if self.n_clusters else best
        if dom < 0:
            dom = best
        t = self.templates[dom]
        tq = t[:, q0:q1]
        row[_RAW["learned"]] = 1.0 if self.learn_left <= 0 else 0.0
        row[_RAW["qrs_corr"]] = _corr_centred(cq, cqq, tq.ravel())
        tw = _width(tq)
        row[_RAW["width_ratio"]] = min(_width(bq) / tw, 5.0) if tw > 0 else 1.0
        ta = _ptp(tq)
        row[_RAW["amp_ratio"]] = min(amp / ta, 5.0) if ta > 1e-9 else 1.0
        if p1 - p0 >= 3:
            bp, tp = b[:, p0:p1], t[:, p0:p1]
            row[_RAW["p_corr"]] = _corr(bp.ravel(), tp.ravel())
            tpa = _ptp(tp)
            row[_RAW["p_ratio"]] = min(_ptp(bp) / tpa, 5.0) if tpa > 1e-9 else 1.0
        # the beat joins its cluster: running mean over the last MAX_TEMPLATE_N members
        m = min(int(self.members[best]) + 1, MAX_TEMPLATE_N)
        self.templates[best] += (b - self.templates[best]) / m
        self.members[best] = m
        self.counts[best] += 1.0
        self.prem[best] += (prem - self.prem[best]) / m
        total = float(self.counts[: self.n_clusters].sum())
        row[_RAW["cluster_share"]] = self.counts[best] / total if total > 0 else 0.0
        row[_RAW["in_dominant"]] = 1.0 if best == self.dominant() else 0.0
        self.learn_left -= 1


def context_rows(y: np.ndarray, r_peaks: np.ndarray, fs_hz: float, pre: int, post: int,
                 ctx: PatientContext | None = None) -> np.ndarray:
    """Rows `(len(r_peaks), N_RAW)` of every beat of a filtered record `y` `(T, L)` (the
    offline form of feeding `observe` beat by beat: the same numbers)."""
    y = np.asarray(y)
    ctx = ctx or PatientContext(fs_hz, y.shape[1], pre, post)
    out = np.zeros((len(r_peaks), N_RAW), np.float32)
    n = y.shape[0]
    for i, r in enumerate(np.asarray(r_peaks, dtype=np.int64).tolist()):
        beat = y[r - pre:r + post].T if (r - pre >= 0 and r + post <= n) else None
        out[i] = ctx.observe(r, beat)
    return out


def beat_context(rows: np.ndarray, post_rr_ms: np.ndarray, out: np.ndarray) -> None:
    """The model's `beat_ctx` rows (`CONTEXT_COLUMNS`) from the raw rows of a window's beat
    slots and each slot's RR after it within the window (ms, 0 = unknown); `out`
    `(>= len(rows), N_CONTEXT)`, its first `len(rows)` rows overwritten."""
    k = len(rows)
    if not k:
        return
    r = np.asarray(rows, np.float64)
    post = np.asarray(post_rr_ms, np.float64)
    pre, local, long_ = r[:, 2], r[:, 3], r[:, 4]

    def ratio(a, b):
        ok = (a > 0) & (b > 0)
        return np.where(ok, a / np.where(ok, b, 1.0), 0.0)

    out[:k, 0] = r[:, 0]
    out[:k, 1] = r[:, 1]
    out[:k, 2] = ratio(pre, local)
    out[:k, 3] = ratio(post, local)
    out[:k, 4] = ratio(post, pre)
    out[:k, 5] = ratio(pre, long_)
    out[:k, 6] = ratio(local, long_)
    out[:k, 7:] = r[:, 5:]
    np.clip(out[:k], -5.0, 5.0, out=out[:k])


__all__ = ["CONTEXT_COLUMNS", "COUNT_DECAY", "JOIN_AMP", "JOIN_CORR", "LEARN_BEATS", "LOCAL_N",
           "LONG_N", "MAX_CLUSTERS", "MAX_TEMPLATE_N", "N_CONTEXT", "N_RAW", "P_S", "QRS_S",
           "RAW_COLUMNS", "RELEARN_GAP_S", "RR_MAX_S", "RR_MIN_S", "PatientContext", "beat_context",
           "context_rows"]
