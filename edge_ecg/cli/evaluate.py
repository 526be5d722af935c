"""`edge-ecg evaluate`: per-task metrics of a checkpoint (torch) or an exported bundle (no torch).

    edge-ecg evaluate --checkpoint DIR --data SPEC [--json]
    edge-ecg evaluate --bundle DIR [--variant NAME] --data SPEC [--json]

Prints the field's standard metrics for each database in the data (edge_ecg.metrics.field):
CinC 2017 challenge F1 per recording, age MAE / sex AUC and F1 / rhythm macro F1 per PTB-XL or
LUDB record, RR MAE and AF-episode Se/+P on MIT-BIH, and every task's window metrics. With
--json, stdout is one JSON object: {"windows": {task: {metric: value}}, "<database>": {...}}.

A bundle with a `beat` task is also scored on every MIT-BIH record of the data as AAMI EC57
does (`"beat_classes"`: gross Se and +P of V, S and F, the confusion matrix, a row per
record): each record streamed through the runtime (its detector, windows and per-beat
classes), a reference beat the runtime missed or left unclassified counting as missed: every
beat of every record (the strict reading), and under `"ec57"` as EC57's comparator WFDB `bxb`
scores them (5-min learning period and VF episodes not scored; edge_ecg.metrics.beats). The
same streams' alarms are scored per database (`"alarms"`, edge_ecg.metrics.rhythm):
couplet and VT-run Se / +P, AF and VF episode and duration Se / +P, false VT / VF / AF alarms
per hour, and false ectopic beats and high-priority alarms per hour on the records in sinus
rhythm throughout.
"""

from __future__ import annotations

import argparse
import json
import sys

from edge_ecg import DISCLAIMER


def configure(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="checkpoint directory (`edge-ecg train --out`)")
    src.add_argument("--bundle", help="exported bundle directory (`edge-ecg export`)")
    p.add_argument("--variant", default=None, help="bundle variant (default: the manifest's)")
    p.add_argument("--data", required=True, help="data spec, as for `edge-ecg train`")
    p.add_argument("--json", action="store_true", help="print one JSON object of metrics")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="seed of a synthetic data spec")
    p.add_argument("--no-beat-stack", action="store_true",
                   help="score the network's own per-beat classes, without the bundle's "
                        "beat stack (beat_stack.json) fused in")
    p.add_argument("--vt-run", type=int, default=None, metavar="N",
                   help="V beats a fast run needs for the red VT alarm (default: the alarm "
                        "engine's, 3); 5 is the monitors' chain, 3-4 beats then a medium "
                        "non-sustained VT (edge_ecg.runtime.alarms); over --alarm-limits")
    p.add_argument("--alarm-limits", default=None, metavar="FILE.toml",
                   help="score the alarms under a unit's alarm limits (the TOML file `edge-ecg "
                        "stream --alarm-limits` reads; its [alarms] table)")


def _checkpoint_outputs(args, progress: bool):
    import torch

    from edge_ecg.data.dataset import load_dataset
    from edge_ecg.model.checkpoint import load_checkpoint
    from edge_ecg.model.evaluation import predict

    torch.set_num_threads(max(1, args.threads))
    model = load_checkpoint(args.checkpoint)
    cfg = model.cfg
    ds = load_dataset(args.data, cfg.contract, cfg.task_set, seed=args.seed, progress=progress)
    return (cfg.task_set, predict(model, ds.inputs, args.batch_size), ds, cfg.contract.window_s,
            None)


