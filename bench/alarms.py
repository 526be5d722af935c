"""Alarm figures per database (MIT-BIH, SVDB, CUDB) with a bundle streamed over the records.

    python bench/alarms.py [--bundle edge_ecg/assets/default_bundle] [--db mitdb,svdb,cudb]
                           [--jobs 2] [--records N] [--folds 1,2,3,4]
                           [--choose-vf | --choose-af | --cinc-af]

Each record of ../shared/data/<db> is replayed through the runtime (`StreamProcessor`: its
detector, windows, per-beat classes and the alarm engine, edge_ecg.runtime.alarms) as fast as
it goes, lead names as edge_ecg/data/databases.toml assigns them (SVDB ECG1 -> II, ECG2
unused; CUDB ECG -> II), CUDB's invalid samples sent as gaps. Its beat classes and alarm events are
scored against the .atr annotations (edge_ecg.metrics.rhythm, EC57 definitions): couplet
and VT-run Se / +P, AF and VF episode and duration Se / +P, false VT / VF / AF alarms per hour,
and on the records in sinus rhythm throughout, false ectopic beats and high-priority alarms
per hour.

`--cinc-af` streams the CinC 2017 recordings of fold 0 (patients the bundle never saw; 9-61 s
each, single lead, called lead I) and counts, per reference class (N, A, O), the recordings on
which the AF alarm went on: its sensitivity where AF is long enough to judge (32 RR intervals)
and its false alarms on normal and other rhythms. MIT-BIH's fold 0 holds no AF episode.

`--choose-af` is how the AF alarm's confirmation (`AlarmLimits.af_confirm_beats`, beats in
a row judged AF before it is raised) was chosen: the training folds' MIT-BIH and SVDB records
(never fold 0) streamed once with the alarm engine's inputs logged, the engine replayed for
1, 4, 8, 16, 24 and 32; the largest that keeps the AF episode and duration Se of 1.

`--choose-vf` is how the VF detector's thresholds (edge_ecg.signal.vf.VfThresholds) were
fixed: the segments' features of every record of the three databases, 3 folds by record
(each fold a third of each database's records); on two folds, the thresholds over a small grid
of values around the literature's with the highest VF-segment sensitivity whose false-VF rate
on the MIT-BIH / SVDB segments is <= 0.1 %; scored on the third (VF episode Se with the
engine's hysteresis, false VF alarms per hour). The pooled held-out figures are the VF
detector's honest ones; the stream figures of VF use the thresholds chosen on all records,
which saw these records (stated in the table).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CLASSIFIED = {"mitdb": True, "svdb": True, "cudb": False}   # .atr beats carry EC57 classes
PACED = {"102", "104", "107", "217"}                        # left out, as for beat classes


def records(db: str) -> list[Path]:
    d = DATA / db
    out = []
    for hea in sorted(d.glob("*.hea")):
        base = hea.with_suffix("")
        if base.with_suffix(".atr").exists() and base.name not in PACED:
            out.append(base)
    return out


def record_leads(db: str, channels) -> tuple[str, ...]:
    """The lead of each channel as `edge-ecg evaluate` assigns it: the database's table in
    edge_ecg/data/databases.toml (SVDB ECG1 -> II, ECG2 unused "-"; CUDB ECG -> II)."""
    from edge_ecg.data.mitbih import database

    table = database(db).leads
    return tuple(table.get(n, n) for n in channels)


_OPS: list | None = None     # the current record's alarm-engine inputs, while logged


def _log_engine_inputs(engine: type) -> None:
    """Make `engine` (AlarmEngine) append what it observes to `_OPS` while that is a list:
    patched once per worker process, so records streamed one after another in it log only
    their own inputs."""
    if getattr(engine, "_bench_logging", False):
        return
    observe, observe_vf = engine.observe, engine.observe_vf

    def logged(self, ev):
        if _OPS is not None:
            _OPS.append(("ev", ev.to_json() if hasattr(ev, "to_json") else ev))
        return observe(self, ev)

    def logged_vf(self, *a):
        if _OPS is not None:
            _OPS.append(("vf", a))
        return observe_vf(self, *a)
    engine.observe, engine.observe_vf = logged, logged_vf
    engine._bench_logging = True


def stream_record(args) -> dict:
    """Beats, classes and alarm events of one record streamed through the runtime, with the
    counts it adds to the figures; with a 4th item True, also every input the alarm engine
    observed (`ops`, in order), to replay the engine with other limits (`--choose-af`)."""
    bundle, path, db, *log = args
    import wfdb

    from edge_ecg.data.records import read_record
    from edge_ecg.metrics.rhythm import record_counts
    from edge_ecg.runtime import alarms as engine_module
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.events import AlarmEvent, BeatEvent
    from edge_ecg.runtime.replay import ReplaySource, replay_events
    from edge_ecg.runtime.stream_processor import StreamProcessor

    global _OPS
    ops: list = []
    if log and log[0]:
        _log_engine_inputs(engine_module.AlarmEngine)
        _OPS = ops
    rec = read_record(str(path), invalid="keep")
    names = record_leads(db, rec.leads)
    keep = [j for j, name in enumerate(names) if name != "-"]    # "-": a channel left unused
    backend = open_backend(bundle, None, threads=1)
    try:
        src = ReplaySource(rec.adc[:, keep], np.asarray(rec.gain)[keep],
                           np.asarray(rec.baseline)[keep], rec.fs_hz,
                           tuple(names[j] for j in keep), speed=None, chunk_s=0.5,
                           name=f"record:{path}", invalid=rec.invalid)
        proc = StreamProcessor(backend)
        t0 = time.perf_counter()
        events = [e for part in replay_events(src, proc) for e in part]
        wall = time.perf_counter() - t0
    finally:
        backend.close()
        _OPS = None
    beats = [e for e in events if isinstance(e, BeatEvent)]
    alarms = [e.to_json() for e in events if isinstance(e, AlarmEvent)]
    ann = wfdb.rdann(str(path), "atr")
    n = rec.adc.shape[0]
    counts = record_counts(ann.sample, ann.symbol, ann.aux_note,
                           [b.index for b in beats], [b.beat_class for b in beats], alarms,
                           rec.fs_hz, n, classified=CLASSIFIED[db])
    if ops:
        return {"record": path.name, "db": db, "fs": rec.fs_hz, "n": n, "ops": ops,
                "beats": [b.index for b in beats], "classes": [b.beat_class for b in beats],
                "ann": (ann.sample, ann.symbol, ann.aux_note), "alarms": alarms,
                "counts": counts}
    return {"record": path.name, "db": db, "counts": counts, "wall_s": wall,
            "seconds": n / rec.fs_hz,
            "onsets": {a["code"]: 0 for a in alarms} | {
                c: sum(1 for a in alarms if a["code"] == c and a["state"] == "onset")
                for c in {a["code"] for a in alarms}}}


# --- VF thresholds by cross-validation -------------------------------------------------------
GRID = {"tcsc_pct": (35.0, 40.0, 45.0, 50.0, 55.0), "leakage": (0.45, 0.5, 0.55, 0.6, 0.65),
        "concentration": (0.3, 0.35, 0.4, 0.45), "vote": (2, 3),
        "min_mean_abs_mv": (0.05, 0.1)}
FP_BUDGET = 0.001


def vf_features(args) -> dict:
    path, db = args
    import wfdb

    from edge_ecg.metrics.rhythm import reference_episodes
    from edge_ecg.signal.vf import vf_detect, vf_initial

    r = wfdb.rdrecord(str(path), channels=[0])
    x = r.p_signal[:, 0]
    segs, _ = vf_detect(x, None, vf_initial(r.fs))
    ann = wfdb.rdann(str(path), "atr")
    ref = reference_episodes(ann.sample, ann.symbol, ann.aux_note, "vf", r.fs, x.size)
    mid = np.array([(s.start + s.end) / 2 / r.fs for s in segs])
    in_vf = np.zeros(len(segs), float)
    for a, b in ref:
        for k, s in enumerate(segs):
            lo, hi = max(s.start / r.fs, a), min(s.end / r.fs, b)
            in_vf[k] += max(hi - lo, 0.0) / ((s.end - s.start) / r.fs)
    feat = np.array([[s.tcsc_pct, s.leakage, s.concentration, s.mean_abs_mv] for s in segs])
    valid = np.array([s.vf is not None for s in segs])
    return {"record": path.name, "db": db, "fs": r.fs, "n": x.size, "ref": ref, "mid": mid,
            "start": np.array([s.start for s in segs]), "end": np.array([s.end for s in segs]),
            "in_vf": in_vf, "feat": np.nan_to_num(feat), "valid": valid}


def _calls(r: dict, th: dict) -> np.ndarray:
    f = r["feat"]
    votes = ((f[:, 0] > th["tcsc_pct"]).astype(int) + (f[:, 1] < th["leakage"])
             + (f[:, 2] > th["concentration"]))
    return (votes >= th["vote"]) & (f[:, 3] >= th["min_mean_abs_mv"])


def _choose(train: list[dict]) -> dict:
    best, best_se = None, -1.0
    for vals in itertools.product(*GRID.values()):
        th = dict(zip(GRID, vals))
        pos = fp = neg = tp = 0
        for r in train:
            c = _calls(r, th) & r["valid"]
            p = (r["in_vf"] >= 0.99) & r["valid"]
            tp += int((c & p).sum())
            pos += int(p.sum())
            if r["db"] != "cudb":
                n_ = (r["in_vf"] == 0) & r["valid"]
                fp += int((c & n_).sum())
                neg += int(n_.sum())
        se = tp / max(pos, 1)
        if neg and fp / neg <= FP_BUDGET and se > best_se:
            best, best_se = th, se
    return best


def _score_vf(rs: list[dict], th: dict) -> dict:
    """VF episode Se and false VF alarms with the engine's own hysteresis (AlarmEngine)."""
    from edge_ecg.metrics.rhythm import episode_counts, false_alarms, pool
    from edge_ecg.runtime.alarms import AlarmEngine

    counts, false, hours = [], 0, 0.0
    for r in rs:
        eng = AlarmEngine(r["fs"])
        ev = []
        calls = _calls(r, th)
        for s, e, c, v in zip(r["start"], r["end"], calls, r["valid"]):
            ev += eng.observe_vf(int(s), int(e), bool(c) if v else None)
        ev += eng.close(r["n"])
        spans = [(a.onset_index / r["fs"], a.end_index / r["fs"]) for a in ev
                 if a.state == "end" and a.code == "vf"]
        counts.append(episode_counts(r["ref"], spans))
        false += false_alarms(spans, r["ref"])
        hours += r["n"] / r["fs"] / 3600.0
    c = pool(counts)
    return {"vf_episodes": c["ref"], "vf_episode_se": c["tp_ref"] / c["ref"] if c["ref"] else
            float("nan"), "false_vf": false, "hours": hours}


