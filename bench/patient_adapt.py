"""Patient-adaptive beat classes by self-training, read on the TRAINING folds only (never
fold 0): does a per-patient classifier, fitted on the beat stack's own confident calls in the
first 5 minutes of a record (EC57's learning period, which is not scored), improve the calls
that follow? No label of the patient is used: the per-patient model learns from the stack's
calls only, as a monitor could.

    python bench/patient_adapt.py --cache ROWS.npz [--v-only] [--morphology]
                                  [--records TAU,BETA]                      # ~3 min each
    python bench/patient_adapt.py --cost 10 [--repeat 3]    # the stream's speed, on and off
    python bench/patient_adapt.py --cache ROWS.npz --false-v  # what the V calls are
    python bench/patient_adapt.py --cache ROWS.npz --continuation  # runs carried on (~3 min)

ROWS.npz is what `edge-ecg stack --beats ... --oof ... --cache ROWS.npz --dry-run` saves (the
training records through the shipped network, and each training fold's records through the
network trained without it, bench/beat_stack_oof.py). Out of fold as in bench/stack_ideas.py:
fold k's beats through its own network and through trees fitted on the other folds, fused
with the shipped share (0.75). Then, per record: the beats before 300 s whose fused call is
at least TAU sure are the pseudo-labels; a shrinkage LDA on the beat stack's 18 context
features, fitted on them where at least two classes have MIN_BEATS each, nudges the fused
log-probabilities of the classes it knows by BETA times its own centred log-probabilities
(`--v-only`: the V logit alone, by the LDA's V-against-N log-odds, so S, a matter of timing,
is left alone; `--morphology`: the LDA reads the QRS's correlation, width and amplitude
against the dominant beat only). The scores are on the beats after 300 s (EC57's scored
span), per database, with the unadapted stack beside; the grid over (TAU, BETA) is also read
nested (each fold scored with the setting the other three chose), the figure that counts.
Measured 2026-12-07 and not built (BENCHMARKS.md, "2026-12-07, night").
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

LEARN_S = 300.0
MIN_BEATS = 20
N, V, F = 0, 2, 3         # the beat task's class order: N, S, V, F, Q (F called V: not false)
ONE_CLASS_Q = 0.9
MORPHOLOGY = ("qrs_corr", "width_ratio", "amp_ratio")


@dataclass(frozen=True)
class Form:
    """Which adaptation `adapt` makes (the flags of the same names)."""

    v_only: bool = False      # only the V logit moves, by the V-against-N log-odds
    veto: bool = False        # with v_only: V only ever lowered, the mass going to N
    one_class: bool = False   # also patients without MIN_BEATS V calls (their N cloud)
    columns: tuple[int, ...] | None = None   # the LDA's features (None: all 18)


SHIPPED = Form(v_only=True, veto=True)     # edge_ecg.runtime.patient_adaptation


def oof_fused(cache: Path) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(record, x, y, fused log-probabilities) of every labelled training-fold record."""
    from stack_ideas import SHARE, fused_log, labelled_rows

    from edge_ecg.data.folds import subject_fold
    from edge_ecg.model.beat_stacking import fit_trees

    net, oof = labelled_rows(cache)
    out = []
    for k in sorted(oof):
        tr = [r for r in net if subject_fold(r.subject) != k]
        xt, yt = np.concatenate([r.x for r in tr]), np.concatenate([r.y for r in tr])
        model = fit_trees(xt[yt >= 0], yt[yt >= 0], 0)
        out += [(r.record, r.x, r.y, fused_log(model, r.x, r.p_net, SHARE)) for r in oof[k]]
        print(f"fold {k}: trees fitted", flush=True)
    return out


