"""Beat classes (AAMI EC57 N/S/V/F/Q) on patients never seen: the peers side by side on the SAME
detector beats and the SAME features, cross-validated by patient, and the bundled network on
the patients it never saw, with the peers beside it on those same records.

Records (../shared/data): MIT-BIH DS1 (the 22 records of the de Chazal inter-patient split;
the paced records carry no classes, 100 and 105 are DS2), SVDB (39 records, 128 Hz, ECG1 as
lead II only: databases.toml leaves ECG2 unassigned), and CUDB (18 records) for false V calls
only: its beats carry no classes.

Folds: the project's `subject_fold` (sha256 of the patient id mod 5), the split the bundled
model's recipe uses: folds 1-4 train it (edge_ecg/data/recipes/bundled.toml), fold 0 is held
out (recipes/heldout.toml). Each peer is fitted per fold on the MIT-BIH DS1 and SVDB records of
the other folds only, and classifies the fold's records; all folds pooled give the
cross-validated figures. The fold-0 table puts the peers trained on folds 1-4 beside the
network, which also never saw fold 0: like for like.

Beats and features: every record goes through `make_windows`' chain (invalid samples filled,
resample to the bundle's contract rate, its band-pass, `detect_beats` on all channels); every
classifier labels those detections; a reference beat the detector missed is a missed beat of
its class (EC57 as edge_ecg/metrics/beats.py scores it, gross: beats summed).

- `dechazal`: de Chazal et al. 2004 (bench/beat_peers.py): RR, QRS width and 2 x 19 samples,
  class-weighted LDA.
- `lda_ctx`, `tree`, `gbt`: transparent classical classifiers on the features the network's
  beat head reads beside the beat's samples: `beat_rr` (pre, post, window-mean RR) and their
  ratios, and the patient context `beat_ctx` (edge_ecg/signal/patient_context.py).
  `lda_ctx` the same class-weighted LDA (coefficients printed); `tree` a decision tree of depth
  TREE_DEPTH (its splits printed); `gbt` gradient-boosted trees of depth GBT_DEPTH (splits per
  feature printed). Class weights: the inverse square root of the class count (a choice made
  before any figure was seen: full balancing, LDA's, trades S +P for S Se).
- `network`: the bundle (default edge_ecg/assets/default_bundle) in onnxruntime, on fold 0
  only: windows every hop as `make_windows` builds them, `beat_ctx` included when the bundle
  reads it, each beat classified by the window the runtime's `BeatClasses` picks.

Figures: per database (MIT-BIH, SVDB), V and S Se / +P beside the issue's targets; false
ectopic calls per hour (a reference N beat or a false detection called S or V) on all records
and on the sinus-rhythm ones (MIT-BIH records whose rhythm notes are all `(N`; SVDB's
files carry almost no rhythm notes, so none of its records qualify); CUDB V calls per hour
outside ventricular flutter/fibrillation (its VT beats are 'N' positions: an upper bound on
false V there).

    python bench/beats_classes.py                      # everything, ~6-10 min on 2 cores
    python bench/beats_classes.py --quick              # a few records per database, ~1 min
    python bench/beats_classes.py --per-record --out beats_classes.json
    python bench/beats_classes.py --cache /tmp/bc_cache       # a rerun redoes only fold 0

Not a test: prints tables; nothing passes or fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from beat_peers import (
    CTX_FEATURES,
    BeatRecord,
    ClassWeightedLDA,
    DeChazalPeer,
    load_beat_record,
)

from edge_ecg.data.aami import AAMI_CLASSES
from edge_ecg.metrics.beats import (
    BeatClassScore,
    confusion_table,
    pool_class_scores,
    score_beat_classes,
)
from profiles.machine import this_machine

SHARED = REPO.parent / "shared" / "data"
DEFAULT_BUNDLE = REPO / "edge_ecg" / "assets" / "default_bundle"
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124",
       "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")
KFOLD = 5
HELD_OUT = 0
TREE_DEPTH = 5
GBT_DEPTH = 3
GBT_ITER = 150
MIN_LEAF = 50
PEERS = ("dechazal", "lda_ctx", "tree", "gbt")
NAMES = {"dechazal": "de Chazal 2004 (LDA, samples)", "lda_ctx": "LDA on beat_rr+beat_ctx",
         "tree": f"tree depth {TREE_DEPTH}, beat_rr+beat_ctx",
         "gbt": f"GBT depth {GBT_DEPTH}, beat_rr+beat_ctx", "network": "bundled network"}
TARGETS = {"v_se": 0.95, "v_ppv": 0.95, "s_se": 0.85, "s_ppv": 0.70}
DB_TITLES = {"mitdb": "MIT-BIH DS1", "svdb": "SVDB"}
N, S, V = (AAMI_CLASSES.index(c) for c in ("N", "S", "V"))


# -- the transparent peers ---------------------------------------------------------------------
def _weights(y: np.ndarray) -> np.ndarray:
    counts = np.bincount(y, minlength=len(AAMI_CLASSES)).astype(np.float64)
    w = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    w = w / w[y].mean()
    return w[y]


class ContextPeer:
    """One classifier (`lda_ctx`, `tree` or `gbt`) on CTX_FEATURES."""

    def __init__(self, kind: str, seed: int = 0) -> None:
        self.kind, self.seed = kind, seed

    def fit(self, records: list[BeatRecord]) -> ContextPeer:
        x = np.concatenate([r.ctx_features for r in records])
        y = np.concatenate([r.det_labels for r in records])
        lab = y >= 0
        x, y = x[lab], y[lab]
        if self.kind == "lda_ctx":
            self.model = ClassWeightedLDA().fit(x, y)
        elif self.kind == "tree":
            from sklearn.tree import DecisionTreeClassifier

            self.model = DecisionTreeClassifier(max_depth=TREE_DEPTH, min_samples_leaf=MIN_LEAF,
                                                random_state=self.seed)
            self.model.fit(x, y, sample_weight=_weights(y))
        elif self.kind == "gbt":
            from sklearn.ensemble import HistGradientBoostingClassifier

            self.model = HistGradientBoostingClassifier(
                max_depth=GBT_DEPTH, max_iter=GBT_ITER, learning_rate=0.1,
                min_samples_leaf=MIN_LEAF, early_stopping=False, random_state=self.seed)
            self.model.fit(x, y, sample_weight=_weights(y))
        else:
            raise ValueError(self.kind)
        return self

    def predict(self, rec: BeatRecord) -> np.ndarray:
        if rec.det_samples.size == 0:
            return np.zeros(0, np.int64)
        return np.asarray(self.model.predict(rec.ctx_features), dtype=np.int64)

    def explain(self) -> str:
        """Coefficients (LDA) or splits (trees): what the classifier reads."""
        if self.kind == "lda_ctx":
            m = self.model
            cls = [AAMI_CLASSES[c] for c in m.classes_]
            lines = ["standardised discriminant weights (feature x class):",
                     f"    {'feature':<14}" + "".join(f"{c:>8}" for c in cls)]
            order = np.argsort(-np.abs(m.coef_).max(1))
            for i in order:
                lines.append(f"    {CTX_FEATURES[i]:<14}" + "".join(
                    f"{v:>8.2f}" for v in m.coef_[i]))
            return "\n".join(lines)
        if self.kind == "tree":
            from sklearn.tree import export_text

            names = list(CTX_FEATURES)
            cls = [AAMI_CLASSES[c] for c in self.model.classes_]
            txt = export_text(self.model, feature_names=names, decimals=2, max_depth=TREE_DEPTH)
            for i, c in enumerate(cls):
                txt = txt.replace(f"class: {self.model.classes_[i]}", f"class: {c}")
            return "splits:\n" + txt
        counts = np.zeros(len(CTX_FEATURES), np.int64)
        for stage in getattr(self.model, "_predictors", []):
            for tree in stage:
                nodes = tree.nodes
                inner = nodes[~nodes["is_leaf"].astype(bool)]
                counts += np.bincount(inner["feature_idx"], minlength=counts.size)
        order = np.argsort(-counts)
        return "splits per feature (all trees): " + ", ".join(
            f"{CTX_FEATURES[i]} {counts[i]}" for i in order if counts[i])


def peer_predictions(recs: dict[str, BeatRecord], folds: dict[str, int], peers, log
                     ) -> tuple[dict, dict]:
    """{peer: {record: classes}} with each record classified by the peer fitted on the
    labelled records of the other folds; {peer: explanation} of the fold-HELD_OUT fit."""
    out = {p: {} for p in peers}
    explain = {}
    labelled = [r for r in recs if recs[r].has_classes]
    for f in sorted(set(folds.values())):
        train = [recs[r] for r in labelled if folds[r] != f]
        test = [r for r in recs if folds[r] == f]
        if not test:
            continue
        for p in peers:
            t0 = time.perf_counter()
            model = DeChazalPeer().fit(train) if p == "dechazal" else ContextPeer(p).fit(train)
            for r in test:
                out[p][r] = model.predict(recs[r])
            if f == HELD_OUT and p != "dechazal":
                explain[p] = model.explain()
            log(f"  fold {f}: {p} fitted on {len(train)} records, "
                f"{time.perf_counter() - t0:.1f} s")
    return out, explain


# -- the network -------------------------------------------------------------------------------
def network_classifier(backend, with_ctx: bool = True):
    """`classify(y, det, leads)` for `load_beat_record`: the bundle's per-beat classes of a
    filtered record's detections, windows every hop as `make_windows` builds them (with the
    patient context when the bundle reads `beat_ctx`), each beat classified by the window
    the runtime's `BeatClasses` picks (edge_ecg/runtime/record_beats.py's offline form)."""
    from edge_ecg.data.windows import window_starts
    from edge_ecg.runtime.beat_classes import BeatClasses
    from edge_ecg.signal.contract import InputBatch, SignalContract
    from edge_ecg.signal.patient_context import context_rows

    c = SignalContract.from_dict(backend.manifest.signal)
    task = next(t for t in backend.manifest.tasks if t["kind"] == "beat")
    labels = list(task.get("labels", []))
    use_ctx = with_ctx and "beat_ctx" in backend.manifest.inputs

    def classify(y: np.ndarray, r: np.ndarray, leads) -> np.ndarray:
        w = c.window_len
        starts = window_starts(y.shape[0], c, None)
        rows = (context_rows(y, r, c.fs_hz, c.beat_pre, c.beat_len - c.beat_pre)
                if use_ctx else None)
        bc = BeatClasses(labels, c.beat_pre, c.beat_len - c.beat_pre, c.fs_hz, c.max_beats, w)
        batch = InputBatch(c, capacity=64)
        lo, hi = np.searchsorted(r, starts), np.searchsorted(r, starts + w)
        for i in range(0, len(starts), 64):
            part = range(i, min(i + 64, len(starts)))
            batch.clear()
            for k in part:
                batch.add(y[starts[k]:starts[k] + w], leads, r[lo[k]:hi[k]] - starts[k],
                          None, None if rows is None else rows[lo[k]:hi[k]])
            probs = np.asarray(backend.run(batch.arrays())[task["output"]])
            for j, k in enumerate(part):
                s, beats = int(starts[k]), r[lo[k]:hi[k]]
                bc.assign(bc.claim(beats, s, s + w), beats, s, s + w, probs[j])
        out = np.full(r.size, -1, np.int64)
        for i, b in enumerate(r.tolist()):
            got = bc.take(b)
            lab = None if got is None else got.get("label")
            if lab in AAMI_CLASSES:
                out[i] = AAMI_CLASSES.index(lab)
        return out

    return classify, use_ctx


# -- scoring -----------------------------------------------------------------------------------
def score(rec: BeatRecord, pred: np.ndarray) -> BeatClassScore:
    return score_beat_classes(rec.ref_samples, rec.ref_classes, rec.det_samples, pred,
                              rec.fs_hz, record=rec.record)


def false_ectopic(recs: list[BeatRecord], preds: dict[str, np.ndarray]) -> dict:
    """False S and V calls per hour: detections called S or V that match a reference N beat
    or no reference beat at all (EC57's 150 ms)."""
    from edge_ecg.signal.scoring import MATCH_TOLERANCE_S, match_beats

    fs, fv, hours = 0, 0, 0.0
    for rec in recs:
        p = preds[rec.record]
        mr, md = match_beats(rec.ref_samples, rec.det_samples,
                             round(MATCH_TOLERANCE_S * rec.fs_hz))
        ref_of = np.full(rec.det_samples.size, -2, np.int64)     # -2: no reference beat
        ref_of[md] = rec.ref_classes[mr]
        if rec.has_classes:
            false = (ref_of == N) | (ref_of == -2)
        else:      # CUDB: positions only, every call outside VF is counted (an upper bound)
            false = np.ones(p.size, bool)
        fs += int(((p == S) & false).sum())
        fv += int(((p == V) & false).sum())
        hours += rec.hours
    return {"s_per_h": fs / hours if hours else float("nan"),
            "v_per_h": fv / hours if hours else float("nan"),
            "hours": hours, "records": len(recs)}


def _f(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.3f}"


def table(title: str, rows: dict[str, BeatClassScore], fe: dict[str, dict] | None = None):
    print(f"\n## {title}")
    print(f"  {'classifier':<34}{'V Se':>7}{'V +P':>7}{'S Se':>7}{'S +P':>7}{'F Se':>7}"
          f"{'F +P':>7}{'beats':>8}{'V':>6}{'S':>6}" + ("   false S/h  false V/h" if fe else ""))
    for name, g in rows.items():
        line = (f"  {NAMES.get(name, name):<34}{_f(g.se('V')):>7}{_f(g.ppv('V')):>7}"
                f"{_f(g.se('S')):>7}{_f(g.ppv('S')):>7}{_f(g.se('F')):>7}{_f(g.ppv('F')):>7}"
                f"{g.n_ref:>8}{int(g.confusion[V].sum()):>6}{int(g.confusion[S].sum()):>6}")
        if fe:
            e = fe[name]
            line += f"{e['s_per_h']:>12.1f}{e['v_per_h']:>11.1f}"
        print(line)
    print(f"  {'target (issue 25)':<34}{TARGETS['v_se']:>7.2f}{TARGETS['v_ppv']:>7.2f}"
          f"{TARGETS['s_se']:>7.2f}{TARGETS['s_ppv']:>7.2f}")


def _pc(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.0f}"


def record_lines(recs: list[BeatRecord], preds: dict[str, dict], names: list[str]) -> None:
    """Per record: V and S counts and each classifier's V/S Se and +P (%)."""
    head = "".join(f"{n[:15]:>17}" for n in names)
    print(f"  {'record':<12}{'V':>5}{'S':>5}{head}")
    print(f"  {'':<22}" + "".join(f"{'VSe VP SSe SP':>17}" for _ in names))
    for rec in recs:
        s = {n: score(rec, preds[n][rec.record]) for n in names}
        g = next(iter(s.values()))
        cells = "".join(f"{_pc(x.se('V')):>5}{_pc(x.ppv('V')):>4}{_pc(x.se('S')):>4}"
                        f"{_pc(x.ppv('S')):>4}" for x in s.values())
        print(f"  {rec.record:<12}{int(g.confusion[V].sum()):>5}{int(g.confusion[S].sum()):>5}"
              f"{cells}")


# -- main --------------------------------------------------------------------------------------
def record_list(root: Path, quick: bool) -> list[tuple[str, Path]]:
    """(db, path) of every record used; `--quick`: a few per database and fold."""
    from edge_ecg.data.mitbih import record_paths

    out = [("mitdb", root / "mitdb" / r) for r in DS1]
    for db in ("svdb", "cudb"):
        if (root / db).is_dir():
            out += [(db, p) for p in record_paths(str(root / db), db)]
    if quick:
        from edge_ecg.data.folds import subject_fold
        from edge_ecg.data.mitbih import subject_of

        kept, seen = [], {}
        for db, p in out:
            k = (db, subject_fold(subject_of(p, db), KFOLD))
            limit = 2 if k[1] == HELD_OUT else 1
            if seen.get(k, 0) < limit:
                kept.append((db, p))
                seen[k] = seen.get(k, 0) + 1
        out = kept
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=str(SHARED), help="the shared data folder")
    p.add_argument("--bundle", default=str(DEFAULT_BUNDLE),
                   help="the network scored on the held-out fold ('' for none)")
    p.add_argument("--peers", default=",".join(PEERS), help=f"comma list of {','.join(PEERS)}")
    p.add_argument("--quick", action="store_true", help="a few records per database and fold")
    p.add_argument("--seconds", type=float, default=0,
                   help="only the first S seconds of each record (REDUCED; 0 = whole records)")
    p.add_argument("--per-record", action="store_true", help="per-record lines for fold 0")
    p.add_argument("--out", default="", help="write every figure to this JSON file")
    p.add_argument("--cache", default="",
                   help="keep each record's beats and features here (pickles, this machine's "
                        "own): a rerun with another bundle recomputes only fold 0")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    p.add_argument("--no-beat-stack", action="store_true",
                   help="the network's own beat classes, without the bundle's beat stack")
    p.add_argument("--no-network-ctx", action="store_true",
                   help="hand the network beat_ctx all zero (a bundle trained before make_windows "
                        "filled it saw only zeros)")
    args = p.parse_args(argv)
    peers = [x for x in args.peers.split(",") if x]
    if set(peers) - set(PEERS):
        p.error(f"unknown peers {sorted(set(peers) - set(PEERS))}")

    from edge_ecg import DISCLAIMER
    from edge_ecg.signal.contract import SignalContract

    t_start = time.perf_counter()
    machine = this_machine()
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(
        sys.argv[1:] if argv is None else argv)])
    print(f"# bench/beats_classes.py on {machine.summary()} ({platform.platform()})")
    print(f"# command: {command}")
    root = Path(args.data_root).resolve()
    if not (root / "mitdb" / "101.hea").is_file():
        print(f"MIT-BIH records not found in {root / 'mitdb'}: nothing to measure")
        return 1
    backend, classify, use_ctx = None, None, False
    if args.bundle:
        from edge_ecg.runtime.backends import open_backend

        backend = open_backend(args.bundle, threads=max(1, args.threads),
                               beat_stack=not args.no_beat_stack)
        classify, use_ctx = network_classifier(backend, not args.no_network_ctx)
        stacked = type(backend).__name__ == "BeatStackedBackend"
        print(f"# network: {'with its beat stack (beat_stack.json) fused in' if stacked else 'alone (no beat stack)'}")
        contract = SignalContract.from_dict(backend.manifest.signal)
        reads = "beat_ctx" in backend.manifest.inputs
        print(f"# network: {args.bundle} (model {backend.manifest.model_version}); reads "
              f"beat_ctx: {'yes' if reads else 'no (a bundle from before the context)'}"
              f"{'; handed zeros (--no-network-ctx)' if reads and not use_ctx else ''}")
    else:
        contract = SignalContract(fs_hz=250.0)
    if args.quick:
        print("# REDUCED: --quick, a few records per database and fold")
    if args.seconds:
        print(f"# REDUCED: the first {args.seconds:g} s of each record")

    from edge_ecg.data.folds import subject_fold
    from edge_ecg.data.mitbih import subject_of

    recs: dict[str, BeatRecord] = {}
    folds: dict[str, int] = {}
    t0 = time.perf_counter()
    cache = Path(args.cache) if args.cache else None
    for db, path in record_list(root, args.quick):
        f = subject_fold(subject_of(path, db), KFOLD)
        t1 = time.perf_counter()
        # a cached record (no network classes: those depend on the bundle) is read back
        # unless the network must classify it
        tag = f"-{args.seconds:g}s" if args.seconds else ""
        hit = (cache / f"{db}-{path.name}-{contract.fs_hz:g}hz{tag}.pkl") if cache else None
        if hit is not None and hit.is_file() and not (classify and f == HELD_OUT):
            rec = pickle.loads(hit.read_bytes())
        else:
            rec = load_beat_record(path, contract, db=db, seconds=args.seconds or None,
                                   classify=classify if f == HELD_OUT else None)
            if hit is not None:
                hit.parent.mkdir(parents=True, exist_ok=True)
                hit.write_bytes(pickle.dumps(dataclasses.replace(rec, net_classes=None)))
        recs[rec.record], folds[rec.record] = rec, f
        print(f"#   {rec.record} (fold {f}): {rec.det_samples.size} beats, "
              f"{time.perf_counter() - t1:.1f} s", flush=True)
    if backend is not None:
        backend.close()
    print(f"# {len(recs)} records read, detected, featurised"
          f"{' and fold 0 classified by the network' if classify else ''} in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    for f in range(KFOLD):
        print(f"# fold {f}{' (held out from the bundle)' if f == HELD_OUT else ''}: "
              + " ".join(r for r in recs if folds[r] == f))

    preds, explain = peer_predictions(recs, folds, peers, lambda s: print(s, flush=True))
    if classify:
        preds["network"] = {r: recs[r].net_classes for r in recs if folds[r] == HELD_OUT}

    results: dict = {"cv": {}, "held_out": {}, "cudb": {}}
    for db in ("mitdb", "svdb"):
        dbr = [recs[r] for r in recs if recs[r].db == db]
        if not dbr:
            continue
        rows = {n: pool_class_scores([score(x, preds[n][x.record]) for x in dbr])
                for n in peers}
        fe = {n: false_ectopic(dbr, preds[n]) for n in peers}
        table(f"{DB_TITLES[db]}: cross-validated by patient ({KFOLD} folds pooled, "
              f"{len(dbr)} records)", rows, fe)
        sinus = [x for x in dbr if x.sinus]
        if sinus:
            print(f"  on the {len(sinus)} sinus-rhythm records ({' '.join(x.record for x in sinus)}"
                  f"), false calls per hour:")
            for n in peers:
                e = false_ectopic(sinus, preds[n])
                print(f"    {NAMES[n]:<34} S {e['s_per_h']:.1f}/h  V {e['v_per_h']:.1f}/h")
        results["cv"][db] = {n: {**rows[n].to_dict(), "false": fe[n]} for n in peers}
        held = [x for x in dbr if folds[x.record] == HELD_OUT]
        names = peers + (["network"] if classify else [])
        if held:
            hrows = {n: pool_class_scores([score(x, preds[n][x.record]) for x in held])
                     for n in names}
            hfe = {n: false_ectopic(held, preds[n]) for n in names}
            table(f"{DB_TITLES[db]}, fold {HELD_OUT} only (never seen by the network; peers "
                  f"fitted on folds 1-4): {' '.join(x.record for x in held)}", hrows, hfe)
            results["held_out"][db] = {n: {**hrows[n].to_dict(), "false": hfe[n]}
                                       for n in names}
            if classify:
                print("\n  network confusion (rows reference, columns called):")
                print("  " + confusion_table(hrows["network"]).replace("\n", "\n  "))
            if args.per_record:
                print("\n  per record (fold 0):")
                record_lines(held, preds, names)
    cu = [recs[r] for r in recs if recs[r].db == "cudb"]
    if cu:
        print(f"\n## CUDB ({len(cu)} records, {sum(x.hours for x in cu):.1f} h): calls per hour "
              f"outside VF/flutter (its beats carry no class: every V or S call counted)")
        for n in peers:
            e = false_ectopic(cu, preds[n])
            results["cudb"][n] = e
            print(f"  {NAMES[n]:<34} S {e['s_per_h']:.1f}/h  V {e['v_per_h']:.1f}/h")
        held = [x for x in cu if folds[x.record] == HELD_OUT]
        if classify and held:
            for n in peers + ["network"]:
                e = false_ectopic(held, preds[n])
                results["cudb"][f"{n}@fold0"] = e
                print(f"  fold 0 ({len(held)} records) {NAMES[n]:<22} S {e['s_per_h']:.1f}/h  "
                      f"V {e['v_per_h']:.1f}/h")
    for n, txt in explain.items():
        print(f"\n## {NAMES[n]}, fitted on folds 1-4: {txt}")
    wall = time.perf_counter() - t_start
    print(f"\n# wall time {wall:.0f} s; {machine.summary()}; contract {contract.fs_hz:g} Hz; "
          f"command: {command}")
    if args.out:
        doc = {"command": command, "machine": machine.to_dict(), "wall_s": wall,
               "quick": args.quick, "seconds": args.seconds, "bundle": args.bundle, "bundle_reads_beat_ctx": use_ctx,
               "folds": folds, "targets": TARGETS, "results": results}
        Path(args.out).write_text(json.dumps(doc, indent=1, default=float))
        print(f"# figures written to {args.out}")
    print(DISCLAIMER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
