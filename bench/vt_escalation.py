"""Escalating a slow ventricular run that speeds up to the red VT alarm
(`AlarmLimits.vt_escalate_beats`), measured out of fold on the training folds.

    python bench/vt_escalation.py --oof 1=B1 --oof 2=B2 --oof 3=B3 --oof 4=B4 \\
        [--settings 0,3,4,5,6,8,10] [--jobs 2]

Bk: a bundle whose network and beat stack never saw training fold k (bench/beat_stack_folds.py
--out leaves one per fold, e.g. runs0-on-cont-on/fk: the shipped stack's settings). Each
MIT-BIH and SVDB record of fold k is streamed once through Bk, as `edge-ecg evaluate` streams
it (edge_ecg.runtime.record_beats), with every input of the alarm engine logged; the engine is
then replayed on those inputs for each setting (0: off, the default; the replay of 0 must give
the stream's own alarms). Fold 0 is never read.

Printed per database, pooled over the folds: the red VT alarm's Se on reference runs of >= 5
V beats at >= 100 /min (and VT or non-sustained VT), false VT alarms per hour (scored as
`edge-ecg evaluate` scores them: after EC57's 5-minute learning period), and, once (the beat
classes do not depend on the alarm limits), EC57 V and S Se / +P and VT runs Se / +P, so two
runtimes (a change to the patient context, say) can be compared on the same records; and the
false VT alarms of each record at the default limits, and each fast run the red VT alarm
missed at them, with what the stream called its beats.
~10 min here for the 50 records, 2 jobs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import alarms as alarm_bench  # noqa: E402  (bench/alarms.py: the engine-input logging)

DBS = ("mitdb", "svdb")


def stream(job) -> dict:
    """One record through its fold's bundle: beats, classes, alarms and the engine's inputs."""
    bundle, path, db = job
    import wfdb

    from edge_ecg.data.records import find_beat_extension, read_annotations
    from edge_ecg.runtime import alarms as engine_module
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.record_beats import stream_beat_classes

    hdr = wfdb.rdheader(str(path))
    ops: list = []
    alarm_bench._log_engine_inputs(engine_module.AlarmEngine)
    alarm_bench._OPS = ops
    backend = open_backend(str(bundle), None, threads=1)
    alarms: list = []
    try:
        samples, classes, _ = stream_beat_classes(
            backend, str(path), alarms_out=alarms,
            leads=list(alarm_bench.record_leads(db, hdr.sig_name)))
    finally:
        backend.close()
        alarm_bench._OPS = None
    atr = wfdb.rdann(str(path), "atr")
    ext = find_beat_extension(str(path)) or "atr"
    marks = read_annotations(str(path), ext)
    return {"record": path.name, "db": db, "fs": float(hdr.fs), "n": int(hdr.sig_len),
            "ops": ops, "alarms": alarms, "beats": samples.tolist(), "classes": classes,
            "atr": (atr.sample, atr.symbol, atr.aux_note),
            "marks": (marks.sample, tuple(marks.symbol)), "ext": ext}


def beat_scores(rs: list[dict]) -> dict:
    """EC57 (bxb rules) V and S Se / +P per database, from the streamed classes."""
    from edge_ecg.data.aami import AAMI_CLASSES, aami_indices
    from edge_ecg.data.mitbih import vf_episodes
    from edge_ecg.data.records import Annotations, beats_only
    from edge_ecg.metrics.beats import EC57_LEARNING_S, pool_class_scores, score_beat_classes

    per: dict[str, list] = {db: [] for db in DBS}
    for r in rs:
        marks = Annotations(sample=np.asarray(r["marks"][0]), symbol=r["marks"][1])
        ann = beats_only(marks)
        keep = ann.sample < r["n"]
        ref = aami_indices(np.asarray(ann.symbol)[keep], r["record"], r["ext"])
        det = np.array([AAMI_CLASSES.index(c) if c in AAMI_CLASSES else -1
                        for c in r["classes"]], dtype=np.int64)
        per[r["db"]].append(score_beat_classes(
            ann.sample[keep], ref, r["beats"], det, r["fs"], record=r["record"],
            from_sample=round(EC57_LEARNING_S * r["fs"]),
            excluded=vf_episodes(marks.sample, marks.symbol, r["n"])))
    out = {}
    for db, v in per.items():
        d = pool_class_scores(v).to_dict()
        out[db] = {k: d.get(k, float("nan")) for k in ("v_se", "v_ppv_ec57", "s_se",
                                                        "s_ppv_ec57")}
    return out


def record_figures(rs: list[dict], limits) -> list[dict]:
    """Each record's counts with the engine replayed under `limits`, scored as `edge-ecg
    evaluate` scores them (after EC57's 5-minute learning period)."""
    from edge_ecg.metrics.beats import EC57_LEARNING_S
    from edge_ecg.metrics.rhythm import record_counts

    out = []
    for r in rs:
        al = alarm_bench._replay_engine(r, limits)
        s, sym, aux = r["atr"]
        out.append(record_counts(s, sym, aux, r["beats"], r["classes"], al, r["fs"], r["n"],
                                 classified=True, ec57_from_s=EC57_LEARNING_S))
    return out


def alarm_figures(rs: list[dict], limits) -> dict:
    """Per database: the engine replayed under `limits`, pooled over its records."""
    from edge_ecg.metrics.rhythm import pool, summarize

    counts = record_figures(rs, limits)
    return {db: summarize(pool([c for r, c in zip(rs, counts) if r["db"] == db]))
            for db in DBS}


def missed_red_vt(r: dict, alarms: list[dict]) -> list[dict]:
    """The reference runs of `r` that the red VT alarm's sensitivity counts (>= VT_ALARM_BEATS
    ventricular beats at >= VT_ALARM_BPM, edge_ecg.metrics.rhythm) with no VT alarm of
    `alarms` over them: where, how long, how fast, and what the stream called their beats
    ("-": no beat detected there), to see whether the classes or the engine missed them."""
    from edge_ecg.metrics.rhythm import (BEAT_SYMBOLS, VENTRICULAR, VT_ALARM_BEATS,
                                         VT_ALARM_BPM, alarm_spans, merge, runs)

    s, sym, _ = r["atr"]
    beat = np.array([c in BEAT_SYMBOLS for c in sym], bool) & (np.asarray(s) < r["n"])
    rt = np.asarray(s)[beat] / r["fs"]
    rv = np.array([c in VENTRICULAR for c, b in zip(sym, beat) if b], bool)
    red = merge(alarm_spans(alarms, "vt", r["fs"], r["n"]))
    det = np.asarray(r["beats"], float) / r["fs"]
    out = []
    for a, b, n in runs(rt, rv):
        if n < VT_ALARM_BEATS or b <= a or 60.0 * (n - 1) / (b - a) < VT_ALARM_BPM:
            continue
        if any(x < b + 0.15 and y > a - 0.15 for x, y in red):
            continue
        calls = ""
        for t in rt[(rt >= a) & (rt <= b)]:
            i = int(np.argmin(np.abs(det - t))) if det.size else -1
            calls += (r["classes"][i] or "?") if i >= 0 and abs(det[i] - t) <= 0.15 else "-"
        out.append({"record": r["record"], "start_s": round(float(a), 1), "beats": int(n),
                    "rate_bpm": round(60.0 * (n - 1) / (b - a)), "called": calls})
    return out


def reference_s_runs(r: dict, min_len: int, min_bpm: float) -> list[tuple[int, int]]:
    """(first, last) sample of each run of >= `min_len` consecutive reference S beats (EC57
    classes) at >= `min_bpm`."""
    from edge_ecg.data.aami import AAMI_CLASSES, aami_indices
    from edge_ecg.data.records import Annotations, beats_only

    ann = beats_only(Annotations(sample=np.asarray(r["marks"][0]), symbol=r["marks"][1]))
    is_s = aami_indices(np.asarray(ann.symbol), r["record"], r["ext"]) == \
        AAMI_CLASSES.index("S")
    out, i = [], 0
    while i < is_s.size:
        j = i
        while j < is_s.size and is_s[j]:
            j += 1
        if j - i >= max(min_len, 2):
            a, b = int(ann.sample[i]), int(ann.sample[j - 1])
            if 60.0 * r["fs"] * (j - i - 1) / max(b - a, 1) >= min_bpm:
                out.append((a, b))
        i = max(j, i + 1)
    return out


def svt_alarm_figures(rs: list[dict], profile: Path = REPO / "profiles" / "alarms" / "svt.toml"
                      ) -> dict:
    """The supraventricular tachycardia alarm (off by default) under `profile`'s limits, from
    the streamed beat classes (it reads nothing else): per database, the reference runs of
    >= svt_run S beats at >= svt_bpm it overlapped, and its alarms that overlap no reference
    run of >= 3 S."""
    from edge_ecg.runtime.alarm_settings import read_alarm_settings
    from edge_ecg.runtime.alarms import AlarmEngine

    limits = read_alarm_settings(profile).limits
    out: dict = {}
    for r in rs:
        eng, spans = AlarmEngine(r["fs"], limits), []
        events = [a for b, c in zip(r["beats"], r["classes"])
                  for a in eng.observe({"type": "beat", "index": int(b), "beat_class": c})]
        events += eng.close(int(r["beats"][-1])) if r["beats"] else []
        spans = [(a.onset_index, a.end_index) for a in events
                 if a.code == "svt" and a.state == "end"]
        runs = reference_s_runs(r, limits.svt_run, limits.svt_bpm)
        any_s = reference_s_runs(r, 3, 0.0)
        d = out.setdefault(r["db"], {"runs": 0, "found": 0, "alarms": 0, "false": 0,
                                     "hours": 0.0})
        d["runs"] += len(runs)
        d["found"] += sum(any(x <= b and y >= a for x, y in spans) for a, b in runs)
        d["alarms"] += len(spans)
        d["false"] += sum(not any(x <= b and y >= a for a, b in any_s) for x, y in spans)
        d["hours"] += r["n"] / r["fs"] / 3600.0
    for db, d in out.items():
        print(f"SVT alarm ({profile.name}: {limits.svt_run} S at >= {limits.svt_bpm:g} /min), "
              f"{db}: {d['found']} of {d['runs']} such reference runs overlapped; "
              f"{d['alarms']} alarms, {d['false']} on no reference S run ({d['hours']:.1f} h)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--oof", action="append", default=[], metavar="FOLD=BUNDLE", required=True,
                    help="training fold k and a bundle that never saw it (repeat for 1-4)")
    ap.add_argument("--settings", default="0,3,4,5,6,8,10",
                    help="vt_escalate_beats values replayed (0: off, the default)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--records", type=int, default=0,
                    help="at most this many records per database (a quick look; default all)")
    args = ap.parse_args()

    from edge_ecg.data.folds import subject_fold
    from edge_ecg.runtime.alarm_settings import apply_limits
    from edge_ecg.runtime.alarms import AlarmLimits

    oof = {}
    for item in args.oof:
        k, _, b = item.partition("=")
        if not k.strip().isdigit() or int(k) == 0 or not Path(b).is_dir():
            raise SystemExit(f"--oof {item!r}: expected TRAINING_FOLD=BUNDLE_DIR (fold 1-4)")
        oof[int(k)] = Path(b)
    settings = [int(v) for v in args.settings.split(",")]
    for v in settings:                       # the limits file's own checks
        apply_limits(AlarmLimits(), {"vt_escalate_beats": v}, "--settings")
    jobs = [(oof[subject_fold(f"{db}-{p.name}")], p, db) for db in DBS
            for p in alarm_bench.records(db) if subject_fold(f"{db}-{p.name}") in oof]
    if args.records:
        jobs = [j for db in DBS for j in [j for j in jobs if j[2] == db][:args.records]]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max(1, args.jobs)) as ex:
        rs = list(ex.map(stream, jobs))
    for r in rs:
        replayed = alarm_bench._replay_engine(r, AlarmLimits())
        if [(a["code"], a["state"], a["index"]) for a in replayed] != \
                [(a["code"], a["state"], a["index"]) for a in r["alarms"]]:
            raise SystemExit(f"{r['record']}: the engine's replay differs from the stream")
    table = {v: alarm_figures(rs, dataclasses.replace(AlarmLimits(), vt_escalate_beats=v))
             for v in settings}
    beats = beat_scores(rs)
    print(f"bench/vt_escalation.py: {len(rs)} training-fold records (folds "
          f"{','.join(map(str, sorted(oof)))}) streamed in {time.perf_counter() - t0:.0f} s")
    for db in DBS:
        base = table[settings[0]][db]
        print(f"\n{db}: {base.get('hours', 0):.1f} h, {base.get('vt_alarm_ref', 0)} runs of "
              ">= 5 V at >= 100 /min; EC57 V Se / +P "
              f"{beats[db]['v_se']:.3f} / {beats[db]['v_ppv_ec57']:.3f}, S "
              f"{beats[db]['s_se']:.3f} / {beats[db]['s_ppv_ec57']:.3f}, VT runs Se / +P "
              f"{base.get('vt_run_se', float('nan')):.3f} / "
              f"{base.get('vt_run_ppv', float('nan')):.3f}")
        print(f"{'vt_escalate_beats':>18}{'red VT found':>14}{'VT or NSVT':>12}"
              f"{'false VT /h':>13}{'false VT':>10}")
        for v in settings:
            t = table[v][db]
            print(f"{v if v else 'off':>18}{t.get('vt_alarm_tp', 0):>9} of "
                  f"{t.get('vt_alarm_ref', 0):<2}{t.get('vt_alarm_tp_any', 0):>12}"
                  f"{t.get('false_vt_per_hour', float('nan')):>13.3f}"
                  f"{t.get('false_vt_alarms', 0):>10}")
    for r in rs:
        for m in missed_red_vt(r, r["alarms"]):
            print(f"no red VT alarm at the default: {r['db']} {m['record']} at {m['start_s']} s, "
                  f"{m['beats']} V at {m['rate_bpm']} /min, called {m['called']}")
    svt_alarm_figures(rs)
    at_default = record_figures(rs, AlarmLimits())
    print("\nfalse VT alarms by record, default limits: " + ", ".join(
        f"{r['db']} {r['record']} {c['false_vt_alarms']}" for r, c in zip(rs, at_default)
        if c.get("false_vt_alarms")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