def adapt(x: np.ndarray, z: np.ndarray, t_s: np.ndarray, tau: float, beta: float,
          form: Form = Form()) -> np.ndarray:
    """`z` nudged by a per-record LDA fitted on the record's confident early calls."""
    from edge_ecg.runtime.patient_adaptation import P_LDA_FLOOR, lda_fit

    if beta == 0:
        return z
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    learn = (t_s < LEARN_S) & (p.max(1) >= tau)
    lab = z.argmax(1)
    classes = [c for c in np.unique(lab[learn]) if (lab[learn] == c).sum() >= MIN_BEATS]
    if form.one_class and N in classes and V not in classes:
        return _one_class(x, z, p, learn & (lab == N), beta)
    if len(classes) < 2:
        return z
    keep = learn & np.isin(lab, classes)
    if form.columns is not None:
        x = x[:, list(form.columns)]
    xs = (x - x[keep].mean(0)) / (x[keep].std(0) + 1e-6)
    # the runtime's LDA (edge_ecg.runtime.patient_adaptation: scikit-learn's lsqr solver with
    # Ledoit-Wolf shrinkage, in numpy; tests/runtime/test_patient_adaptation.py)
    classes, coef, intercept = lda_fit(xs[keep], lab[keep])
    d = xs @ coef.T + intercept
    d -= d.max(1, keepdims=True)
    q = np.exp(d)
    q /= q.sum(1, keepdims=True)
    lp = np.log(np.maximum(q, P_LDA_FLOOR))
    lp -= lp.mean(1, keepdims=True)
    out = z.copy()
    if form.v_only:
        # only V against N moves: the patient's own ventricular shape; S (timing) is left
        cls = list(classes)
        if V in cls and N in cls:
            d = lp[:, cls.index(V)] - lp[:, cls.index(N)]
            if form.veto:
                # as the runtime: V scaled down, the mass taken going to N
                p = np.exp(z - z.max(1, keepdims=True))
                p /= p.sum(1, keepdims=True)
                taken = p[:, V] * (1.0 - np.exp(beta * np.minimum(d, 0.0)))
                p[:, V] -= taken
                p[:, N] += taken
                return np.log(np.maximum(p, 1e-300))
            out[:, V] += beta * d
        return out
    out[:, classes] += beta * lp
    return out


def _one_class_applies(z: np.ndarray, t_s: np.ndarray, tau: float) -> bool:
    """Whether `adapt` takes the one-class path for this record (>= MIN_BEATS confident N
    calls in the learning period, fewer V)."""
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    lab = z.argmax(1)[(t_s < LEARN_S) & (p.max(1) >= tau)]
    return (lab == N).sum() >= MIN_BEATS and (lab == V).sum() < MIN_BEATS


def _one_class(x: np.ndarray, z: np.ndarray, p: np.ndarray, n_rows: np.ndarray,
               beta: float) -> np.ndarray:
    """`--one-class`, for a patient with too few V calls to learn V from: a Gaussian of their
    confident N beats (the runtime's Ledoit-Wolf covariance); a V call on a beat inside that
    cloud (Mahalanobis d2 below the learning beats' ONE_CLASS_Q quantile) is vetoed by
    exp(beta (d2 - q) / 2), the mass going to N."""
    from edge_ecg.runtime.patient_adaptation import ledoit_wolf

    xn = x[n_rows]
    mu, sd = xn.mean(0), xn.std(0) + 1e-6
    xs = (x - mu) / sd
    prec = np.linalg.pinv(ledoit_wolf(xs[n_rows]))
    d2 = np.einsum("ij,jk,ik->i", xs, prec, xs)
    q = float(np.quantile(d2[n_rows], ONE_CLASS_Q))
    p = p.copy()
    taken = p[:, V] * (1.0 - np.exp(beta * np.minimum((d2 - q) / 2.0, 0.0)))
    p[:, V] -= taken
    p[:, N] += taken
    return np.log(np.maximum(p, 1e-300))


GRID = [(tau, beta) for tau in (0.95, 0.98, 0.995) for beta in (0.125, 0.25, 0.5)]


def _objective(y: np.ndarray, pred: np.ndarray) -> float:
    from stack_ideas import objective

    return objective(y, pred)[0]


def _scored(recs, tau: float, beta: float, rr: int, form: Form):
    """(y, pred, database) of the scored beats (after LEARN_S) of `recs`, adapted."""
    ys, preds, db = [], [], []
    for rec, x, y, z in recs:
        t_s = np.cumsum(np.maximum(x[:, rr], 0)) / 1000.0
        za = adapt(x, z, t_s, tau, beta, form)
        scored = (t_s >= LEARN_S) & (y >= 0)
        ys.append(y[scored])
        preds.append(za[scored].argmax(1))
        db.append(np.full(int(scored.sum()), rec.split("-")[0]))
    return np.concatenate(ys), np.concatenate(preds), np.concatenate(db)


