"""The patient's own beats veto V calls after a learning period
(edge_ecg/runtime/patient_adaptation.py): the numpy LDA is scikit-learn's, the veto only ever
lowers V and only after the learning period, a new context epoch learns again, a bundle's
setting is checked, and the bench's out-of-fold figures come from the same arithmetic."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.errors import BundleError
from edge_ecg.runtime.patient_adaptation import (AdaptationConfig, PatientAdaptation,
                                                 lda_fit)

REPO = Path(__file__).resolve().parents[2]
LABELS = ["N", "S", "V", "F", "Q"]
FS = 250.0


@pytest.mark.parametrize("p", [1, 3, 18])
def test_the_lda_is_scikit_learns_shrinkage_lda(p):
    lda = pytest.importorskip("sklearn.discriminant_analysis")
    rng = np.random.default_rng(p)
    x = rng.normal(size=(300, p))
    y = rng.integers(0, 3, 300)
    x[y == 1] += 1.0
    x[:, 0] *= 5.0
    if p > 2:
        x[:, 2] = 0.0                    # a constant column (the context's `learned`)
    want = lda.LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(x, y)
    cls, coef, icpt = lda_fit(x, y)
    d = x @ coef.T + icpt
    q = np.exp(d - d.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    assert np.array_equal(cls, want.classes_)
    assert np.abs(q - want.predict_proba(x)).max() < 1e-9


def _beats(seed=0, n=600, rate_s=1.0):
    """Beats `rate_s` apart: every 5th ventricular (feature 0 high), the stack sure of all in
    the learning period; after it, a third of the normal beats called V by a hair (the false
    V a monitor learns away) and the ventricular ones still V."""
    rng = np.random.default_rng(seed)
    v = np.zeros(n, bool)
    v[::5] = True
    x = rng.normal(0, 0.3, (n, 18))
    x[v, 0] += 3.0
    r = (np.arange(n) * rate_s * FS).astype(np.int64)
    p = np.full((n, 5), 0.001)
    p[~v, 0], p[v, 2] = 0.996, 0.996
    late = r >= 300 * FS
    odd = late & ~v & (np.arange(n) % 3 == 0)
    p[odd, 0], p[odd, 2] = 0.45, 0.546
    return r, x, p / p.sum(1, keepdims=True), v, late, odd


def _run(ad, r, x, p, epoch=0):
    out = []
    for i in range(len(r)):
        ad.observe(epoch, int(r[i]), x[i], p[i])
        out.append(ad.adjust(r[i:i + 1], x[i:i + 1], p[i:i + 1])[0])
    return np.array(out)


def test_after_the_learning_period_the_patients_normal_shape_vetoes_v():
    r, x, p, v, late, odd = _beats()
    ad = PatientAdaptation(AdaptationConfig(), FS, 18, LABELS)
    out = _run(ad, r, x, p)
    assert ad.coef is not None
    assert (p[odd].argmax(1) == 2).all() and (out[odd].argmax(1) == 0).all()   # vetoed
    assert (out[v].argmax(1) == 2).all()                    # true V kept
    assert np.array_equal(out[~late], p[~late])             # the learning period untouched
    assert (out[:, 2] <= p[:, 2] + 1e-7).all()              # V only ever lowered
    assert np.allclose(out.sum(1), 1.0)


def test_a_new_context_epoch_learns_again_and_without_n_and_v_nothing_changes():
    r, x, p, v, late, odd = _beats()
    ad = PatientAdaptation(AdaptationConfig(), FS, 18, LABELS)
    _run(ad, r, x, p)
    assert ad.coef is not None
    # a relearn (epoch 1) at the last beat: its own learning period, nothing fitted yet
    ad.observe(1, int(r[-1]), x[-1], p[-1])
    assert ad.coef is None and ad.start == r[-1] and ad.n == 1
    # a patient with no confident V in the learning period: never adjusted
    q = p.copy()
    q[v & ~late, 2], q[v & ~late, 0] = 0.6, 0.396
    ad2 = PatientAdaptation(AdaptationConfig(), FS, 18, LABELS)
    assert np.array_equal(_run(ad2, r, x, q), q) and ad2.settled and ad2.coef is None


def test_a_bundles_setting_is_checked():
    assert AdaptationConfig.parse({}, "t") == AdaptationConfig()
    assert AdaptationConfig.parse(AdaptationConfig(beta=1.0).to_dict(), "t").beta == 1.0
    for bad, why in [({"tau": 2}, "tau = 2"), ({"beta": float("nan")}, "beta"),
                     ({"min_beats": 2.5}, "min_beats"), ({"learn_s": True}, "learn_s"),
                     ({"evil": 1}, "unknown"), ([1], "must be an object")]:
        with pytest.raises(BundleError, match=why):
            AdaptationConfig.parse(bad, "t")


def test_the_bench_and_the_runtime_make_the_same_calls():
    """bench/patient_adapt.py's `adapt` (--v-only --veto), whose out-of-fold figures chose the
    setting, and the runtime's class give the same classes on the same beats."""
    sys.path.insert(0, str(REPO / "bench"))
    import patient_adapt

    r, x, p, v, late, odd = _beats(seed=3)
    cfg = AdaptationConfig()
    bench = patient_adapt.adapt(x, np.log(p), r / FS, cfg.tau, cfg.beta, patient_adapt.SHIPPED)
    run = _run(PatientAdaptation(cfg, FS, 18, LABELS), r, x, p)
    assert np.array_equal(bench[late].argmax(1), run[late].argmax(1))
    assert (bench[odd].argmax(1) == 0).all()


