"""`edge-ecg stack --beats`: fit the per-beat stack of a bundle and write it into it.

    edge-ecg stack --beats --bundle DIR --val-from CHECKPOINT [--data recipe:bundled] [--jobs 2]

Every record of the data's MIT-BIH and SVDB sources (their training folds) goes through the
runtime's chain (edge_ecg.runtime.beat_stack_rows); gradient-boosted trees on each beat's RR
and patient context are fitted to the reference classes, and their share beside the network is
chosen where neither has seen the patients, never on a test fold (edge_ecg.model.beat_stacking):
out of fold with `--oof FOLD=BUNDLE` per training fold (each bundle's network trained without
that fold, the bundled recipe's beat data: bench/beat_stack_oof.py makes them), or on the
network's validation patients (`--val-from`, named in CHECKPOINT/metrics.json by `edge-ecg
train`). Out of fold, a stacked form (trees that also read the networks' log-probabilities) is
scored beside the shares and shipped only where it scores best. `--runs N` adds synthetic
sustained runs from each record's own beats to the trees' fits (off by default; measured, it
raised false VT alarms: edge_ecg.runtime.beat_stack_runs). The result is written as
`beat_stack.json` into the bundle, the manifest rehashed, and the bundle re-signed with
--sign-key. Every backend opened on the bundle then fuses its per-beat classes with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

BEAT_DATABASES = ("mitdb", "svdb")        # the shared databases whose beats carry classes


def beat_specs(spec: str) -> list[tuple[str, str, dict, dict, str]]:
    """(db, body, options, recipe overrides, the part as written) of each MIT-BIH / SVDB
    part of `spec`."""
    from urllib.parse import parse_qsl

    from edge_ecg.data.specs import split_specs

    out = []
    for s, over in split_specs(spec):
        db, _, rest = s.partition(":")
        if db in BEAT_DATABASES:
            body, _, query = rest.partition("?")
            out.append((db, body, dict(parse_qsl(query)), over, s))
    return out


def beat_sources(spec: str, allow_fold0: bool) -> list[tuple[str, Path, object]]:
    """(db, folder, keep) of each MIT-BIH / SVDB source of `spec`."""
    from edge_ecg.data.specs import _fold_keep
    from edge_ecg.errors import EdgeECGError

    out = []
    for db, body, opts, _, s in beat_specs(spec):
        folds = ({int(f) for f in opts["folds"].split(",") if f.strip()}
                 if "folds" in opts else None)
        if not allow_fold0 and (folds is None or 0 in folds):
            raise EdgeECGError(f"--data: {db}:{body} includes fold 0, which recipe:heldout "
                               "scores; name training folds (?folds=1,2,3,4) or pass "
                               "--allow-fold0")
        out.append((db, Path(body), _fold_keep(opts, s)))
    if not out:
        raise EdgeECGError(f"--data {spec}: no mitdb or svdb source to fit the beat stack on")
    return out


def val_subjects(path: Path) -> set[str]:
    import json

    from edge_ecg.errors import EdgeECGError

    f = path / "metrics.json" if path.is_dir() else path
    try:
        subjects = json.loads(f.read_text()).get("val_subjects")
    except (OSError, ValueError) as exc:
        raise EdgeECGError(f"--val-from {path}: cannot read its metrics.json ({exc})") from None
    if not isinstance(subjects, list) or not subjects:
        raise EdgeECGError(f"--val-from {path}: its metrics.json names no val_subjects; "
                           "retrain with this edge-ecg (it records them)")
    return {str(s) for s in subjects}


def parse_oof(items: list[str]) -> dict[int, Path]:
    """`{fold: bundle}` from `--oof FOLD=BUNDLE` items; fold 0 (the held-out fold) refused."""
    out: dict[int, Path] = {}
    for it in items:
        k, sep, b = it.partition("=")
        if not sep or not k.strip().isdigit() or not b.strip():
            raise ValueError(f"--oof {it!r}: expected FOLD=BUNDLE, e.g. 1=/tmp/oof/b1")
        fold = int(k)
        if fold == 0:
            raise ValueError("--oof 0=...: fold 0 is recipe:heldout's; the share is chosen on "
                             "training folds only")
        if fold in out:
            raise ValueError(f"--oof names fold {fold} twice")
        if not Path(b).is_dir():
            raise ValueError(f"--oof {it}: {b} is not a bundle directory")
        out[fold] = Path(b)
    return out


def save_rows(path: Path, key: str, sets: dict[str, list]) -> None:
    """`sets` (`{name: [BeatRows]}`) as one .npz (no pickle), stamped with `key`."""
    import numpy as np

    arrays = {"key": np.array(key)}
    for name, rows in sets.items():
        arrays[f"{name}.record"] = np.array([r.record for r in rows], dtype=str)
        arrays[f"{name}.subject"] = np.array([r.subject for r in rows], dtype=str)
        arrays[f"{name}.n"] = np.array([r.y.size for r in rows], dtype=np.int64)
        for f in ("x", "y", "p_net"):
            arrays[f"{name}.{f}"] = np.concatenate([getattr(r, f) for r in rows])
    np.savez(path, **arrays)


def load_rows(path: Path, key: str, names: list[str]) -> dict[str, list] | None:
    """The sets `save_rows` wrote, if `path` holds them for the same `key`; None if not."""
    import numpy as np

    from edge_ecg.runtime.beat_stack_rows import BeatRows

    with np.load(path, allow_pickle=False) as z:
        if "key" not in z.files or str(z["key"]) != key:
            return None
        out = {}
        for name in names:
            if f"{name}.n" not in z.files:
                return None
            ends = np.cumsum(z[f"{name}.n"])
            cut = {f: np.split(z[f"{name}.{f}"], ends[:-1]) for f in ("x", "y", "p_net")}
            out[name] = [BeatRows(record=str(rec), subject=str(sub), x=cut["x"][i],
                                  y=cut["y"][i], p_net=cut["p_net"][i])
                         for i, (rec, sub) in enumerate(zip(z[f"{name}.record"],
                                                            z[f"{name}.subject"]))]
    return out


def _set_adaptation(args) -> int:
    """`--adaptation-only`: the bundle's beat stack with `--patient-adaptation`,
    `--run-continuation` and `--svt-episode` set, its trees untouched; the manifest rehashed
    and the bundle signed."""
    import warnings
    from dataclasses import replace

    from edge_ecg.cli.bundle import trust_policy
    from edge_ecg.cli.stack_install import install_stack
    from edge_ecg.errors import BundleError
    from edge_ecg.runtime.beat_stack import BEAT_STACK, load_beat_stack
    from edge_ecg.runtime.bundle import verify_bundle
    from edge_ecg.runtime.patient_adaptation import AdaptationConfig
    from edge_ecg.runtime.run_continuation import ContinuationConfig
    from edge_ecg.runtime.signing import UnsignedBundleWarning
    from edge_ecg.runtime.svt_episode import SvtConfig

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsignedBundleWarning)
            manifest, _ = verify_bundle(args.bundle, trust=trust_policy(args))
        stack = load_beat_stack(args.bundle, manifest)
    except BundleError as exc:
        print(f"edge-ecg stack --beats --adaptation-only: {exc}", file=sys.stderr)
        return 1
    if stack is None:
        print(f"edge-ecg stack --beats --adaptation-only: {args.bundle} has no beat stack: fit "
              "one first (`edge-ecg stack --beats`)", file=sys.stderr)
        return 1
    cfg = AdaptationConfig() if args.patient_adaptation == "on" else None
    cont = ContinuationConfig() if args.run_continuation == "on" else None
    svt = SvtConfig() if args.svt_episode == "on" else None
    stack = replace(stack, adaptation=cfg, continuation=cont, svt=svt)
    metrics = dict(manifest.metrics.get("beat_stack", {}))
    metrics["patient_adaptation"] = None if cfg is None else cfg.to_dict()
    metrics["run_continuation"] = None if cont is None else cont.to_dict()
    metrics["svt_episode"] = None if svt is None else svt.to_dict()
    install_stack(args.bundle, manifest, BEAT_STACK, stack.write, "beat_stack", metrics,
                  args.sign_key, note=f" (patient adaptation {args.patient_adaptation}, "
                                      f"run continuation {args.run_continuation}, "
                                      f"SVT episodes {args.svt_episode})")
    return 0


def _verified(bundle, trust):
    """The bundle's manifest, verified under the command's trust policy (warnings off: the
    policy was stated on the command line)."""
    import warnings

    from edge_ecg.runtime.bundle import load_bundle
    from edge_ecg.runtime.signing import UnsignedBundleWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsignedBundleWarning)
        return load_bundle(bundle, trust=trust)


def _network_of(bundle, variant, trust) -> str:
    """What a bundle's rows depend on: its model version and the variant's file hash."""
    m = _verified(bundle, trust)
    v = m.variant(variant)
    return f"{m.model_version}:{v.name}:{m.files.get(v.file, {}).get('sha256', '')}"


def _rows_job(job):
    """One record's rows, in a worker process with its own backend (one thread)."""
    bundle, variant, db, path, trust = job
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.beat_stack_rows import record_rows

    backend = open_backend(bundle, variant, threads=1, beat_stack=False,
                           manifest=_verified(bundle, trust))
    try:
        return record_rows(path, db, backend)
    finally:
        backend.close()