def _line(name: str, y, pred, db) -> None:
    from stack_ideas import objective

    parts = [f"{name:<28} all {objective(y, pred)[0]:.3f}"]
    for d in ("mitdb", "svdb"):
        m = db == d
        f, s = objective(y[m], pred[m])
        parts.append(f"{d} V {s['V']['se']:.3f}/{s['V']['ppv']:.3f} S {s['S']['se']:.3f}/"
                     f"{s['S']['ppv']:.3f}")
    print("; ".join(parts), flush=True)


def cost(minutes: float, repeat: int) -> None:
    """The stream's wall time with the bundled stack's adaptation on and off, same record,
    same run (a synthetic patient with PVCs at 500 Hz, 12 leads, 1-s chunks): medians."""
    from dataclasses import replace

    from edge_ecg.data.synth import synthesize_schedule
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.bundle import DEFAULT_BUNDLE
    from edge_ecg.runtime.patient_adaptation import AdaptationConfig
    from edge_ecg.runtime.replay import SYNTH_GAIN, quantise
    from edge_ecg.runtime.stream_processor import StreamProcessor
    from edge_ecg.signal.chunk import Chunk

    rec = synthesize_schedule([("premature_ventricular_contractions", 60.0 * minutes)], seed=3)
    adc, leads, fs = quantise(rec.signal), rec.leads, 500.0
    chunks = [Chunk(index=i, seq=0, device_time_us=0, samples=adc[i:i + 500],
                    gain=np.full(len(leads), SYNTH_GAIN, np.float32),
                    baseline=np.zeros(len(leads), np.float32), leads=leads, fs_hz=fs)
              for i in range(0, len(adc), 500)]
    be = open_backend(DEFAULT_BUNDLE)
    stacks = {"off": replace(be.stack, adaptation=None),
              "on": replace(be.stack, adaptation=be.stack.adaptation or AdaptationConfig())}
    times: dict[str, list[float]] = {k: [] for k in stacks}
    import time
    for _ in range(repeat):
        for name, st in stacks.items():
            be.stack = st
            p = StreamProcessor(be)
            t0 = time.perf_counter()
            for c in chunks:
                p.feed(c)
            times[name].append(time.perf_counter() - t0)
            fitted = p.adaptation is not None and p.adaptation.coef is not None
            if name == "on" and not fitted:
                print("  (the adaptation did not fit on this record: no veto was computed)")
    for name, t in times.items():
        m = float(np.median(t))
        print(f"adaptation {name:<3}: {len(adc) / fs / m:7.0f}x real time (median of {repeat}, "
              f"{m:.2f} s for {minutes:g} min)")
    be.close()


def false_v(recs) -> None:
    """`--false-v`: the beats the (unadapted) stack calls V, by their reference class, and
    how the P wave against the dominant beat's and the QRS width tell them apart."""
    from edge_ecg.runtime.beat_stack import FEATURES

    cols = {c: list(FEATURES).index(c) for c in ("p_corr", "p_ratio", "width_ratio")}
    for name, ref in (("true V", V), ("S called V", 1), ("N called V", N)):
        a = np.concatenate([x[(z.argmax(1) == V) & (y == ref)] for _, x, y, z in recs])
        parts = [f"{c} {np.percentile(a[:, k], [10, 50, 90]).round(2).tolist()}"
                 for c, k in cols.items()]
        print(f"{name:<11} {len(a):5d} beats; 10/50/90 %: " + ", ".join(parts))


CONTINUATIONS = ((3, None, None), (3, 1.15, 0.9), (3, 1.3, 0.8), (2, 1.15, 0.9), (4, 1.15, 0.9))


