"""A called ventricular run goes on while its beats stay wide and unlike the dominant beat
(edge_ecg/runtime/run_continuation.py): it only continues a run of `min_run` V calls, never
starts one, stops at the dominant beat, a break in the beats or a new context epoch; a bundle's
setting is checked; the stream gives the same classes under any chunking and across a ward
snapshot."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.errors import BundleError
from edge_ecg.runtime.beat_stack import FEATURES, parse_beat_stack
from edge_ecg.runtime.run_continuation import ContinuationConfig, RunContinuation

REPO = Path(__file__).resolve().parents[2]
LABELS = ["N", "S", "V", "F", "Q"]
FS = 250.0
F = {f: i for i, f in enumerate(FEATURES)}
N_P = np.array([0.9, 0.05, 0.03, 0.01, 0.01])
V_P = np.array([0.05, 0.05, 0.88, 0.01, 0.01])


def _row(pre_ms=500.0, dominant=False, width=1.6, corr=0.6, learned=True) -> np.ndarray:
    x = np.zeros(len(FEATURES))
    x[F["pre_rr_ms"]] = pre_ms
    x[F["learned"]] = float(learned)
    x[F["in_dominant"]] = float(dominant)
    x[F["width_ratio"]], x[F["qrs_corr"]] = width, corr
    return x


def _calls(cont, beats, epoch=0, start=0, rr_ms=500.0):
    """Labels of `beats` [(probs, row kwargs)] fed one after another, `rr_ms` apart."""
    out, r = [], start
    for p, kw in beats:
        kw = {"pre_ms": rr_ms, **kw}
        r += int(round(kw["pre_ms"] * FS / 1000.0))
        q = cont.apply(epoch, r, _row(**kw), p)
        assert np.isclose(q.sum(), p.sum()) and sorted(q) == sorted(p)   # a swap, no new mass
        out.append(LABELS[int(np.argmax(q))])
    return "".join(out), r


def test_three_v_calls_carry_on_through_wide_unlike_beats_until_the_dominant_one():
    c = RunContinuation(ContinuationConfig(), FS, FEATURES, LABELS)
    wide = {}
    seq = [(V_P, wide)] * 3 + [(N_P, wide)] * 4 + [(N_P, {"dominant": True, "width": 1.0,
                                                         "corr": 0.99})] + [(N_P, wide)] * 2
    got, _ = _calls(c, seq)
    assert got == "VVVVVVVNNN"
    assert c.continued == 4
    # only unlike beats: as wide as the dominant and correlating with it, a beat is not
    # continued even outside the dominant cluster; either criterion alone is enough
    for kw, want in (({"width": 1.05, "corr": 0.95}, "N"), ({"width": 1.35, "corr": 0.95}, "V"),
                     ({"width": 1.05, "corr": 0.75}, "V"), ({"learned": False}, "N")):
        c = RunContinuation(ContinuationConfig(), FS, FEATURES, LABELS)
        assert _calls(c, [(V_P, {})] * 3 + [(N_P, kw)])[0] == "VVV" + want


def test_it_never_starts_a_run():
    c = RunContinuation(ContinuationConfig(), FS, FEATURES, LABELS)
    assert _calls(c, [(V_P, {})] * 2 + [(N_P, {})] * 3)[0] == "VVNNN"     # a couplet stays
    c = RunContinuation(ContinuationConfig(min_run=5), FS, FEATURES, LABELS)
    assert _calls(c, [(V_P, {})] * 4 + [(N_P, {})])[0] == "VVVVN"


def test_a_break_in_the_beats_or_a_new_epoch_ends_the_run():
    c = RunContinuation(ContinuationConfig(), FS, FEATURES, LABELS)
    _, r = _calls(c, [(V_P, {})] * 3)
    # the next beat classified is not the one after the last (a beat between went
    # unclassified: its RR before does not reach back to the last one)
    assert LABELS[int(np.argmax(c.apply(0, r + 250, _row(pre_ms=500.0), N_P)))] == "N"
    c = RunContinuation(ContinuationConfig(), FS, FEATURES, LABELS)
    _, r = _calls(c, [(V_P, {})] * 3)
    assert _calls(c, [(N_P, {})], epoch=1, start=r)[0] == "N"             # relearn, lead change
    c = RunContinuation(ContinuationConfig(), FS, FEATURES, LABELS)
    _, r = _calls(c, [(V_P, {})] * 3)
    assert _calls(c, [(N_P, {"pre_ms": 0.0})], start=r)[0] == "N"        # RR unknown


def test_a_bundles_setting_is_checked_and_round_trips():
    assert ContinuationConfig.parse({}, "t") == ContinuationConfig()
    assert ContinuationConfig.parse({"min_run": 4}, "t").min_run == 4
    for bad, why in [({"min_run": 1}, "min_run = 1"), ({"min_run": 3.5}, "whole"),
                     ({"width_ratio": float("inf")}, "width_ratio"), ({"qrs_corr": True},
                                                                       "qrs_corr"),
                     ({"evil": 1}, "unknown"), ("on", "must be an object")]:
        with pytest.raises(BundleError, match=why):
            ContinuationConfig.parse(bad, "t")
    import json

    doc = json.loads((REPO / "edge_ecg" / "assets" / "default_bundle" / "beat_stack.json")
                     .read_text())
    doc["run_continuation"] = {"min_run": 4, "width_ratio": 1.5, "qrs_corr": 0.7}
    stack = parse_beat_stack(doc, "t")
    assert stack.continuation == ContinuationConfig(4, 1.5, 0.7)
    assert parse_beat_stack(stack.to_dict(), "t").continuation == stack.continuation
    assert stack.to_dict()["run_continuation"] == doc["run_continuation"]
    with pytest.raises(BundleError, match="min_run"):
        parse_beat_stack({**doc, "run_continuation": {"min_run": 0}}, "t")


@pytest.fixture(scope="module")
def continued_backend():
    """The bundled model with run continuation on (whatever the bundle ships)."""
    from edge_ecg.runtime.backends import open_backend

    b = open_backend(REPO / "edge_ecg" / "assets" / "default_bundle")
    b.stack = replace(b.stack, continuation=ContinuationConfig())
    yield b
    b.close()


def _record(shared_data, seconds: float = 115.0):
    """The first `seconds` of MIT-BIH 203 (a training-fold patient: atrial fibrillation with
    multiform PVCs and short ventricular runs) as the replay reads it."""
    from edge_ecg.runtime.replay import record_source

    src = record_source(str(shared_data / "mitdb" / "203"))
    src.adc = src.adc[: int(seconds * src.fs_hz)]
    return src


@pytest.mark.needs_data("mitdb/203")
def test_the_stream_continues_runs_and_any_chunking_or_a_snapshot_gives_the_same(
        continued_backend, shared_data):
    """On real signal the rule fires (here at 106-108 s, after the run of 105.3-105.9 s: the
    reference calls those three beats N, so this is no claim that it is right; its figures
    are the bench's), and the stream's classes are the same under any chunking and across a
    ward snapshot."""
    from tests.runtime.conftest import rule_on_and_off

    rec = _record(shared_data)
    a, base, p1, p0 = rule_on_and_off(continued_backend, rec, "run_continued_from",
                                      "continuation", int(100 * rec.fs_hz), 1200)
    assert p1.continuation is not None and p1.continuation.continued > 0
    assert p0.continuation is None
    # against the same stream without it: only N or S calls became V
    changed = [(x, y, was) for (_, x, _), (_, y, was) in zip(base, a) if x != y]
    assert len(changed) == p1.continuation.continued
    # each says what the stack had called it, and the rhythm's class shares read that
    assert all(x in ("N", "S") and y == "V" and was == x for x, y, was in changed)
    assert all(was is None for _, y, was in a if y != "V")


def test_the_bundled_model_runs_it_and_evaluate_says_so(shared_data, capsys):
    """The shipped bundle's beat stack carries it (chosen on the training folds, BENCHMARKS
    "2026-12-07, late night") and the tachycardia episodes (svt_episode.py, "2026-12-08"),
    and `evaluate --json` names each."""
    from edge_ecg.runtime.svt_episode import SvtConfig

    import json

    from edge_ecg.cli import main

    spec = f"mitdb:{shared_data / 'mitdb' / '119'}?seconds=30"
    assert main(["evaluate", "--bundle", str(REPO / "edge_ecg" / "assets" / "default_bundle"),
                 "--data", spec, "--json"]) == 0
    bc = json.loads(capsys.readouterr().out)["beat_classes"]
    assert bc["run_continuation"] == ContinuationConfig().to_dict()
    assert bc["svt_episode"] == SvtConfig().to_dict()