def _bundle_outputs(args, progress: bool):
    import numpy as np

    from edge_ecg.data.dataset import load_dataset
    from edge_ecg.data.tasks import TaskSet, TaskSpec
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.signal.contract import SignalContract

    backend = open_backend(args.bundle, args.variant, threads=max(1, args.threads),
                           beat_stack=not args.no_beat_stack)
    try:
        m = backend.manifest
        contract = SignalContract.from_dict(m.signal)
        specs = [TaskSpec.from_dict({k: v for k, v in t.items()
                                     if k not in ("output", "trained_on")})
                 for t in m.tasks]
        tasks = TaskSet(tuple(specs))
        output_of = {t["name"]: t["output"] for t in m.tasks}
        ds = load_dataset(args.data, contract, tasks, seed=args.seed, progress=progress)
        n = len(ds)
        parts: dict[str, list] = {}
        for s in range(0, n, args.batch_size):
            res = backend.run({k: v[s:s + args.batch_size] for k, v in ds.inputs.items()})
            for task, name in output_of.items():
                parts.setdefault(task, []).append(np.asarray(res[name]))
        beat_scores = (_ec57(backend, ds, progress, alarm_limits(args))
                       if any(t.per_beat for t in tasks) else None)
        rhythm = _rhythm_stack(backend, args, ds, progress)
        if rhythm is not None:
            beat_scores = {**(beat_scores or {}), "rhythm_stack": rhythm}
    finally:
        backend.close()
    outputs = {k: np.concatenate(v) for k, v in parts.items()}
    return tasks, outputs, ds, contract.window_s, beat_scores


def alarm_limits(args):
    """The `AlarmLimits` of `--alarm-limits` with `--vt-run` over them (checked as the file's
    own values are)."""
    from edge_ecg.runtime.alarm_settings import apply_limits, settings_from

    settings = settings_from(getattr(args, "alarm_limits", None))
    vt_run = getattr(args, "vt_run", None)
    if vt_run is None:
        return settings.limits
    return apply_limits(settings.limits, {"vt_run": int(vt_run)}, "--vt-run")


def _ec57(backend, ds, progress: bool, limits=None) -> dict | None:
    """AAMI EC57 scores of the bundle's beat classes on the data's records with reference beats
    (MIT-BIH, SVDB, CUDB; None when it has none), each record streamed through the runtime with
    its database's lead assignment. Beat classes are scored per database where the database's
    beat symbols are classes (not CUDB's: every QRS is 'N' there); alarms on all of them."""
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from edge_ecg.data.aami import AAMI_CLASSES, aami_indices
    from edge_ecg.data.mitbih import database, vf_episodes
    from edge_ecg.data.records import beats_only, find_beat_extension, read_annotations
    from edge_ecg.metrics.beats import EC57_LEARNING_S, pool_class_scores, score_beat_classes
    from edge_ecg.runtime.record_beats import stream_beat_classes

    dbs = ("mitdb", "svdb", "cudb")
    recs = {rid: info for rid, info in ds.records.items()
            if rid.split("-")[0] in dbs and "path" in info}
    if not recs:
        return None
    import wfdb

    from edge_ecg.metrics.rhythm import pool, record_counts, summarize
    from edge_ecg.runtime.alarm_settings import changed

    scores: dict[str, list] = {}
    ec57: dict[str, list] = {}
    alarm_counts: dict[str, list] = {}
    for rid, info in tqdm(sorted(recs.items()), desc="EC57 (runtime)", unit="rec",
                          disable=not progress):
        path = info["path"]
        name = Path(path).name
        ext = find_beat_extension(path) or "atr"
        marks = read_annotations(path, ext)     # read once: beats, and the VF marks below
        ann = beats_only(marks)
        n = int(round(info["seconds"] * info["fs_hz"]))
        keep = ann.sample < n
        ref_cls = aami_indices(np.asarray(ann.symbol)[keep], name, ext)
        alarms: list = []
        samples, classes, _ = stream_beat_classes(backend, path, seconds=info["seconds"],
                                                  alarms_out=alarms, leads=info.get("leads"),
                                                  alarm_limits=limits)
        db = rid.split("-")[0]
        base = str(path)[:-4] if str(path).endswith(".hea") else str(path)
        if Path(base + ".atr").exists():         # rhythm notes: .beat files have none
            atr = wfdb.rdann(base, "atr")
            alarm_counts.setdefault(db, []).append(record_counts(
                atr.sample, atr.symbol, atr.aux_note, samples, classes, alarms,
                info["fs_hz"], n, classified=database(db).beat_classes,
                ec57_from_s=EC57_LEARNING_S))
        if not database(db).beat_classes:
            continue
        det_cls = np.array([AAMI_CLASSES.index(c) if c in AAMI_CLASSES else -1
                            for c in classes], dtype=np.int64)
        scores.setdefault(db, []).append(score_beat_classes(
            ann.sample[keep], ref_cls, samples, det_cls, info["fs_hz"], record=name))
        ec57.setdefault(db, []).append(score_beat_classes(
            ann.sample[keep], ref_cls, samples, det_cls, info["fs_hz"], record=name,
            from_sample=round(EC57_LEARNING_S * info["fs_hz"]),
            excluded=vf_episodes(marks.sample, marks.symbol, n)))
    every = [s for v in scores.values() for s in v]
    stack = getattr(backend, "stack", None)
    adapt = getattr(stack, "adaptation", None)
    cont = getattr(stack, "continuation", None)
    svt = getattr(stack, "svt", None)
    out = {"scored_by": "runtime stream (detector + per-beat classes), EC57 150-ms match; "
                        "every beat of every record (the strict reading)",
           "alarms": {db: summarize(pool(c)) for db, c in alarm_counts.items()},
           "alarm_limits_changed": changed(limits) if limits is not None else {},
           # what made the classes: the beat stack, its patient adaptation, run
           # continuation and tachycardia episodes, if any
           "beat_stack": stack is not None,
           "patient_adaptation": adapt.to_dict() if adapt is not None else None,
           "run_continuation": cont.to_dict() if cont is not None else None,
           "svt_episode": svt.to_dict() if svt is not None else None}
    if every:
        out.update({"gross": pool_class_scores(every).to_dict(),
                    "records": [s.to_dict() for s in every],
                    "by_database": {db: pool_class_scores(v).to_dict()
                                    for db, v in scores.items()},
                    "ec57": {"rules": f"as WFDB bxb scores EC57: the first {EC57_LEARNING_S:g} s "
                                      "of each record not scored (learning period), nor beats "
                                      "inside reference VF/flutter episodes; +P read as "
                                      "`*_ppv_ec57` (fusion and Q beats called V not against "
                                      "V +P, Q called S not against S +P)",
                             "by_database": {db: pool_class_scores(v).to_dict()
                                             for db, v in ec57.items()},
                             "records": [s.to_dict() for v in ec57.values() for s in v]}})
    return out


