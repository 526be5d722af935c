"""The classical beat-class peer: de Chazal, O'Dwyer and Reilly 2004 (IEEE TBME 51(7):1196-1206),
the first inter-patient result on MIT-BIH: RR intervals, a QRS width and ECG samples of two
leads, classified by a class-weighted linear discriminant.

The beats are OUR DETECTOR's, as the model's are: every record goes through the model's chain
(resample to the contract rate, the contract's 0.5-40 Hz band-pass, `detect_beats` on all
leads: what `edge_ecg.data.windows.make_windows` does), each detection is matched to the
reference within 150 ms (`edge_ecg.signal.scoring.match_beats`) and takes the matched beat's
AAMI class for training. The peer classifies every detection, so it is scored as the model is:
a reference beat the detector missed counts as missed (edge_ecg/metrics/beats.py). The
paper classified the reference beat positions instead.

Features per beat (43 with two leads; what follows the paper and what does not):

- RR (4, s): pre-RR, post-RR, average RR (the paper: the mean RR of the recording around the
  beat; here the mean of the RR intervals of the preceding `AVG_RR_S` = 5 min, causal as a
  monitor must be) and local average RR (the mean of the 10 RR intervals around the beat, as
  the paper: its pre-RR and the 4 before, its post-RR and the 4 after). Post-RR and the local
  average wait for later beats (5 beats, ~4 s): a monitor's class arrives that much later.
- Heartbeat interval (1, s): QRS duration, from where the MLII slope stays above a fifth of its
  peak around R. The paper measures QRS onset/offset, T-wave end and P-wave presence with
  ecgpuwave; T-wave end and P-wave presence are NOT included here.
- Morphology (19 per lead, mV): the band-passed ECG sampled at 10 points from 50 ms before to
  100 ms after R (every 1/60 s) and 9 points from 150 to 500 ms after R (every 43.75 ms), the
  paper's QRS and T windows (sample counts as recalled from the paper, not re-checked), for
  lead 1 = MLII and lead 2 = the record's other lead (V1 mostly, V4 in 124, V5 in 114 where it
  comes first). Records with MLII only (106 and 119 as shared here) are classified by a second
  discriminant fitted on the same training beats without the lead-2 features.

SVDB records (ECG1 as II, ECG2 assigned no lead: edge_ecg/data/databases.toml) and CUDB's are
one-lead records for this peer.

The transparent peer's features (`context_features`, CTX_FEATURES) are the ones the network's
per-beat head reads beside the beat's samples: `beat_rr` (pre, post and a 10-s mean RR) with
the two RR ratios, and `beat_ctx` (edge_ecg/signal/patient_context.py, computed exactly as
`make_windows` does: `context_rows` over the whole record on every channel, `beat_context`).

Classifier: linear discriminant analysis, one mean per class and a pooled covariance to which
each class contributes equally (its scatter divided by its own count) and equal priors: the
paper's answer to N outnumbering S, V and F, which trades S +P for S Se (its S +P was 38.5 %).
Numpy only (features standardised on the training beats; a 1e-6 ridge keeps the covariance
invertible). A class with fewer than `MIN_CLASS_BEATS` training beats is not predicted (Q has
8 beats in all of DS1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ecg.data.aami import AAMI_CLASSES
from edge_ecg.data.mitbih import database, load_record, rhythm_intervals
from edge_ecg.data.records import find_beat_extension, read_annotations
from edge_ecg.data.windows import condition_signal, fill_invalid
from edge_ecg.signal.contract import SignalContract
from edge_ecg.signal.leads import canonical_lead
from edge_ecg.signal.patient_context import CONTEXT_COLUMNS, N_CONTEXT, beat_context, context_rows
from edge_ecg.signal.qrs import detect_beats
from edge_ecg.signal.scoring import MATCH_TOLERANCE_S, match_beats

AVG_RR_S = 300.0                  # average RR: the preceding 5 minutes
LOCAL_RR = (5, 5)                 # local RR: 5 intervals up to its pre-RR, 5 from its post-RR
QRS_OFFSETS_S = -0.050 + np.arange(10) / 60.0          # -50 .. +100 ms every 1/60 s
T_OFFSETS_S = 0.150 + np.arange(9) * (0.350 / 8)        # +150 .. +500 ms
QRS_SEARCH_S = (0.100, 0.150)     # QRS duration: slope searched 100 ms before to 150 ms after R
QRS_SLOPE_FRAC = 0.2              # ... edges where |slope| last exceeds this fraction of its peak
QRS_DURATION_RANGE_S = (0.040, 0.250)
MIN_CLASS_BEATS = 10
RIDGE = 1e-6

RR_FEATURES = ("pre_rr", "post_rr", "avg_rr", "local_rr")
LEAD_FEATURES = tuple(f"qrs{k}" for k in range(QRS_OFFSETS_S.size)) + tuple(
    f"t{k}" for k in range(T_OFFSETS_S.size))
FEATURES = (*RR_FEATURES, "qrs_duration",
            *(f"lead1.{f}" for f in LEAD_FEATURES), *(f"lead2.{f}" for f in LEAD_FEATURES))
LEAD2 = np.array([f.startswith("lead2.") for f in FEATURES])

# The transparent peer's features: what the network's per-beat head reads beside the beat's
# samples. `beat_rr` (pre, post and the window's mean RR, ms) and their ratios, and the
# patient context `beat_ctx` (edge_ecg.signal.patient_context; `known` is always 1 here).
MEAN_RR_S = 10.0                  # the network's mean RR is its 10-s window's: centred here
RR_COLUMNS = ("pre_rr_ms", "post_rr_ms", "mean_rr_ms", "pre_mean", "post_mean")  # post/pre: ctx
CTX_FEATURES = RR_COLUMNS + tuple(c for c in CONTEXT_COLUMNS if c != "known")


@dataclass(frozen=True)
class BeatRecord:
    """One record's reference beats and our detector's beats with their features, at `fs_hz`
    (the contract rate)."""

    record: str
    fs_hz: float
    ref_samples: np.ndarray      # (R,) int64
    ref_classes: np.ndarray      # (R,) int64, -1 = no class
    det_samples: np.ndarray      # (D,) int64
    det_labels: np.ndarray       # (D,) int64: the matched reference beat's class, -1 = none
    features: np.ndarray         # (D, len(FEATURES)) float64; lead-2 columns NaN without one
    two_leads: bool
    db: str = "mitdb"
    ctx_features: np.ndarray | None = None   # (D, len(CTX_FEATURES)) float64
    hours: float = 0.0           # the record's length
    sinus: bool = False          # rhythm notes say sinus rhythm throughout
    net_classes: np.ndarray | None = None    # (D,) int64 from `classify` (-1 unclassified)
    has_classes: bool = True     # the database's beats carry classes (CUDB's do not)


def context_features(y: np.ndarray, beats: np.ndarray, contract: SignalContract) -> np.ndarray:
    """(D, len(CTX_FEATURES)) of the detections `beats` of a filtered record `y` (T, L) at the
    contract rate: RR as the network's `beat_rr`, their ratios, and `beat_ctx` as
    `make_windows` gives it (`context_rows` over the whole record, the post RR joined)."""
    fs = float(contract.fs_hz)
    b = np.asarray(beats, dtype=np.int64)
    d = b.size
    out = np.zeros((d, len(CTX_FEATURES)))
    if d == 0:
        return out
    ms = 1000.0 / fs
    rr = np.diff(b).astype(np.float64) * ms
    pre = np.concatenate([[0.0], rr])
    post = np.concatenate([rr, [0.0]])
    # mean RR of the intervals whose beats lie within MEAN_RR_S / 2 either side (a window's)
    half = round(MEAN_RR_S / 2 * fs)
    lo = np.searchsorted(b, b - half, side="left")
    hi = np.searchsorted(b, b + half, side="right") - 1        # last beat inside
    n_iv = np.maximum(hi - lo, 0)
    mean = np.where(n_iv > 0, (b[hi] - b[lo]) * ms / np.maximum(n_iv, 1), 0.0)

    def ratio(a, c):
        ok = (a > 0) & (c > 0)
        return np.where(ok, a / np.where(ok, c, 1.0), 0.0)

    out[:, 0], out[:, 1], out[:, 2] = pre, post, mean
    out[:, 3], out[:, 4] = ratio(pre, mean), ratio(post, mean)
    rows = context_rows(y, b, fs, contract.beat_pre, contract.beat_len - contract.beat_pre)
    ctx = np.zeros((d, N_CONTEXT), np.float32)
    beat_context(rows, post, ctx)
    out[:, len(RR_COLUMNS):] = ctx[:, 1:]                      # `known` left out
    return out


def rr_features(beats: np.ndarray, fs_hz: float) -> np.ndarray:
    """(D, 4) pre-RR, post-RR, average RR (preceding AVG_RR_S) and local average RR, in s."""
    t = np.asarray(beats, dtype=np.float64) / fs_hz
    n = t.size
    if n < 2:
        return np.full((n, 4), 1.0)       # one beat: nothing to measure, a plausible 1 s
    rr = np.diff(t)                                            # rr[i] = t[i+1] - t[i]
    pre = np.concatenate([[rr[0]], rr])                        # the first beat borrows its post
    post = np.concatenate([rr, [rr[-1]]])                      # the last beat its pre
    c = np.concatenate([[0.0], np.cumsum(pre)])                # c[j] = sum(pre[:j])

    def mean_of(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:   # mean of pre[lo:hi]
        return (c[hi] - c[lo]) / np.maximum(hi - lo, 1)

    i = np.arange(n)
    first = np.searchsorted(t, t - AVG_RR_S, side="left")       # beats of the last 5 minutes
    avg = mean_of(np.maximum(first, 1), i + 1)
    avg[0] = pre[0]
    before, after = LOCAL_RR
    local = mean_of(np.clip(i - before + 1, 0, n), np.clip(i + after + 1, 0, n))
    return np.stack([pre, post, avg, local], axis=1)


def _samples_at(y: np.ndarray, beats: np.ndarray, offsets_s: np.ndarray, fs_hz: float):
    idx = beats[:, None] + np.round(offsets_s * fs_hz).astype(np.int64)[None, :]
    return y[np.clip(idx, 0, y.size - 1)]


def qrs_duration(y: np.ndarray, beats: np.ndarray, fs_hz: float) -> np.ndarray:
    """(D,) QRS duration (s): first to last sample around R whose |slope| exceeds
    QRS_SLOPE_FRAC of the largest, clipped to a plausible range."""
    pre, post = (round(s * fs_hz) for s in QRS_SEARCH_S)
    d = np.abs(np.gradient(y.astype(np.float64)))
    win = _samples_at(d, beats, np.arange(-pre, post + 1) / fs_hz, fs_hz)    # (D, W)
    above = win >= QRS_SLOPE_FRAC * win.max(axis=1, keepdims=True)
    first = np.argmax(above, axis=1)
    last = win.shape[1] - 1 - np.argmax(above[:, ::-1], axis=1)
    return np.clip((last - first + 1) / fs_hz, *QRS_DURATION_RANGE_S)


def beat_features(lead1: np.ndarray, lead2: np.ndarray | None, beats: np.ndarray,
                  fs_hz: float) -> np.ndarray:
    """(D, len(FEATURES)) features of the beats (band-passed leads in mV, samples at fs_hz);
    the lead-2 columns are NaN without a second lead."""
    beats = np.asarray(beats, dtype=np.int64)
    offsets = np.concatenate([QRS_OFFSETS_S, T_OFFSETS_S])
    parts = [rr_features(beats, fs_hz), qrs_duration(lead1, beats, fs_hz)[:, None],
             _samples_at(lead1, beats, offsets, fs_hz)]
    if lead2 is None:
        parts.append(np.full((beats.size, offsets.size), np.nan))
    else:
        parts.append(_samples_at(lead2, beats, offsets, fs_hz))
    return np.concatenate(parts, axis=1).astype(np.float64)


def _lead_columns(leads: tuple[str, ...]) -> tuple[int, int | None]:
    """Columns of MLII and of another standard lead (None where the record has none: SVDB's
    ECG2 is assigned no lead, databases.toml)."""
    canon = [canonical_lead(n) for n in leads]
    ml2 = canon.index("II") if "II" in canon else 0
    others = [j for j in range(len(leads)) if j != ml2 and canon[j] is not None]
    return ml2, (others[0] if others else None)


def load_beat_record(path: str | Path, contract: SignalContract,
                     positions: str = "detector", db: str = "mitdb",
                     classify=None, seconds: float | None = None) -> BeatRecord:
    """Reference beats and classes, our detector's beats and their features, of one record
    of database `db` (`mitdb`, `svdb`, `cudb`: edge_ecg/data/databases.toml assigns the leads);
    `positions="reference"` puts the features on the reference beats instead (the paper's
    setting: every reference beat 'detected', at its annotated position).

    The chain is `make_windows`' (invalid samples filled, resample, filter, detect on all
    channels), so these are the beats and the context the network sees. `classify(y, det,
    leads)`, given, returns a class index per detection (the network's), kept in `net_classes`.
    `seconds`: only the record's first seconds (its reference beats too).
    """
    if positions not in ("detector", "reference"):
        raise ValueError(f"positions must be 'detector' or 'reference', got {positions!r}")
    path = Path(str(path).removesuffix(".hea"))
    lr = load_record(path, (), db=db, seconds=seconds)
    fs = float(contract.fs_hz)
    src_fs = float(lr.fs_hz)
    ref_cls = np.asarray(lr.meta["beat_classes"], dtype=np.int64)
    ref = np.round(np.asarray(lr.ref_beats) * (fs / src_fs)).astype(np.int64)
    x, _ = fill_invalid(lr.signal)
    y = condition_signal(x, src_fs, contract)                         # (T', L) mV
    det = detect_beats(y, fs) if positions == "detector" else ref.copy()
    mr, md = match_beats(ref, det, round(MATCH_TOLERANCE_S * fs))
    labels = np.full(det.size, -1, dtype=np.int64)
    labels[md] = ref_cls[mr]
    c1, c2 = _lead_columns(lr.leads)
    feats = beat_features(y[:, c1], None if c2 is None else y[:, c2], det, fs)
    ctx = context_features(y, det, contract)
    net = None if classify is None else np.asarray(classify(y, det, lr.leads), dtype=np.int64)
    # Ventricular flutter/fibrillation (between the reference '[' and ']', or a (VFL / (VF
    # rhythm) has no beats to classify: detections there are left out, as EC57 and
    # bench/beats.py do. The features were taken with them in the RR sequence, as a monitor
    # would see it.
    ann = read_annotations(path, find_beat_extension(path) or "atr")
    inside = ann.sample < lr.signal.shape[0]
    sym = np.asarray(ann.symbol, dtype=object)[inside]
    at = np.round(ann.sample[inside] * (fs / src_fs)).astype(np.int64)
    spans = flutter_spans(at, sym, y.shape[0])
    vf = np.round(np.asarray(lr.meta.get("vf_episodes") or [], dtype=np.float64).reshape(-1, 2)
                  * (fs / src_fs)).astype(np.int64)
    keep = outside_spans(det, np.concatenate([spans, vf]))
    notes = {aux for _, _, aux in rhythm_intervals(path, lr.signal.shape[0])}
    return BeatRecord(record=f"{db}-{path.name}" if db != "mitdb" else path.name, fs_hz=fs,
                      ref_samples=ref, ref_classes=ref_cls, det_samples=det[keep],
                      det_labels=labels[keep], features=feats[keep], two_leads=c2 is not None,
                      db=db, ctx_features=ctx[keep], hours=lr.signal.shape[0] / src_fs / 3600,
                      sinus=notes == {"(N"}, net_classes=None if net is None else net[keep],
                      has_classes=database(db).beat_classes)


def flutter_spans(samples: np.ndarray, symbols: np.ndarray, n_samples: int) -> np.ndarray:
    """(K, 2) ventricular flutter/fibrillation spans: each '[' to the next ']' (or the end)."""
    on, off = samples[symbols == "["], samples[symbols == "]"]
    spans = [(int(a), int(off[off > a][0]) if (off > a).any() else n_samples) for a in on]
    return np.asarray(spans, dtype=np.int64).reshape(-1, 2)


def outside_spans(samples: np.ndarray, spans: np.ndarray) -> np.ndarray:
    keep = np.ones(samples.size, dtype=bool)
    for a, b in spans:
        keep &= ~((samples >= a) & (samples <= b))
    return keep


class ClassWeightedLDA:
    """Linear discriminant with equal class weights: per-class means, a pooled covariance in
    which each class counts equally, equal priors. `predict` returns class indices."""

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int = len(AAMI_CLASSES),
            min_count: int = MIN_CLASS_BEATS) -> ClassWeightedLDA:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        self.mean_ = x.mean(0)
        self.scale_ = x.std(0)
        self.scale_[self.scale_ == 0] = 1.0
        z = (x - self.mean_) / self.scale_
        counts = np.bincount(y, minlength=n_classes)
        self.classes_ = np.flatnonzero(counts >= min_count)
        if self.classes_.size < 2:
            raise ValueError(f"need two classes with >= {min_count} beats, got counts {counts}")
        mus = np.stack([z[y == c].mean(0) for c in self.classes_])             # (K, F)
        cov = np.zeros((z.shape[1], z.shape[1]))
        for c, mu in zip(self.classes_, mus):
            d = z[y == c] - mu
            cov += d.T @ d / d.shape[0]
        cov /= self.classes_.size
        cov += RIDGE * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
        w = np.linalg.solve(cov, mus.T)                                        # (F, K)
        self.coef_ = w
        self.intercept_ = -0.5 * np.einsum("kf,fk->k", mus, w)     # equal priors: no log term
        return self

    def decision(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_
        return z @ self.coef_ + self.intercept_                                # (D, K)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(D, 5) posterior probabilities (0 for a class not fitted)."""
        g = self.decision(x)
        g = np.exp(g - g.max(1, keepdims=True))
        p = np.zeros((g.shape[0], len(AAMI_CLASSES)))
        p[:, self.classes_] = g / g.sum(1, keepdims=True)
        return p

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.decision(x), axis=1)]