@pytest.fixture(scope="module")
def adapted_backend():
    """The bundled model with its beat stack's patient adaptation on (whatever the bundle
    ships), the learning period cut to 60 s and 10 beats a class, so a short record passes it."""
    from dataclasses import replace

    from edge_ecg.runtime.backends import open_backend

    b = open_backend(REPO / "edge_ecg" / "assets" / "default_bundle")
    b.stack = replace(b.stack, adaptation=AdaptationConfig(learn_s=60.0, min_beats=10))
    yield b
    b.close()


def _classes(backend, adc, leads, rng) -> tuple:
    """The beat classes of `adc` fed in random chunks, and the processor."""
    from edge_ecg.runtime.replay import SYNTH_GAIN
    from edge_ecg.runtime.stream_processor import StreamProcessor
    from edge_ecg.signal.chunk import Chunk

    proc, out, pos = StreamProcessor(backend), [], 0
    while pos < len(adc):
        n = int(rng.integers(1, 900))
        c = Chunk(index=pos, seq=0, device_time_us=0, samples=adc[pos:pos + n],
                  gain=np.full(len(leads), SYNTH_GAIN, np.float32),
                  baseline=np.zeros(len(leads), np.float32), leads=leads, fs_hz=500.0)
        out += [(e.index, e.beat_class) for e in proc.feed(c)
                if getattr(e, "beat_class", None) is not None]
        pos += n
    return out, proc


def test_the_stream_adapts_and_any_chunking_gives_the_same_classes(adapted_backend):
    from edge_ecg.data.synth import synthesize_schedule
    from edge_ecg.runtime.replay import quantise

    rec = synthesize_schedule([("premature_ventricular_contractions", 150.0)], seed=3)
    adc = quantise(rec.signal)
    a, p1 = _classes(adapted_backend, adc, rec.leads, np.random.default_rng(0))
    ad = p1.adaptation
    assert ad is not None and ad.settled and ad.coef is not None      # it learned the patient
    assert sum(1 for _, c in a if c == "V") > 20
    b, p2 = _classes(adapted_backend, adc, rec.leads, np.random.default_rng(1))
    assert b == a
    assert np.array_equal(p2.adaptation.coef, ad.coef)


def test_a_ward_snapshot_after_the_learning_period_resumes_the_same_classes(adapted_backend):
    """The adaptation's state is plain arrays: a processor restored from a ward snapshot
    taken after the fit gives the classes the uninterrupted one gives."""
    from edge_ecg.data.synth import synthesize_schedule
    from edge_ecg.runtime.replay import SYNTH_GAIN, quantise
    from edge_ecg.runtime.stream_processor import StreamProcessor
    from edge_ecg.signal.chunk import Chunk
    from edge_ecg.ward import snapshot

    rec = synthesize_schedule([("premature_ventricular_contractions", 150.0)], seed=3)
    adc, leads = quantise(rec.signal), rec.leads
    chunks = [Chunk(index=i, seq=0, device_time_us=0, samples=adc[i:i + 250],
                    gain=np.full(len(leads), SYNTH_GAIN, np.float32),
                    baseline=np.zeros(len(leads), np.float32), leads=leads, fs_hz=500.0)
              for i in range(0, len(adc), 250)]

    def classes(proc, cs):
        return [(e.index, e.beat_class) for c in cs for e in proc.feed(c)
                if getattr(e, "beat_class", None) is not None]
    ref = classes(StreamProcessor(adapted_backend), chunks)
    p = StreamProcessor(adapted_backend)
    cut = int(120 * 500 / 250)
    got = classes(p, chunks[:cut])
    assert p.adaptation.coef is not None
    q, _ = snapshot.load(snapshot.dump(p), adapted_backend)
    assert np.array_equal(q.adaptation.coef, p.adaptation.coef)
    assert got + classes(q, chunks[cut:]) == ref


def test_stack_adaptation_only_sets_it_on_a_fitted_stack_and_leaves_the_trees(tmp_path):
    import json
    import shutil

    from edge_ecg.cli import main

    b = tmp_path / "b"
    shutil.copytree(REPO / "edge_ecg" / "assets" / "default_bundle", b)
    before = json.loads((b / "beat_stack.json").read_text())
    for state, want in (("off", None), ("on", AdaptationConfig().to_dict())):
        assert main(["stack", "--bundle", str(b), "--beats", "--adaptation-only",
                     "--patient-adaptation", state, "--allow-unsigned"]) == 0
        after = json.loads((b / "beat_stack.json").read_text())
        assert after.get("patient_adaptation") == want
        assert {k: v for k, v in after.items() if k != "patient_adaptation"} == \
            {k: v for k, v in before.items() if k != "patient_adaptation"}
        man = json.loads((b / "manifest.json").read_text())
        assert man["metrics"]["beat_stack"]["patient_adaptation"] == want


def test_the_bundled_model_runs_it_and_evaluate_says_so(shared_data, capsys):
    """The shipped bundle's beat stack carries the adaptation (chosen on the training folds,
    BENCHMARKS "2026-12-07, night"), and `evaluate --json` names what made the classes."""
    import json

    from edge_ecg.cli import main

    spec = f"mitdb:{shared_data / 'mitdb' / '119'}?seconds=30"
    assert main(["evaluate", "--bundle", str(REPO / "edge_ecg" / "assets" / "default_bundle"),
                 "--data", spec, "--json"]) == 0
    bc = json.loads(capsys.readouterr().out)["beat_classes"]
    assert bc["beat_stack"] is True
    assert bc["patient_adaptation"] == AdaptationConfig().to_dict()
