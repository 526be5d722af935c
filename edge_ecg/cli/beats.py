"""`edge-ecg beats RECORD`: streaming beat detection on a WFDB record, scored if annotated.

The record is fed to the detector in chunks of `--chunk-s` seconds, as a monitor would send
it; each beat carries the sample it was decided at, so the decision delay is measured, not
assumed. With reference beats (`.atr` or `.beat` beside the record) the detections are matched
within +/-150 ms (AAMI EC57 / WFDB bxb convention); the whole record is scored, edges included.
"""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("record", metavar="RECORD",
                        help="WFDB record path, with or without .hea "
                             "(e.g. ../shared/data/mitdb/100)")
    parser.add_argument("--annotations", metavar="EXT", default=None,
                        help="reference annotation extension (atr, beat); default: whichever "
                             "exists beside the record, none: detect only")
    parser.add_argument("--channel", metavar="N", type=int, action="append", default=None,
                        help="lead index to use (repeat for several leads: their slope energies "
                             "are summed); default 0")
    parser.add_argument("--chunk-s", type=float, default=0.1,
                        help="chunk length fed to the streaming detector, seconds")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (counts, Se, +P, F1, delays, timing, and "
                             "each beat's PR, QRS and QT with the record's medians)")
    parser.add_argument("--no-intervals", action="store_true",
                        help="detect only: skip delineation (PR, QRS, QT per beat)")


def detect_stream(signal, fs_hz: float, chunk: int):
    """Feed `signal` (T, L) through the streaming detector in chunks; (beats, wall seconds)."""
    import time

    from edge_ecg.signal.qrs import qrs_detect, qrs_flush, qrs_initial

    state = qrs_initial(fs_hz)
    beats = []
    t0 = time.perf_counter()
    for i in range(0, signal.shape[0], chunk):
        found, state = qrs_detect(signal[i: i + chunk], state)
        beats.extend(found)
    found, _ = qrs_flush(state)   # the record ends: decide its last beat
    beats.extend(found)
    return beats, time.perf_counter() - t0


def delineate_stream(signal, fs_hz: float, chunk: int):
    """Detector and delineator streamed together in chunks; (BeatWaves list, wall seconds).
    Beats within the delineator's post_s (DelineationConfig) of the record's end come out without boundaries."""
    import time

    from edge_ecg.signal.delineate import delineate, delineate_flush, delineate_initial
    from edge_ecg.signal.qrs import qrs_detect, qrs_flush, qrs_initial

    qst, dst = qrs_initial(fs_hz), delineate_initial(fs_hz)
    waves = []
    t0 = time.perf_counter()
    for i in range(0, signal.shape[0], chunk):
        x = signal[i: i + chunk]
        found, qst = qrs_detect(x, qst)
        got, dst = delineate(x, found, dst)
        waves.extend(got)
    found, _ = qrs_flush(qst)
    got, dst = delineate(signal[:0], found, dst)
    waves.extend(got)
    waves.extend(delineate_flush(dst)[0])
    return waves, time.perf_counter() - t0


def _r1(v):
    return None if v is None else round(float(v), 1)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from edge_ecg.data.records import beat_annotations, find_beat_extension, read_record
    from edge_ecg.errors import RecordError, SignalError
    from edge_ecg.signal.scoring import MATCH_TOLERANCE_S, score_beats

    channels = args.channel or [0]
    if args.chunk_s <= 0:
        raise SignalError(f"--chunk-s must be positive, got {args.chunk_s}")
    rec = read_record(args.record)
    bad = [c for c in channels if not 0 <= c < len(rec.leads)]
    if bad:
        raise RecordError(f"{rec.path}: channel(s) {bad} out of range; the record has "
                          f"{len(rec.leads)} lead(s) {list(rec.leads)}")
    signal = rec.signal[:, channels]
    chunk = max(1, int(round(args.chunk_s * rec.fs_hz)))
    beats, wall = detect_stream(signal, rec.fs_hz, chunk)
    det = np.array([b.index for b in beats], dtype=np.int64)
    delays = np.array([b.delay_ms for b in beats], dtype=np.float64)

    ext = args.annotations or find_beat_extension(rec.path)
    out = {
        "record": rec.path, "fs_hz": rec.fs_hz, "leads": [rec.leads[c] for c in channels],
        "seconds": rec.seconds, "chunk_s": chunk / rec.fs_hz, "n_det": int(det.size),
        "median_delay_ms": float(np.median(delays)) if delays.size else None,
        "p95_delay_ms": float(np.percentile(delays, 95)) if delays.size else None,
        "wall_s": wall, "x_realtime": rec.seconds / wall if wall > 0 else None,
        "annotations": ext,
    }
    if not args.no_intervals:
        from edge_ecg.signal.intervals import window_intervals

        waves, wall_d = delineate_stream(signal, rec.fs_hz, chunk)
        out["delineation_wall_s"] = wall_d
        out["intervals"] = {k: _r1(v) if k != "n_delineated" else v
                            for k, v in window_intervals(waves).items()}
        out["beats"] = [{"index": w.r, "pr_ms": _r1(w.pr_ms), "qrs_ms": _r1(w.qrs_ms),
                         "qt_ms": _r1(w.qt_ms)} for w in waves]
    if ext is not None:
        ref = beat_annotations(rec.path, ext)
        score = score_beats(ref.sample, det, rec.fs_hz)
        out.update(score.to_dict())
        out["tolerance_ms"] = MATCH_TOLERANCE_S * 1000.0
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"record   {rec.path}  ({rec.fs_hz:g} Hz, {rec.seconds:.1f} s, "
          f"lead(s) {', '.join(out['leads'])})")
    print(f"detector streaming, {out['chunk_s'] * 1000:.0f}-ms chunks: {det.size} beats, "
          f"median decision delay {out['median_delay_ms'] or float('nan'):.0f} ms after R "
          f"(95th pct {out['p95_delay_ms'] or float('nan'):.0f} ms; one chunk more when streamed), "
          f"{wall:.2f} s wall = {out['x_realtime'] or 0:.0f}x real time")
    if "intervals" in out:
        iv = out["intervals"]

        def f(v):
            return "-" if v is None else f"{v:.0f}"
        print(f"intervals (medians over {iv['n_delineated']} delineated beats): "
              f"HR {f(iv['hr_bpm'])} bpm  PR {f(iv['pr_ms'])}  QRS {f(iv['qrs_ms'])}  "
              f"QT {f(iv['qt_ms'])}  QTc Bazett {f(iv['qtc_bazett_ms'])}  "
              f"Fridericia {f(iv['qtc_fridericia_ms'])} ms")
    if ext is None:
        print("reference: none found (.atr or .beat); pass --annotations EXT to score")
        return 0
    print(f"reference {ext}: {out['n_ref']} beats, matched within +/-{out['tolerance_ms']:.0f} ms")
    print(f"  TP {out['tp']}  FP {out['fp']}  FN {out['fn']}")
    print(f"  Se {out['sensitivity']:.4f}  +P {out['ppv']:.4f}  F1 {out['f1']:.4f}  "
          f"median |R error| {out['median_abs_error_ms']:.1f} ms")
    return 0
