"""`edge-ecg stack`: fit the recording-level rhythm stack of a bundle and write it into it.

    edge-ecg stack --bundle DIR --data recipe:bundled [--limit N] [--form best|logistic|gbt]
                   [--sign-key KEY]

Each CinC 2017 recording of the data's training folds is replayed through the runtime (as
`edge-ecg stream` would run it); its whole beat history gives RR-irregularity and morphology
features (edge_ecg.signal.rhythm_features) beside the network's window probabilities over the
recording (edge_ecg.runtime.rhythm_history). A multinomial logistic regression or
gradient-boosted trees over them, whichever cross-validates better over those folds (one
fold left out at a time; edge_ecg.model.stacking; `--form` keeps to one), is
written as `rhythm_stack.json` into the bundle, the manifest rehashed (the stack is one of its
files), and the bundle re-signed with --sign-key (unsigned otherwise: sign it with
`edge-ecg bundle sign`). `edge-ecg stream` and `edge-ecg evaluate` then use it.

Only the data's cinc2017 sources are read; a source that includes fold 0 (what
`recipe:heldout` scores) is refused unless --allow-fold0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_ecg import DISCLAIMER


def configure(p: argparse.ArgumentParser) -> None:
    from edge_ecg.cli.bundle import add_trust_options

    p.add_argument("--bundle", required=True, type=Path, help="bundle directory to add it to")
    p.add_argument("--data", default="recipe:bundled",
                   help="data spec; its cinc2017 sources (with their folds) are fitted on "
                        "(default: recipe:bundled, folds 1-4)")
    p.add_argument("--limit", type=int, default=0,
                   help="at most this many recordings, a seeded class-stratified subset "
                        "(0, the default: all of them; the 5 432 training recordings of "
                        "recipe:bundled take ~3.5 min through the runtime here)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", default=None, help="bundle variant (default: the manifest's)")
    p.add_argument("--cache", type=Path, default=None,
                   help="an .npz of the features (with --beats: the per-beat rows): read "
                        "when it exists, written otherwise (refit without replaying the "
                        "records)")
    p.add_argument("--sign-key", type=Path, default=None,
                   help="private key to re-sign the bundle with after adding the stack")
    p.add_argument("--allow-fold0", action="store_true",
                   help="fit on a source that includes fold 0 (then recipe:heldout is no "
                        "longer held out)")
    p.add_argument("--dry-run", action="store_true",
                   help="fit and print the cross-validated figures; leave the bundle as it is")
    p.add_argument("--form", choices=("best", "logistic", "gbt"), default="best",
                   help="the rhythm stack's form: the one that cross-validates best on the "
                        "training folds (default), or only the logistic regression (one "
                        "readable weight per feature and class) or only the trees")
    beats = p.add_argument_group(
        "per-beat stack (--beats)",
        "gradient-boosted trees on each beat's RR and patient context, fused with the "
        "network's beat classes (edge_ecg.runtime.beat_stack); fitted on the data's mitdb and "
        "svdb sources, their share chosen out of fold (--oof) or on the network's validation "
        "patients (--val-from)")
    beats.add_argument("--beats", action="store_true",
                       help="fit the per-beat stack (beat_stack.json) instead of the rhythm stack")
    beats.add_argument("--val-from", type=Path, default=None, metavar="CHECKPOINT",
                       help="the checkpoint (or its metrics.json) whose val_subjects choose "
                            "the stack's share beside the network")
    beats.add_argument("--oof", action="append", default=[], metavar="FOLD=BUNDLE",
                       help="choose the share out of fold instead: BUNDLE holds a network "
                            "trained without training fold FOLD (same recipe; the data's "
                            "records of that fold are scored through it). Give one per "
                            "training fold, e.g. --oof 1=B1 --oof 2=B2 --oof 3=B3 --oof 4=B4")
    beats.add_argument("--runs", type=int, default=0, metavar="N",
                       help="add N synthetic sustained runs per training record, laid from its "
                            "own V and S beats, to the trees' fits (the training records hold "
                            "no ventricular run longer than 18 beats; "
                            "edge_ecg.runtime.beat_stack_runs). Off by default (0): measured "
                            "on the training folds, they raised false VT alarms "
                            "(bench/beat_stack_folds.py)")
    beats.add_argument("--jobs", type=int, default=1,
                       help="records replayed in parallel, one process each (default 1)")
    beats.add_argument("--patient-adaptation", choices=("on", "off"), default="on",
                       help="after a 5-min learning period the patient's own beats veto V "
                            "calls that look like their normal beats "
                            "(edge_ecg.runtime.patient_adaptation; default on: chosen out of "
                            "fold on the training folds, bench/patient_adapt.py)")
    beats.add_argument("--run-continuation", choices=("on", "off"), default="on",
                       help="a run of 3 V calls goes on while its beats stay wide and unlike "
                            "the patient's dominant beat (edge_ecg.runtime.run_continuation; "
                            "default on: chosen out of fold on the training folds, "
                            "bench/beat_stack_folds.py --continuation)")
    beats.add_argument("--svt-episode", choices=("on", "off"), default="on",
                       help="a supraventricular tachycardia that starts abruptly (8 beats in "
                            "a row, regular, at <= 0.75 x the patient's RR before) is called "
                            "S beat by beat while it lasts (edge_ecg.runtime.svt_episode; "
                            "default on: chosen on the training folds, "
                            "bench/stack_ideas.py svt)")
    beats.add_argument("--adaptation-only", action="store_true",
                       help="only set --patient-adaptation, --run-continuation and "
                            "--svt-episode on the "
                            "bundle's fitted beat stack (its trees untouched), rehash and "
                            "sign; no data is read")
    add_trust_options(p)


def _cinc_sources(spec: str) -> list[tuple[str, object, set | None]]:
    """(folder, keep, folds) of each cinc2017 source of `spec`."""
    from urllib.parse import parse_qsl

    from edge_ecg.data.specs import _fold_keep, split_specs

    out = []
    for s, _ in split_specs(spec):
        if not s.startswith("cinc2017:"):
            continue
        body, _, query = s.removeprefix("cinc2017:").partition("?")
        opts = dict(parse_qsl(query))
        folds = ({int(f) for f in opts["folds"].split(",") if f.strip()}
                 if "folds" in opts else None)
        out.append((body, _fold_keep(opts, s), folds))
    return out


def collect(backend, data: str, limit: int | None, seed: int, allow_fold0: bool,
            progress: bool):
    """(ids, X, y, groups) of the data's CinC training recordings, through the runtime."""
    import numpy as np

    from edge_ecg.data.cinc2017 import read_reference
    from edge_ecg.data.folds import subject_fold
    from edge_ecg.errors import EdgeECGError
    from edge_ecg.runtime.record_rhythm import cinc_rows, select_entries

    sources = _cinc_sources(data)
    if not sources:
        raise EdgeECGError(f"--data {data}: no cinc2017 source to fit the rhythm stack on")
    ids, xs, ys = [], [], []
    for folder, keep, folds in sources:
        if not allow_fold0 and (folds is None or 0 in folds):
            raise EdgeECGError(f"--data: cinc2017:{folder} includes fold 0, which "
                               "recipe:heldout scores; name training folds (?folds=1,2,3,4) "
                               "or pass --allow-fold0")
        entries = select_entries(read_reference(folder), keep, limit or None, seed)
        i, x, y = cinc_rows(backend, folder, entries, progress)
        ids += i
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    groups = np.array([subject_fold(s) for s in ids])
    return ids, x, y, groups


