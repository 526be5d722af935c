"""The per-beat stack: numpy trees == sklearn, the fusion, untrusted files refused, the weight
chosen on validation patients, and every backend on a bundle with a stack fusing its classes
(edge_ecg.runtime.beat_stack, edge_ecg.model.beat_stacking)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace

import numpy as np
import pytest

from edge_ecg.errors import BundleError
from edge_ecg.model.beat_stacking import document, fit_beat_stack, fit_trees
from edge_ecg.runtime.beat_stack import (
    BEAT_STACK,
    FEATURES,
    load_beat_stack,
    parse_beat_stack,
    stack_features,
)
from edge_ecg.runtime.bundle import DEFAULT_BUNDLE

LABELS = ("N", "S", "V", "F", "Q")
pytest.importorskip("sklearn")


def _data(rng, n=3000):
    """Rows whose class follows two features (V: wide and unlike the template; S: premature)."""
    x = rng.normal(size=(n, len(FEATURES)))
    y = np.zeros(n, np.int64)
    y[x[:, FEATURES.index("width_ratio")] > 1.0] = 2
    y[x[:, FEATURES.index("pre_mean")] < -1.2] = 1
    return x, y


@pytest.fixture(scope="module")
def fitted():
    x, y = _data(np.random.default_rng(0))
    return fit_trees(x, y), x, y


def test_numpy_trees_equal_sklearn_predict_proba(fitted):
    m, _, _ = fitted
    st = parse_beat_stack(json.loads(json.dumps(document(m, "beat", LABELS, FEATURES, 1.0, {}))),
                          "test")
    xt, _ = _data(np.random.default_rng(1), 500)
    ours = st.tree_proba(xt)[:, list(st.tree_classes)]
    np.testing.assert_allclose(ours, m.predict_proba(xt), atol=1e-9)
    # the classes the trees never saw (F, Q) get no probability of their own
    assert st.tree_classes == (0, 1, 2)
    assert np.all(st.tree_proba(xt)[:, 3:] == 0.0)


def test_fusion_keeps_the_network_at_w0_follows_the_trees_at_w1_and_skips_unknown_slots(fitted):
    m, _, _ = fitted
    rng = np.random.default_rng(2)
    b, k = 2, 6
    beat_rr = rng.uniform(300, 1200, size=(b, k, 3)).astype(np.float32)
    beat_ctx = rng.normal(size=(b, k, 14)).astype(np.float32)
    beat_ctx[..., 0] = 1.0
    beat_ctx[1, 4:, 0] = 0.0                      # two empty slots
    p = rng.dirichlet(np.ones(5), size=(b, k)).astype(np.float32)
    doc = document(m, "beat", LABELS, FEATURES, 0.0, {})
    assert np.array_equal(parse_beat_stack(doc, "t").fuse(p, beat_rr, beat_ctx), p)
    doc["weight"] = 1.0
    st = parse_beat_stack(doc, "t")
    out = st.fuse(p, beat_rr, beat_ctx)
    known = beat_ctx[..., 0] > 0
    x = stack_features(beat_rr, beat_ctx)[known]
    assert np.array_equal(out[known].argmax(-1), st.tree_proba(x).argmax(-1))
    assert np.array_equal(out[~known], p[~known])
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    doc["weight"] = 0.5
    half = parse_beat_stack(doc, "t").fuse(p, beat_rr, beat_ctx)
    g = np.sqrt(np.maximum(p[known], 1e-4) * np.maximum(st.tree_proba(x), 1e-4))
    np.testing.assert_allclose(half[known], g / g.sum(-1, keepdims=True), atol=1e-5)


def test_stack_features_are_the_models_inputs():
    rr = np.array([[800.0, 1200.0, 1000.0], [0.0, 900.0, 0.0]])
    ctx = np.arange(28, dtype=np.float64).reshape(2, 14)
    f = stack_features(rr, ctx)
    assert f.shape == (2, len(FEATURES))
    assert f[0, :5].tolist() == [800.0, 1200.0, 1000.0, 0.8, 1.2]
    assert f[1, 3:5].tolist() == [0.0, 0.0]            # no mean RR: no ratios
    assert f[0, 5:].tolist() == ctx[0, 1:].tolist()     # `known` left out


def _broken(edit):
    def go(d):
        edit(d)
        return d
    return go


@pytest.mark.parametrize("edit,msg", [
    (_broken(lambda d: d.update(features=d["features"][::-1])), "fitted on features"),
    (_broken(lambda d: d["nodes"]["left"].__setitem__(0, 0)), "children"),
    (_broken(lambda d: d["nodes"]["right"].__setitem__(0, 10 ** 9)), "children"),
    (_broken(lambda d: d["nodes"]["feature"].__setitem__(0, 99)), "feature outside"),
    (_broken(lambda d: d["nodes"]["value"].__setitem__(1, float("nan"))), "finite"),
    (_broken(lambda d: d["nodes"].update(feature=[0] * (1 << 19))), "at most"),
    (_broken(lambda d: d.update(weight=1.5)), "weight"),
    (_broken(lambda d: d.update(roots=[10 ** 9])), "roots"),
    (_broken(lambda d: d.update(tree_classes=[0, 0, 2])), "tree_classes"),
    (_broken(lambda d: d.update(format_version=9)), "refit it"),
])
def test_malformed_stack_files_are_refused(fitted, edit, msg):
    m, _, _ = fitted
    doc = json.loads(json.dumps(document(m, "beat", LABELS, FEATURES, 0.5, {})))
    with pytest.raises(BundleError, match=msg):
        parse_beat_stack(edit(doc), "test")


@dataclass(frozen=True)
class Rows:
    record: str
    subject: str
    x: np.ndarray
    y: np.ndarray
    p_net: np.ndarray


def _rows(rng, subject, net_good):
    x, y = _data(rng, 1500)
    p = np.full((y.size, 5), 0.02)
    truth = y if net_good else rng.integers(0, 3, y.size)     # a useless network
    p[np.arange(y.size), truth] = 0.92
    return Rows(subject, subject, x, y, p.astype(np.float32))


def _fuse(doc, p, x):
    return parse_beat_stack(doc, "candidate").fuse_features(p, x)


@pytest.mark.parametrize("net_good,expect", [(False, lambda w: w >= 0.75),
                                             (True, lambda w: w <= 0.5)])
def test_the_weight_is_chosen_on_the_validation_subjects(net_good, expect):
    rng = np.random.default_rng(3)
    rows = [_rows(rng, f"mitdb-{i}", net_good) for i in range(4)]
    doc = fit_beat_stack(rows, {"mitdb-3"}, "beat", LABELS, FEATURES, _fuse, log=lambda m: None)
    st = parse_beat_stack(json.loads(json.dumps(doc)), "fitted")
    assert expect(st.weight), st.info["weight_choice"]
    assert st.info["validation_records"] == ["mitdb-3"]
    with pytest.raises(ValueError, match="validation subjects"):
        fit_beat_stack(rows, {"svdb-800"}, "beat", LABELS, FEATURES, _fuse)


@pytest.mark.parametrize("oof_good,expect", [(False, lambda w: w >= 0.75),
                                             (True, lambda w: w <= 0.5)])
def test_out_of_fold_networks_choose_the_weight(oof_good, expect):
    # the shipped network looks perfect on its own training rows; only the out-of-fold
    # networks say how it does on patients it never saw, and they decide
    rng = np.random.default_rng(5)
    rows = [_rows(rng, f"mitdb-{i}", True) for i in range(6)]
    fold = {f"mitdb-{i}": 1 + i % 3 for i in range(6)}
    oof = {k: [replace(_rows(rng, r.subject, oof_good), x=r.x, y=r.y) for r in rows
               if fold[r.subject] == k] for k in (1, 2, 3)}
    logs = []
    doc = fit_beat_stack(rows, None, "beat", LABELS, FEATURES, _fuse, log=logs.append,
                         oof=oof, fold_of=fold.__getitem__)
    st = parse_beat_stack(json.loads(json.dumps(doc)), "fitted")
    assert expect(st.weight), st.info["weight_choice"]
    assert st.info["chosen_on"].startswith("out of fold: folds 1, 2, 3")
    assert st.info["validation_records"] == sorted(r.record for r in rows)
    assert any("fold 2: 2 record(s) through its own network" in m for m in logs)
    # a fold's rows must be that fold's patients
    bad = {1: oof[1] + oof[2][:1], 2: oof[2], 3: oof[3]}
    with pytest.raises(ValueError, match="records of other folds"):
        fit_beat_stack(rows, None, "beat", LABELS, FEATURES, _fuse, log=logs.append,
                       oof=bad, fold_of=fold.__getitem__)
    with pytest.raises(ValueError, match="fold_of"):
        fit_beat_stack(rows, None, "beat", LABELS, FEATURES, _fuse, oof=oof)


def test_stacked_trees_read_the_networks_log_probabilities_as_sklearn_does(fitted):
    from edge_ecg.model.beat_stacking import with_log_p
    from edge_ecg.runtime.beat_stack import stacked_features

    x, y = _data(np.random.default_rng(6), 2000)
    p = np.random.default_rng(7).dirichlet(np.ones(5), size=y.size).astype(np.float32)
    m = fit_trees(with_log_p(x, p), y)
    doc = json.loads(json.dumps(document(m, "beat", LABELS, FEATURES, 0.3, {}, stacked=True)))
    assert doc["kind"] == "gbt-stacked" and doc["weight"] == 1.0
    assert doc["features"] == list(stacked_features(LABELS))
    st = parse_beat_stack(doc, "test")
    out = st.fuse_features(p[:300], x[:300])
    want = np.maximum(m.predict_proba(with_log_p(x[:300], p[:300])), 1e-4)
    full = np.zeros((300, 5))
    full[:, :3] = want
    full[:, 3:] = 1e-4                           # classes the trees never saw keep the floor
    np.testing.assert_allclose(out, full / full.sum(1, keepdims=True), atol=1e-6)
    for edit, msg in ((lambda d: d.update(features=list(FEATURES)), "fitted on features"),
                      (lambda d: d.update(weight=0.5), "must be 1"),
                      (lambda d: d.update(kind="mlp"), "not one of")):
        bad = json.loads(json.dumps(doc))
        edit(bad)
        with pytest.raises(BundleError, match=msg):
            parse_beat_stack(bad, "test")


def test_out_of_fold_rows_choose_the_stacked_form_where_the_network_is_right_on_some_beats():
    """A network right on the beats of one context (feature 0 > 0) and confidently wrong on
    the rest, where the context tells the class (noisily): no single share fits both, the
    stacked trees learn which to trust where."""
    rng = np.random.default_rng(8)
    j = FEATURES.index("width_ratio")

    def rows(subject):
        x = rng.normal(size=(600, len(FEATURES)))
        y = rng.integers(0, 3, 600)
        trusted = x[:, 0] > 0
        x[~trusted, j] = 3.0 * y[~trusted] + rng.normal(scale=1.2, size=(~trusted).sum())
        truth = np.where(trusted, y, rng.integers(0, 3, y.size))
        p = np.full((y.size, 5), 0.0005)
        p[np.arange(y.size), truth] = 0.998
        return Rows(subject, subject, x, y, p.astype(np.float32))

    rs = [rows(f"mitdb-{i}") for i in range(6)]
    fold = {f"mitdb-{i}": 1 + i % 3 for i in range(6)}
    oof = {k: [r for r in rs if fold[r.subject] == k] for k in (1, 2, 3)}
    doc = fit_beat_stack(rs, None, "beat", LABELS, FEATURES, _fuse, log=lambda m: None,
                         oof=oof, fold_of=fold.__getitem__)
    st = parse_beat_stack(json.loads(json.dumps(doc)), "fitted")
    table = st.info["weight_choice"]
    assert st.kind == "gbt-stacked" and st.info["chosen"] == "stacked", table
    assert table["stacked"]["objective"] > max(table[str(w)]["objective"]
                                               for w in (0.0, 0.25, 0.5, 0.75, 1.0)) + 0.03


def test_oof_options_are_checked(tmp_path):
    from edge_ecg.cli.stack_beats import parse_oof

    (tmp_path / "b1").mkdir()
    assert parse_oof([f"1={tmp_path / 'b1'}"]) == {1: tmp_path / "b1"}
    for items, msg in ([[f"0={tmp_path / 'b1'}"], "fold 0"],
                       [["1"], "FOLD=BUNDLE"], [["x=/tmp"], "FOLD=BUNDLE"],
                       [[f"1={tmp_path / 'nope'}"], "not a bundle"],
                       [[f"1={tmp_path / 'b1'}", f"1={tmp_path / 'b1'}"], "twice"]):
        with pytest.raises(ValueError, match=msg):
            parse_oof(items)


def _rewrite_manifest(bundle, manifest):
    from edge_ecg.runtime.bundle import write_manifest

    write_manifest(bundle, {k: v for k, v in asdict(manifest).items() if k != "files"})


@pytest.mark.skipif(not (DEFAULT_BUNDLE / "manifest.json").is_file(), reason="no bundle")
def test_a_bundle_with_a_stack_fuses_every_backends_beat_classes(fitted, tmp_path):
    from edge_ecg.runtime.backends import BeatStackedBackend, open_backend
    from edge_ecg.runtime.bundle import load_bundle

    m, _, _ = fitted
    b = shutil.copytree(DEFAULT_BUNDLE, tmp_path / "b")
    manifest = load_bundle(b)
    task = next(t for t in manifest.tasks if t["kind"] == "beat")
    doc = document(m, task["name"], task["labels"], FEATURES, 1.0, {})
    (b / BEAT_STACK).write_text(json.dumps(doc))
    _rewrite_manifest(b, manifest)
    fused = open_backend(b)
    plain = open_backend(b, beat_stack=False)
    assert isinstance(fused, BeatStackedBackend) and not isinstance(plain, BeatStackedBackend)
    from edge_ecg.signal.contract import SignalContract

    c = SignalContract.from_dict(manifest.signal)
    shapes = {"x": (1, c.n_leads, c.window_len), "lead_mask": (1, c.n_leads),
              "beats": (1, c.max_beats, c.n_leads, c.beat_len), "beat_mask": (1, c.max_beats),
              "rr_ms": (1, c.max_beats), "rr_mask": (1, c.max_beats),
              "period": (1, len(c.period_features)), "beat_rr": (1, c.max_beats, 3),
              "valid": (1, c.n_leads, c.n_valid_seg), "beat_ctx": (1, c.max_beats, 14)}
    rng = np.random.default_rng(4)
    inputs = {n: rng.normal(size=shapes[n]).astype(np.float32) for n in manifest.inputs}
    inputs["beat_ctx"][..., 0] = 1.0
    inputs["beat_rr"] = np.abs(inputs["beat_rr"]) * 800.0
    a, p = fused.run(inputs)[task["output"]], plain.run(inputs)[task["output"]]
    st = load_beat_stack(b, load_bundle(b))
    np.testing.assert_allclose(a, st.fuse(p, inputs["beat_rr"], inputs["beat_ctx"]), atol=1e-6)
    assert fused.run(inputs)["age"] == pytest.approx(plain.run(inputs)["age"])
    # a changed node after the manifest was written: refused, with the reason
    doc["nodes"]["threshold"][0] += 1.0
    (b / BEAT_STACK).write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="beat_stack.json"):
        open_backend(b)


@pytest.mark.skipif(not (DEFAULT_BUNDLE / "manifest.json").is_file(), reason="no bundle")
def test_stack_cli_fits_on_real_beats_writes_signs_and_the_runtime_uses_it(tmp_path, capsys,
                                                                          monkeypatch):
    """`edge-ecg stack --beats` end to end on the packaged MIT-BIH 223 excerpt (two copies:
    one the 'training' patient, one the 'validation' patient)."""
    from edge_ecg.cli import main
    from edge_ecg.runtime.backends import BeatStackedBackend, open_backend
    from edge_ecg.runtime.signing import TrustPolicy, generate_keypair, public_key_of

    demo = DEFAULT_BUNDLE.parent / "demo"
    data = tmp_path / "mitdb"
    data.mkdir()
    for name in ("901", "902"):
        for ext in ("hea", "dat", "atr"):
            txt = (demo / f"mitdb_223_excerpt.{ext}").read_bytes()
            if ext == "hea":
                txt = txt.replace(b"mitdb_223_excerpt", name.encode())
            (data / f"{name}.{ext}").write_bytes(txt)
    (tmp_path / "metrics.json").write_text(json.dumps({"val_subjects": ["mitdb-902"]}))
    b = shutil.copytree(DEFAULT_BUNDLE, tmp_path / "b")
    spec = f"mitdb:{data / '901'},{data / '902'}"
    assert main(["stack", "--beats", "--bundle", str(b), "--data", spec,
                 "--allow-fold0"]) == 2                       # no --val-from: refused
    assert main(["stack", "--beats", "--bundle", str(b), "--data", spec,
                 "--val-from", str(tmp_path)]) == 1           # fold 0 not named out: refused
    key, _, _ = generate_keypair(tmp_path / "keys", "lab")
    assert main(["stack", "--beats", "--bundle", str(b), "--data", spec, "--allow-fold0",
                 "--val-from", str(tmp_path), "--sign-key", str(key)]) == 0
    err = capsys.readouterr().err
    assert "choosing w on 1 validation record(s) (mitdb-902)" in err
    trust = TrustPolicy((public_key_of(key),), source="test")
    from edge_ecg.runtime.bundle import load_bundle

    m = load_bundle(b, trust=trust)
    st = load_beat_stack(b, m)
    assert st.info["validation_records"] == ["mitdb-902"] and st.info["beats"] > 500
    assert m.metrics["beat_stack"]["weight"] == st.weight
    # 223's V beats are plentiful: the fitted trees find them on the other copy
    from edge_ecg.runtime.beat_stack_rows import record_rows

    be = open_backend(b, beat_stack=False)
    rows = record_rows(data / "901", "mitdb", be)
    v = rows.y == LABELS.index("V")
    assert v.sum() > 50
    assert (st.tree_proba(rows.x).argmax(1)[v] == LABELS.index("V")).mean() > 0.8
    assert isinstance(open_backend(b), BeatStackedBackend)
    # out of fold: 901 is in fold 3, 902 in fold 1; each goes through "its" network (here the
    # bundled one for both: the plumbing, not the choice, is under test)
    oof = ["--oof", f"3={DEFAULT_BUNDLE}", "--oof", f"1={DEFAULT_BUNDLE}"]
    assert main(["stack", "--beats", "--bundle", str(b), "--data", spec, "--allow-fold0",
                 "--oof", f"2={DEFAULT_BUNDLE}", "--dry-run"]) == 1   # no record in fold 2
    # an out-of-fold bundle is verified as the fitted one is: unsigned, it is refused
    unsigned = shutil.copytree(DEFAULT_BUNDLE, tmp_path / "unsigned")
    (unsigned / "manifest.sig").unlink()
    capsys.readouterr()
    with monkeypatch.context() as mp:             # the suite allows unsigned bundles: not here
        mp.delenv("EDGE_ECG_ALLOW_UNSIGNED")
        assert main(["stack", "--beats", "--bundle", str(b), "--data", spec, "--allow-fold0",
                     "--oof", f"3={unsigned}", "--trusted-keys", str(tmp_path / "keys"),
                     "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "--oof: " in err and str(unsigned) in err and "sign" in err
    cache = tmp_path / "rows.npz"
    assert main(["stack", "--beats", "--bundle", str(b), "--data", spec, "--allow-fold0",
                 *oof, "--sign-key", str(key), "--cache", str(cache)]) == 0
    err = capsys.readouterr().err
    assert "and 2 through the out-of-fold networks" in err
    assert "fold 1: 1 record(s) through its own network" in err
    assert "choosing w out of fold on 2 record(s)" in err
    st = load_beat_stack(b, load_bundle(b, trust=trust))
    assert st.info["chosen_on"].startswith("out of fold: folds 1, 3")
    from edge_ecg.cli.stack_beats import _network_of

    net = _network_of(DEFAULT_BUNDLE, None, None)
    assert st.info["oof_networks"] == {"1": net, "3": net} and net.count(":") == 2
    # refit from the cached rows: the same stack, no record replayed
    assert main(["stack", "--beats", "--bundle", str(b), "--data", spec, "--allow-fold0",
                 *oof, "--sign-key", str(key), "--cache", str(cache)]) == 0
    assert "rows of 4 record runs from" in capsys.readouterr().err
    assert load_beat_stack(b, load_bundle(b, trust=trust)).to_dict() == st.to_dict()
    # rows of other records (or networks) are refused, not reused
    assert main(["stack", "--beats", "--bundle", str(b), "--data", f"mitdb:{data / '901'}",
                 "--allow-fold0", "--oof", f"3={DEFAULT_BUNDLE}", "--cache", str(cache),
                 "--dry-run"]) == 1
    assert "holds rows of other networks or records" in capsys.readouterr().err
    # synthetic runs (--runs, off by default): made from each record's own V and S beats,
    # joined to the trees' fits, each fold's scored by trees that never saw them; rows cached
    # without them are not reused for them
    assert main(["stack", "--beats", "--bundle", str(b), "--data", spec, "--allow-fold0",
                 *oof, "--runs", "2", "--cache", str(cache), "--dry-run"]) == 1
    capsys.readouterr()
    assert main(["stack", "--beats", "--bundle", str(b), "--data", spec, "--allow-fold0",
                 *oof, "--runs", "2", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "synthetic run rows from 2 record(s)" in err
    assert "fold 1: the trees call" in err and "held-out synthetic run beats V" in err