def _v_runs(lab: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of the runs of >= 3 V in a sequence of classes, end exclusive (the
    scorer's own run finder, edge_ecg.metrics.rhythm.runs, on beat positions)."""
    from edge_ecg.metrics.rhythm import runs

    return [(int(a), int(b) + 1) for a, b, n in runs(np.arange(lab.size), lab == V) if n >= 3]


def continued(x: np.ndarray, lab: np.ndarray, cfg) -> np.ndarray:
    """A record's classes in order with the runtime's run continuation
    (edge_ecg.runtime.run_continuation) applied: one beat after another, the beat's model
    clock its cumulative RR (rows are consecutive beats)."""
    from edge_ecg.runtime.beat_stack import FEATURES
    from edge_ecg.runtime.run_continuation import RunContinuation

    fs = 250.0
    rc = RunContinuation(cfg, fs, FEATURES, ["N", "S", "V", "F", "Q"])
    rr = list(FEATURES).index("pre_rr_ms")
    r = np.cumsum(np.round(np.maximum(x[:, rr], 0) * fs / 1000.0)).astype(np.int64)
    out = lab.copy()
    for i in range(lab.size):
        p = np.zeros(5)
        p[lab[i]] = 1.0
        out[i] = int(np.argmax(rc.apply(0, int(r[i]), x[i], p)))
    return out


def continuation(recs) -> None:
    """`--continuation`: the shipped adaptation, then the run continuation in a few settings
    (min run; width ratio or QRS correlation, None: any beat outside the dominant cluster), per
    database on the beats after 300 s: V Se / +P, false V, and runs of >= 3 V (reference runs
    found, called runs that hold >= 3 reference V or overlap a reference run)."""
    from edge_ecg.runtime.beat_stack import FEATURES
    from edge_ecg.runtime.run_continuation import ContinuationConfig

    rr = list(FEATURES).index("pre_rr_ms")
    settings = [None] + [ContinuationConfig(m, w if w is not None else 1.0,
                                            c if c is not None else 1.0)
                         for m, w, c in CONTINUATIONS]
    for cfg in settings:
        tot: dict[str, dict[str, int]] = {}
        for rec, x, y, z in recs:
            t_s = np.cumsum(np.maximum(x[:, rr], 0)) / 1000.0
            lab = adapt(x, z, t_s, 0.98, 0.5, SHIPPED).argmax(1)
            if cfg is not None:
                lab = continued(x, lab, cfg)
            d = tot.setdefault(rec.split("-")[0], dict.fromkeys(
                ("tp", "fn", "fp", "ref", "found", "called", "true"), 0))
            sc = (t_s >= LEARN_S) & (y >= 0)
            tv, pv = (y == V) & sc, (lab == V) & sc
            d["tp"] += int((tv & pv).sum())
            d["fn"] += int((tv & ~pv).sum())
            d["fp"] += int((pv & (y != V) & (y != F)).sum())
            called = np.zeros(y.size, bool)
            for a, b in _v_runs(lab):
                called[a:b] = True
            in_ref = np.zeros(y.size, bool)
            for a, b in _v_runs(np.where(y == V, V, -1)):
                in_ref[a:b] = True
                if t_s[a] >= LEARN_S:
                    d["ref"] += 1
                    d["found"] += int(called[a:b].any())
            for a, b in _v_runs(lab):
                if t_s[a] >= LEARN_S:
                    d["called"] += 1
                    d["true"] += int(in_ref[a:b].any()
                                     or int(np.isin(y[a:b], (V, F)).sum()) >= 3)
        name = "no continuation" if cfg is None else (
            f"min run {cfg.min_run}, width >= {cfg.width_ratio:g} or corr <= {cfg.qrs_corr:g}")
        parts = [f"{db} V {d['tp'] / max(d['tp'] + d['fn'], 1):.3f}/"
                 f"{d['tp'] / max(d['tp'] + d['fp'], 1):.3f} (false {d['fp']}), runs found "
                 f"{d['found']}/{d['ref']}, true {d['true']}/{d['called']}"
                 for db, d in sorted(tot.items())]
        print(f"{name:<40} " + "; ".join(parts), flush=True)


def main(argv=None) -> None:
    from edge_ecg.data.folds import subject_fold

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, help="the out-of-fold rows (ROWS.npz)")
    ap.add_argument("--cost", type=float, default=None, metavar="MINUTES",
                    help="instead: the stream's speed with the adaptation on and off over a "
                         "synthetic patient of MINUTES (> 5 to pass the learning period)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--v-only", action="store_true",
                    help="nudge only the V logit, by the LDA's V-against-N log-odds")
    ap.add_argument("--morphology", action="store_true",
                    help="the per-patient LDA reads the beat's shape against the dominant "
                         f"beat only ({', '.join(MORPHOLOGY)}), not its timing")
    ap.add_argument("--one-class", action="store_true",
                    help="with --v-only --veto: a patient with too few confident V calls is "
                         "still adapted, by the cloud of their own N beats (_one_class)")
    ap.add_argument("--false-v", action="store_true",
                    help="instead: the stack's V calls by reference class, with their P-wave "
                         "and width features (what a veto could tell apart)")
    ap.add_argument("--records", type=lambda v: tuple(float(t) for t in v.split(",")),
                    metavar="TAU,BETA", help="also list the records whose V calls change")
    ap.add_argument("--continuation", action="store_true",
                    help="instead: the shipped adaptation, then the run continuation "
                         "(edge_ecg.runtime.run_continuation) in a few settings")
    ap.add_argument("--veto", action="store_true",
                    help="with --v-only: the nudge may only lower V (a V call vetoed where "
                         "the patient's own beats say N, the mass going to N), never raise "
                         "it: the runtime's form")
    args = ap.parse_args(argv)
    if args.cost is not None:
        return cost(args.cost, args.repeat)
    if args.cache is None:
        ap.error("--cache ROWS.npz is needed (or --cost MINUTES)")
    from edge_ecg.runtime.beat_stack import FEATURES

    form = Form(v_only=args.v_only, veto=args.veto, one_class=args.one_class,
                columns=tuple(list(FEATURES).index(c) for c in MORPHOLOGY)
                if args.morphology else None)
    recs = oof_fused(args.cache)
    if args.false_v:
        return false_v(recs)
    if args.continuation:
        return continuation(recs)
    rr = list(FEATURES).index("pre_rr_ms")
    fold = {rec: subject_fold(rec) for rec, *_ in recs}
    _line("no adaptation", *_scored(recs, 1.0, 0.0, rr, form))
    for tau, beta in GRID:
        _line(f"tau {tau} beta {beta}", *_scored(recs, tau, beta, rr, form))
    # nested: each fold's setting chosen on the other three, that fold scored with it
    ys, preds, dbs, chosen = [], [], [], []
    for k in sorted(set(fold.values())):
        inner = [r for r in recs if fold[r[0]] != k]
        best = max(GRID, key=lambda g: _objective(*_scored(inner, *g, rr, form)[:2]))
        chosen.append(best)
        y, p, d = _scored([r for r in recs if fold[r[0]] == k], *best, rr, form)
        ys.append(y), preds.append(p), dbs.append(d)
    _line(f"nested {chosen}", np.concatenate(ys), np.concatenate(preds), np.concatenate(dbs))
    if args.records:
        tau, beta = args.records
        print(f"records whose V calls change at tau {tau} beta {beta}: V beats, then "
              "(true V, false V, missed V) unadapted -> adapted, after 300 s")
        for rec, x, y, z in recs:
            t_s = np.cumsum(np.maximum(x[:, rr], 0)) / 1000.0
            scored = (t_s >= LEARN_S) & (y >= 0)
            yy = y[scored]

            def counts(p):
                return (int(((p == V) & (yy == V)).sum()),
                        int(((p == V) & (yy != V) & (yy != F)).sum()),
                        int(((p != V) & (yy == V)).sum()))
            a = counts(z[scored].argmax(1))
            b = counts(adapt(x, z, t_s, tau, beta, form)[scored].argmax(1))
            if a != b:
                print(f"  {rec}: {int((yy == V).sum())} V, {a} -> {b}")
            elif form.one_class and _one_class_applies(z, t_s, tau):
                print(f"  {rec}: {int((yy == V).sum())} V, {a}: one-class, no call changed")


if __name__ == "__main__":
    main()
