"""The recording-level rhythm stack: numpy apply == sklearn, the history's features, and the
stack as a hashed, signed bundle file (edge_ecg.runtime.recording_stack, rhythm_history)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge_ecg.errors import BundleError
from edge_ecg.runtime.bundle import DEFAULT_BUNDLE
from edge_ecg.runtime.events import BeatEvent, GapEvent, PredictionEvent, WithheldEvent
from edge_ecg.runtime.recording_stack import RHYTHM_STACK, load_stack, parse_stack
from edge_ecg.runtime.rhythm_history import RhythmDecider, RhythmHistory, feature_names

CLASSES = ("normal_sinus", "af_or_flutter", "other_rhythm", "too_noisy")


def _doc_from_sklearn(model, mean, scale, classes, features):
    return {"format": "edge-ecg-recording-stack", "format_version": 1, "kind": "logistic",
            "task": "arrhythmia", "classes": list(classes), "features": list(features),
            "mean": mean.tolist(), "scale": scale.tolist(), "coef": model.coef_.tolist(),
            "intercept": model.intercept_.tolist(), "info": {}}


@pytest.mark.parametrize("n_classes", [4, 2])
def test_numpy_apply_equals_sklearn_predict_proba(n_classes):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(n_classes)
    x = rng.normal(size=(400, 12)) * rng.uniform(0.1, 50, 12) + rng.normal(0, 20, 12)
    z = x[:, :n_classes]
    y = np.argmax((z - z.mean(0)) / z.std(0) + rng.normal(size=(400, n_classes)), axis=1)
    assert len(set(y.tolist())) == n_classes
    mean, scale = x.mean(0), x.std(0)
    m = LogisticRegression(C=0.5, max_iter=2000).fit((x - mean) / scale, y)
    classes = [f"c{i}" for i in range(n_classes)]
    feats = [f"f{i}" for i in range(12)]
    st = parse_stack(json.loads(json.dumps(_doc_from_sklearn(m, mean, scale, classes, feats))),
                     "test")
    xt = rng.normal(size=(300, 12)) * 30
    np.testing.assert_allclose(st.predict_proba(xt), m.predict_proba((xt - mean) / scale),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.predict_proba(xt[0]), m.predict_proba((xt[:1] - mean) / scale)[0])


def _gbt_doc(x, y, classes, features, setting=(3, 40, 0.2, 5)):
    from edge_ecg.model.beat_stacking import export_trees
    from edge_ecg.model.stacking import _fit_gbt

    m = _fit_gbt(x, y, setting)
    return m, {"format": "edge-ecg-recording-stack", "format_version": 1, "kind": "gbt",
               "task": "arrhythmia", "classes": list(classes), "features": list(features),
               **export_trees(m), "info": {}}


@pytest.mark.parametrize("n_classes, absent", [(4, None), (2, None), (4, 2)])
def test_gbt_numpy_apply_equals_sklearn_predict_proba(n_classes, absent):
    """The trees' kind: the runtime's numpy walk gives sklearn's probabilities, a class the fit
    never saw (`absent`) gets probability 0, and the document survives a JSON round trip."""
    rng = np.random.default_rng(10 + n_classes)
    x = rng.normal(size=(500, 6)) * rng.uniform(0.1, 50, 6)
    y = np.argmax(x[:, :n_classes] / x[:, :n_classes].std(0)
                  + rng.normal(size=(500, n_classes)), axis=1)
    if absent is not None:
        y[y == absent] = 0
    classes = [f"c{i}" for i in range(n_classes)]
    m, doc = _gbt_doc(x, y, classes, [f"f{i}" for i in range(6)])
    st = parse_stack(json.loads(json.dumps(doc)), "test")
    xt = rng.normal(size=(300, 6)) * 30
    p = st.predict_proba(xt)
    want = np.zeros_like(p)
    want[:, m.classes_] = m.predict_proba(xt)
    np.testing.assert_allclose(p, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(st.predict_proba(xt[0]), want[0], rtol=1e-9, atol=1e-12)
    if absent is not None:
        assert np.all(p[:, absent] == 0.0)
    again = parse_stack(json.loads(json.dumps(st.to_dict())), "round trip")
    np.testing.assert_array_equal(again.predict_proba(xt), p)


@pytest.mark.parametrize("edit, msg", [
    (lambda d: d["nodes"]["left"].__setitem__(0, 0), "children"),
    (lambda d: d["nodes"]["feature"].__setitem__(0, 6), "feature outside"),
    (lambda d: d["nodes"]["threshold"].__setitem__(0, float("inf")), "finite"),
    (lambda d: d.update(tree_classes=[0, 1, 1, 3]), "tree_classes"),
    (lambda d: d.update(roots=[10 ** 9]), "roots"),
    (lambda d: d.update(baseline=[0.0]), "baseline"),
])
def test_malformed_tree_stacks_are_refused(edit, msg):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 6))
    _, d = _gbt_doc(x, np.argmax(x[:, :4], axis=1), CLASSES, [f"f{i}" for i in range(6)])
    parse_stack(d, "ok")
    edit(d)
    with pytest.raises(BundleError, match=msg):
        parse_stack(d, "stack")


def test_the_fit_takes_trees_where_the_classes_are_an_interaction_and_logistic_where_linear():
    """`fit_stack` chooses its form by cross-validation alone: irregular RR *with* P waves is
    not AF, which no linear map draws; a linear truth keeps the logistic form."""
    from edge_ecg.model.stacking import fit_stack

    rng = np.random.default_rng(7)
    n = 800
    x = rng.normal(size=(n, 4))
    groups = np.arange(n) % 4 + 1
    irregular, p_waves = x[:, 0] > 0, x[:, 1] > 0
    y = np.where(irregular & ~p_waves, 1, np.where(irregular, 2, 0))     # N, A, O
    classes = ("normal_sinus", "af_or_flutter", "other_rhythm")
    doc = fit_stack(x, y, groups, classes, [f"f{i}" for i in range(4)], "arrhythmia")
    assert doc["kind"] == "gbt" and doc["info"]["form"] == "gbt"
    assert doc["info"]["cv"]["challenge_f1"] > 0.9
    lin = [t["challenge_f1"] for t in doc["info"]["cv_trials"] if t["form"] == "logistic"]
    assert max(lin) < doc["info"]["cv"]["challenge_f1"]
    st = parse_stack(json.loads(json.dumps(doc)), "fitted")
    assert st.predict_proba(np.array([2.0, -2.0, 0, 0])).argmax() == 1       # AF
    assert st.predict_proba(np.array([2.0, 2.0, 0, 0])).argmax() == 2        # other
    y_lin = np.argmax(x[:, :3] + 0.3 * rng.normal(size=(n, 3)), axis=1)
    doc = fit_stack(x, y_lin, groups, classes, [f"f{i}" for i in range(4)], "arrhythmia",
                    gbt=())
    assert doc["kind"] == "logistic" and doc["info"]["form"] == "logistic"


def _valid_doc(f=3, k=4):
    return {"format": "edge-ecg-recording-stack", "format_version": 1, "kind": "logistic",
            "task": "arrhythmia", "classes": [f"c{i}" for i in range(k)],
            "features": [f"f{i}" for i in range(f)], "mean": [0.0] * f, "scale": [1.0] * f,
            "coef": [[0.1] * f for _ in range(k)], "intercept": [0.0] * k, "info": {}}


@pytest.mark.parametrize("edit, msg", [
    (lambda d: d.update(coef=[[0.1, 0.2]] * 4), "'coef'"),
    (lambda d: d["coef"][1].__setitem__(0, float("nan")), "finite"),
    (lambda d: d.update(scale=[1.0, 0.0, 1.0]), "positive"),
    (lambda d: d.update(intercept=[0.0] * 3), "'intercept'"),
    (lambda d: d.update(features=["f0", "f0", "f1"]), "distinct"),
    (lambda d: d.update(kind="tree"), "kind"),
    (lambda d: d.update(format="pickle"), "not an"),
])
def test_malformed_stack_files_are_refused(edit, msg):
    d = _valid_doc()
    parse_stack(d, "ok")
    edit(d)
    with pytest.raises(BundleError, match=msg):
        parse_stack(d, "stack")


def test_a_stack_fitted_on_other_features_is_refused():
    # the message names the difference (a stack fitted before a feature was added is the
    # usual case), not two lists of 30 names to compare by eye
    with pytest.raises(BundleError, match=r"also computes \['other'\].*fitted on \['f2'\]"):
        parse_stack(_valid_doc(), "stack", ("f0", "f1", "other"))
    with pytest.raises(BundleError, match="another order"):
        parse_stack(_valid_doc(), "stack", ("f2", "f1", "f0"))


def _beat(t, pr=160.0, qrs=90.0, cls="N"):
    return BeatEvent(index=int(t * 300), time_s=t, delay_ms=0.0,
                     waves={"pr_ms": pr, "qrs_ms": qrs}, beat_class=cls)


def _pred(start_s, end_s, probs):
    return PredictionEvent(index=int(end_s * 300), time_s=end_s, start=int(start_s * 300),
                           outputs={"arrhythmia": {"probs": dict(zip(CLASSES, probs))}},
                           experts={}, latency_ms=0.0, n_beats=0)


def test_history_reads_non_overlapping_windows_so_a_1s_hop_equals_a_10s_hop():
    beats = [_beat(0.8 * i) for i in range(1, 38)]
    rng = np.random.default_rng(1)
    p = {s: rng.dirichlet(np.ones(4)) for s in range(0, 21)}       # window start (s) -> probs
    hop1, hop10 = RhythmHistory(CLASSES), RhythmHistory(CLASSES)
    hop1.feed(beats + [_pred(s, s + 10, p[s]) for s in range(0, 21)])
    hop10.feed(beats + [_pred(s, s + 10, p[s]) for s in (0, 10, 20)])
    np.testing.assert_array_equal(hop1.features(), hop10.features())
    f = dict(zip(feature_names(CLASSES), hop1.features()))
    np.testing.assert_allclose(f["p_mean_af_or_flutter"], np.mean([p[s][1] for s in (0, 10, 20)]))
    assert f["p_max_too_noisy"] == max(p[s][3] for s in (0, 10, 20))
    assert f["hr_bpm"] == pytest.approx(75.0) and f["cv_rr"] < 1e-9
    assert f["log_n_windows"] == pytest.approx(np.log1p(3))


def test_rr_from_beats_sorted_in_time_whatever_order_their_events_leave():
    h = RhythmHistory(CLASSES)
    # the runtime emits a beat once its class is decided: not always in time order
    h.feed([_beat(t) for t in (1.0, 2.0, 4.0, 3.0, 5.0, 7.0, 6.0)])
    assert list(h.rr_ms()) == pytest.approx([1000.0] * 6)


def test_no_rr_across_a_gap_and_withheld_windows_counted():
    h = RhythmHistory(CLASSES)
    h.feed([_beat(1.0), _beat(2.0), GapEvent(index=700, time_s=2.3, length=900, cause="x"),
            _beat(6.0), _beat(7.0, pr=None, cls="V"),
            WithheldEvent(index=3000, time_s=10.0, start=0, reasons=["noise"]),
            _pred(1, 11, [0.1, 0.7, 0.1, 0.1])])
    assert list(h.rr_ms()) == pytest.approx([1000.0, 1000.0])       # not the 4-s gap
    f = dict(zip(feature_names(CLASSES), h.features()))
    assert f["withheld_frac"] == 0.5
    assert f["p_wave_frac"] == 0.75 and f["class_v_frac"] == 0.25
    # no window at all: the uninformative prior, not NaN
    e = dict(zip(feature_names(CLASSES), RhythmHistory(CLASSES).features()))
    assert e["p_mean_normal_sinus"] == 0.25 and e["log_n_windows"] == 0.0


def _write_stack(bundle, rng):
    names = feature_names(CLASSES)
    d = _valid_doc(len(names), 4)
    d.update(classes=list(CLASSES), features=list(names),
             coef=rng.normal(size=(4, len(names))).tolist())
    (bundle / RHYTHM_STACK).write_text(json.dumps(d))


def _rewrite_manifest(bundle):
    from dataclasses import asdict

    from edge_ecg.runtime.bundle import check_integrity, write_manifest

    m, _ = check_integrity(bundle, verify_hashes=False)
    write_manifest(bundle, {k: v for k, v in asdict(m).items() if k != "files"})


def test_the_stack_is_hashed_signed_and_a_changed_coefficient_is_refused(fixture_bundle,
                                                                         tmp_path):
    from edge_ecg.runtime.bundle import load_bundle, sign_bundle
    from edge_ecg.runtime.signing import TrustPolicy, generate_keypair, public_key_of

    b = shutil.copytree(fixture_bundle, tmp_path / "b")
    _write_stack(b, np.random.default_rng(0))
    _rewrite_manifest(b)
    key, pub, _ = generate_keypair(tmp_path / "keys", "lab")
    sign_bundle(b, key)
    trust = TrustPolicy((public_key_of(key),), source="test")
    m = load_bundle(b, trust=trust)
    assert RHYTHM_STACK in m.files
    dec = RhythmDecider.from_bundle(b, m)
    assert dec is not None and dec.stack.classes == CLASSES
    # two coefficients swapped after signing (the file's length kept, so it is its hash that
    # tells): the bundle check and the stack loader refuse it
    doc = json.loads((b / RHYTHM_STACK).read_text())
    doc["coef"][1][3], doc["coef"][1][4] = doc["coef"][1][4], doc["coef"][1][3]
    (b / RHYTHM_STACK).write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="rhythm_stack.json"):
        load_bundle(b, trust=trust)
    with pytest.raises(BundleError, match="sha256"):
        load_stack(b, m, RHYTHM_STACK, feature_names(CLASSES))
    # rehashed without the key: the manifest is unsigned, and a trusting deployment refuses it
    _rewrite_manifest(b)
    with pytest.raises(BundleError):
        load_bundle(b, trust=trust)


def _cached_features(fixture_bundle, tmp_path, seed: int, n: int = 240):
    """A copy of the fixture bundle and an `edge-ecg stack --cache` file of `n` recordings
    whose network columns carry their classes (the AF one with nrmssd), folds 1-4."""
    b = shutil.copytree(fixture_bundle, tmp_path / "b")
    names = feature_names(CLASSES)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = rng.normal(size=(n, len(names)))
    for c in range(1, 4):
        x[:, c] += 4.0 * (y == c)              # the probability column carries its class
    x[:, names.index("nrmssd")] += 3.0 * (y == 1)
    cache = tmp_path / "f.npz"
    np.savez(cache, x=x, y=y, groups=(np.arange(n) // 3) % 4 + 1, features=np.array(names))
    return b, cache, names, n


def test_stack_cli_fits_from_cached_features_writes_and_signs(fixture_bundle, tmp_path, capsys):
    from edge_ecg.cli import main
    from edge_ecg.runtime.bundle import load_bundle
    from edge_ecg.runtime.signing import TrustPolicy, generate_keypair, public_key_of

    b, cache, names, n = _cached_features(fixture_bundle, tmp_path, 5)
    key, _, _ = generate_keypair(tmp_path / "keys", "lab")
    rc = main(["stack", "--bundle", str(b), "--cache", str(cache), "--sign-key", str(key),
               "--allow-unsigned"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "leave-one-fold-out CV" in out and "signed by lab" in out
    m = load_bundle(b, trust=TrustPolicy((public_key_of(key),), source="test"))
    st = RhythmDecider.from_bundle(b, m).stack
    assert st.info["folds"] == [1, 2, 3, 4] and st.info["rows"] == n
    assert st.info["cv"]["challenge_f1"] > 0.8          # separable by construction
    assert m.metrics["rhythm_stack"]["cv"]["challenge_f1"] == st.info["cv"]["challenge_f1"]
    # the stack's AF call follows the AF evidence, whichever form won
    row = np.zeros(len(names))
    assert st.predict_proba(row).argmax() != 1
    row[1], row[names.index("nrmssd")] = 4.0, 3.0
    assert st.predict_proba(row).argmax() == 1
    assert st.info["form"] in ("logistic", "gbt")


def test_stack_cli_refuses_fold0(fixture_bundle):
    from edge_ecg.cli import main

    rc = main(["stack", "--bundle", str(fixture_bundle), "--allow-unsigned",
               "--data", "cinc2017:/nonexistent?folds=0,1", "--dry-run"])
    assert rc == 1


@pytest.mark.needs_data("cinc2017")
def test_a_1s_hop_stream_and_the_10s_replay_give_the_same_rr_and_network_features(shared_data):
    """What `edge-ecg stream` (1-s hop) and `evaluate`/`stack` (one window per hop) compute on
    a real AF recording: the same windows' probabilities and the same RR; only the per-beat
    classes may differ (each beat is classified by a window of the hop's grid)."""
    import warnings

    from edge_ecg.data.records import read_record
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.rhythm_history import stream_record_history
    from edge_ecg.signal.rhythm_features import RR_FEATURES

    if not (DEFAULT_BUNDLE / "manifest.json").is_file():
        pytest.skip("the bundled default bundle is not exported yet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        be = open_backend(DEFAULT_BUNDLE, None, threads=1)
    try:
        classes = tuple(next(t for t in be.manifest.tasks if t["name"] == "arrhythmia")["labels"])
        rec = read_record(shared_data / "cinc2017" / "A00004")          # labelled A
        args = (be, rec.adc, rec.gain, rec.baseline, rec.fs_hz, ("I",), classes)
        live = stream_record_history(*args, hop_s=1.0, chunk_s=0.5)
        replay = stream_record_history(*args)
    finally:
        be.close()
    names = feature_names(classes)
    same = [n for n in names if not n.startswith("class_")]
    a, b = dict(zip(names, live.features())), dict(zip(names, replay.features()))
    assert len(live.probs) == 3 and live.n_predictions == 21 and replay.n_predictions == 3
    for n in same:
        assert a[n] == pytest.approx(b[n], abs=1e-9), n
    assert set(RR_FEATURES) <= set(same)
    assert a["nrmssd"] > 0.15 and a["irregular_frac"] > 0.4       # irregularly irregular


def test_stack_cli_form_keeps_to_the_logistic_regression(fixture_bundle, tmp_path, capsys):
    """`--form logistic`: only the readable form is tried, and the bundle gets it."""
    from edge_ecg.cli import main

    b, cache, _, _ = _cached_features(fixture_bundle, tmp_path, 9)
    assert main(["stack", "--bundle", str(b), "--cache", str(cache), "--form", "logistic",
                 "--allow-unsigned"]) == 0
    assert "logistic, C=" in capsys.readouterr().out
    doc = json.loads((b / RHYTHM_STACK).read_text())
    assert doc["kind"] == "logistic"
    assert {t["form"] for t in doc["info"]["cv_trials"]} == {"logistic"}
    assert main(["stack", "--bundle", str(b), "--cache", str(cache), "--form", "gbt",
                 "--allow-unsigned", "--dry-run"]) == 0
    assert "gradient-boosted trees" in capsys.readouterr().out


def test_the_class_shares_read_the_stacks_own_call_not_a_continued_run():
    """A beat the run continuation called V (run_continued_from) counts as the class the
    beat stack gave it: the rhythm stack was fitted on those shares."""
    names = feature_names(CLASSES)
    h, plain = RhythmHistory(CLASSES), RhythmHistory(CLASSES)
    for k, (cls, was) in enumerate([("V", None)] * 3 + [("V", "N")] * 2 + [("N", None)] * 5):
        t = 0.6 * (k + 1)
        h.feed([BeatEvent(index=int(t * 250), time_s=t, delay_ms=0.0, beat_class=cls,
                          run_continued_from=was)])
        plain.feed([BeatEvent(index=int(t * 250), time_s=t, delay_ms=0.0,
                              beat_class=was or cls)])
    row = h.features()
    assert row[names.index("class_v_frac")] == pytest.approx(0.3)
    assert row[names.index("class_n_frac")] == pytest.approx(0.7)
    assert np.array_equal(row, plain.features())
