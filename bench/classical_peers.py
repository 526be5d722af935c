"""Classical peers of bench/real.py: hand-made ECG features and linear models, no deep learning.

Every record goes through the chain the model's windows go through (resample to the contract
rate, the contract's band-pass, our streaming QRS detector `edge_ecg.signal.qrs.detect_beats`),
then:

- rhythm (CinC 2017 classes): RR-irregularity and HRV features of the whole recording (a CinC
  recording, a PTB-XL / LUDB record) or of each 10-s window (MIT-BIH, for AF episodes): heart
  rate, CV of RR, RMSSD and SDSD relative to the mean RR, pNN20 / pNN50 (NeuroKit2 `hrv_time`'s
  definitions), sample entropy of the RR series (m = 2, r = 0.2 SD; Lake et al. 2002 use it for
  AF), turning-point ratio, Poincare SD1/SD2, beats per second, the share of implausible RR, and
  two signal-quality indices (beat-to-template correlation, R-amplitude CV) for the noisy class;
  a multinomial logistic regression with balanced class weights (scikit-learn).
- age / sex (12-lead PTB-XL and LUDB records): per lead of the median beat, P, R, S and T
  amplitudes, QRS peak-to-peak and ST level (mV, from the PR-segment baseline), plus heart rate
  and SDNN; ridge regression (age) and logistic regression (sex), each regularisation chosen by
  an inner 5-fold CV on the training folds only.
- RR interval: the detector's own mean RR in each window, as the model's period input has it
  (no fitting).
A peer never sees the test fold: it is fitted anew on the training folds for every test fold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge_ecg.data.folds import subject_fold
from edge_ecg.data.labels import task_value, window_labels
from edge_ecg.data.specs import resolve_spec
from edge_ecg.data.windows import condition_signal, mean_rr_ms, window_starts
from edge_ecg.errors import RecordError, SignalError
from edge_ecg.signal.leads import STANDARD_12
from edge_ecg.signal.qrs import detect_beats

RHYTHM_FEATURES = (
    "hr_bpm", "cv_rr", "rmssd_rel", "sdsd_rel", "pnn20", "pnn50", "irregular_frac",
    "sampen_rr", "turning_point_ratio", "sd1_sd2", "range_rel", "beats_per_s",
    "implausible_rr_frac", "template_corr", "r_amp_cv", "few_beats",
)
# Median-beat measurements per lead, relative to the PR-segment baseline (mV).
LEAD_FEATURES = ("p_amp", "r_amp", "s_amp", "qrs_p2p", "st_level", "t_amp")
MORPH_FEATURES = tuple(f"{lead}.{f}" for lead in STANDARD_12 for f in LEAD_FEATURES) + (
    "hr_bpm", "sdnn_ms")


def sample_entropy(x: np.ndarray, m: int = 2, r_frac: float = 0.2) -> float:
    """SampEn(m, r = r_frac * SD) of a short series (Richman & Moorman 2000); with no match
    of length m + 1 it is capped at log of the template pairs (the largest value it can take)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n < m + 2:
        return 0.0
    r = r_frac * float(np.std(x))
    if r <= 0:
        return 0.0

    def pairs(k: int) -> int:
        # the n - m templates of length k (the same starts for m and m + 1), Chebyshev distance
        t = np.lib.stride_tricks.sliding_window_view(x, k)[: n - m]
        d = np.abs(t[:, None, :] - t[None, :, :]).max(-1)
        return int((np.count_nonzero(d <= r) - t.shape[0]) // 2)

    b, a = pairs(m), pairs(m + 1)
    if b == 0:
        return 0.0
    if a == 0:
        return float(math.log(b))
    return float(-math.log(a / b))


def turning_point_ratio(x: np.ndarray) -> float:
    """Share of interior points that are a local peak or trough (2/3 for a random series)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 3:
        return 0.0
    d1, d2 = x[1:-1] - x[:-2], x[2:] - x[1:-1]
    return float(np.count_nonzero(d1 * d2 < 0) / (x.size - 2))


def _beat_matrix(y: np.ndarray, r: np.ndarray, pre: int, post: int) -> np.ndarray:
    """Beats `(n_beats, pre + post, n_leads)` of the beats far enough from both ends."""
    r = r[(r >= pre) & (r + post <= y.shape[0])]
    if r.size == 0:
        return np.zeros((0, pre + post, y.shape[1]), dtype=y.dtype)
    return y[r[:, None] + np.arange(-pre, post)[None, :]]


def rhythm_features(y: np.ndarray, r: np.ndarray, fs_hz: float, duration_s: float,
                    lead: int = 0) -> np.ndarray:
    """`RHYTHM_FEATURES` of the R peaks `r` over a span of `duration_s` (signal `y` gives the
    quality indices, on lead `lead`)."""
    f = dict.fromkeys(RHYTHM_FEATURES, 0.0)
    f["beats_per_s"] = r.size / max(duration_s, 1e-6)
    f["few_beats"] = float(r.size < 4)
    rr = np.diff(r) / fs_hz
    if rr.size >= 1:
        mean, med = float(rr.mean()), float(np.median(rr))
        f["hr_bpm"] = 60.0 / max(med, 1e-3)
        f["cv_rr"] = float(rr.std()) / max(mean, 1e-3)
        f["range_rel"] = float(np.percentile(rr, 90) - np.percentile(rr, 10)) / max(med, 1e-3)
        f["implausible_rr_frac"] = float(np.mean((rr < 0.25) | (rr > 2.0)))
    if rr.size >= 2:
        d = np.diff(rr)
        f["rmssd_rel"] = float(np.sqrt(np.mean(d * d))) / max(mean, 1e-3)
        f["sdsd_rel"] = float(np.std(d)) / max(mean, 1e-3)
        f["pnn20"] = float(np.mean(np.abs(d) > 0.02))
        f["pnn50"] = float(np.mean(np.abs(d) > 0.05))
        f["irregular_frac"] = float(np.mean(np.abs(d) > 0.125 * rr[:-1]))
        f["sampen_rr"] = sample_entropy(rr)
        f["turning_point_ratio"] = turning_point_ratio(rr)
        sd1 = float(np.std(d)) / math.sqrt(2.0)
        sd2 = math.sqrt(max(2.0 * float(rr.var()) - sd1 * sd1, 0.0))
        f["sd1_sd2"] = sd1 / max(sd2, 1e-6)
    # signal quality: each beat's correlation with the median beat (+-100 ms), R-amplitude CV
    w = round(0.1 * fs_hz)
    beats = _beat_matrix(y[:, lead:lead + 1], r, w, w)[:, :, 0]
    if beats.shape[0] >= 2:
        tmpl = np.median(beats, 0)
        b = beats - beats.mean(1, keepdims=True)
        t = tmpl - tmpl.mean()
        den = np.linalg.norm(b, axis=1) * np.linalg.norm(t)
        f["template_corr"] = float(np.mean(b @ t / np.maximum(den, 1e-9)))
        amp = y[r[(r >= 0) & (r < y.shape[0])], lead]
        f["r_amp_cv"] = float(np.std(amp) / max(abs(float(np.mean(amp))), 1e-6))
    return np.asarray([f[k] for k in RHYTHM_FEATURES], dtype=np.float64)


def morphology_features(y: np.ndarray, leads: tuple[str, ...], r: np.ndarray,
                        fs_hz: float) -> np.ndarray:
    """`MORPH_FEATURES`: median-beat amplitudes per standard lead (NaN for a lead the record
    lacks), heart rate and SDNN."""
    out = np.full(len(MORPH_FEATURES), np.nan)

    def s(t_ms: float) -> int:
        return round(t_ms * fs_hz / 1000.0)

    pre, post = s(300), s(450)
    beats = _beat_matrix(y, r, pre, post)
    if beats.shape[0] >= 3:
        tmpl = np.median(beats, 0)                     # (pre + post, L)

        def seg(a_ms: float, b_ms: float) -> np.ndarray:
            return tmpl[pre + s(a_ms):pre + s(b_ms)]

        base = seg(-80, -40).mean(0)
        vals = {"p_amp": seg(-250, -100).max(0) - base, "r_amp": seg(-50, 50).max(0) - base,
                "s_amp": seg(0, 80).min(0) - base,
                "qrs_p2p": seg(-50, 80).max(0) - seg(-50, 80).min(0),
                "st_level": seg(80, 100).mean(0) - base}
        t = seg(150, 420) - base
        vals["t_amp"] = t[np.argmax(np.abs(t), 0), np.arange(t.shape[1])]
        for j, lead in enumerate(leads):
            if lead not in STANDARD_12:
                continue
            for k, name in enumerate(LEAD_FEATURES):
                out[STANDARD_12.index(lead) * len(LEAD_FEATURES) + k] = float(vals[name][j])
    rr = np.diff(r) / fs_hz * 1000.0
    if rr.size >= 1:
        out[-2] = 60000.0 / max(float(np.median(rr)), 1.0)
        out[-1] = float(rr.std())
    return out


@dataclass
class Unit:
    """What a peer calls once: a CinC recording, a PTB-XL / LUDB record, a MIT-BIH window."""

    source: str
    record: str
    subject: str
    fold: int
    start_s: float
    labels: dict                      # task -> float (NaN = missing), as the model's labels
    rhythm: np.ndarray                # RHYTHM_FEATURES
    morph: np.ndarray | None = None   # MORPH_FEATURES (12-lead records)
    detector_rr_ms: float = math.nan  # mean RR of our detector's beats in the window
    record_info: dict = field(default_factory=dict)


def _masked_labels(tasks, labels: dict, keep_tasks) -> dict:
    return {t.name: (task_value(t, labels.get(t.label_field))
                     if keep_tasks is None or t.name in keep_tasks else math.nan)
            for t in tasks}


def record_units(rec, source: str, contract, tasks, keep_tasks, kfold: int,
                 hop_s: float | None = None) -> list[Unit]:
    """The peer units of one `LabelledRecord`."""
    y = condition_signal(rec.signal, rec.fs_hz, contract)
    fs = contract.fs_hz
    r = detect_beats(y, fs)
    lead = rec.leads.index("II") if "II" in rec.leads else 0
    fold = subject_fold(rec.subject, kfold)
    if source != "mitdb":
        # One call per recording, over its whole length; the RR label and the detector's RR
        # over the first window, as the model's LUDB / PTB-XL windows have them.
        w = contract.window_len
        span = round(contract.window_s * rec.fs_hz)
        lab = _masked_labels(tasks, window_labels(rec, 0, span), keep_tasks)
        morph = (morphology_features(y, rec.leads, r, fs)
                 if source in ("ptbxl", "ludb") else None)
        return [Unit(source, rec.record_id, rec.subject, fold, 0.0, lab,
                     rhythm_features(y, r, fs, y.shape[0] / fs, lead), morph,
                     mean_rr_ms(r, 0, w, fs))]
    # MIT-BIH: one unit per model window (same starts, same labels as the data set builder).
    ratio = rec.fs_hz / fs
    span = round(contract.window_s * rec.fs_hz)
    info = {"af_episodes_s": [(a / rec.fs_hz, b / rec.fs_hz)
                              for a, b in rec.meta["af_episodes"]]}
    units = []
    for s in window_starts(y.shape[0], contract, hop_s if hop_s is not None
                           else contract.window_s):
        s = int(s)
        s_src = round(s * ratio)
        lab = _masked_labels(tasks, window_labels(rec, s_src, s_src + span), keep_tasks)
        e = s + contract.window_len
        rw = r[(r >= s) & (r < e)] - s
        units.append(Unit(source, rec.record_id, rec.subject, fold, s / fs, lab,
                          rhythm_features(y[s:e], rw, fs, contract.window_s, lead), None,
                          mean_rr_ms(r, s, e, fs), info))
    return units


def extract_units(specs: list[tuple[str, str]], contract, tasks, kfold: int,
                  progress: bool = True) -> tuple[list[Unit], list[str]]:
    """Units of every record the `(source, spec)` pairs select; (units, skipped records)."""
    from tqdm import tqdm

    units: list[Unit] = []
    skipped: list[str] = []
    for source, spec in specs:
        plan = resolve_spec(spec, contract, tasks)
        for load in tqdm(plan.loaders, desc=f"peers {plan.desc}", unit="rec",
                         disable=not progress, leave=False):
            try:
                rec = load()
                units += record_units(rec, source, contract, tasks, plan.keep_tasks, kfold,
                                      plan.hop_s)
            except (RecordError, SignalError) as exc:
                skipped.append(str(exc))
    return units, skipped


# -- the peers' models -----------------------------------------------------------------------
def _design(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, np.nan)


def _quiet(fit):
    """scikit-learn's FutureWarnings about its next API (not about the fit) kept off the table."""
    import functools
    import warnings

    @functools.wraps(fit)
    def run(*a, **k):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return fit(*a, **k)
    return run


@_quiet
def fit_predict_rhythm(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                       n_classes: int, seed: int = 0) -> np.ndarray:
    """Class probabilities `(n_test, n_classes)` of a balanced multinomial logistic regression
    on standardised features (heavy-tailed ones log-compressed)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    model = make_pipeline(
        SimpleImputer(strategy="median"),
        FunctionTransformer(lambda v: np.sign(v) * np.log1p(np.abs(v))),
        StandardScaler(),
        LogisticRegression(class_weight="balanced", max_iter=5000, C=1.0, random_state=seed))
    yt = y_train.astype(int)
    model.fit(_design(x_train), yt)
    out = np.zeros((x_test.shape[0], n_classes))
    out[:, model.classes_] = model.predict_proba(_design(x_test))
    return out


@_quiet
def fit_predict_age(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Ridge regression, alpha by an inner 5-fold CV of the training folds."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                          RidgeCV(alphas=np.logspace(-2, 4, 25), cv=5))
    model.fit(_design(x_train), y_train)
    return model.predict(_design(x_test))


@_quiet
def fit_predict_sex(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                    seed: int = 0) -> np.ndarray:
    """P(female) of a logistic regression, C by an inner 5-fold CV (log-loss)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                          LogisticRegressionCV(Cs=np.logspace(-3, 2, 11), cv=5,
                                               scoring="neg_log_loss", max_iter=5000,
                                               random_state=seed))
    model.fit(_design(x_train), y_train.astype(int))
    return model.predict_proba(_design(x_test))[:, 1]