def choose_vf(jobs: int) -> None:
    todo = [(p, db) for db in ("mitdb", "svdb", "cudb") for p in records(db)]
    with ProcessPoolExecutor(jobs) as ex:
        rs = list(ex.map(vf_features, todo))
    by_db: dict[str, list] = {}
    for r in rs:
        by_db.setdefault(r["db"], []).append(r)
    folds = [[r for db_rs in by_db.values() for i, r in enumerate(db_rs) if i % 3 == k]
             for k in range(3)]
    print("VF thresholds by 3-fold cross-validation over records (mitdb + svdb + cudb):")
    held: dict[str, list] = {"cudb": [], "other": []}
    for k in range(3):
        train = [r for j in range(3) if j != k for r in folds[j]]
        th = _choose(train)
        test = folds[k]
        cu = _score_vf([r for r in test if r["db"] == "cudb"], th)
        ot = _score_vf([r for r in test if r["db"] != "cudb"], th)
        held["cudb"].append(cu)
        held["other"].append(ot)
        print(f"  fold {k}: chose {th}; held out: CUDB VF episode Se "
              f"{cu['vf_episode_se']:.3f} ({cu['vf_episodes']} episodes), MIT-BIH/SVDB "
              f"false VF {ot['false_vf']} in {ot['hours']:.1f} h")
    n_ep = sum(c["vf_episodes"] for c in held["cudb"])
    tp = sum(c["vf_episode_se"] * c["vf_episodes"] for c in held["cudb"] if c["vf_episodes"])
    fv = sum(c["false_vf"] for c in held["other"])
    hv = sum(c["hours"] for c in held["other"])
    print(f"  pooled held-out: CUDB VF episode Se {tp / n_ep:.3f} ({n_ep} episodes); "
          f"false VF alarms on MIT-BIH + SVDB {fv / hv:.3f} per hour ({fv} in {hv:.1f} h)")
    print(f"  chosen on all records (the detector's defaults): {_choose(rs)}")