def run(args: argparse.Namespace) -> int:
    if args.beats:
        from edge_ecg.cli.stack_beats import run as run_beats

        return run_beats(args)
    import json
    import warnings

    import numpy as np

    from edge_ecg.cli.bundle import trust_policy
    from edge_ecg.cli.stack_install import install_stack
    from edge_ecg.model.stacking import C_GRID, GBT_GRID, fit_stack
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.bundle import verify_bundle
    from edge_ecg.runtime.record_rhythm import rhythm_classes
    from edge_ecg.runtime.recording_stack import RHYTHM_STACK, parse_stack
    from edge_ecg.runtime.rhythm_history import TASK, feature_names
    from edge_ecg.runtime.signing import UnsignedBundleWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsignedBundleWarning)
        manifest, _ = verify_bundle(args.bundle, trust=trust_policy(args))
    classes = rhythm_classes(manifest)
    names = feature_names(classes)
    if args.cache is not None and args.cache.is_file():
        z = np.load(args.cache, allow_pickle=False)
        if tuple(z["features"].tolist()) != names:
            print(f"edge-ecg stack: {args.cache} holds other features; delete it to recompute",
                  file=sys.stderr)
            return 1
        x, y, groups = z["x"], z["y"], z["groups"]
        print(f"features of {len(y)} recordings from {args.cache}", file=sys.stderr)
    else:
        backend = open_backend(args.bundle, args.variant, threads=1, manifest=manifest)
        try:
            _, x, y, groups = collect(backend, args.data, args.limit, args.seed,
                                      args.allow_fold0, progress=True)
        finally:
            backend.close()
        if args.cache is not None:
            np.savez(args.cache, x=x, y=y, groups=groups, features=np.array(names))
    doc = fit_stack(x, y, groups, classes, names, TASK,
                    network_cols=list(range(len(classes))),
                    cs=() if args.form == "gbt" else C_GRID,
                    gbt=() if args.form == "logistic" else GBT_GRID)
    doc["info"].update(data=args.data, limit=args.limit, seed=args.seed,
                       network_variant=args.variant or manifest.default_variant,
                       model_version=manifest.model_version)
    stack = parse_stack(json.loads(json.dumps(doc)), "fitted stack", names)
    info = stack.info
    cv, net = info["cv"], info["cv_network_alone"]
    form = (f"logistic, C={info['C']} class_weight={info['class_weight']}"
            if info["form"] == "logistic" else
            f"gradient-boosted trees, depth {info['depth']}, {info['iterations']} iterations")
    print(f"rhythm stack on {info['rows']} CinC recordings (folds {info['folds']}), "
          f"{form}; leave-one-fold-out CV: "
          f"challenge F1 {cv['challenge_f1']:.3f} (N {cv['f1_N']:.3f} A {cv['f1_A']:.3f} "
          f"O {cv['f1_O']:.3f}); the network's mean probabilities alone on the same "
          f"recordings {net['challenge_f1']:.3f}")
    if args.dry_run:
        return 0
    install_stack(args.bundle, manifest, RHYTHM_STACK, stack.write, "rhythm_stack",
                  {"cv": cv, "cv_network_alone": net, "rows": info["rows"],
                   "folds": info["folds"]}, args.sign_key)
    print(DISCLAIMER)
    return 0