def _rhythm_stack(backend, args, ds, progress: bool) -> dict | None:
    """The CinC challenge score of the bundle's rhythm stack (rhythm_stack.json), one call per
    recording of the data's cinc2017 sources, each replayed through the runtime for its whole
    RR history (edge_ecg.runtime.rhythm_history); None without a stack or CinC data. Recordings
    too short for a window are called too (from their RR history alone)."""
    from pathlib import Path

    import numpy as np

    from edge_ecg.cli.stack import _cinc_sources
    from edge_ecg.data.cinc2017 import read_reference
    from edge_ecg.metrics.field import confusion
    from edge_ecg.model.stacking import challenge_f1
    from edge_ecg.runtime.record_rhythm import cinc_rows, rhythm_classes
    from edge_ecg.runtime.recording_stack import RHYTHM_STACK, load_stack
    from edge_ecg.runtime.rhythm_history import feature_names

    m = backend.manifest
    if RHYTHM_STACK not in m.files or not any(r.startswith("cinc-") for r in ds.records):
        return None
    classes = rhythm_classes(m)
    stack = load_stack(args.bundle, m, RHYTHM_STACK, feature_names(classes))
    xs, ys = [], []
    for folder, _, _ in _cinc_sources(args.data):
        entries = [e for e in read_reference(folder) if f"cinc-{e.record}" in ds.records]
        _, x, y = cinc_rows(backend, Path(folder), entries, progress)
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    ok = y >= 0
    x, y = x[ok], y[ok]
    calls = np.argmax(stack.predict_proba(x), axis=1)
    net = np.argmax(x[:, :len(classes)], axis=1)       # the network's mean probabilities alone
    return {"recordings": int(y.size), **challenge_f1(y, calls, classes),
            "confusion": confusion(y, calls, len(classes)),
            "network_mean_challenge_f1": challenge_f1(y, net, classes)["challenge_f1"],
            "fitted_on": {k: stack.info[k] for k in ("data", "folds", "rows", "form", "C",
                                                     "depth", "iterations") if k in stack.info},
            "scored_by": "runtime stream per recording (whole RR history + non-overlapping "
                         "window probabilities) -> rhythm_stack.json"}


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from edge_ecg.metrics.field import field_metrics
    from edge_ecg.metrics.tasks import format_metrics

    progress = not args.json
    if args.checkpoint:
        tasks, outputs, ds, window_s, beat_scores = _checkpoint_outputs(args, progress)
    else:
        tasks, outputs, ds, window_s, beat_scores = _bundle_outputs(args, progress)
    metrics = field_metrics(tasks, outputs, ds, window_s)
    if beat_scores is not None and "rhythm_stack" in beat_scores:
        metrics.setdefault("cinc2017", {})["rhythm_stack"] = beat_scores.pop("rhythm_stack")
        beat_scores = beat_scores or None
    if beat_scores is not None:
        metrics["alarms"] = beat_scores.pop("alarms", {})
        metrics["beat_classes"] = beat_scores
    metrics["n_windows"] = len(ds)
    metrics["data"] = args.data
    if args.json:
        print(json.dumps(metrics, sort_keys=True, default=float))
        print(DISCLAIMER, file=sys.stderr)
        return 0
    src = args.checkpoint or args.bundle
    print(f"{src} on {args.data} ({len(ds)} windows):")
    print(format_metrics(metrics["windows"], {t.name: t.unit for t in tasks}))
    if beat_scores is not None:
        from edge_ecg.metrics.beats import BeatClassScore, confusion_table
        for db, g in beat_scores.get("by_database", {}).items():
            print(f"  beat classes on {db}, AAMI EC57 gross (streamed through the runtime):")
            print("  " + "  ".join(f"{c} Se {g[c.lower() + '_se']:.3f} "
                                   f"+P {g[c.lower() + '_ppv']:.3f}" for c in ("V", "S", "F")))
            score = BeatClassScore(record="gross", confusion=np.asarray(g["confusion"]),
                                   extra=np.asarray(list(g["extra"].values())),
                                   n_unlabelled=g["n_unlabelled"],
                                   n_unlabelled_detected=g["n_unlabelled_detected"])
            print("\n".join("    " + ln for ln in confusion_table(score).splitlines()))
            e = beat_scores["ec57"]["by_database"].get(db)
            if e:
                print("  the same as EC57 scores it (bxb: first 5 min, VF episodes and F/Q "
                      "called V not scored): " + "  ".join(
                          f"{c} Se {e[c.lower() + '_se']:.3f} +P {e[c.lower() + '_ppv_ec57']:.3f}"
                          for c in ("V", "S")))
        for db, a in metrics.get("alarms", {}).items():
            print(f"  alarms on {db} ({a['records']} records, {a['hours']} h, streamed): "
                  + "  ".join(f"{k} {a[k]:.3f}" for k in (
                      "vt_run_se", "vt_run_ppv", "couplet_se", "couplet_ppv", "af_episode_se",
                      "af_episode_ppv", "vf_episode_se", "vt_alarm_se", "false_vt_per_hour",
                      "false_nsvt_per_hour", "false_vf_per_hour")
                      if isinstance(a.get(k), float)))
    for name, res in metrics.items():
        if name in ("windows", "n_windows", "data", "beat_classes", "alarms") or \
                not isinstance(res, dict):
            continue
        fields = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                  for k, v in res.items() if k not in ("tasks", "confusion", "rhythm_stack")]
        print(f"  {name:<10} " + "  ".join(fields))
        st = res.get("rhythm_stack")
        if st:
            print(f"  {'':<10} rhythm stack (whole RR history + network, per recording): "
                  f"challenge_f1={st['challenge_f1']:.4g} f1_N={st['f1_N']:.4g} "
                  f"f1_A={st['f1_A']:.4g} f1_O={st['f1_O']:.4g} over {st['recordings']} "
                  f"recordings (network mean alone {st['network_mean_challenge_f1']:.4g})")
        if "confusion" in res:
            print(f"  {'':<10} confusion (rows: reference, cols: call): {res['confusion']}")
    print(DISCLAIMER)
    return 0
