"""Ideas for the beat stack, the rhythm stack and the alarms, read on the TRAINING folds only
(never fold 0): the figures of BENCHMARKS.md "2026-12-07, late" and "near midnight", none of
them kept.

    python bench/stack_ideas.py beats --cache ROWS.npz        # ~6 min
    python bench/stack_ideas.py rhythm --cache FEATURES.npz   # ~20 s
    python bench/stack_ideas.py alarms [--jobs 2]             # ~4 min
    python bench/stack_ideas.py rhythm-features --cache FILE  # ~3 min
    python bench/stack_ideas.py svt --oof 1=B1 ... --oof 4=B4 # ~5 min

`beats`: ROWS.npz is what `edge-ecg stack --beats ... --oof ... --cache ROWS.npz --dry-run`
saves (the training records through the shipped network, and each training fold's records
through the network trained without it, `bench/beat_stack_oof.py`). Out of fold, as the
stack's share is chosen: fold k's beats through its own network and through trees fitted on
the other folds, fused with the shipped share (0.75). Compared on the mean F1 of V and S:
  - today's stack;
  - a class-prior shift on the fused log-probabilities (S and V, each over a grid);
  - the trees also reading the previous and next beats' morphology and prematurity (taken
    from the neighbouring rows of the record, each from its own window: an approximation of
    what a window's slots would give the runtime);
  - the trees also reading a local RR irregularity (the RR intervals of the 6 beats either
    side, the beat's own two left out).

`rhythm`: FEATURES.npz is what `edge-ecg stack --bundle edge_ecg/assets/default_bundle --data
recipe:bundled --dry-run --cache FEATURES.npz` saves. Leave-one-fold-out: the shipped setting
(trees, depth 3, 100 iterations, leaves >= 50); a class bias on its log-probabilities chosen
by nested CV (three folds choose, the fourth scores); other forms and their averages.

`rhythm-features --cache FILE` (~3 min): the shipped features plus four more (median PR,
median QTc, SD of QRS width, 90th percentile of successive RR differences), each added and
all four, leave-one-fold-out (BENCHMARKS.md "2026-12-07, near midnight").

`svt --oof 1=B1 ... --oof 4=B4` (~5 min; Bk never saw fold k, as for bench/vt_escalation.py):
S sensitivity alone, in pairs and in runs, out of fold; an S run carried on over a grid; and
supraventricular tachycardia episodes (edge_ecg.runtime.svt_episode, shipped) over a grid,
with the rule that chose its setting (BENCHMARKS.md "2026-12-08").

`alarms`: the 50 training-fold MIT-BIH and SVDB records streamed through the shipped bundle
with the alarm engine's inputs logged (bench/alarms.py), IN-SAMPLE (the network trained on
these patients): the median QRS (the delineator's) of the beats of true and false VT alarms,
and the beat classes with S calls made N while the AF alarm is on.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

LABELS = ("N", "S", "V", "F", "Q")
SHARE = 0.75
# the neighbours' columns the trees read beside the beat's own (edge_ecg.runtime.beat_stack)
NEIGHBOUR = ("qrs_corr", "width_ratio", "amp_ratio", "pre_local", "post_local", "in_dominant",
             "cluster_share")
IRREGULAR_HALF = 6


# --- the beat stack --------------------------------------------------------------------------
def with_neighbours(x: np.ndarray, features, reach: int = 1) -> np.ndarray:
    """`x` with the NEIGHBOUR columns of the `reach` rows before and after each row (zeros past
    the record's ends)."""
    cols = [list(features).index(c) for c in NEIGHBOUR]
    out = [x]
    for k in range(1, reach + 1):
        zero = np.zeros((k, len(cols)))
        out += [np.vstack([zero, x[:-k, cols]])[:len(x)], np.vstack([x[k:, cols], zero])[-len(x):]]
    return np.hstack(out)


def with_irregularity(x: np.ndarray, features) -> np.ndarray:
    """`x` with the normalised RMSSD, the share of successive differences > 15 % and the CV of
    the RR intervals of the IRREGULAR_HALF beats either side (the beat's own pre and post RR
    left out); zeros where fewer than 4 are known."""
    rr = x[:, list(features).index("pre_rr_ms")].astype(float)
    out = np.zeros((len(rr), 3))
    for d in range(len(rr)):
        idx = [i for i in range(d - IRREGULAR_HALF, d + IRREGULAR_HALF + 2)
               if 0 <= i < len(rr) and i not in (d, d + 1)]
        v = rr[idx]
        v = v[v > 0]
        if v.size < 4:
            continue
        dif, m = np.abs(np.diff(v)), float(np.median(v))
        out[d] = [np.sqrt(np.mean(dif ** 2)) / m, np.mean(dif > 0.15 * m), np.std(v) / m]
    return np.hstack([x, out])


def fused_log(model, x: np.ndarray, p_net: np.ndarray, share: float) -> np.ndarray:
    """The stack's fused log-probabilities (edge_ecg.runtime.beat_stack), unnormalised."""
    from edge_ecg.runtime.beat_stack import P_FLOOR

    pt = np.zeros((len(x), len(LABELS)))
    pt[:, list(model.classes_)] = model.predict_proba(x)
    return ((1 - share) * np.log(np.maximum(p_net, P_FLOOR))
            + share * np.log(np.maximum(pt, P_FLOOR)))


def objective(y: np.ndarray, pred: np.ndarray) -> tuple[float, dict]:
    from edge_ecg.model.beat_stacking import class_scores

    s = class_scores(y, pred, LABELS)
    return (s["V"]["f1"] + s["S"]["f1"]) / 2, s


def labelled_rows(cache: Path) -> tuple[list, dict[int, list]]:
    """The labelled records of ROWS.npz: through the shipped network (the trees' fits), and
    through each training fold's out-of-fold network, by fold."""
    from edge_ecg.cli.stack_beats import load_rows
    from edge_ecg.data.folds import subject_fold

    with np.load(cache, allow_pickle=False) as z:
        key = str(z["key"])
    sets = load_rows(cache, key, ["net", "oof"])
    if sets is None:
        raise SystemExit(f"{cache}: no out-of-fold rows (run `edge-ecg stack --beats --oof ...`)")
    net = [r for r in sets["net"] if (r.y >= 0).any()]
    oof: dict[int, list] = {}
    for r in sets["oof"]:
        if (r.y >= 0).any():
            oof.setdefault(subject_fold(r.subject), []).append(r)
    return net, oof


def beats(cache: Path) -> None:
    from edge_ecg.data.folds import subject_fold
    from edge_ecg.model.beat_stacking import fit_trees
    from edge_ecg.runtime.beat_stack import FEATURES

    net, oof = labelled_rows(cache)
    variants = {"today": lambda x: x,
                "neighbours": lambda x: with_neighbours(x, FEATURES),
                "neighbours 2": lambda x: with_neighbours(x, FEATURES, 2),
                "irregularity": lambda x: with_irregularity(x, FEATURES)}
    for name, aug in variants.items():
        logs, ys, mit, recs = [], [], [], []
        for k in sorted(oof):
            tr = [r for r in net if subject_fold(r.subject) != k]
            xt = np.concatenate([aug(r.x) for r in tr])
            yt = np.concatenate([r.y for r in tr])
            model = fit_trees(xt[yt >= 0], yt[yt >= 0], 0)
            for r in oof[k]:
                keep = r.y >= 0
                logs.append(fused_log(model, aug(r.x)[keep], r.p_net[keep], SHARE))
                ys.append(r.y[keep])
                mit.append(np.full(int(keep.sum()), r.record.startswith("mitdb")))
                recs.append(np.full(int(keep.sum()), r.record))
        z, y, m = np.concatenate(logs), np.concatenate(ys), np.concatenate(mit)
        _report(name, y, z.argmax(1), m)
        if name == "today":
            s_cls = LABELS.index("S")
            false_s = (z.argmax(1) == s_cls) & (y != s_cls)
            who, n = np.unique(np.concatenate(recs)[false_s], return_counts=True)
            top = ", ".join(f"{w} {c}" for c, w in sorted(zip(n, who), reverse=True)[:3])
            print(f"  false S: {int(false_s.sum())}, most in {top}")
            grid = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
            best = max(((objective(y, _shifted(z, bs, bv))[0], bs, bv)
                        for bs, bv in itertools.product(grid, grid)))
            worst = min(objective(y, _shifted(z, bs, bv))[0]
                        for bs, bv in itertools.product(grid, grid))
            print(f"  class-prior shift (S, V each over {grid}): mean F1 of V and S "
                  f"{worst:.4f}-{best[0]:.4f}, best at S {best[1]:+.1f}, V {best[2]:+.1f}; "
                  f"no shift {objective(y, z.argmax(1))[0]:.4f}")


def _shifted(z: np.ndarray, bs: float, bv: float) -> np.ndarray:
    q = z.copy()
    q[:, LABELS.index("S")] += bs
    q[:, LABELS.index("V")] += bv
    return q.argmax(1)


def _report(name: str, y: np.ndarray, pred: np.ndarray, mit: np.ndarray) -> None:
    f, s = objective(y, pred)
    _, sm = objective(y[mit], pred[mit])
    print(f"{name:<13} mean F1 of V and S {f:.3f}: V Se/+P {s['V']['se']:.3f}/"
          f"{s['V']['ppv']:.3f}, S {s['S']['se']:.3f}/{s['S']['ppv']:.3f}; MIT-BIH V "
          f"{sm['V']['se']:.3f}/{sm['V']['ppv']:.3f}, S {sm['S']['se']:.3f}/"
          f"{sm['S']['ppv']:.3f}", flush=True)


# --- the rhythm stack ------------------------------------------------------------------------
def rhythm(cache: Path) -> None:
    from edge_ecg.model.stacking import _fit, _fit_gbt, challenge_f1

    with np.load(cache, allow_pickle=False) as z:
        x, y, g = z["x"], z["y"], z["groups"]
    ok = y >= 0
    x, y, g = x[ok], y[ok], g[ok]
    classes = ["normal_sinus", "af_or_flutter", "other_rhythm", "too_noisy"]
    folds = sorted(set(g.tolist()))

    def oof(fit_predict):
        p = np.zeros((len(y), len(classes)))
        for f in folds:
            p[g == f] = fit_predict(x[g != f], y[g != f], x[g == f])
        return p

    def score(p, mask=None):
        mask = np.ones(len(y), bool) if mask is None else mask
        return challenge_f1(y[mask], p[mask].argmax(1), classes)["challenge_f1"]

    def logistic(a, b, c):
        m, mu, sc = _fit(a, b, 0.1, None)
        return m.predict_proba((c - mu) / sc)

    forms = {f"trees {s}": oof(lambda a, b, c, s=s: _fit_gbt(a, b, s).predict_proba(c))
             for s in ((3, 100, 0.1, 50), (3, 150, 0.1, 20), (2, 300, 0.1, 20))}
    forms["logistic C=0.1"] = oof(logistic)
    shipped = forms["trees (3, 100, 0.1, 50)"]
    for name, p in forms.items():
        print(f"{name:<26} leave-one-fold-out challenge F1 {score(p):.4f}")
    names = list(forms)
    for combo in (names[:1] + names[3:], names[:3], names):
        print(f"average of {', '.join(combo)}: "
              f"{score(np.mean([forms[n] for n in combo], axis=0)):.4f}")
    # a class bias (A, O, noisy; N fixed) chosen on three folds' out-of-fold rows, scored on
    # the fourth
    lg = np.log(np.maximum(shipped, 1e-9))
    grid = list(itertools.product(*[(-0.5, -0.25, 0.0, 0.25, 0.5, 0.75)] * 3))
    pred = np.empty_like(y)
    for f in folds:
        tr = g != f

        def on(mask, b):
            return challenge_f1(y[mask], (lg[mask] + (0.0, *b)).argmax(1),
                                classes)["challenge_f1"]
        b = max(grid, key=lambda b: (on(tr, b), -sum(abs(v) for v in b)))
        pred[g == f] = (lg[g == f] + (0.0, *b)).argmax(1)
    print(f"class bias chosen by nested CV: {challenge_f1(y, pred, classes)['challenge_f1']:.4f}"
          f" (the shipped setting without it: {score(shipped):.4f})")


# --- four more recording features for the rhythm stack ---------------------------------------
EXTRA_RHYTHM = ("pr_median_ms", "qtc_median_ms", "qrs_sd_ms", "drr_p90_ms")


def _extra_rhythm_row(pr, qt, rr, qrs, rr_series) -> list[float]:
    """EXTRA_RHYTHM of one recording from its delineated beats (ms, NaN where not found)."""
    pr, qrs = pr[np.isfinite(pr)], qrs[np.isfinite(qrs)]
    ok = np.isfinite(qt) & np.isfinite(rr) & (rr > 250) & (rr < 2500)
    qtc = qt[ok] / np.sqrt(rr[ok] / 1000.0)           # Bazett
    return [float(np.median(pr)) if pr.size else 160.0,
            float(np.median(qtc)) if qtc.size else 420.0,
            float(np.std(qrs)) if qrs.size >= 2 else 0.0,
            float(np.percentile(np.abs(np.diff(rr_series)), 90)) if rr_series.size > 2 else 0.0]


def rhythm_features(bundle: str, cache: Path) -> None:
    """The shipped stack's features plus EXTRA_RHYTHM for CinC's training recordings (the
    runtime's stream, its beats' PR, QT and QRS; computed once into `cache`), then
    leave-one-fold-out CV (the fit `edge-ecg stack` runs) with each added and all four."""
    from edge_ecg.model.stacking import GBT_GRID, fit_stack
    from edge_ecg.runtime.rhythm_history import RhythmHistory

    if not cache.is_file():
        import warnings

        from edge_ecg.cli.stack import collect
        from edge_ecg.runtime.backends import open_backend
        from edge_ecg.runtime.events import BeatEvent

        feed, features = RhythmHistory.feed, RhythmHistory.features

        def feed_more(self, events):             # this process only: the bench's own patch
            events = list(events)
            more = self.__dict__.setdefault("_more", [])
            for e in events:
                if isinstance(e, BeatEvent):
                    w = e.waves or {}
                    more.append([np.nan if w.get(k) is None else float(w[k])
                                 for k in ("qt_ms", "rr_ms")])
            return feed(self, events)

        def features_more(self):
            qt, rr = (np.array(self.__dict__.get("_more", [])).reshape(-1, 2).T)
            return np.concatenate([features(self), _extra_rhythm_row(
                np.fromiter(self.pr_ms, float), qt, rr, np.fromiter(self.qrs_ms, float),
                self.rr_ms())])
        RhythmHistory.feed, RhythmHistory.features = feed_more, features_more
        warnings.simplefilter("ignore")
        backend = open_backend(bundle, None, threads=1)
        try:
            _, x, y, g = collect(backend, f"cinc2017:{REPO.parent / 'shared' / 'data'}"
                                 "/cinc2017?folds=1,2,3,4", None, 0, False, progress=True)
        finally:
            backend.close()
            RhythmHistory.feed, RhythmHistory.features = feed, features
        np.savez(cache, x=x, y=y, groups=g)
    with np.load(cache, allow_pickle=False) as z:
        x, y, g = z["x"], z["y"], z["groups"]
    classes = ["normal_sinus", "af_or_flutter", "other_rhythm", "too_noisy"]
    nb = x.shape[1] - len(EXTRA_RHYTHM)

    def cv(cols) -> float:
        doc = fit_stack(x[:, cols], y, g, classes, [f"f{c}" for c in cols], "arrhythmia",
                        cs=(), gbt=GBT_GRID)
        return doc["info"]["cv"]["challenge_f1"]
    base = list(range(nb))
    print(f"{'the shipped features':<26} leave-one-fold-out challenge F1 {cv(base):.4f}")
    for j, name in enumerate(EXTRA_RHYTHM):
        print(f"{'+ ' + name:<26} {cv(base + [nb + j]):.4f}")
    print(f"{'+ all four':<26} {cv(list(range(x.shape[1]))):.4f}")


# --- supraventricular beats in runs, out of fold --------------------------------------------
def _s_continued(r: dict, m: int, ratio: float) -> list:
    """`r`'s classes with an S run carried on: a beat called N after >= m beats called S in a
    row is S while its RR <= ratio x the median of the last 8 N-N RR before the run."""
    t = np.asarray(r["beats"], float) / r["fs"]
    cl, run, ref, nn = list(r["classes"]), 0, None, []
    for i, c in enumerate(cl):
        rr = t[i] - t[i - 1] if i else None
        if c == "S":
            ref = (float(np.median(nn[-8:])) if len(nn) >= 4 else None) if run == 0 else ref
            run += 1
        elif c == "N" and run >= m and ref is not None and rr is not None and rr <= ratio * ref:
            cl[i], run = "S", run + 1
        else:
            run = 0
            if c == "N" and i and cl[i - 1] == "N":
                nn.append(rr)
    return cl


def svt(oof: dict, jobs: int) -> None:
    """The training folds' MIT-BIH and SVDB records through bundles that never saw them:
    S sensitivity by where the S beat stands (alone, in a pair, in a run of >= 3), the
    records that hold the runs, and an S run carried on (a grid) against the classes as
    streamed, on the mean S F1 of the two databases."""
    from collections import Counter
    from concurrent.futures import ProcessPoolExecutor

    import alarms as bench_alarms
    import vt_escalation

    from edge_ecg.data.aami import AAMI_CLASSES, aami_indices
    from edge_ecg.data.folds import subject_fold
    from edge_ecg.data.records import Annotations, beats_only
    from edge_ecg.metrics.beats import EC57_LEARNING_S, match_beats

    jobs_ = [(oof[subject_fold(f"{db}-{p.name}")], p, db) for db in ("mitdb", "svdb")
             for p in bench_alarms.records(db) if subject_fold(f"{db}-{p.name}") in oof]
    with ProcessPoolExecutor(max(1, jobs)) as ex:
        rs = list(ex.map(vt_escalation.stream, jobs_))
    s_idx = AAMI_CLASSES.index("S")
    found: dict = {}
    in_runs: Counter = Counter()
    for r in rs:
        ann = beats_only(Annotations(sample=np.asarray(r["marks"][0]), symbol=r["marks"][1]))
        ref = aami_indices(np.asarray(ann.symbol), r["record"], r["ext"])
        det = np.array([AAMI_CLASSES.index(c) if c in AAMI_CLASSES else -1
                        for c in r["classes"]])
        mr, md = match_beats(ann.sample, np.asarray(r["beats"]), round(0.15 * r["fs"]))
        pred = np.full(ref.size, -2)
        pred[mr] = det[md]
        is_s = ref == s_idx
        length = np.zeros(ref.size, int)            # the length of the S run a beat is in
        i = 0
        while i < ref.size:
            j = i
            while j < ref.size and is_s[j]:
                j += 1
            length[i:j], i = j - i, max(j, i + 1)
        scored = is_s & (ann.sample >= EC57_LEARNING_S * r["fs"])
        for where, m in (("alone", length == 1), ("in a pair", length == 2),
                         ("in a run of >= 3", length >= 3)):
            k = found.setdefault((r["db"], where), [0, 0, 0])
            k[0] += int((m & scored).sum())
            k[1] += int(((pred == s_idx) & m & scored).sum())
            k[2] += int(((pred == AAMI_CLASSES.index("N")) & m & scored).sum())
        in_runs[(r["db"], r["record"])] += int((scored & (length >= 3)).sum())
    for (db, where), (n, tp, as_n) in found.items():
        print(f"{db} S {where:<17} {n:>5} beats, called S {tp / max(n, 1):.3f}, "
              f"called N {as_n}")
    print("S beats in runs of >= 3, by record: " + ", ".join(
        f"{db} {rec} {n}" for (db, rec), n in in_runs.most_common(5)))

    def mean_s_f1(classes_of) -> float:
        sc = vt_escalation.beat_scores([{**r, "classes": classes_of(r)} for r in rs])
        return float(np.mean([2 * d["s_se"] * d["s_ppv_ec57"] / (d["s_se"] + d["s_ppv_ec57"])
                              if d["s_se"] + d["s_ppv_ec57"] else 0.0 for d in sc.values()]))
    print(f"mean S F1 over MIT-BIH and SVDB, as streamed: {mean_s_f1(lambda r: r['classes']):.4f}")
    for m, ratio in itertools.product((1, 2, 3), (0.75, 0.8, 0.85, 0.9)):
        print(f"  S run carried on after {m} S, RR <= {ratio} x before: "
              f"{mean_s_f1(lambda r: _s_continued(r, m, ratio)):.4f}")
    svt_episode_grid(rs)


def in_reference_af(r: dict) -> np.ndarray:
    """Which of the stream's beats lie inside the record's reference atrial fibrillation or
    flutter episodes (its rhythm notes, `(AFIB` and `(AFL`)."""
    beats = np.asarray(r["beats"])
    out = np.zeros(beats.size, bool)
    notes = [(int(x), str(a).strip("\x00")) for x, a in zip(r["atr"][0], r["atr"][2])
             if str(a).startswith("(")]
    for (at, note), nxt in zip(notes, [*notes[1:], (r["n"], "")]):
        if note in ("(AFIB", "(AFL"):
            out |= (beats >= at) & (beats < nxt[0])
    return out


def svt_episode_grid(rs: list[dict], grid=((8, 16, 32), (0.05, 0.10), (4, 6, 8),
                                            (0.75, 0.8))) -> dict:
    """Supraventricular tachycardia episodes (edge_ecg.runtime.svt_episode) over a grid of
    (reference N-N intervals, RR regularity, beats in a row, RR ratio), replayed on the
    streamed classes: per database EC57 S and V Se / +P, and the beats inside MIT-BIH's
    reference AF and flutter newly called S; the setting with the best mean S F1 over the
    databases, and whether it meets the rule written before its figures (BENCHMARKS.md
    "2026-12-08")."""
    import vt_escalation

    from edge_ecg.runtime.svt_episode import SvtConfig, svt_classes

    def f1(d):
        se, ppv = d["s_se"], d["s_ppv_ec57"]
        return 2 * se * ppv / (se + ppv) if se + ppv else 0.0

    base = vt_escalation.beat_scores(rs)
    print("SVT episodes (N called S while an abrupt, regular tachycardia lasts), replayed:")
    print(f"  off: mean S F1 {np.mean([f1(d) for d in base.values()]):.4f}  " + "  ".join(
        f"{db} S {d['s_se']:.3f} / {d['s_ppv_ec57']:.3f}, V {d['v_se']:.3f} / "
        f"{d['v_ppv_ec57']:.3f}" for db, d in base.items()))
    out = {}
    for key in itertools.product(*grid):
        n_ref, regular, m, ratio = key
        cfg = SvtConfig(min_beats=m, ratio=ratio, regular=regular, ref_beats=n_ref)
        new = [{**r, "classes": svt_classes(r["beats"], r["fs"], r["classes"], cfg)}
               for r in rs]
        sc = vt_escalation.beat_scores(new)
        af_n = af_s = 0
        for r, q in zip(rs, new):
            if r["db"] == "mitdb":
                a = in_reference_af(r)
                was, now = np.array(r["classes"], object), np.array(q["classes"], object)
                af_n += int(a.sum())
                af_s += int(((now == "S") & (was != "S") & a).sum())
        out[key] = (float(np.mean([f1(d) for d in sc.values()])), sc, af_s, af_n)
        print(f"  reference {n_ref}, regular {regular}, {m} beats, RR <= {ratio} x: mean S F1 "
              f"{out[key][0]:.4f}  " + "  ".join(
            f"{db} S {d['s_se']:.3f} / {d['s_ppv_ec57']:.3f}, V {d['v_se']:.3f} / "
            f"{d['v_ppv_ec57']:.3f}" for db, d in sc.items())
            + f"  AF/flutter beats newly S {af_s} of {af_n}")
    best = max(out, key=lambda k: out[k][0])
    _, sc, af_s, af_n = out[best]
    def same(a, b):
        return a == b or (np.isnan(a) and np.isnan(b))

    ok = (sc["svdb"]["s_se"] >= base["svdb"]["s_se"] + 0.05
          # (+P undefined before, no S called: nothing to hold it to)
          and all(np.isnan(base[db]["s_ppv_ec57"])
                  or sc[db]["s_ppv_ec57"] >= base[db]["s_ppv_ec57"] - 0.02 for db in sc)
          and sc["mitdb"]["s_se"] >= base["mitdb"]["s_se"]
          and all(same(sc[db][k], base[db][k]) for db in sc for k in ("v_se", "v_ppv_ec57"))
          and af_s <= 0.01 * max(af_n, 1))
    print(f"  best: reference {best[0]}, regular {best[1]}, {best[2]} beats, RR <= {best[3]} "
          f"x; the rule {'holds' if ok else 'fails'}")
    return {"best": best, "holds": ok, "grid": out, "base": base}


# --- the alarms ------------------------------------------------------------------------------
def alarms(jobs: int) -> None:
    from concurrent.futures import ProcessPoolExecutor

    import alarms as bench_alarms

    from edge_ecg.data.folds import subject_fold
    from edge_ecg.runtime.bundle import DEFAULT_BUNDLE

    todo = [(str(DEFAULT_BUNDLE), p, db, True) for db in ("mitdb", "svdb")
            for p in bench_alarms.records(db) if subject_fold(f"{db}-{p.name}") in (1, 2, 3, 4)]
    with ProcessPoolExecutor(max(1, jobs)) as ex:
        rs = list(ex.map(bench_alarms.stream_record, todo))
    vt_qrs(rs)
    no_s_in_af(rs)


def _reference(r: dict):
    from edge_ecg.metrics.rhythm import BEAT_SYMBOLS

    s, sym, aux = r["ann"]
    s = np.asarray(s)
    keep = np.array([x in BEAT_SYMBOLS for x in sym], bool) & (s < r["n"])
    return s, list(sym), list(aux), keep


def vt_qrs(rs: list[dict]) -> None:
    """The median QRS of each VT alarm's beats, true (overlapping a reference ventricular run
    of >= 3, or VT / VF) against false."""
    from edge_ecg.metrics.rhythm import VENTRICULAR, reference_episodes, runs

    true, false = [], []
    for r in rs:
        fs = r["fs"]
        s, sym, aux, beat = _reference(r)
        rt = s[beat] / fs
        rv = np.array([x in VENTRICULAR for x, b in zip(sym, beat) if b], bool)
        ref = [(a - 0.15, b + 0.15) for a, b, n in runs(rt, rv) if n >= 3]
        ref += reference_episodes(s, sym, aux, "vt", fs, r["n"])
        ref += reference_episodes(s, sym, aux, "vf", fs, r["n"])
        qrs = {v["index"]: v.get("qrs_ms") for kind, v in r["ops"]
               if kind == "ev" and v.get("type") == "beat"}
        for a in r["alarms"]:
            if a["code"] != "vt" or a["state"] != "onset":
                continue
            q = [qrs.get(b) for b in (a.get("evidence") or {}).get("beats", [])]
            q = [v for v in q if v is not None]
            if not q:
                continue
            t0, t1 = a["onset_index"] / fs, a["index"] / fs
            hit = any(not (t1 < lo or t0 > hi) for lo, hi in ref)
            (true if hit else false).append(float(np.median(q)))
    print(f"VT alarms (in-sample): {len(true)} true, median QRS of their beats "
          f"{min(true):.0f}-{max(true):.0f} ms; {len(false)} false, "
          f"{min(false):.0f}-{max(false):.0f} ms")


def no_s_in_af(rs: list[dict]) -> None:
    """Beat classes as streamed, and with S calls made N while the AF alarm is on."""
    from edge_ecg.data.aami import AAMI_CLASSES, aami_indices
    from edge_ecg.metrics.beats import pool_class_scores, score_beat_classes

    scores: dict[tuple[str, str], list] = {}
    for r in rs:
        s, sym, _, beat = _reference(r)
        ref_c = aami_indices(np.asarray(sym)[beat], r["record"])
        det = np.asarray(r["beats"])
        on, spans = None, []
        for a in r["alarms"]:
            if a["code"] == "new_af" and a["state"] == "onset":
                on = a["onset_index"]
            elif a["code"] == "new_af" and a["state"] == "end" and on is not None:
                spans.append((on, a.get("end_index", a["index"])))
                on = None
        if on is not None:
            spans.append((on, r["n"]))
        in_af = np.zeros(det.size, bool)
        for a, b in spans:
            in_af |= (det >= a) & (det <= b)
        for name, cls in (("as streamed", list(r["classes"])),
                          ("no S in AF", ["N" if c == "S" and f else c
                                          for c, f in zip(r["classes"], in_af)])):
            dc = np.array([AAMI_CLASSES.index(c) if c in AAMI_CLASSES else -1 for c in cls])
            scores.setdefault((name, r["db"]), []).append(score_beat_classes(
                s[beat], ref_c, det, dc, r["fs"], record=r["record"]))
    for (name, db), v in scores.items():
        d = pool_class_scores(v).to_dict()
        print(f"{db} {name:<12} (in-sample): S Se / +P {d['s_se']:.3f} / {d['s_ppv']:.3f}")
    lost = sorted(((a.to_dict().get("s_tp", 0) - b.to_dict().get("s_tp", 0), a.record)
                   for db in ("mitdb", "svdb")
                   for a, b in zip(scores.get(("as streamed", db), []),
                                   scores.get(("no S in AF", db), []))), reverse=True)[:3]
    print("true S lost most in: " + ", ".join(f"{rec} {n}" for n, rec in lost))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    b = sub.add_parser("beats", help="the beat stack's ideas, out of fold")
    b.add_argument("--cache", type=Path, required=True, metavar="ROWS.npz")
    r = sub.add_parser("rhythm", help="the rhythm stack's ideas, leave-one-fold-out")
    r.add_argument("--cache", type=Path, required=True, metavar="FEATURES.npz")
    a = sub.add_parser("alarms", help="the alarms' ideas, in-sample on the training folds")
    a.add_argument("--jobs", type=int, default=2)
    f = sub.add_parser("rhythm-features",
                       help="four more recording features for the rhythm stack, CV")
    f.add_argument("--bundle", default=str(REPO / "edge_ecg" / "assets" / "default_bundle"))
    f.add_argument("--cache", type=Path, required=True, metavar="FEATURES_PLUS.npz",
                   help="where the features are kept (computed when it does not exist)")
    v = sub.add_parser("svt", help="S beats alone and in runs, out of fold; an S run carried on")
    v.add_argument("--oof", action="append", default=[], metavar="FOLD=BUNDLE", required=True)
    v.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    if args.what == "beats":
        beats(args.cache)
    elif args.what == "rhythm":
        rhythm(args.cache)
    elif args.what == "rhythm-features":
        rhythm_features(args.bundle, args.cache)
    elif args.what == "svt":
        oof = {int(k): Path(b) for k, _, b in (o.partition("=") for o in args.oof)}
        if not oof or 0 in oof or not all(b.is_dir() for b in oof.values()):
            raise SystemExit("--oof: TRAINING_FOLD=BUNDLE_DIR, folds 1-4")
        svt(oof, args.jobs)
    else:
        alarms(args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