def _runs_job(job):
    """One record's synthetic run rows (no network: the trees' extra rows)."""
    signal, labels, db, path, runs, seed = job
    from edge_ecg.runtime.beat_stack_rows import record_run_rows

    return record_run_rows(path, db, signal, labels, runs, seed)


def run(args) -> int:
    import warnings
    from concurrent.futures import ProcessPoolExecutor

    from edge_ecg import DISCLAIMER
    from edge_ecg.cli.bundle import trust_policy
    from edge_ecg.cli.stack_install import install_stack
    from edge_ecg.data.folds import subject_fold
    from edge_ecg.data.mitbih import record_paths, subject_of
    from edge_ecg.errors import BundleError
    from edge_ecg.model.beat_stacking import fit_beat_stack
    from edge_ecg.runtime.beat_stack import BEAT_STACK, FEATURES, parse_beat_stack
    from edge_ecg.runtime.bundle import verify_bundle
    from edge_ecg.runtime.signing import UnsignedBundleWarning

    if getattr(args, "adaptation_only", False):
        return _set_adaptation(args)
    if args.val_from is None and not args.oof:
        print("edge-ecg stack --beats: --oof FOLD=BUNDLE (one per training fold) or "
              "--val-from CHECKPOINT is required (they choose the stack's share)",
              file=sys.stderr)
        return 2
    try:
        oof_bundles = parse_oof(args.oof)
    except ValueError as exc:
        print(f"edge-ecg stack --beats: {exc}", file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsignedBundleWarning)
        manifest, _ = verify_bundle(args.bundle, trust=trust_policy(args))
    task = next((t for t in manifest.tasks if t.get("kind") == "beat"), None)
    if task is None or "beat_ctx" not in manifest.inputs:
        print(f"edge-ecg stack --beats: {args.bundle} has no per-beat task reading the patient "
              "context (beat_ctx)", file=sys.stderr)
        return 1
    labels = list(task["labels"])
    vals = val_subjects(args.val_from) if not oof_bundles else None
    records = [(db, p) for db, folder, keep in beat_sources(args.data, args.allow_fold0)
               for p in record_paths(str(folder), db) if keep is None or keep(subject_of(p, db))]
    trust = trust_policy(args)       # the out-of-fold bundles are verified as this one is
    jobs = [(args.bundle, args.variant, db, p, trust) for db, p in records]
    # each held-out training fold's records through the network trained without that fold
    oof_jobs = [(str(b), None, db, p, trust) for k, b in sorted(oof_bundles.items())
                for db, p in records if subject_fold(subject_of(p, db)) == k]
    print(f"beat stack: {len(jobs)} records through the runtime"
          + (f", and {len(oof_jobs)} through the out-of-fold networks" if oof_jobs else "")
          + f" ({args.jobs} process(es))", file=sys.stderr)
    import json

    from tqdm import tqdm

    try:
        oof_nets = {k: _network_of(b, None, trust) for k, b in sorted(oof_bundles.items())}
    except BundleError as exc:
        print(f"edge-ecg stack --beats: --oof: {exc}", file=sys.stderr)
        return 1
    runs = max(int(getattr(args, "runs", 0)), 0)
    run_jobs = ([(manifest.signal, labels, db, p, runs, args.seed) for db, p in records]
                if runs else [])
    key = json.dumps({"network": _network_of(args.bundle, args.variant, trust),
                      "oof": oof_nets,
                      "records": [str(p) for _, p in records],
                      **({"runs": [runs, args.seed]} if runs else {})}, sort_keys=True)
    names = ["net"] + (["oof"] if oof_jobs else []) + (["runs"] if runs else [])
    cached = None
    if args.cache is not None and args.cache.is_file():
        cached = load_rows(args.cache, key, names)
        if cached is None:
            print(f"edge-ecg stack --beats: {args.cache} holds rows of other networks or "
                  "records; delete it to recompute", file=sys.stderr)
            return 1
        done = cached["net"] + cached.get("oof", [])
        run_rows = cached.get("runs", [])
        print(f"beat stack: rows of {len(done)} record runs from {args.cache}", file=sys.stderr)
    else:
        with ProcessPoolExecutor(max_workers=max(int(args.jobs), 1)) as pool:
            done = list(tqdm(pool.map(_rows_job, jobs + oof_jobs),
                             total=len(jobs) + len(oof_jobs), desc="records", unit="rec",
                             file=sys.stderr))
            run_rows = list(tqdm(pool.map(_runs_job, run_jobs), total=len(run_jobs),
                                 desc="synthetic runs", unit="rec", file=sys.stderr))
        if args.cache is not None:
            save_rows(args.cache, key, {"net": done[:len(jobs)], "oof": done[len(jobs):],
                                        **({"runs": run_rows} if runs else {})})
    if runs:
        print(f"beat stack: {sum(r.y.size for r in run_rows)} synthetic run rows from "
              f"{sum(r.y.size > 0 for r in run_rows)} record(s) with V or S beats", file=sys.stderr)
    rows, oof = done[:len(jobs)], {}
    for (b, _, db, p, _), r in zip(oof_jobs, done[len(jobs):]):
        oof.setdefault(subject_fold(subject_of(p, db)), []).append(r)
    missing = sorted(set(oof_bundles) - set(oof))
    if missing:
        print(f"edge-ecg stack --beats: --oof names fold(s) {missing}, but the data holds no "
              "record of them", file=sys.stderr)
        return 1

    def fuse(doc, p_net, x):
        return parse_beat_stack(doc, "candidate").fuse_features(p_net, x)

    doc = fit_beat_stack(rows, vals, task["name"], labels, FEATURES, fuse, seed=args.seed,
                         log=lambda m: print(m, file=sys.stderr), oof=oof or None,
                         fold_of=subject_fold, runs=run_rows)
    if oof:
        # which networks: their model versions and file hashes (a path would name a
        # temporary folder of the machine that fitted it)
        doc["info"]["oof_networks"] = {str(k): v for k, v in oof_nets.items()}
    doc["info"].update(data=args.data, network_variant=args.variant or manifest.default_variant,
                       model_version=manifest.model_version)
    if getattr(args, "patient_adaptation", "on") == "on":
        from edge_ecg.runtime.patient_adaptation import AdaptationConfig

        doc["patient_adaptation"] = AdaptationConfig().to_dict()
    if getattr(args, "run_continuation", "on") == "on":
        from edge_ecg.runtime.run_continuation import ContinuationConfig

        doc["run_continuation"] = ContinuationConfig().to_dict()
    if getattr(args, "svt_episode", "on") == "on":
        from edge_ecg.runtime.svt_episode import SvtConfig

        doc["svt_episode"] = SvtConfig().to_dict()
    stack = parse_beat_stack(doc, "fitted beat stack")
    if args.dry_run:
        return 0
    choice = stack.info["weight_choice"]
    chosen = stack.info.get("chosen", str(stack.weight))     # a share, or "stacked"
    install_stack(args.bundle, manifest, BEAT_STACK, stack.write, "beat_stack",
                  {"kind": stack.kind, "weight": stack.weight, "validation": choice[chosen],
                   "chosen_on": stack.info["chosen_on"],
                   "network_alone_validation": choice[str(0.0)],
                   "validation_records": stack.info["validation_records"],
                   "beats": stack.info["beats"]}, args.sign_key,
                  note=f" ({stack.kind}, w={stack.weight}, {stack.trees.roots.size} trees, "
                       f"{stack.trees.left.size} nodes)")
    print(DISCLAIMER)
    return 0