# --- the AF alarm's confirmation, chosen on the training folds -------------------------------
AF_CONFIRM = (1, 4, 8, 16, 24, 32)
AF_FIGURES = ("af_episode_se", "af_episode_ppv", "af_duration_se", "af_duration_ppv",
              "false_af_per_hour")


def _replay_engine(r: dict, limits) -> list[dict]:
    """The record's alarms (every code) with the engine replayed on its logged inputs under
    `limits`."""
    from edge_ecg.runtime.alarms import AlarmEngine

    eng = AlarmEngine(r["fs"], limits)
    out = []
    for kind, v in r["ops"]:
        out += eng.observe(v) if kind == "ev" else eng.observe_vf(*v)
    return [a.to_json() for a in out]


def choose_af(bundle: str, jobs: int) -> None:
    """`AlarmLimits.af_confirm_beats`: the training folds' MIT-BIH and SVDB records streamed
    once, the engine's inputs logged, the engine replayed for each value (the default's
    replay must equal the stream's own alarms); the largest value that keeps the AF episode
    and duration sensitivity of a single beat (1) on MIT-BIH, the only one with AF."""
    import dataclasses

    from edge_ecg.data.folds import subject_fold
    from edge_ecg.metrics.rhythm import pool, record_counts, summarize
    from edge_ecg.runtime.alarms import AlarmLimits

    todo = [(bundle, p, db, True) for db in ("mitdb", "svdb") for p in records(db)
            if subject_fold(f"{db}-{p.name}") in (1, 2, 3, 4)]
    with ProcessPoolExecutor(max(1, jobs)) as ex:
        rs = list(ex.map(stream_record, todo))
    now = AlarmLimits()
    table = {}
    for c in AF_CONFIRM:
        lim = dataclasses.replace(now, af_confirm_beats=c)
        per: dict[str, list] = {"mitdb": [], "svdb": []}
        for r in rs:
            al = _replay_engine(r, lim)
            if c == now.af_confirm_beats and [(a["code"], a["state"], a["index"]) for a in al] \
                    != [(a["code"], a["state"], a["index"]) for a in r["alarms"]]:
                raise SystemExit(f"{r['record']}: the replay differs from the stream")
            s, sym, aux = r["ann"]
            per[r["db"]].append(record_counts(s, sym, aux, r["beats"], r["classes"], al,
                                              r["fs"], r["n"], classified=True))
        table[c] = {db: summarize(pool(v)) for db, v in per.items()}
    hours = {db: table[1][db]["hours"] for db in ("mitdb", "svdb")}
    print(f"AF alarm confirmation on the training folds ({len(rs)} records: MIT-BIH "
          f"{hours['mitdb']:.1f} h, SVDB {hours['svdb']:.1f} h)")
    print(f"{'beats in a row':<16}" + "".join(f"{'mitdb ' + k:>26}" for k in AF_FIGURES)
          + f"{'svdb AF alarms, unscored':>26}")
    for c, t in table.items():
        print(f"{c:<16}" + "".join(f"{_fmt(t['mitdb'].get(k, float('nan'))):>26}"
                                   for k in AF_FIGURES)
              + f"{t['svdb'].get('af_alarms_unscored', 0):>26}")
    print("(unscored: on SVDB records whose annotation has no rhythm note, all but one here; "
          "their AF alarms are neither true nor false, only counted)")
    base = table[1]["mitdb"]
    keep = [c for c in AF_CONFIRM if table[c]["mitdb"]["af_episode_se"] >= base["af_episode_se"]
            and table[c]["mitdb"]["af_duration_se"] >= base["af_duration_se"] - 1e-9]
    print(f"chosen: {max(keep)} (the largest with the episode and duration Se of 1); "
          f"AlarmLimits.af_confirm_beats is {now.af_confirm_beats}")