def peer_outputs(units: list[Unit], test_fold: int, tasks, seed: int = 0,
                 rhythm_sources: tuple[str, ...] | None = None) -> tuple[list[Unit], dict]:
    """Fit every peer on the units outside `test_fold`; return the test units and their
    outputs in the model's form (`{task: array}`; arrhythmia as class probabilities).
    `rhythm_sources`: fit the rhythm peer only on units of these databases (None: all)."""
    train = [u for u in units if u.fold != test_fold]
    test = [u for u in units if u.fold == test_fold]
    out: dict[str, np.ndarray] = {}
    n = len(test)
    if "arrhythmia" in tasks.names:
        n_cls = len(tasks["arrhythmia"].labels)
        tr = [u for u in train if np.isfinite(u.labels["arrhythmia"])
              and (rhythm_sources is None or u.source in rhythm_sources)]
        out["arrhythmia"] = fit_predict_rhythm(
            np.stack([u.rhythm for u in tr]), np.asarray([u.labels["arrhythmia"] for u in tr]),
            np.stack([u.rhythm for u in test]), n_cls, seed) if tr and test else np.zeros((n, n_cls))
    morph_test = [i for i, u in enumerate(test) if u.morph is not None]
    for task, fit in (("age", fit_predict_age), ("sex", fit_predict_sex)):
        if task not in tasks.names:
            continue
        pred = np.full(n, np.nan)
        tr = [u for u in train if u.morph is not None and np.isfinite(u.labels[task])]
        if tr and morph_test:
            pred[morph_test] = fit(np.stack([u.morph for u in tr]),
                                   np.asarray([u.labels[task] for u in tr]),
                                   np.stack([test[i].morph for i in morph_test]))
        out[task] = pred
    if "rr_interval" in tasks.names:
        out["rr_interval"] = np.asarray([u.detector_rr_ms for u in test])
    return test, out
