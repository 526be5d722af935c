"""The field's metrics on outputs whose right answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.data.dataset import WindowDataset
from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.metrics.field import auc, field_metrics

CLASSES = DEFAULT_TASKS["arrhythmia"].labels
TASKS = DEFAULT_TASKS.select(["rr_interval", "age", "sex", "arrhythmia"])


def _ds(meta, labels, records):
    n = len(meta)
    full = {t.name: np.full(n, np.nan, np.float32) for t in TASKS}
    full.update({k: np.asarray(v, np.float32) for k, v in labels.items()})
    return WindowDataset(inputs={}, labels=full, subjects=np.array([m["record"] for m in meta]),
                         meta=meta, records=records)


def _probs(calls):
    p = np.full((len(calls), len(CLASSES)), 0.1)
    p[np.arange(len(calls)), calls] = 0.7
    return p


def test_cinc_scores_one_call_per_recording_from_mean_probabilities():
    n_, a_, o_ = (CLASSES.index(c) for c in ("normal_sinus", "af_or_flutter", "other_rhythm"))
    meta = [{"record": r, "start_s": 0.0} for r in ("cinc-1", "cinc-1", "cinc-1", "cinc-2",
                                                     "cinc-3")]
    labels = {"arrhythmia": [a_, a_, a_, n_, o_]}
    p = _probs([a_, a_, n_, n_, n_])                 # recording 1: 2 of 3 windows AF -> AF
    records = {"cinc-4": {"unscored": True, "labels": {"arrhythmia": float(o_)}}}
    m = field_metrics(TASKS, {"arrhythmia": p}, _ds(meta, labels, records), 10.0)["cinc2017"]
    assert m["recordings"] == 4
    # calls: A, N, N and no call for the too-short recording 4
    assert m["f1_A"] == 1.0 and m["f1_N"] == pytest.approx(2 / 3) and m["f1_O"] == 0.0
    assert m["challenge_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["confusion"][o_][len(CLASSES)] == 1       # the unscored recording, no call


def test_af_episode_and_duration_scores():
    af, n_ = CLASSES.index("af_or_flutter"), CLASSES.index("normal_sinus")
    starts = np.arange(0, 200, 10.0)
    calls = [n_] * 20
    for k in (3, 4, 5, 15):                          # detected AF 30-60 s and 150-160 s
        calls[k] = af
    meta = [{"record": "mitdb-x", "start_s": s} for s in starts]
    records = {"mitdb-x": {"af_episodes_s": [(35.0, 70.0), (100.0, 120.0)]}}
    m = field_metrics(TASKS, {"arrhythmia": _probs(calls)}, _ds(meta, {}, records),
                      10.0)["mitdb"]
    assert m["af_episodes"] == 2 and m["af_detected_episodes"] == 2
    assert m["af_episode_se"] == 0.5 and m["af_episode_ppv"] == 0.5
    assert m["af_duration_se"] == pytest.approx(25 / 55)
    assert m["af_duration_ppv"] == pytest.approx(25 / 40)


def test_record_scores_average_windows_per_record():
    meta = [{"record": r, "start_s": 0.0} for r in ("ludb-1", "ludb-1", "ludb-2")]
    labels = {"age": [60, 60, 30], "sex": [1, 1, 0], "arrhythmia": [0, 0, 1]}
    out = {"age": np.array([50.0, 70.0, 40.0]), "sex": np.array([0.9, 0.7, 0.2]),
           "arrhythmia": _probs([0, 0, 1])}
    m = field_metrics(TASKS, out, _ds(meta, labels, {}), 10.0)["ludb"]
    assert m["records"] == 2 and m["age_mae"] == pytest.approx(5.0)
    assert m["sex_auc"] == 1.0 and m["sex_f1"] == 1.0 and m["rhythm_macro_f1"] == 1.0


def test_auc_rank_statistic():
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert np.isnan(auc([1, 1], [0.2, 0.3]))
