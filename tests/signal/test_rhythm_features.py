"""Recording-level RR and morphology features (edge_ecg.signal.rhythm_features)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.signal.rhythm_features import (
    MORPH_FEATURES,
    RR_FEATURES,
    morphology_features,
    rr_features,
    sample_entropy,
)


def _sampen_brute(x, r, m=1):
    """Richman & Moorman's definition by explicit loops, smoothed as the module documents."""
    n = len(x)
    b = a = 0
    for i in range(n - m):
        for j in range(i + 1, n - m):
            if max(abs(x[i + k] - x[j + k]) for k in range(m)) <= r:
                b += 1
                if abs(x[i + m] - x[j + m]) <= r:
                    a += 1
    return -np.log((a + 1) / (b + 1))


@pytest.mark.parametrize("m", [1, 2])
def test_sample_entropy_matches_the_definition(m):
    x = np.random.default_rng(3).uniform(500, 900, 60)
    assert sample_entropy(x, 30.0, m) == pytest.approx(_sampen_brute(x, 30.0, m), rel=1e-12)


def _f(rr):
    return dict(zip(RR_FEATURES, rr_features(np.asarray(rr, float))))


def test_af_like_rr_is_irregular_and_sinus_with_one_ectopic_is_not():
    rng = np.random.default_rng(0)
    sinus = 800 + rng.normal(0, 8, 60)
    ectopic = sinus.copy()
    ectopic[30], ectopic[31] = 500, 1100           # a premature beat and its pause
    af = rng.uniform(450, 1000, 60)                 # irregularly irregular
    s, e, a = _f(sinus), _f(ectopic), _f(af)
    assert s["hr_bpm"] == pytest.approx(75.0, rel=0.02)
    assert s["nrmssd"] < 0.03 and a["nrmssd"] > 0.2
    assert s["irregular_frac"] == 0.0 and a["irregular_frac"] > 0.6
    assert a["sampen"] > s["sampen"] + 1.0
    # one ectopic beat: outliers and extreme ratios, but the robust spread stays sinus-like
    assert e["outlier_frac"] == pytest.approx(2 / 60)
    assert e["min_rr_norm"] == pytest.approx(500 / np.median(ectopic))
    assert e["mad_norm"] < 0.02 < a["mad_norm"]
    # a random series has ~2/3 turning points: ratio ~1; a slow oscillation far fewer
    assert 0.8 < a["tpr"] < 1.2
    assert _f(800 + 50 * np.sin(np.arange(60) / 5))["tpr"] < 0.2


def test_rr_autocorrelation_tells_bigeminy_and_trigeminy_from_af():
    """Ectopy in a fixed pattern is as irregular as AF by every spread measure, but its RR
    repeat: bigeminy (short, long, ...) has lag-1 autocorrelation near -1 and lag-2 near +1,
    trigeminy (N N V: normal, short, long) a negative lag-2; AF's are near 0."""
    rng = np.random.default_rng(1)
    bigeminy = np.tile([550.0, 1050.0], 30) + rng.normal(0, 10, 60)
    trigeminy = np.tile([800.0, 500.0, 1100.0], 20) + rng.normal(0, 10, 60)
    af = rng.uniform(450, 1000, 60)
    b, t, a = _f(bigeminy), _f(trigeminy), _f(af)
    assert b["irregular_frac"] > 0.9 and a["irregular_frac"] > 0.6
    assert b["rr_ac1"] < -0.9 and b["rr_ac2"] > 0.9
    assert t["rr_ac2"] < -0.3
    assert abs(a["rr_ac1"]) < 0.3 and abs(a["rr_ac2"]) < 0.3
    assert _f([800.0, 800.0, 800.0, 800.0])["rr_ac1"] == 0.0     # no variance: neutral
    # a regular rhythm whose RR differ only by rounding (beat times in float seconds, x 1000)
    jitter = np.tile([800.0 + 1e-10, 800.0 - 1e-10], 10)
    assert _f(jitter)["rr_ac1"] == 0.0 and _f(jitter)["rr_ac2"] == 0.0


def test_short_and_empty_histories_are_finite_and_neutral():
    for rr in ([], [800.0], [800.0, 820.0]):
        v = rr_features(np.asarray(rr))
        assert v.shape == (len(RR_FEATURES),) and np.all(np.isfinite(v))
        assert dict(zip(RR_FEATURES, v))["irregular_frac"] == 0.0
    m = morphology_features(np.array([]), np.array([]), (0, 0, 0, 0))
    assert m.shape == (len(MORPH_FEATURES),) and np.all(np.isfinite(m))


def test_morphology_features_count_p_waves_wide_qrs_and_classes():
    pr = np.array([160, 170, np.nan, 150, np.nan])
    qrs = np.array([90, 130, 85, np.nan, 140])
    f = dict(zip(MORPH_FEATURES, morphology_features(pr, qrs, (6, 1, 3, 10))))
    assert f["p_wave_frac"] == pytest.approx(3 / 5)
    assert f["pr_sd_ms"] == pytest.approx(np.std([160, 170, 150]))
    assert f["qrs_median_ms"] == pytest.approx(110.0)
    assert f["wide_qrs_frac"] == pytest.approx(2 / 4)
    assert (f["class_n_frac"], f["class_s_frac"], f["class_v_frac"]) == (0.6, 0.1, 0.3)
