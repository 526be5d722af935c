"""Beat detection benchmark: our streaming detector beside seven peers, same run, every record.

Records: every annotated record in ../shared/data (resolved from the repository root): the 28
MIT-BIH Arrhythmia records, ST Change 300 and the 39 Supraventricular Arrhythmia records
(128 Hz; each database reported on its own, SVDB also per fold of 13 records), lead 0 of each.
Ours runs streaming, fed 0.1-s chunks as a monitor would send them; the peers run offline on
the whole record and report no decision time:

    xqrs        wfdb.processing.xqrs_detect
    nk-raw      NeuroKit2 ecg_peaks on the raw signal
    nk-clean    NeuroKit2 default chain: ecg_clean, then ecg_peaks
    nk-pt       NeuroKit2 Pan-Tompkins: ecg_clean and ecg_peaks with method="pantompkins1985"
    hamilton    biosppy: its ecg() band-pass (FIR 3-45 Hz), hamilton_segmenter, correct_rpeaks
    two-avg     py-ecg-detectors two_average_detector (Elgendi 2010)
    pt          py-ecg-detectors pan_tompkins_detector

`--runtime-chain` adds `ours-rt`: ours as the runtime feeds it (every channel, resampled to
the default bundle's rate, its contract filter; 128-Hz SVDB is upsampled to 250 Hz first).

Scoring (AAMI EC57 / WFDB bxb): a detection matches a reference beat within +/-150 ms; whole
records (no learning period left out); beats inside ventricular flutter/fibrillation episodes
(between the reference '[' and ']' marks, MIT-BIH 207) are left out of the comparison for
reference and detections alike, as EC57 and bxb do; the figure with them kept is printed too.

    python bench/beats.py                       # every record, peers: ~5 min on 2 cores
    python bench/beats.py --no-peers            # ours only: ~40 s
    python bench/beats.py --db svdb             # SVDB only, peers: ~3.5 min
    python bench/beats.py --db svdb --no-peers --chunk-s 30 --cv-db svdb \
        --cv premature_slope=0.8,0.5,0.7,0.9 --cv hold_rr=0.5,0.4,0.6,10 --cv-joint  # ~4 min
    python bench/beats.py --nst                 # + noise stress, 118 and 119 at 24..-6 dB,
                                                #   every detector: ~35 s more
    python bench/beats.py --no-peers --cv threshold=0.3,0.4,0.5 --cv hold_level=0.8,0.9,1.0 \
        --cv premature_level=0.8,1.0 --cv premature_rr=0.4,0.5 --cv-joint   # ~8 min

`--cv name=v1,v2,..` sweeps the field `name` of the detector's `QRSConfig` (upper case, the old
module-constant spelling, is accepted too): each value, in a config built by
`dataclasses.replace(DEFAULT_QRS, ...)` and passed to the detector, nothing patched; the
value with the best gross F1 on all folds of `--cv-db`'s records but one is scored on that
one, each fold in turn (MIT-BIH: alternate halves in number order; SVDB: 3 folds, records
k, k+3, ...); the held-out folds pooled are the leave-records-out figure. Several `--cv` are
swept one at a time (the others at their defaults), or with `--cv-joint` as one grid of every
combination. Results do not depend on `--chunk-s` (streaming == offline), so a long chunk
makes a sweep faster.

`--nst`: NST-style records (edge_ecg.data.noise_stress: bw + ma noise in 2-minute blocks after
5 clean minutes, SNR as nst defines it, seed 0) from the clean records NSTDB used (118, 119),
scored from minute 5 on (the noisy part of the protocol), every detector on the same samples.

Delays: `decided` = decision sample - our R sample (chunking-independent); `emitted` = the end
of the chunk that returned the beat - the reference R sample (what a caller waits).
Throughput: record seconds / CPU seconds of this process (`time.process_time`, one thread), so
that other jobs on a shared machine do not count against a detector.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # "one core": no hidden BLAS threads in any detector

import argparse
import contextlib
import dataclasses
import io
import itertools
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
BUNDLE_MANIFEST = REPO / "edge_ecg" / "assets" / "default_bundle" / "manifest.json"
GROUPS = (("mitdb", "MIT-BIH Arrhythmia"), ("stdb", "MIT-BIH ST Change"),
          ("svdb", "MIT-BIH Supraventricular"))
NST_RECORDS = ("mitdb/118", "mitdb/119")      # the clean records of the NSTDB
# cross-validation folds per database: MIT-BIH in alternate halves (as the constants in
# edge_ecg.signal.qrs were chosen), SVDB in thirds of 13 records (issue 25: the 39 shared
# records are the development set; held-out SVDB records are scored elsewhere)
FOLDS = {"mitdb": 2, "svdb": 3}
sys.path.insert(0, str(REPO))

from edge_ecg.data.records import BEAT_SYMBOLS, find_beat_extension, read_annotations, read_record
from edge_ecg.signal.qrs import DEFAULT_QRS, QRSConfig, qrs_detect, qrs_flush, qrs_initial
from edge_ecg.signal.scoring import BeatScore, match_beats, pool_scores, score_beats
from profiles.machine import this_machine


# --- detectors ------------------------------------------------------------------------------
def run_ours(x: np.ndarray, fs: float, chunk: int, config: QRSConfig = DEFAULT_QRS):
    """Streaming: (R indices, decision samples, emit index per beat, (cpu s, wall s))."""
    state = qrs_initial(fs, config=config)
    idx, dec, emit = [], [], []
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(0, len(x), chunk):
        beats, state = qrs_detect(x[i: i + chunk], state)
        end = min(i + chunk, len(x))
        for b in beats:
            idx.append(b.index)
            dec.append(b.decided_at)
            emit.append(end)
    beats, state = qrs_flush(state)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    for b in beats:
        idx.append(b.index)
        dec.append(b.decided_at)
        emit.append(len(x))
    return (np.array(idx, np.int64), np.array(dec, np.int64), np.array(emit, np.int64),
            (cpu, wall))


def run_runtime_chain(name: str, fs: float) -> np.ndarray:
    """Ours as the runtime feeds it (edge_ecg.runtime.beat_tracker): every channel of the
    record, resampled to the default bundle's rate and filtered by its contract filter, then
    detected; R indices mapped back to the record's rate. The offline form of the chain (the
    tracker's streaming output equals it, tests/runtime), so the result is the stream's."""
    from edge_ecg.signal.filters import filter_offline
    from edge_ecg.signal.resample import resample_offline

    sig = json.loads(BUNDLE_MANIFEST.read_text())["signal"]
    fs_c = float(sig["fs_hz"])
    x = read_record(DATA / name).signal.astype(np.float64)
    y = filter_offline(sig["filter"], resample_offline(x, fs, fs_c), fs_c)
    beats, state = qrs_detect(y, qrs_initial(fs_c))
    last, _ = qrs_flush(state)
    idx = np.array([b.index for b in beats + last], np.int64)
    return np.round(idx * (fs / fs_c)).astype(np.int64)


def _timed(fn, *args):
    c0, t0 = time.process_time(), time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        out = fn(*args)
    return np.unique(np.asarray(out, np.int64)), (time.process_time() - c0,
                                                  time.perf_counter() - t0)


def _xqrs(x, fs):
    import wfdb.processing

    return wfdb.processing.xqrs_detect(sig=x, fs=fs, verbose=False)


def _nk_raw(x, fs):
    import neurokit2 as nk

    return nk.ecg_peaks(x, sampling_rate=round(fs))[1]["ECG_R_Peaks"]


def _nk_clean(x, fs):
    import neurokit2 as nk

    clean = nk.ecg_clean(x, sampling_rate=round(fs))
    return nk.ecg_peaks(clean, sampling_rate=round(fs))[1]["ECG_R_Peaks"]


def _hamilton(x, fs):
    from biosppy.signals import ecg, tools

    # what biosppy.signals.ecg.ecg() does before and after its segmenter
    order = int(0.3 * fs)
    filtered, _, _ = tools.filter_signal(signal=x, ftype="FIR", band="bandpass", order=order,
                                         frequency=[3, 45], sampling_rate=fs)
    (rpeaks,) = ecg.hamilton_segmenter(signal=filtered, sampling_rate=fs)
    (rpeaks,) = ecg.correct_rpeaks(signal=filtered, rpeaks=rpeaks, sampling_rate=fs, tol=0.05)
    return rpeaks


def _two_average(x, fs):
    from ecgdetectors import Detectors

    return Detectors(fs).two_average_detector(x)


def _nk_pantompkins(x, fs):
    import neurokit2 as nk

    # NeuroKit2's Pan-Tompkins chain: its own cleaning for the method, then the detector
    clean = nk.ecg_clean(x, sampling_rate=round(fs), method="pantompkins1985")
    return nk.ecg_peaks(clean, sampling_rate=round(fs), method="pantompkins1985")[1][
        "ECG_R_Peaks"]


def _pan_tompkins(x, fs):
    from ecgdetectors import Detectors

    return Detectors(fs).pan_tompkins_detector(x)


PEERS = {"xqrs": _xqrs, "nk-raw": _nk_raw, "nk-clean": _nk_clean, "nk-pt": _nk_pantompkins,
         "hamilton": _hamilton, "two-avg": _two_average, "pt": _pan_tompkins}
PEER_MODULES = {"xqrs": "wfdb", "nk-raw": "neurokit2", "nk-clean": "neurokit2",
                "nk-pt": "neurokit2", "hamilton": "biosppy", "two-avg": "ecgdetectors",
                "pt": "ecgdetectors"}


def available_peers(names: list[str]) -> list[str]:
    import importlib.util

    ok = []
    for p in names:
        if importlib.util.find_spec(PEER_MODULES[p]) is None:
            print(f"peer {p} skipped: {PEER_MODULES[p]} is not installed "
                  "(pip install -e '.[dev]')", file=sys.stderr)
        else:
            ok.append(p)
    return ok


# --- records and scoring --------------------------------------------------------------------
@dataclass
class Ref:
    name: str
    x: np.ndarray
    fs: float
    beats: np.ndarray
    vf: np.ndarray            # (k, 2) [start, stop] of reference VF/VFL episodes

    @property
    def seconds(self) -> float:
        return self.x.size / self.fs


def all_records(dbs: tuple[str, ...] | None = None) -> list[str]:
    names = []
    for folder, _ in GROUPS:
        if dbs is not None and folder not in dbs:
            continue
        for hea in sorted((DATA / folder).glob("*.hea")):
            if find_beat_extension(hea.with_suffix("")) is not None:
                names.append(f"{folder}/{hea.stem}")
    return names


def load(name: str) -> Ref:
    rec = read_record(DATA / name, channels=[0])
    ann = read_annotations(DATA / name, find_beat_extension(DATA / name))
    sym = np.array(ann.symbol, dtype=object)
    beats = ann.sample[np.isin(sym, list(BEAT_SYMBOLS))]
    on, off = ann.sample[sym == "["], ann.sample[sym == "]"]
    vf = []
    for a in on:                       # each '[' closes at the next ']' (or the record's end)
        later = off[off > a]
        vf.append((int(a), int(later[0]) if later.size else rec.n_samples))
    return Ref(name, rec.signal[:, 0].astype(np.float64), rec.fs_hz, beats,
               np.array(vf, np.int64).reshape(-1, 2))


def outside(samples: np.ndarray, spans: np.ndarray) -> np.ndarray:
    keep = np.ones(samples.size, bool)
    for a, b in spans:
        keep &= ~((samples >= a) & (samples <= b))
    return keep


def score(ref: Ref, det: np.ndarray, ec57: bool = True) -> BeatScore:
    if ec57 and ref.vf.size:
        return score_beats(ref.beats[outside(ref.beats, ref.vf)], det[outside(det, ref.vf)],
                           ref.fs)
    return score_beats(ref.beats, det, ref.fs)


def fmt(s: BeatScore) -> str:
    return f"{s.sensitivity:.4f} {s.ppv:.4f} {s.f1:.4f}"


# --- sections -------------------------------------------------------------------------------
def detection(names, detectors, chunk_s):
    from tqdm import tqdm

    rows = []
    for name in tqdm(names, desc="records", unit="rec", file=sys.stderr):
        ref = load(name)
        chunk = max(1, round(chunk_s * ref.fs))
        det, dec, emit, t = run_ours(ref.x, ref.fs, chunk)
        mr, md = match_beats(ref.beats, det, round(0.15 * ref.fs))
        row = {"name": name, "ref": ref, "seconds": ref.seconds,
               "ours": (score(ref, det), t), "ours_all": score(ref, det, ec57=False),
               "dec": (dec - det) * 1000.0 / ref.fs,
               "emit": (emit[md] - ref.beats[mr]) * 1000.0 / ref.fs}
        for p in detectors[1:]:
            if p == "ours-rt":
                pk, tp = _timed(run_runtime_chain, name, ref.fs)
            else:
                pk, tp = _timed(PEERS[p], ref.x, ref.fs)
            row[p] = (score(ref, pk), tp)
        rows.append(row)
    return rows


def print_detection(rows, detectors, chunk_s):
    print(f"ours: streaming, {chunk_s * 1000:.0f}-ms chunks; peers: offline on the whole "
          "record. Per record: Se +P F1 (EC57: VF/VFL episodes left out)\n")
    print(f"{'record':10s} {'beats':>5s} " + " | ".join(f"{d:^20s}" for d in detectors))
    for r in rows:
        print(f"{r['name']:10s} {r['ours'][0].n_ref:5d} "
              + " | ".join(fmt(r[d][0]) for d in detectors))
    print()
    for folder, label in GROUPS:
        grp = [r for r in rows if r["name"].startswith(folder + "/")]
        if not grp:
            continue
        print(f"{label} ({len(grp)} record{'s' if len(grp) > 1 else ''}), gross:")
        for d in detectors:
            p = pool_scores([r[d][0] for r in grp])
            worst = min(grp, key=lambda r, d=d: r[d][0].f1)
            cpu = sum(r[d][1][0] for r in grp)
            secs = sum(r["seconds"] for r in grp)
            print(f"  {d:9s} Se {p.sensitivity:.4f} +P {p.ppv:.4f} F1 {p.f1:.4f} "
                  f"(TP {p.tp} FN {p.fn} FP {p.fp}); worst {worst[d][0].f1:.4f} "
                  f"({worst['name']}); {secs / cpu:,.0f}x real time (CPU)")
        folds = FOLDS.get(folder, 1)
        if folds > 1 and len(grp) >= folds:
            print(f"  per fold (fold k: the records k, k+{folds}, k+{2 * folds}, ... in number "
                  "order): gross F1 (worst record)")
            print(f"  {'':9s} " + "  ".join(f"{'fold ' + str(k):^15s}" for k in range(folds)))
            for d in detectors:
                cells = []
                for k in range(folds):
                    ss = [r[d][0] for r in grp[k::folds]]
                    cells.append(f"{pool_scores(ss).f1:.4f} ({min(x.f1 for x in ss):.4f})")
                print(f"  {d:9s} " + "  ".join(cells))
        vf = [r["name"] for r in grp if r["ref"].vf.size]
        if vf:
            p = pool_scores([r["ours_all"] for r in grp])
            print(f"  ours with the VF episodes of {', '.join(vf)} scored too: Se "
                  f"{p.sensitivity:.4f} +P {p.ppv:.4f} F1 {p.f1:.4f} (TP {p.tp} FN {p.fn} "
                  f"FP {p.fp})")
    dec = np.concatenate([r["dec"] for r in rows])
    emit = np.concatenate([r["emit"] for r in rows])
    print(f"\nours, all beats: median decision delay {np.median(dec):.0f} ms after our R "
          f"(p95 {np.percentile(dec, 95):.0f}); median emission delay after the reference R "
          f"{np.median(emit):.0f} ms (p95 {np.percentile(emit, 95):.0f}) at "
          f"{chunk_s * 1000:.0f}-ms chunks")
    mit = [r for r in rows if r["ref"].fs == 360.0]
    if mit:
        xrt = [r["seconds"] / r["ours"][1][0] for r in mit]
        wall = [r["seconds"] / r["ours"][1][1] for r in mit]
        load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"ours, 360-Hz single lead streaming: median {np.median(xrt):,.0f}x real time by "
              f"CPU time (min {min(xrt):,.0f}x), {np.median(wall):,.0f}x by wall clock (load "
              f"average now {load_avg:.2f} on {os.cpu_count()} cores)")
    p = pool_scores([r["ours"][0] for r in rows])
    print(f"ours, R location: median |detection - reference| {p.median_abs_error_ms:.1f} ms "
          "over matched beats")


def cross_validate(refs: list[Ref], specs: list[str], chunk_s: float, folds: int = 2,
                   label_db: str = "MIT-BIH"):
    """Leave-records-out: choose the values of the `QRSConfig` fields in `specs` (jointly:
    every combination) on all folds but one, score them on that one, each fold in turn; the
    held-out folds pooled are the cross-validated figure. Folds: records in number order,
    fold k = every `folds`-th record from the k-th (2 folds: alternate halves)."""
    names, grids = [], []
    for spec in specs:
        name, _, values = spec.partition("=")
        name = name.strip().lower()
        if name not in {f.name for f in dataclasses.fields(QRSConfig)}:
            raise SystemExit(f"--cv {spec}: QRSConfig has no field {name!r} (fields: "
                             f"{', '.join(f.name for f in dataclasses.fields(QRSConfig))})")
        kind = type(getattr(DEFAULT_QRS, name))
        if kind not in (int, float):
            raise SystemExit(f"--cv {spec}: {name} is a {kind.__name__}; --cv sweeps numbers")
        try:
            grids.append([kind(v) for v in values.split(",")])
        except ValueError:
            raise SystemExit(f"--cv {spec}: values must be {kind.__name__}s, comma-separated"
                             ) from None
        names.append(name)
    defaults = tuple(getattr(DEFAULT_QRS, n) for n in names)
    configs = list(itertools.product(*grids))      # value tuples, as the table prints them
    try:     # built up front: a value the detector rejects stops the sweep before it runs
        built = {c: dataclasses.replace(DEFAULT_QRS, **dict(zip(names, c))) for c in configs}
    except ValueError as e:
        raise SystemExit(f"--cv: {e}") from None
    table = {}
    for cfg in configs:
        for ref in refs:
            det, *_ = run_ours(ref.x, ref.fs, max(1, round(chunk_s * ref.fs)), built[cfg])
            table[(cfg, ref.name)] = score(ref, det)
    parts = [refs[k::folds] for k in range(folds)]
    label = ", ".join(names)

    def cell(cfg, rs):
        ss = [table[(cfg, r.name)] for r in rs]
        return f"{pool_scores(ss).f1:.4f} ({min(s.f1 for s in ss):.4f})"

    print(f"\nLeave-records-out on {label} (defaults {defaults}); {folds} folds of the "
          f"{len(refs)} {label_db} records (fold k: the records k, k+{folds}, ... in number "
          "order); gross F1 (worst record):")
    print(f"  {'values':>20s}  " + "  ".join(f"{'fold ' + str(k):^15s}" for k in range(folds))
          + "    all records")
    for cfg in configs:
        print(f"  {','.join(map(str, cfg)):>20s}  "
              + "  ".join(cell(cfg, rs) for rs in parts + [refs]))
    held = []
    for k in range(folds):
        tune = [r for j, rs in enumerate(parts) if j != k for r in rs]
        # ties go to the first value listed: list the defaults first
        best = max(configs, key=lambda c: pool_scores([table[(c, r.name)] for r in tune]).f1)
        ss = [table[(best, r.name)] for r in parts[k]]
        held += ss
        p = pool_scores(ss)
        print(f"  chosen without fold {k}: {label} = {','.join(map(str, best))}; scored on "
              f"fold {k}: Se {p.sensitivity:.4f} +P {p.ppv:.4f} F1 {p.f1:.4f} worst "
              f"{min(s.f1 for s in ss):.4f}")
    p = pool_scores(held)
    print(f"  leave-records-out, the {folds} held-out folds pooled: Se {p.sensitivity:.4f} "
          f"+P {p.ppv:.4f} F1 {p.f1:.4f} worst {min(s.f1 for s in held):.4f}")


def noise_stress(detectors, chunk_s, snrs, seed, records):
    from edge_ecg.data.noise_stress import make_noise_stress

    t0 = time.perf_counter()
    res = {}                    # (snr, detector) -> list of BeatScore
    for name in records:
        for snr in snrs:
            nst = make_noise_stress(DATA / name, DATA / "nstdb", snr, seed=seed, channels=[0])
            x = nst.signal[:, 0].astype(np.float64)
            start = round(300.0 * nst.fs_hz)          # score from minute 5 on
            ref = nst.ref[nst.ref >= start]
            dets = {"ours": run_ours(x, nst.fs_hz, max(1, round(chunk_s * nst.fs_hz)))[0]}
            for p in detectors[1:]:
                dets[p] = _timed(PEERS[p], x, nst.fs_hz)[0]
            for d, det in dets.items():
                res.setdefault((snr, d), []).append(score_beats(ref, det[det >= start],
                                                                nst.fs_hz))
    print(f"\nNoise stress ({' + '.join(records)}, lead 0, bw + ma noise, seed {seed}; scored "
          "from minute 5: noisy and clean blocks in turn). Se / +P per SNR, gross:")
    print(f"{'SNR dB':>6s} " + " | ".join(f"{d:^13s}" for d in detectors))
    for snr in snrs:
        cells = []
        for d in detectors:
            p = pool_scores(res[(snr, d)])
            cells.append(f"{p.sensitivity:.4f} {p.ppv:.4f}"[:13])
        print(f"{snr:6g} " + " | ".join(f"{c:^13s}" for c in cells))
    print(f"(noise stress section: {time.perf_counter() - t0:.0f} s wall)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunk-s", type=float, default=0.1)
    ap.add_argument("--records", default="", help="comma list, e.g. mitdb/100,svdb/800; "
                    "default: every annotated record")
    ap.add_argument("--db", default=",".join(g for g, _ in GROUPS),
                    help="databases whose records are run (default: all of them)")
    ap.add_argument("--runtime-chain", action="store_true",
                    help="add ours-rt: every channel through the runtime's chain (resampled to "
                    "the default bundle's rate, its contract filter), offline")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--cv", action="append", default=[], metavar="NAME=v1,v2,...")
    ap.add_argument("--cv-db", default="mitdb", choices=[g for g, _ in GROUPS],
                    help="the records --cv chooses and scores on (folds: FOLDS)")
    ap.add_argument("--cv-joint", action="store_true",
                    help="sweep every combination of the --cv values instead of one at a time")
    ap.add_argument("--nst", action="store_true", help="add the noise stress section")
    ap.add_argument("--nst-only", action="store_true")
    ap.add_argument("--nst-records", default=",".join(NST_RECORDS))
    ap.add_argument("--snr", default="24,18,12,6,0,-6")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not (DATA / "mitdb").is_dir():
        print(f"real records not found at {DATA}: nothing to benchmark", file=sys.stderr)
        return 1
    names = ([r for r in args.records.split(",") if r]
             or all_records(tuple(d for d in args.db.split(",") if d)))
    peers = [] if args.no_peers else available_peers([p for p in args.peers.split(",") if p])
    detectors = ["ours"] + (["ours-rt"] if args.runtime_chain else []) + peers
    t0 = time.perf_counter()
    print(f"Beat detection, lead 0, +/-150 ms matching. Machine: {this_machine().summary()}")
    if not args.nst_only:
        rows = detection(names, detectors, args.chunk_s)
        print_detection(rows, detectors, args.chunk_s)
        if args.cv:
            refs = [r["ref"] for r in rows if r["name"].startswith(args.cv_db + "/")]
            if not refs:
                raise SystemExit(f"--cv-db {args.cv_db}: none of its records were run")
            folds = FOLDS.get(args.cv_db, 2)
            label_db = dict(GROUPS)[args.cv_db]
            for specs in [args.cv] if args.cv_joint else [[spec] for spec in args.cv]:
                cross_validate(refs, specs, args.chunk_s, folds, label_db)
    if args.nst or args.nst_only:
        noise_stress(detectors, args.chunk_s, [float(s) for s in args.snr.split(",")],
                     args.seed, [r for r in args.nst_records.split(",") if r])
    print(f"\n(total {time.perf_counter() - t0:.0f} s wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
