"""bench/patient_adapt.py: the per-patient LDA learns only from the confident calls of the
learning period, leaves a record alone where they hold fewer than two classes, and pulls a
later beat of the patient's own ventricular shape to V (bench/ is not a package: imported
by path)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import patient_adapt  # noqa: E402


def _record(seed: int = 0):
    """Normal beats at feature 0 ~ 0 and ventricular ones at ~ 3; the stack's calls: sure
    in the learning period, unsure (N by a hair) for the last ventricular beats."""
    rng = np.random.default_rng(seed)
    n = 400
    v = np.zeros(n, bool)
    v[::5] = True
    x = rng.normal(0, 0.3, (n, 4))
    x[v, 0] += 3.0
    z = np.full((n, 5), -8.0)
    z[~v, 0], z[v, 2] = 0.0, 0.0
    late = np.arange(n) >= 300
    z[v & late, 0], z[v & late, 2] = 0.0, -0.2          # unsure, N by a hair
    t_s = np.arange(n) * 1.0                            # beat k at k s: learning = first 300
    return x, z, t_s, v, late


def test_a_later_beat_of_the_patients_own_ventricular_shape_is_pulled_to_v():
    x, z, t_s, v, late = _record()
    assert (z[v & late].argmax(1) == 0).all()
    for v_only in (False, True):
        out = patient_adapt.adapt(x, z, t_s, tau=0.9, beta=0.5,
                                  form=patient_adapt.Form(v_only=v_only))
        assert (out[v & late].argmax(1) == 2).all()
        assert (out[~v].argmax(1) == 0).all()
    assert patient_adapt.adapt(x, z, t_s, 0.9, 0.0) is z


def test_no_adaptation_without_two_classes_confidently_called_early():
    x, z, t_s, v, late = _record()
    z2 = z.copy()
    z2[v & ~late, 2], z2[v & ~late, 0] = 0.0, -0.1    # early V calls unsure: none learned
    assert np.array_equal(patient_adapt.adapt(x, z2, t_s, tau=0.9, beta=0.5), z2)


def test_one_class_vetoes_a_v_call_inside_the_patients_normal_cloud_only():
    """--one-class: no confident V early, so the patient's N beats alone; a later unsure V
    call on a beat like them is vetoed, one far outside their cloud is kept."""
    rng = np.random.default_rng(1)
    n = 400
    x = rng.normal(0, 0.3, (n, 4))
    z = np.full((n, 5), -8.0)
    z[:, 0] = 0.0
    inside, outside = 350, 351
    x[inside] = 0.0                                     # at the centre of the N beats
    x[outside, 0] += 5.0
    for i in (inside, outside):
        z[i, 0], z[i, 2] = 0.0, 0.3                      # V by a hair
    t_s = np.arange(n) * 1.0
    form = patient_adapt.Form(v_only=True, veto=True, one_class=True)
    out = patient_adapt.adapt(x, z, t_s, tau=0.9, beta=4.0, form=form)
    assert out[inside].argmax() == 0 and out[outside].argmax() == 2


def test_the_continuation_bench_carries_a_run_with_the_runtimes_rule():
    """`--continuation` applies the runtime's own class beat after beat: three V calls carry a
    wide non-dominant beat on, the dominant beat ends the run, and its run count sees one run
    where the uncontinued calls saw none past the couplet."""
    from edge_ecg.runtime.beat_stack import FEATURES
    from edge_ecg.runtime.run_continuation import ContinuationConfig

    f = {c: i for i, c in enumerate(FEATURES)}
    x = np.zeros((8, len(FEATURES)))
    x[:, f["pre_rr_ms"]], x[:, f["learned"]] = 500.0, 1.0
    x[:, f["width_ratio"]], x[:, f["qrs_corr"]] = 1.6, 0.5
    x[6:, f["in_dominant"]], x[6:, f["width_ratio"]], x[6:, f["qrs_corr"]] = 1.0, 1.0, 0.99
    lab = np.array([0, 2, 2, 2, 0, 0, 0, 0])
    got = patient_adapt.continued(x, lab, ContinuationConfig())
    assert got.tolist() == [0, 2, 2, 2, 2, 2, 0, 0]
    assert patient_adapt._v_runs(got) == [(1, 6)]
    assert patient_adapt._v_runs(lab) == [(1, 4)]
    # a couplet is never carried on
    assert patient_adapt.continued(x, np.array([0, 2, 2, 0, 0, 0, 0, 0]),
                                   ContinuationConfig()).tolist() == [0, 2, 2, 0, 0, 0, 0, 0]
