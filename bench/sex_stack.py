"""Sex from 12-lead ECGs: the bundle, the linear feature peer, and a stack of the two, on
PTB-XL + LUDB records of fold 0 (what `recipe:heldout` scores), everything fitted on folds 1-4.

    python bench/sex_stack.py [--bundle DIR] [--data ../shared/data]

- network: the bundle's P(female), mean over a record's windows, called at 0.5 (as evaluate);
- peer: bench/classical_peers.py's logistic regression on median-beat morphology features
  (C by inner CV), fitted on folds 1-4;
- stack: the same kind of model on the peer's features plus the network's logit, C chosen by
  leave-one-fold-out CV over folds 1-4 (log loss), fitted on folds 1-4.

Caveat printed with the table: the network was trained on folds 1-4, so its outputs there are
in-sample; a stack fitted on them learns to trust the network more than it earns on new
patients. No network output on training records is out of sample without retraining it per
fold.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from classical_peers import extract_units, fit_predict_sex  # noqa: E402

from edge_ecg.metrics.field import auc  # noqa: E402
from edge_ecg.metrics.tasks import f1_binary  # noqa: E402

C_GRID = np.logspace(-3, 2, 11)


def network_p_female(bundle: str, specs: list[str]) -> dict[str, float]:
    """Record id -> the bundle's mean P(female) over the record's windows."""
    from edge_ecg.data.dataset import load_dataset
    from edge_ecg.data.tasks import TaskSet, TaskSpec
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.signal.contract import SignalContract

    be = open_backend(bundle, None, threads=1)
    try:
        m = be.manifest
        contract = SignalContract.from_dict(m.signal)
        tasks = TaskSet(tuple(TaskSpec.from_dict({k: v for k, v in t.items()
                                                  if k not in ("output", "trained_on")})
                              for t in m.tasks))
        out_name = next(t["output"] for t in m.tasks if t["name"] == "sex")
        ds = load_dataset(";".join(specs), contract, tasks, progress=False)
        p = np.concatenate([np.asarray(be.run({k: v[s:s + 32] for k, v in ds.inputs.items()})
                                       [out_name]).reshape(-1)
                            for s in range(0, len(ds), 32)])
    finally:
        be.close()
    by: dict[str, list[float]] = {}
    for i, meta in enumerate(ds.meta):
        by.setdefault(meta["record"], []).append(float(p[i]))
    return {r: float(np.mean(v)) for r, v in by.items()}, contract, tasks


def _fit_stack(x, y, groups, c):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                         LogisticRegression(C=c, max_iter=5000)).fit(x, y)


def choose_c(x, y, groups) -> float:
    """C by leave-one-fold-out log loss over the training folds."""
    best = None
    for c in C_GRID:
        loss = 0.0
        for f in sorted(set(groups.tolist())):
            tr, te = groups != f, groups == f
            p = np.clip(_fit_stack(x[tr], y[tr], groups[tr], c).predict_proba(x[te])[:, 1],
                        1e-6, 1 - 1e-6)
            loss -= float(np.sum(y[te] * np.log(p) + (1 - y[te]) * np.log(1 - p)))
        if best is None or loss < best[0]:
            best = (loss, c)
    return best[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(REPO / "edge_ecg" / "assets" / "default_bundle"))
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", FutureWarning)
    t0 = time.time()
    specs = [f"ptbxl:{args.data}/ptbxl", f"ludb:{args.data}/ludb"]
    p_net, contract, tasks = network_p_female(args.bundle, specs)
    units, skipped = extract_units([("ptbxl", specs[0]), ("ludb", specs[1])], contract, tasks,
                                   kfold=5, progress=False)
    units = [u for u in units if u.morph is not None and np.isfinite(u.labels["sex"])
             and u.record in p_net]
    y = np.array([int(u.labels["sex"]) for u in units])
    fold = np.array([u.fold for u in units])
    morph = np.stack([u.morph for u in units])
    pn = np.clip(np.array([p_net[u.record] for u in units]), 1e-6, 1 - 1e-6)
    x_stack = np.column_stack([np.log(pn / (1 - pn)), morph])
    tr, te = fold != 0, fold == 0
    peer = fit_predict_sex(morph[tr], y[tr], morph[te])
    c = choose_c(x_stack[tr], y[tr], fold[tr])
    stack = _fit_stack(x_stack[tr], y[tr], fold[tr], c).predict_proba(x_stack[te])[:, 1]
    yt = y[te]
    print(f"sex on fold 0 of PTB-XL + LUDB ({int(te.sum())} records, {int(yt.sum())} female; "
          f"fitted on {int(tr.sum())} records of folds 1-4; {time.time() - t0:.0f} s)")
    print(f"{'model':<34} {'F1 (female, 0.5)':>17} {'AUC':>6}")
    for name, p in (("network (bundle)", pn[te]), ("linear feature peer", peer),
                    (f"stack: network logit + peer (C={c:.3g})", stack)):
        print(f"{name:<34} {f1_binary(yt, (p >= 0.5).astype(int)):>17.3f} {auc(yt, p):>6.3f}")
    print("network on its own training folds 1-4 (in-sample): F1 "
          f"{f1_binary(y[tr], (pn[tr] >= 0.5).astype(int)):.3f} AUC {auc(y[tr], pn[tr]):.3f}")
    if skipped:
        print(f"skipped {len(skipped)} record(s): {skipped[:2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
