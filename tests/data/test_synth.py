"""The synthetic 12-lead generator: determinism, lead algebra, labelled conditions, ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.data.synth import (
    CONDITIONS,
    cohort_plan,
    draw_patient,
    synthesize,
    synthesize_schedule,
)
from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.errors import SignalError
from edge_ecg.signal.leads import STANDARD_12
from edge_ecg.signal.qrs import detect_beats

FS = 500.0


def _lead(rec, name):
    return rec.signal[:, rec.leads.index(name)].astype(np.float64)


def _rr_s(rec):
    return np.diff(rec.r_peaks) / rec.fs_hz


def _qrs_width_s(rec):
    """Median QRS duration: span around each R where the summed slope of all leads exceeds
    10 % of its peak (pacing spikes excluded by the caller)."""
    v = np.abs(np.diff(rec.signal.astype(np.float64), axis=0)).sum(axis=1)
    w = int(0.15 * rec.fs_hz)
    out = []
    for r in rec.r_peaks[1:-1]:
        seg = v[r - w:r + w]
        idx = np.flatnonzero(seg > 0.1 * seg.max())
        out.append((idx[-1] - idx[0]) / rec.fs_hz)
    return float(np.median(out))


def test_deterministic_for_a_seed():
    a = synthesize("premature_ventricular_contractions", seed=11, snr_db=15)
    b = synthesize("premature_ventricular_contractions", seed=11, snr_db=15)
    c = synthesize("premature_ventricular_contractions", seed=12, snr_db=15)
    np.testing.assert_array_equal(a.signal, b.signal)
    np.testing.assert_array_equal(a.r_peaks, b.r_peaks)
    assert a.beat_types == b.beat_types and a.labels == b.labels
    assert not np.array_equal(a.signal, c.signal)


def test_shapes_units_and_labels():
    rec = synthesize("sinus_rhythm", seconds=10, fs_hz=FS, seed=3, age=40, sex="F",
                     potassium="hyper")
    assert rec.signal.shape == (5000, 12) and rec.signal.dtype == np.float32
    assert rec.leads == STANDARD_12 and rec.r_peaks.dtype == np.int64
    assert len(rec.beat_types) == rec.r_peaks.size
    lab = rec.labels
    assert lab["age"] == 40 and lab["gender"] == 1 and lab["flag"] == 1
    assert lab["condition"] == "sinus_rhythm" and lab["potassium"] == "hyper"
    assert DEFAULT_TASKS["arrhythmia"].labels[lab["report_label"]] == "normal_sinus"
    assert lab["rr_interval"] == pytest.approx(np.diff(rec.r_peaks).mean() * 2.0)
    assert 0.3 < np.abs(_lead(rec, "II")[rec.r_peaks]).mean() < 3.0   # mV scale
    assert rec.segments == [(0, 5000, "sinus_rhythm")]


@pytest.mark.parametrize("condition", ["sinus_rhythm", "atrial_flutter", "ventricular_paced",
                                       "left_bundle_branch_block"])
def test_limb_leads_hold_exactly(condition):
    rec = synthesize(condition, seed=5, snr_db=12)
    lead_i, lead_ii = rec.signal[:, 0], rec.signal[:, 1]
    np.testing.assert_array_equal(rec.signal[:, 2], lead_ii - lead_i)
    np.testing.assert_array_equal(rec.signal[:, 3], -(lead_i + lead_ii) / 2)
    np.testing.assert_array_equal(rec.signal[:, 4], lead_i - lead_ii / 2)
    np.testing.assert_array_equal(rec.signal[:, 5], lead_ii - lead_i / 2)


def test_lead_subset_keeps_the_same_samples():
    full = synthesize("sinus_rhythm", seed=2)
    sub = synthesize("sinus_rhythm", seed=2, leads=("II", "V1"))
    np.testing.assert_array_equal(sub.signal, full.signal[:, [1, 6]])


def test_reported_r_peaks_are_the_lead_ii_peaks_and_detectable():
    rec = synthesize("sinus_rhythm", seconds=20, seed=7)
    ii = np.abs(_lead(rec, "II"))
    w = int(0.05 * FS)
    for r in rec.r_peaks:
        lo, hi = max(r - w, 0), min(r + w + 1, ii.size)
        assert ii[r] == ii[lo:hi].max()
    det = detect_beats(rec.signal, FS)
    d = np.abs(det[:, None] - rec.r_peaks[None, :]).min(axis=1)
    assert det.size == rec.r_peaks.size and d.max() <= int(0.02 * FS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rates_and_regularity_match_the_condition(seed):
    def hr(c):
        return 60.0 / _rr_s(synthesize(c, seconds=20, seed=seed)).mean()

    def cv(c):
        rr = _rr_s(synthesize(c, seconds=20, seed=seed))
        return rr.std() / rr.mean()

    assert 60 <= hr("sinus_rhythm") <= 100
    assert hr("sinus_bradycardia") < 60
    assert hr("sinus_tachycardia") > 100
    assert hr("af_rapid_ventricular_response") > 100
    assert hr("supraventricular_tachycardia") > 140
    assert cv("sinus_rhythm") < 0.05
    assert cv("atrial_fibrillation") > 0.1
    sa = _rr_s(synthesize("sinus_arrhythmia", seconds=20, seed=seed))
    assert sa.max() - sa.min() > 0.12            # phasic variation > 120 ms
    af = _rr_s(synthesize("atrial_fibrillation", seconds=20, seed=seed))
    assert np.mean(np.abs(np.diff(af)) > 0.05) > 0.5   # irregularly irregular


def test_ectopics_with_their_pauses():
    pvc = synthesize("premature_ventricular_contractions", seconds=30, seed=4)
    types = np.array(pvc.beat_types)
    rr = np.diff(pvc.r_peaks)
    normal_rr = np.median(rr[(types[1:] == "N") & (types[:-1] == "N")])
    v = np.flatnonzero(types == "V")
    v = v[(v > 0) & (v < types.size - 1)]
    assert v.size >= 2
    # compensatory pause: the RR around a PVC adds up to two sinus cycles
    around = pvc.r_peaks[v + 1] - pvc.r_peaks[v - 1]
    np.testing.assert_allclose(around / normal_rr, 2.0, atol=0.15)
    assert np.all(pvc.r_peaks[v] - pvc.r_peaks[v - 1] < 0.8 * normal_rr)   # premature

    pac = synthesize("premature_atrial_contractions", seconds=30, seed=4)
    types = np.array(pac.beat_types)
    rr = np.diff(pac.r_peaks)
    normal_rr = np.median(rr[(types[1:] == "N") & (types[:-1] == "N")])
    a = np.flatnonzero(types == "A")
    a = a[(a > 0) & (a < types.size - 1)]
    assert a.size >= 2
    around = pac.r_peaks[a + 1] - pac.r_peaks[a - 1]
    assert np.all(around < 1.95 * normal_rr)          # non-compensatory
    assert set(synthesize("sinus_rhythm", seed=4).beat_types) == {"N"}


def test_wide_qrs_conditions_and_pacing_spikes():
    normal = _qrs_width_s(synthesize("sinus_rhythm", seed=1))
    assert normal < 0.11
    for cond in ("left_bundle_branch_block", "right_bundle_branch_block"):
        assert _qrs_width_s(synthesize(cond, seed=1)) >= 0.12, cond
    paced = synthesize("ventricular_paced", seed=1)
    assert set(paced.beat_types) == {"P"}
    assert np.ptp(_rr_s(paced)) <= 2 / FS               # fixed-rate pacing
    jump = np.abs(np.diff(paced.signal.astype(np.float64), axis=0)).max(axis=1)
    for r in paced.r_peaks:                              # a spike just before every QRS
        assert jump[r - int(0.12 * FS):r].max() > 1.0
    assert np.abs(np.diff(synthesize("sinus_rhythm", seed=1).signal, axis=0)).max() < 0.5


def test_first_degree_block_lengthens_pr():
    def p_to_r(rec):
        ii = _lead(rec, "II")
        d = [r - (r - int(0.45 * FS) + np.argmax(ii[r - int(0.45 * FS):r - int(0.1 * FS)]))
             for r in rec.r_peaks[1:]]
        return np.median(d) / FS

    for seed in (0, 1):
        normal = p_to_r(synthesize("sinus_rhythm", seed=seed))
        avb = p_to_r(synthesize("first_degree_av_block", seed=seed))
        assert avb > normal + 0.03 and avb > 0.2


def test_potassium_changes_t_waves():
    def t_amp(rec):
        x = rec.signal[:, [1, 7, 8]].astype(np.float64)
        return np.median([np.abs(x[r + int(0.12 * FS):r + int(0.4 * FS)]).max()
                          for r in rec.r_peaks[:-1]])

    for seed in (0, 3):
        normal = t_amp(synthesize("sinus_rhythm", seed=seed, potassium="normal"))
        assert t_amp(synthesize("sinus_rhythm", seed=seed, potassium="hyper")) > 1.5 * normal
        assert t_amp(synthesize("sinus_rhythm", seed=seed, potassium="hypo")) < 0.6 * normal


def test_snr_as_requested():
    clean = synthesize("sinus_rhythm", seconds=20, seed=9)
    for snr in (6.0, 20.0):
        noisy = synthesize("sinus_rhythm", seconds=20, seed=9, snr_db=snr)
        np.testing.assert_array_equal(noisy.r_peaks, clean.r_peaks)
        s = clean.signal.astype(np.float64)
        n = noisy.signal.astype(np.float64) - s
        got = 10 * np.log10(s.var(axis=0) / (n ** 2).mean(axis=0))
        independent = [0, 1, 6, 7, 8, 9, 10, 11]
        np.testing.assert_allclose(got[independent], snr, atol=0.3)
        assert np.all(np.abs(got - snr) < 8)              # derived limb leads roughly


def test_powerline_only_noise_sits_at_its_frequency():
    clean = synthesize("sinus_rhythm", seconds=10, seed=2)
    rec = synthesize("sinus_rhythm", seconds=10, seed=2, snr_db=10,
                     noise={"powerline": 1.0}, powerline_hz=60)
    n = rec.signal[:, 1].astype(np.float64) - clean.signal[:, 1]
    spec = np.abs(np.fft.rfft(n))
    f = np.fft.rfftfreq(n.size, 1 / FS)
    assert abs(f[np.argmax(spec)] - 60.0) < 0.5


def test_schedule_changes_rhythm_over_time():
    rec = synthesize_schedule([("sinus_rhythm", 10), ("atrial_fibrillation", 10)], seed=3)
    assert rec.segments == [(0, 5000, "sinus_rhythm"), (5000, 10000, "atrial_fibrillation")]
    rr = np.diff(rec.r_peaks) / FS
    first = rr[rec.r_peaks[1:] < 5000]
    second = rr[rec.r_peaks[:-1] >= 5000]
    assert first.std() / first.mean() < 0.08 and second.std() / second.mean() > 0.1
    assert rec.condition_at(0, 5000) == "sinus_rhythm"
    assert rec.condition_at(6000, 9000) == "atrial_fibrillation"
    assert rec.condition_at(4000, 9000) == "atrial_fibrillation"


def test_every_segment_of_a_long_schedule_has_its_beats():
    sched = [("ventricular_paced", 3), ("sinus_rhythm", 3), ("atrial_flutter", 3),
             ("supraventricular_tachycardia", 3), ("premature_ventricular_contractions", 3)]
    for seed in range(4):
        rec = synthesize_schedule(sched, seed=seed)
        r = rec.r_peaks
        assert np.diff(r).max() < 2.2 * FS                  # no gap at a boundary
        assert r[0] < 1.5 * FS and rec.signal.shape[0] - r[-1] < 1.5 * FS
        for s0, s1, cond in rec.segments:
            assert np.sum((r >= s0) & (r < s1)) >= 2, (seed, cond)
        types = np.array(rec.beat_types)
        assert set(types[r < 1500]) == {"P"} and "P" not in set(types[r >= 1600])


def test_age_and_sex_norms():
    rng = np.random.default_rng(0)
    men_young = [draw_patient(25, 0, rng) for _ in range(300)]
    women_young = [draw_patient(25, 1, rng) for _ in range(300)]
    men_old = [draw_patient(75, 0, rng) for _ in range(300)]

    def mean(ps, key):
        return np.mean([getattr(p, key) for p in ps])

    assert mean(women_young, "qrs_s") < mean(men_young, "qrs_s") - 0.004      # Rijnbeek 2014
    assert mean(women_young, "qtc_s") > mean(men_young, "qtc_s") + 0.005
    assert mean(women_young, "qrs_scale") < mean(men_young, "qrs_scale")
    assert mean(women_young, "hr_bpm") > mean(men_young, "hr_bpm")           # Mason 2007
    assert mean(men_old, "pr_s") > mean(men_young, "pr_s") + 0.01
    assert mean(men_old, "qrs_scale") < mean(men_young, "qrs_scale")
    assert mean(men_old, "axis_deg") < mean(men_young, "axis_deg")
    assert mean(men_old, "rsa") < mean(men_young, "rsa")                     # Umetani 1998


def test_cohort_plan_is_balanced():
    plan = cohort_plan(56, seed=1)
    conds = [e.condition for e in plan]
    assert all(conds.count(c) == 4 for c in CONDITIONS)
    assert sum(e.potassium != "normal" for e in plan) == 28
    assert sum(e.sex for e in plan) == 28
    assert all(18 <= e.age <= 90 for e in plan)
    assert len({e.subject_id for e in plan}) == 56
    assert plan == cohort_plan(56, seed=1)


def test_bad_arguments_are_named():
    with pytest.raises(SignalError, match="unknown condition 'vfib'"):
        synthesize("vfib")
    with pytest.raises(SignalError, match="potassium"):
        synthesize(potassium="high")
    with pytest.raises(SignalError, match="sex"):
        synthesize(sex="x")
    with pytest.raises(SignalError, match="lead"):
        synthesize(leads=("II", "V7"))
    with pytest.raises(SignalError, match="noise"):
        synthesize(snr_db=10, noise={"hum": 1.0})
