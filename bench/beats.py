"""Beat detection benchmark: our streaming detector against wfdb XQRS and NeuroKit2, same run.

On every annotated record in ../shared/data (resolved from the repository root): MIT-BIH
Arrhythmia 100, 102, 104, 105, 106, 119, 208, ST Change 300, Supraventricular Arrhythmia 800,
lead 0 of each. Ours runs streaming, fed 0.1-s chunks as a monitor would send them; the peers
are offline (whole record at once) and report no decision time, so only ours has a delay.
Matching: +/-150 ms (AAMI EC57 / WFDB bxb), whole records scored, no learning period excluded.

    python bench/beats.py [--chunk-s 0.1] [--records mitdb/100,svdb/800] [--no-peers]

Delays: `decided` = decision sample - our R sample (chunking-independent); `emitted` = the end
of the chunk that returned the beat - the reference R sample (what a caller waits).
Throughput: record seconds / CPU seconds of this process (`time.process_time`, one thread),
so that other jobs on a shared machine do not count against a detector; wall-clock figures
are printed beside them with the machine's load average.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # "one core": no hidden BLAS threads in any detector

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RECORDS = ["mitdb/100", "mitdb/102", "mitdb/104", "mitdb/105", "mitdb/106", "mitdb/119",
           "mitdb/208", "stdb/300", "svdb/800"]
sys.path.insert(0, str(REPO))

from edge_ecg.data.records import beat_annotations, read_record  # noqa: E402
from edge_ecg.signal.qrs import qrs_detect, qrs_flush, qrs_initial  # noqa: E402
from edge_ecg.signal.scoring import match_beats, pool_scores, score_beats  # noqa: E402
from profiles.machine import this_machine  # noqa: E402


def run_ours(x: np.ndarray, fs: float, chunk: int):
    """Streaming: (R indices, decision delays in samples, emit index per beat, wall s)."""
    state = qrs_initial(fs)
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


def run_xqrs(x: np.ndarray, fs: float):
    import wfdb.processing

    c0, t0 = time.process_time(), time.perf_counter()
    peaks = wfdb.processing.xqrs_detect(sig=x.astype(np.float64), fs=fs, verbose=False)
    return np.asarray(peaks, np.int64), (time.process_time() - c0, time.perf_counter() - t0)


def run_neurokit(x: np.ndarray, fs: float):
    import neurokit2 as nk

    c0, t0 = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = nk.ecg_clean(x.astype(np.float64), sampling_rate=int(fs))   # nk's default chain
        _, info = nk.ecg_peaks(clean, sampling_rate=int(fs))
    return (np.asarray(info["ECG_R_Peaks"], np.int64),
            (time.process_time() - c0, time.perf_counter() - t0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunk-s", type=float, default=0.1)
    ap.add_argument("--records", default=",".join(RECORDS))
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args(argv)
    if not (DATA / "mitdb").is_dir():
        print(f"real records not found at {DATA}: nothing to benchmark", file=sys.stderr)
        return 1
    from tqdm import tqdm

    names = [r for r in args.records.split(",") if r]
    detectors = ["ours"] + ([] if args.no_peers else ["xqrs", "neurokit2"])
    rows, scores = [], {d: {} for d in detectors}
    delays_dec, delays_emit = [], []
    header = this_machine().summary()
    for name in tqdm(names, desc="records", unit="rec", file=sys.stderr):
        rec = read_record(DATA / name, channels=[0])
        ref = beat_annotations(DATA / name).sample
        x, fs = rec.signal[:, 0], rec.fs_hz
        chunk = max(1, int(round(args.chunk_s * fs)))
        det, dec, emit, wall = run_ours(x, fs, chunk)
        s = score_beats(ref, det, fs)
        mr, md = match_beats(ref, det, int(round(0.15 * fs)))
        d_dec = (dec - det) * 1000.0 / fs
        d_emit = (emit[md] - ref[mr]) * 1000.0 / fs
        delays_dec.append(d_dec)
        delays_emit.append(d_emit)
        scores["ours"][name] = s
        row = {"record": name, "fs": fs, "n_ref": s.n_ref, "seconds": rec.seconds,
               "ours": (s, wall), "dec": float(np.median(d_dec)),
               "emit": float(np.median(d_emit)), "p95": float(np.percentile(d_emit, 95))}
        for peer, fn in (("xqrs", run_xqrs), ("neurokit2", run_neurokit)):
            if peer in detectors:
                p, w = fn(x, fs)
                ps = score_beats(ref, p, fs)
                scores[peer][name] = ps
                row[peer] = (ps, w)
        rows.append(row)

    print(f"\nBeat detection, lead 0, +/-150 ms matching. Machine: {header}")
    print(f"ours: streaming, {args.chunk_s * 1000:.0f}-ms chunks; peers: offline on the whole "
          "record (no decision delay exists for them)\n")
    cols = "".join(f" | {d:>9s} Se    +P     F1   xRT" for d in detectors)
    print(f"{'record':10s} {'fs':>5s} {'beats':>5s}{cols} | delay ms: decided emitted p95")
    print("(xRT = record seconds / CPU seconds; Se sensitivity, +P positive predictivity)")
    for r in rows:
        line = f"{r['record']:10s} {r['fs']:5.0f} {r['n_ref']:5d}"
        for d in detectors:
            s, w = r[d]
            line += (f" | {'':>5s}{s.sensitivity:.4f} {s.ppv:.4f} {s.f1:.4f} "
                     f"{r['seconds'] / w[0]:5.0f}")
        line += f" | {r['dec']:14.0f} {r['emit']:7.0f} {r['p95']:4.0f}"
        print(line)
    mit = [n for n in names if n.startswith("mitdb/")]
    groups = [(f"pooled MIT-BIH Arrhythmia ({len(mit)})", mit),
              ("pooled all records", names)]
    for label, group in groups:
        if not group:
            continue
        line = f"{label:32s}"
        for d in detectors:
            p = pool_scores([scores[d][n] for n in group])
            worst = min(scores[d][n].f1 for n in group)
            secs = sum(r["seconds"] for r in rows if r["record"] in group)
            cpu = sum(r[d][1][0] for r in rows if r["record"] in group)
            line += (f" | {d}: Se {p.sensitivity:.4f} +P {p.ppv:.4f} F1 {p.f1:.4f} "
                     f"(worst {worst:.4f}) {secs / cpu:.0f}xRT")
        print(line)
    all_dec = np.concatenate(delays_dec)
    all_emit = np.concatenate(delays_emit)
    xrt = [r["seconds"] / r["ours"][1][0] for r in rows if r["fs"] == 360.0]
    xrt_wall = [r["seconds"] / r["ours"][1][1] for r in rows if r["fs"] == 360.0]
    print(f"\nours, all beats: median decision delay {np.median(all_dec):.0f} ms after our R "
          f"(p95 {np.percentile(all_dec, 95):.0f}); median emission delay after the reference R "
          f"{np.median(all_emit):.0f} ms (p95 {np.percentile(all_emit, 95):.0f}) at "
          f"{args.chunk_s * 1000:.0f}-ms chunks")
    if xrt:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"ours, 360-Hz single lead streaming: median {np.median(xrt):.0f}x real time by CPU "
              f"time (min {min(xrt):.0f}x), {np.median(xrt_wall):.0f}x by wall clock "
              f"(load average now {load:.2f} on {os.cpu_count()} cores)")
    p = pool_scores([scores["ours"][n] for n in names])
    print(f"ours, R location: median |detection - reference| {p.median_abs_error_ms:.1f} ms "
          f"over matched beats")
    return 0


if __name__ == "__main__":
    sys.exit(main())
