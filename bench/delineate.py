"""Delineation benchmark: our streaming delineator beside NeuroKit2's DWT delineator, same run,
on every LUDB record in ../shared/data/ludb (160 here), with the CSE 2-sigma tolerances.

Rows (per boundary: Se, +P, mean and SD of detected - reference in ms, match +/-150 ms; an
unmatched detection counts only inside the span the cardiologists marked):

    ours-12/cons   12 leads combined, scored against the consensus of the 12 leads' marks
                   (median of each wave's marks over the leads, where >= 6 leads marked it)
    ours-12/every  the same boundaries scored against every lead's own marks
    floor/every    the consensus marks themselves against every lead's own marks: the spread
                   between the cardiologists' leads, a floor for any single boundary per beat
    ours-II        lead II alone (its own R peaks) against lead II's marks
    nk-II          NeuroKit2 on lead II: ecg_clean, ecg_peaks, ecg_delineate(method='dwt')

Parameters marked LUDB in edge_ecg/signal/delineate.py (fields of `DelineationConfig`; the
benchmark runs `DEFAULT_DELINEATION`) were chosen on the odd-numbered records; `--half
odd|even` scores one half (even = held out).

    nice -n 10 python bench/delineate.py               # all records, ~3 min on 2 cores
    nice -n 10 python bench/delineate.py --half even   # held-out half
    nice -n 10 python bench/delineate.py --no-peer     # ours only

Throughput: record seconds / CPU seconds of delineation alone (R peaks given), streamed in
0.1-s chunks, 12 leads and 1 lead, `time.process_time` in one process.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LUDB = ROOT.parent / "shared" / "data" / "ludb"

from edge_ecg.data.ludb_waves import (  # noqa: E402
    BOUNDARIES,
    CSE_2SD_MS,
    consensus_waves,
    list_records,
    pool,
    read_lead_waves,
    read_record_waves,
    score_points,
)

NK_KEYS = {"p_on": "ECG_P_Onsets", "p_peak": "ECG_P_Peaks", "p_off": "ECG_P_Offsets",
           "qrs_on": "ECG_R_Onsets", "qrs_off": "ECG_R_Offsets", "t_on": "ECG_T_Onsets",
           "t_peak": "ECG_T_Peaks", "t_off": "ECG_T_Offsets"}


def _points(waves) -> dict:
    return {b: np.array([w.points[b] for w in waves if w.valid and w.points[b] is not None],
                        dtype=np.int64) for b in BOUNDARIES}


def neurokit_points(x: np.ndarray, fs: float) -> dict:
    import neurokit2 as nk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = nk.ecg_clean(x, sampling_rate=fs)
        _, info = nk.ecg_peaks(clean, sampling_rate=fs)
        r = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
        out = {b: np.zeros(0, np.int64) for b in BOUNDARIES}
        out["qrs_peak"] = r
        try:
            _, waves = nk.ecg_delineate(clean, r, sampling_rate=fs, method="dwt")
        except Exception:  # noqa: BLE001 - a peer failure on one record scores as no boundary
            return out
    for b, k in NK_KEYS.items():
        v = np.asarray(waves.get(k, []), dtype=np.float64)
        out[b] = v[np.isfinite(v)].astype(np.int64)
    return out


def one_record(args) -> dict:
    path, peer = args
    from edge_ecg.data.records import read_record
    from edge_ecg.signal.delineate import delineate_record

    rec = read_record(path)
    names = [x.lower() for x in rec.leads]
    refs = read_record_waves(path)
    cons = consensus_waves(refs)
    ours12 = _points(delineate_record(rec.signal, rec.fs_hz))
    k = names.index("ii")
    ours2 = _points(delineate_record(rec.signal[:, [k]], rec.fs_hz))
    rows = {
        "ours-12/cons": score_points(ours12, cons),
        "ours-12/every": pool([score_points(ours12, refs[ld]) for ld in refs]),
        "floor/every": pool([score_points(cons.points, refs[ld]) for ld in refs]),
        "ours-II": score_points(ours2, read_lead_waves(path, "ii")),
    }
    if peer:
        rows["nk-II"] = score_points(neurokit_points(rec.signal[:, k].astype(np.float64),
                                                     rec.fs_hz), refs["ii"])
    return rows


def throughput(records, n: int = 20) -> dict:
    from edge_ecg.data.records import read_record
    from edge_ecg.signal.delineate import delineate, delineate_initial
    from edge_ecg.signal.qrs import detect_beats

    out = {}
    for leads in (12, 1):
        secs = cpu = 0.0
        for path in records[:n]:
            rec = read_record(path)
            x = rec.signal[:, :leads].astype(np.float64)
            r = detect_beats(x, rec.fs_hz)
            beats = [(int(i), int(i)) for i in r]
            chunk = round(0.1 * rec.fs_hz)
            st = delineate_initial(rec.fs_hz)
            t0 = time.process_time()
            for a in range(0, x.shape[0], chunk):
                mine = [b for b in beats if a <= b[0] < a + chunk]
                _, st = delineate(x[a: a + chunk], mine, st)
            cpu += time.process_time() - t0
            secs += x.shape[0] / rec.fs_hz
        out[leads] = secs / cpu
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(LUDB))
    ap.add_argument("--half", choices=("all", "odd", "even"), default="all")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    a = ap.parse_args()
    recs = list_records(a.data)
    if a.half != "all":
        recs = [r for r in recs if int(r.name) % 2 == (1 if a.half == "odd" else 0)]
    t0 = time.time()
    with ProcessPoolExecutor(a.workers) as ex:
        res = list(ex.map(one_record, [(r, not a.no_peer) for r in recs]))
    wall = time.time() - t0
    print(f"LUDB {a.data}: {len(recs)} records ({a.half}), match +/-150 ms; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{wall:.0f} s wall")
    names = list(res[0])
    pooled = {n: pool([r[n] for r in res]) for n in names}
    for b in ("p_on", "p_peak", "p_off", "qrs_on", "qrs_off", "t_peak", "t_off"):
        cse = CSE_2SD_MS.get(b)
        print(f"\n{b}" + (f"   (CSE 2SD {cse} ms)" if cse else ""))
        print(f"  {'':14s} {'Se':>7s} {'+P':>7s} {'mean':>7s} {'SD':>6s}")
        for n in names:
            s = pooled[n].get(b)
            if s is None:
                continue
            print(f"  {n:14s} {s.sensitivity:7.4f} {s.ppv:7.4f} {s.mean_ms:7.1f} "
                  f"{s.sd_ms:6.1f}")
    from edge_ecg.signal.delineate import DEFAULT_DELINEATION

    tp = throughput(recs)
    print(f"\nthroughput (delineation alone, 0.1-s chunks): 12 leads {tp[12]:.0f}x real time, "
          f"1 lead {tp[1]:.0f}x real time; delay: post_s = {DEFAULT_DELINEATION.post_s:g} s "
          "after R (DelineationConfig)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