# --- AF alarms on CinC 2017's held-out recordings -------------------------------------------
def cinc_af_record(args) -> tuple[str, bool]:
    """(reference class, whether the AF alarm went on) of one CinC recording streamed."""
    bundle, name, label = args
    from edge_ecg.data.records import read_record
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.events import AlarmEvent
    from edge_ecg.runtime.replay import ReplaySource, replay_events
    from edge_ecg.runtime.stream_processor import StreamProcessor

    rec = read_record(str(DATA / "cinc2017" / name), invalid="keep")
    backend = open_backend(bundle, None, threads=1)
    try:
        src = ReplaySource(rec.adc, rec.gain, rec.baseline, rec.fs_hz, ("I",), speed=None,
                           chunk_s=0.5, name=f"record:{name}", invalid=rec.invalid)
        alarmed = any(isinstance(e, AlarmEvent) and e.code == "new_af" and e.state == "onset"
                      for part in replay_events(src, StreamProcessor(backend)) for e in part)
    finally:
        backend.close()
    return label, alarmed


def cinc_af(bundle: str, jobs: int, limit: int) -> None:
    from edge_ecg.data.folds import subject_fold

    rows = [ln.strip().split(",") for ln in
            (DATA / "cinc2017" / "REFERENCE.csv").read_text().splitlines() if ln.strip()]
    todo = [(bundle, n, c) for n, c in rows if c in ("N", "A", "O")
            and subject_fold(f"cinc-{n}") == 0]
    todo = todo[:limit] if limit else todo
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max(1, jobs)) as ex:
        res = list(ex.map(cinc_af_record, todo, chunksize=8))
    print(f"bench/alarms.py --cinc-af: bundle {bundle}, {len(res)} CinC 2017 fold-0 recordings, "
          f"{time.perf_counter() - t0:.0f} s wall ({jobs} jobs)")
    for c, name in (("A", "AF"), ("N", "normal"), ("O", "other rhythm")):
        n = sum(1 for lab, _ in res if lab == c)
        on = sum(1 for lab, a in res if lab == c and a)
        print(f"  {name:<13} {on:>4} of {n:>4} recordings raised the AF alarm "
              f"({on / max(n, 1):.3f})")


