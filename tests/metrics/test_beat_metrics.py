"""AAMI EC57 beat-class scoring: exact counts on hand-made records, and a real record scored
against itself."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.data.aami import AAMI_CLASSES, aami_indices
from edge_ecg.metrics.beats import (
    EC57_LEARNING_S,
    MISSED,
    confusion_table,
    pool_class_scores,
    record_table,
    score_beat_classes,
)

FS = 360.0
N, S, V, F, Q = range(5)
TOL = 54                     # 150 ms at 360 Hz


def _ref():
    # ten beats a second apart: N N V N S N V F N Q
    samples = np.arange(10) * 360 + 500
    classes = np.array([N, N, V, N, S, N, V, F, N, Q])
    return samples, classes


def test_reference_fed_back_scores_perfectly():
    rs, rc = _ref()
    s = score_beat_classes(rs, rc, rs, rc, FS, record="x")
    assert s.n_ref == 10 and s.n_missed == 0 and s.extra.sum() == 0
    assert np.array_equal(np.diag(s.confusion[:, :5]), [5, 1, 2, 1, 1])
    for c in ("V", "S", "F", "N", "Q"):
        assert s.se(c) == 1.0 and s.ppv(c) == 1.0
    assert s.accuracy == 1.0


def test_missed_v_counts_against_v_sensitivity_only():
    rs, rc = _ref()
    keep = np.arange(10) != 2                        # the detector misses the first V
    s = score_beat_classes(rs, rc, rs[keep], rc[keep], FS)
    assert s.confusion[V, MISSED] == 1 and s.n_missed == 1
    assert s.se("V") == 0.5 and s.ppv("V") == 1.0
    assert s.counts("V") == {"tp": 1, "fn": 1, "fp": 0}


def test_unclassified_detection_is_missed():
    rs, rc = _ref()
    dc = rc.copy()
    dc[6] = -1                                       # found, but no class given
    s = score_beat_classes(rs, rc, rs, dc, FS)
    assert s.confusion[V, MISSED] == 1 and s.se("V") == 0.5


def test_extra_detection_called_v_counts_against_v_ppv():
    rs, rc = _ref()
    ds = np.append(rs, rs[0] + 180)                  # a false detection half-way between beats
    dc = np.append(rc, V)
    s = score_beat_classes(rs, rc, ds, dc, FS)
    assert s.extra[V] == 1 and s.extra.sum() == 1
    assert s.se("V") == 1.0 and s.ppv("V") == pytest.approx(2 / 3)
    assert s.counts("V") == {"tp": 2, "fn": 0, "fp": 1}
    # unclassified false detections cost no class anything
    s2 = score_beat_classes(rs, rc, ds, np.append(rc, -1), FS)
    assert s2.extra[MISSED] == 1 and s2.ppv("V") == 1.0


def test_misclassifications_fill_the_confusion_matrix():
    rs, rc = _ref()
    dc = rc.copy()
    dc[0] = V          # an N called V: V +P falls
    dc[4] = N          # the S called N: S Se falls, N +P falls
    dc[7] = V          # the F called V: F Se falls, V +P falls unless fusion is excused
    s = score_beat_classes(rs, rc, rs, dc, FS)
    assert s.confusion[N, V] == 1 and s.confusion[S, N] == 1 and s.confusion[F, V] == 1
    assert s.se("V") == 1.0 and s.ppv("V") == pytest.approx(2 / 4)
    assert s.v_ppv_fusion_excused == pytest.approx(2 / 3)
    assert s.se("S") == 0.0 and np.isnan(s.ppv("S"))
    assert s.se("F") == 0.0
    assert s.se("N") == pytest.approx(4 / 5) and s.ppv("N") == pytest.approx(4 / 5)


def test_tolerance_edges_150_ms():
    rs, rc = np.array([1000]), np.array([V])
    assert score_beat_classes(rs, rc, rs + TOL, [V], FS).se("V") == 1.0       # 150 ms: matched
    assert score_beat_classes(rs, rc, rs - TOL, [V], FS).se("V") == 1.0
    late = score_beat_classes(rs, rc, rs + TOL + 1, [V], FS)                   # 152.8 ms: not
    assert late.se("V") == 0.0 and late.ppv("V") == 0.0
    assert late.confusion[V, MISSED] == 1 and late.extra[V] == 1


def test_one_detection_matches_one_beat_closest_first():
    # two reference beats 200 ms apart, one detection between them nearer the second
    rs, rc = np.array([1000, 1072]), np.array([N, V])
    s = score_beat_classes(rs, rc, [1040], [V], FS)
    assert s.confusion[V, V] == 1 and s.confusion[N, MISSED] == 1 and s.extra.sum() == 0


def test_unlabelled_reference_beats_are_left_out():
    rs, rc = _ref()
    rc = rc.copy()
    rc[[1, 3]] = -1                                  # no class (e.g. a paced record's beats)
    dc = np.array([N, V, V, V, S, N, V, F, N, Q])    # the unlabelled two called V
    s = score_beat_classes(rs, rc, rs, dc, FS)
    assert s.n_ref == 8 and s.n_unlabelled == 2 and s.n_unlabelled_detected == 2
    assert s.ppv("V") == 1.0 and s.extra.sum() == 0


def test_unsorted_input_and_bad_classes():
    rs, rc = _ref()
    order = np.random.default_rng(0).permutation(10)
    s = score_beat_classes(rs[order], rc[order], rs, rc, FS)
    assert s.accuracy == 1.0
    with pytest.raises(ValueError, match="classes must lie"):
        score_beat_classes(rs, rc, rs, rc + 1, FS)
    with pytest.raises(ValueError, match="10 reference beats with 9"):
        score_beat_classes(rs, rc[:9], rs, rc, FS)


def test_gross_sums_records_and_tables_print():
    rs, rc = _ref()
    a = score_beat_classes(rs, rc, rs, rc, FS, record="a")
    b = score_beat_classes(rs, rc, rs[rc != V], rc[rc != V], FS, record="b")   # both V missed
    g = pool_class_scores([a, b])
    assert g.record == "gross" and g.n_ref == 20
    assert g.se("V") == 0.5 and g.ppv("V") == 1.0             # 2 of 4, not the mean of 1 and 0
    d = g.to_dict()
    assert d["v_se"] == 0.5 and d["n_v"] == 4 and d["v_fn"] == 2
    assert d["confusion"][V] == [0, 0, 2, 0, 0, 2]
    assert d["confusion_columns"][-1] == "missed"
    table = record_table([a, b])
    assert table.splitlines()[-1].startswith("gross") and "V Se" in table
    assert "missed" in confusion_table(g)


def test_real_record_scored_against_itself(shared_data):
    from edge_ecg.data.records import beat_annotations, find_beat_extension

    for name in ("208", "119"):
        path = shared_data / "mitdb" / name
        ann = beat_annotations(path)
        cls = aami_indices(ann.symbol, name, find_beat_extension(path))
        s = score_beat_classes(ann.sample, cls, ann.sample, cls, 360.0, record=name)
        assert s.n_missed == 0 and s.extra.sum() == 0
        for c in ("V", "S", "F"):
            n = int(s.confusion[AAMI_CLASSES.index(c)].sum())
            if n:
                assert s.se(c) == 1.0 and s.ppv(c) == 1.0, (name, c)
        if name == "208":      # 992 V, 373 F, 2 S (MIT-BIH directory counts)
            assert s.to_dict()["n_v"] == 992 and s.to_dict()["n_f"] == 373


def test_ec57_ppv_leaves_fusion_and_q_called_v_out():
    rs, rc = _ref()
    dc = rc.copy()
    dc[[7, 9]] = V                      # the F and the Q beat called V: not against V +P
    dc[0] = V                           # an N called V: against it
    s = score_beat_classes(rs, rc, rs, dc, FS)
    assert s.ppv("V") == 2 / 5                      # strict: every beat called V
    assert s.ppv_ec57("V") == 2 / 3                 # bxb's VFP = Nv + Sv + Ov
    assert s.to_dict()["v_ppv_ec57"] == 2 / 3
    dc = rc.copy()
    dc[9], dc[6] = S, S                 # Q called S is excused, V called S is not
    s = score_beat_classes(rs, rc, rs, dc, FS)
    assert s.ppv("S") == 1 / 3 and s.ppv_ec57("S") == 1 / 2


def test_learning_period_and_excluded_episodes_are_not_scored():
    rs, rc = _ref()                     # beats at 500, 860, ... 3740
    ds = np.append(rs, [2050])          # an extra detection called V at 2050 (between beats 4, 5)
    dc = np.append(rc, [V])
    s = score_beat_classes(rs, rc, ds, dc, FS)
    assert s.n_ref == 10 and s.extra[V] == 1
    # from beat 2 on (sample 1220), and nothing inside [1900, 2200]: beat 4 and the extra
    e = score_beat_classes(rs, rc, ds, dc, FS, from_sample=1220, excluded=[(1900, 2200)])
    assert e.n_ref == 7 and e.extra.sum() == 0 and e.ppv("V") == 1.0
    assert int(e.confusion[S].sum()) == 0           # beat 4 (S, at 1940) was inside


def test_flutter_waves_of_207_are_not_false_v_under_ec57(shared_data):
    """Record 207's ventricular flutter: the reference marks flutter waves ('!'), not beats.
    A detector that finds them and calls them V is wrong by the strict reading; EC57 (bxb)
    does not compare beats inside the `[` ... `]` episodes."""
    from edge_ecg.data.mitbih import vf_episodes
    from edge_ecg.data.records import beat_annotations, read_annotations

    path = shared_data / "mitdb" / "207"
    ann = beat_annotations(path)
    cls = aami_indices(ann.symbol, "207", "atr")
    marks = read_annotations(path, "atr")
    waves = marks.sample[np.array([m == "!" for m in marks.symbol])]
    episodes = vf_episodes(marks.sample, marks.symbol, 650_000)
    assert len(waves) == 472 and len(episodes) == 6
    ds = np.concatenate([ann.sample, waves])
    dc = np.concatenate([cls, np.full(waves.size, V)])
    strict = score_beat_classes(ann.sample, cls, ds, dc, 360.0)
    assert strict.extra[V] == 472 and strict.ppv("V") < 0.35
    ec57 = score_beat_classes(ann.sample, cls, ds, dc, 360.0, excluded=episodes,
                              from_sample=round(EC57_LEARNING_S * 360))
    assert ec57.extra.sum() == 0 and ec57.ppv_ec57("V") == 1.0 and ec57.se("V") == 1.0
    assert ec57.n_ref < strict.n_ref
