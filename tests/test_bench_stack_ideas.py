"""bench/stack_ideas.py: the neighbour columns come from the right rows, the local RR
irregularity leaves the beat's own intervals out and reads a regular rhythm as 0 and an
alternating one as irregular; a class-prior shift moves calls; an S run is carried on only
while it stays fast; the four extra rhythm features read what they say. (bench/ is not a
package: imported by path.)"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import stack_ideas  # noqa: E402

FEATURES = ("pre_rr_ms", *stack_ideas.NEIGHBOUR)


def test_neighbour_columns_are_the_rows_before_and_after():
    x = np.arange(5 * len(FEATURES), dtype=float).reshape(5, len(FEATURES))
    one, two = (stack_ideas.with_neighbours(x, FEATURES, k) for k in (1, 2))
    k = len(stack_ideas.NEIGHBOUR)
    assert one.shape == (5, len(FEATURES) + 2 * k) and two.shape == (5, len(FEATURES) + 4 * k)
    assert np.array_equal(one[:, :len(FEATURES)], x)
    assert np.array_equal(one[2, len(FEATURES):len(FEATURES) + k], x[1, 1:])      # previous
    assert np.array_equal(one[2, len(FEATURES) + k:], x[3, 1:])                    # next
    assert not one[0, len(FEATURES):len(FEATURES) + k].any() and not one[4, -k:].any()
    assert np.array_equal(two[2, -2 * k:-k], x[0, 1:]) and np.array_equal(two[2, -k:], x[4, 1:])


def test_local_irregularity_is_zero_in_a_regular_rhythm_and_not_in_an_alternating_one():
    def rows(rr):
        x = np.zeros((len(rr), len(FEATURES)))
        x[:, 0] = rr
        return stack_ideas.with_irregularity(x, FEATURES)[:, -3:]

    regular = rows([800.0] * 20)
    assert np.allclose(regular, 0.0)
    # one premature beat (its own pre and post RR are left out of its own figure)
    pvc = [800.0] * 20
    pvc[10], pvc[11] = 500.0, 1100.0
    assert np.allclose(rows(pvc)[10], 0.0)
    alternating = rows([600.0, 1000.0] * 10)
    assert alternating[10, 0] > 0.4 and alternating[10, 1] == 1.0


def test_a_prior_shift_moves_the_calls():
    z = np.log(np.array([[0.5, 0.4, 0.1, 0.0 + 1e-9, 1e-9]]))
    assert stack_ideas._shifted(z, 0.0, 0.0)[0] == 0
    assert stack_ideas._shifted(z, 0.5, 0.0)[0] == stack_ideas.LABELS.index("S")


def test_an_s_run_is_carried_on_only_while_it_stays_fast():
    """N beats at 1 s, then a run whose first three are called S and the rest N at 0.5 s,
    then a slower beat: after m = 3 S, the fast N become S until the RR exceeds ratio x the
    RR before the run; after m = 4 nothing changes."""
    t = [float(k) for k in range(10)] + [9.5 + 0.5 * k for k in range(8)] + [14.0]
    classes = ["N"] * 10 + ["S"] * 3 + ["N"] * 5 + ["N"]
    r = {"beats": [int(v * 100) for v in t], "fs": 100.0, "classes": classes}
    got = stack_ideas._s_continued(r, 3, 0.8)
    assert got == ["N"] * 10 + ["S"] * 8 + ["N"]
    assert stack_ideas._s_continued(r, 4, 0.8) == classes
    assert stack_ideas._s_continued(r, 3, 0.4) == classes      # 0.5 s > 0.4 x 1 s


def test_the_extra_rhythm_row_reads_pr_qtc_and_spreads():
    pr = np.array([150.0, np.nan, 170.0])
    qt, rr = np.array([400.0, 400.0]), np.array([1000.0, 1000.0])
    row = stack_ideas._extra_rhythm_row(pr, qt, rr, np.array([80.0, 100.0]),
                                        np.array([800.0, 900.0, 800.0, 900.0]))
    assert row == [160.0, 400.0, 10.0, 100.0]
    empty = stack_ideas._extra_rhythm_row(np.array([np.nan]), np.zeros(0), np.zeros(0),
                                          np.zeros(0), np.zeros(0))
    assert empty == [160.0, 420.0, 0.0, 0.0]


def _svt_record(db: str, name: str, fs: float = 100.0) -> dict:
    """A stream as bench/vt_escalation.py leaves it: sinus beats at 1 s, then from 319.5 s a
    supraventricular tachycardia of 40 beats at 0.5 s (annotated S, streamed N), then sinus;
    its rhythm notes say AF from 360 s."""
    t = [float(k) for k in range(320)] + [319 + 0.5 * k for k in range(1, 41)]
    t += [t[-1] + k for k in range(1, 41)]
    beats = [int(round(v * fs)) for v in t]
    sym = ["N"] * 320 + ["A"] * 40 + ["N"] * 40
    af_at = beats[360]
    return {"record": name, "db": db, "fs": fs, "n": beats[-1] + 100, "ext": "atr",
            "beats": beats, "classes": ["N"] * len(beats),
            "marks": (beats, tuple(sym)),
            "atr": ([0, af_at], ["+", "+"], ["(N", "(AFIB"])}


def test_reference_af_beats_are_the_ones_inside_afib_or_flutter_notes():
    r = _svt_record("mitdb", "x1")
    af = stack_ideas.in_reference_af(r)
    assert af.sum() == 40 and af[360:].all() and not af[:360].any()


def test_the_svt_episode_grid_finds_the_tachycardia_and_judges_the_rule(capsys):
    rs = [_svt_record("mitdb", "x1"), _svt_record("svdb", "x2")]
    got = stack_ideas.svt_episode_grid(rs, grid=((16,), (0.10,), (8, 64), (0.75,)))
    assert got["best"] == (16, 0.10, 8, 0.75)
    _, sc, af_s, af_n = got["grid"][got["best"]]
    # the first 7 beats of the run keep their N; the other 33 are S and nothing else is
    assert sc["svdb"]["s_se"] == 33 / 40 and sc["svdb"]["s_ppv_ec57"] == 1.0
    assert got["base"]["svdb"]["s_se"] == 0.0 and (af_s, af_n) == (0, 40)
    assert got["holds"] and "the rule holds" in capsys.readouterr().out
    # 64 beats in a row never come: nothing gained, and the rule says so
    assert got["grid"][(16, 0.10, 64, 0.75)][1]["svdb"]["s_se"] == 0.0
    never = stack_ideas.svt_episode_grid(rs, grid=((16,), (0.10,), (64,), (0.75,)))
    assert not never["holds"] and "the rule fails" in capsys.readouterr().out