# --- the table ------------------------------------------------------------------------------
def _fmt(v) -> str:
    if isinstance(v, float):
        return "  -  " if v != v else f"{v:.3f}"
    return str(v)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(REPO / "edge_ecg" / "assets" / "default_bundle"))
    ap.add_argument("--db", default="mitdb,svdb,cudb")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--records", type=int, default=0, help="at most this many per database")
    ap.add_argument("--choose-vf", action="store_true",
                    help="cross-validate the VF detector's thresholds instead")
    ap.add_argument("--folds", default="",
                    help="only the records of these patient folds (subject_fold), e.g. 1,2,3,4 "
                         "(the training folds) or 0 (held out); default every record")
    ap.add_argument("--choose-af", action="store_true",
                    help="choose the AF alarm's confirmation (beats in a row) on the training "
                         "folds' MIT-BIH and SVDB records instead (7 min)")
    ap.add_argument("--cinc-af", action="store_true",
                    help="the AF alarm on CinC 2017's fold-0 recordings instead (per class)")
    args = ap.parse_args()
    if args.cinc_af:
        cinc_af(args.bundle, args.jobs, args.records)
        return 0
    if not (DATA / "mitdb").is_dir():
        print(f"real records not found at {DATA}", file=sys.stderr)
        return 2
    if args.choose_vf:
        choose_vf(args.jobs)
        return 0
    if args.choose_af:
        choose_af(args.bundle, args.jobs)
        return 0
    from edge_ecg.metrics.rhythm import pool, summarize

    dbs = [d for d in args.db.split(",") if d]
    todo = []
    for db in dbs:
        recs = records(db)
        if args.folds:
            # by patient, as the training recipes split them: folds 1-4 are where the alarm
            # rules were chosen, fold 0 where they are tested
            from edge_ecg.data.folds import subject_fold

            keep = {int(f) for f in args.folds.split(",")}
            recs = [p for p in recs if subject_fold(f"{db}-{p.name}") in keep]
        todo += [(args.bundle, p, db) for p in (recs[:args.records] if args.records else recs)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max(1, args.jobs)) as ex:
        res = list(ex.map(stream_record, todo))
    wall = time.perf_counter() - t0
    print(f"bench/alarms.py: bundle {args.bundle}, {len(res)} records, {wall:.0f} s wall "
          f"({args.jobs} jobs) on {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus")
    rows = ["vt_run_se", "vt_run_ppv", "couplet_se", "couplet_ppv", "vf_episode_se",
            "vf_episode_ppv", "vf_duration_se", "vf_duration_ppv", "af_episode_se",
            "af_episode_ppv", "af_duration_se", "af_duration_ppv", "vt_alarm_se",
            "false_vt_per_hour", "false_nsvt_per_hour",
            "false_vf_per_hour", "false_af_per_hour", "af_alarms_unscored",
            "sinus_false_ectopic_per_hour", "sinus_false_ectopic_share",
            "sinus_high_alarms_per_hour", "hours", "rhythm_hours", "sinus_hours",
            "vt_run_ref", "couplet_ref", "vf_episodes", "af_episodes"]
    summ = {db: summarize(pool([r["counts"] for r in res if r["db"] == db])) for db in dbs}
    print(f"{'figure':<30}" + "".join(f"{db:>10}" for db in dbs))
    for k in rows:
        print(f"{k:<30}" + "".join(f"{_fmt(summ[db].get(k, float('nan'))):>10}" for db in dbs))
    print("VF thresholds were chosen by cross-validation over these records' segments "
          "(python bench/alarms.py --choose-vf gives the held-out VF figures).")
    onsets: dict[str, int] = {}
    for r in res:
        for c, n in r["onsets"].items():
            onsets[c] = onsets.get(c, 0) + n
    print("alarm onsets, all records:", dict(sorted(onsets.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
