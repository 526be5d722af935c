"""AAMI EC57 classes from MIT-BIH beat symbols (../shared/data/README.md's mapping)."""

from __future__ import annotations

import numpy as np

from edge_ecg.data.aami import (
    AAMI_CLASSES,
    PACED_RECORDS,
    SYMBOL_TO_AAMI,
    aami_class,
    aami_indices,
)

# The mapping as the shared data's README states it: N = N L R e j; S = A a J S; V = V E;
# F = F; Q = / f Q.
README = {"N": "NLRej", "S": "AaJS", "V": "VE", "F": "F", "Q": "/fQ"}
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124",
       "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")


def test_every_readme_symbol_maps_to_its_class():
    for cls, symbols in README.items():
        for s in symbols:
            assert aami_class(s) == cls, s
            assert aami_indices([s], "100").tolist() == [AAMI_CLASSES.index(cls)]
    assert sorted(SYMBOL_TO_AAMI) == sorted("".join(README.values()))
    assert AAMI_CLASSES == ("N", "S", "V", "F", "Q")


def test_other_symbols_get_no_class():
    for s in ("B", "r", "n", "?", "+", "~", "|", "x", "[", "!", "]", ""):
        assert aami_class(s) is None
    assert aami_indices(["N", "?", "V", "B"], "100").tolist() == [0, -1, 2, -1]


def test_paced_records_are_left_out():
    assert PACED_RECORDS == {"102", "104", "107", "217"}
    syms = ["/", "f", "N", "V"]
    for r in PACED_RECORDS:
        assert aami_indices(syms, r).tolist() == [-1] * 4
    assert aami_indices(syms, "100").tolist() == [4, 4, 0, 2]


def test_beat_file_q_is_not_a_class():
    # a .beat file labels V and 'Q' = "any other beat": only V is a class
    assert aami_indices(["V", "Q", "V"], "105", annotation="beat").tolist() == [2, -1, 2]
    assert aami_indices(["V", "Q"], "105", annotation="atr").tolist() == [2, 4]
    assert aami_indices([], "100").dtype == np.int64


def test_shared_records(shared_data):
    from edge_ecg.data.records import beat_annotations, find_beat_extension

    # DS1 of de Chazal et al. 2004: 45866 N, 944 S, 3788 V, 415 F, 8 Q beats
    total = np.zeros(5, dtype=np.int64)
    for r in DS1:
        path = shared_data / "mitdb" / r
        ann = beat_annotations(path)
        c = aami_indices(ann.symbol, r, find_beat_extension(path))
        total += np.bincount(c[c >= 0], minlength=5)
    assert total.tolist() == [45866, 944, 3788, 415, 8]
    # a paced record: every beat unlabelled
    ann = beat_annotations(shared_data / "mitdb" / "217")
    assert (aami_indices(ann.symbol, "217") == -1).all() and len(ann) > 2000
    # 105 has only a .beat file: its V beats are classes, its Q beats are not
    path = shared_data / "mitdb" / "105"
    assert find_beat_extension(path) == "beat"
    ann = beat_annotations(path)
    c = aami_indices(ann.symbol, "105", "beat")
    sym = np.asarray(ann.symbol)
    assert set(c[sym == "V"].tolist()) == {2} and set(c[sym != "V"].tolist()) == {-1}
    assert (sym == "Q").any()