class DeChazalPeer:
    """Two discriminants on the same training beats: all features, and MLII-only for records
    with one lead."""

    def fit(self, records: list[BeatRecord]) -> DeChazalPeer:
        x = np.concatenate([r.features for r in records])
        y = np.concatenate([r.det_labels for r in records])
        two = np.concatenate([np.full(r.det_labels.size, r.two_leads) for r in records])
        lab = y >= 0
        self.n_train_ = np.bincount(y[lab], minlength=len(AAMI_CLASSES))
        self.both_ = ClassWeightedLDA().fit(x[lab & two], y[lab & two])
        self.lead1_ = ClassWeightedLDA().fit(x[lab][:, ~LEAD2], y[lab])
        return self

    def predict_proba(self, rec: BeatRecord) -> np.ndarray:
        if rec.det_samples.size == 0:
            return np.zeros((0, len(AAMI_CLASSES)))
        if rec.two_leads:
            return self.both_.predict_proba(rec.features)
        return self.lead1_.predict_proba(rec.features[:, ~LEAD2])

    def predict(self, rec: BeatRecord) -> np.ndarray:
        """(D,) class index per detection."""
        return np.argmax(self.predict_proba(rec), axis=1).astype(np.int64)


__all__ = [
    "CTX_FEATURES",
    "FEATURES",
    "BeatRecord",
    "ClassWeightedLDA",
    "DeChazalPeer",
    "beat_features",
    "context_features",
    "load_beat_record",
    "qrs_duration",
    "rr_features",
]
