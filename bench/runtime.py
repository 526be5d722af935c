"""Runtime benchmark: throughput, latency, memory and a real-time serial stream, in one run.

    python bench/runtime.py                  # default bundle, 10-min pty stream
    python bench/runtime.py --minutes 1 --bundle DIR

1. Throughput: a 12-lead 500-Hz WFDB record (synthetic patient written with wfdb) replayed as
   fast as possible through the streaming runtime with a prediction every second, in a child
   process pinned to one core, one inference thread (onnxruntime). Peers in the same run, same
   record, same bundle: the offline training chain (`make_windows` + batched inference) and a
   naive streamer that re-conditions and re-detects the whole 10-s window every hop.
2. Latency: the same record at real-time pace: wall time from the arrival of the chunk that
   completes a window to its prediction event written (p50/p99).
3. A real-time stream through the pseudo-terminal (VirtualMonitor in this process ->
   SerialSource + runtime in a child process) for `--minutes`, counting samples lost, gaps,
   CRC errors and dropped chunks.
4. Peak RSS (VmHWM) of the runtime's processes, beside processes that only import
   onnxruntime, scipy.signal or torch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from profiles.machine import this_machine  # noqa: E402

DEFAULT_BUNDLE = REPO / "edge_ecg" / "assets" / "default_bundle"


def write_record(folder: Path, seconds: float, seed: int = 5) -> Path:
    """A 12-lead 500-Hz synthetic patient (sinus -> AF -> sinus with PVCs) as a WFDB record."""
    import wfdb

    from edge_ecg.data.synth import synthesize_schedule

    part = seconds / 3
    rec = synthesize_schedule([("sinus_rhythm", part), ("atrial_fibrillation", part),
                               ("premature_ventricular_contractions", part)], seed=seed,
                              snr_db=25.0)
    wfdb.wrsamp("bench12", fs=rec.fs_hz, units=["mV"] * 12, sig_name=list(rec.leads),
                p_signal=rec.signal.astype(np.float64), fmt=["16"] * 12, adc_gain=[1000.0] * 12,
                baseline=[0] * 12, write_dir=str(folder))
    return folder / "bench12"


# --- child: one streaming run, JSON on stdout ---------------------------------------------
def child_stream(args) -> None:
    if args.pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.pipeline import Pipeline
    from edge_ecg.runtime.sources import open_source

    class Count:
        n = 0

        def emit(self, ev):
            self.n += 1
            json.dumps(ev.to_json())          # the serialisation a JSONL sink pays

        def close(self):
            pass

    backend = open_backend(args.bundle, variant=args.variant, threads=1)
    src = open_source(f"record:{args.record}?speed={args.speed}")
    pipe = Pipeline(src, backend, [Count()])
    t0 = time.perf_counter()
    s = pipe.run(max_seconds=args.seconds, handle_signals=False)
    wall = time.perf_counter() - t0
    st = pipe.stage_times()
    print(json.dumps({"wall_s": wall, "signal_s": s.seconds, "predictions": s.predictions,
                      "withheld": s.withheld, "beats": s.beats,
                      "latency_ms": [s.latency_ms_p50, s.latency_ms_p99],
                      "inference_ms": [s.inference_ms_p50, s.inference_ms_p99],
                      "stages_s": {k: float(v.sum()) for k, v in st.items()},
                      "stage_calls": {k: int(v.size) for k, v in st.items()},
                      "rss_mb": peak_rss_mb()}))


def child_peers(args) -> None:
    """Offline chain and naive re-filtering streamer on the same record, one core."""
    if args.pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from edge_ecg.data.records import read_record
    from edge_ecg.data.windows import condition_signal
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.pipeline import run_offline
    from edge_ecg.signal.contract import SignalContract, prepare_inputs, stack_inputs
    from edge_ecg.signal.qrs import detect_beats

    rec = read_record(args.record)
    n = int(args.seconds * rec.fs_hz) if args.seconds else rec.n_samples
    x = rec.signal[:n]
    backend = open_backend(args.bundle, threads=1)
    t0 = time.perf_counter()
    starts, _ = run_offline(x, rec.fs_hz, rec.leads, backend)
    offline = time.perf_counter() - t0
    c = SignalContract.from_dict(backend.manifest.signal)
    # naive: every hop, condition + detect the last window from scratch (60 s is enough)
    m = min(n, int(70 * rec.fs_hz))
    # the window and hop in the RECORD's samples (the model may run at another rate); a few
    # extra samples so that the resampled window is never short, then its last window_len
    win, hop = int(round(c.window_s * rec.fs_hz)), int(round(c.hop_s * rec.fs_hz))
    extra = int(np.ceil(rec.fs_hz / c.fs_hz)) + 2
    t0 = time.perf_counter()
    k = 0
    for end in range(win + extra, m + 1, hop):
        w = condition_signal(x[end - win - extra:end], rec.fs_hz, c)[-c.window_len:]
        r = detect_beats(w, c.fs_hz)
        backend.run(stack_inputs([prepare_inputs(w, rec.leads, r, c)]))
        k += 1
    naive = time.perf_counter() - t0
    print(json.dumps({"offline_s": offline, "offline_signal_s": n / rec.fs_hz,
                      "offline_windows": int(len(starts)), "naive_s": naive,
                      "naive_signal_s": (m - win - extra) / rec.fs_hz + c.hop_s,
                      "naive_windows": k}))


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), MB. Not ru_maxrss: on Linux that keeps the
    high-water mark of the forked parent image from before exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_child(argv: list[str]) -> dict:
    """Run this script as a child; return the JSON it prints last."""
    res = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"child {argv} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def rss_of(code: str) -> float:
    """Peak RSS (MB) of a fresh interpreter running `code`."""
    probe = ("from pathlib import Path\n" + code + "\n"
             "print([int(l.split()[1]) / 1024 for l in Path('/proc/self/status').read_text()"
             ".splitlines() if l.startswith('VmHWM:')][0])")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return float(res.stdout.strip()) if res.returncode == 0 else float("nan")


def child_serial(args) -> None:
    """The device side of the pty stream: SerialSource -> runtime, in its own process (as on
    a monitor), so its peak RSS holds only what the runtime needs."""
    from tqdm import tqdm

    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.pipeline import Pipeline
    from firmware_bridge.serial_source import SerialSource

    backend = open_backend(args.bundle, threads=1)
    bar = tqdm(total=int(args.seconds), unit="s", desc="pty stream (real time)", mininterval=5)

    class Progress:
        done = 0

        def emit(self, ev):
            d = ev.to_json()
            if d["type"] in ("prediction", "withheld"):
                t = int(d["time_s"])
                if t > self.done:
                    bar.update(t - self.done)
                    self.done = t

        def close(self):
            bar.close()

    src = SerialSource(args.record)          # --record carries the port here
    pipe = Pipeline(src, backend, [Progress()])
    s = pipe.run(max_seconds=args.seconds, handle_signals=False)
    print(json.dumps({"received": s.samples, "gaps": s.gaps, "gap_samples": s.gap_samples,
                      "crc_errors": s.crc_errors, "dropped_chunks": s.dropped_chunks,
                      "lost_frames": s.source.get("lost_frames", 0),
                      "predictions": s.predictions, "withheld": s.withheld,
                      "latency_ms": [s.latency_ms_p50, s.latency_ms_p99], "wall_s": s.wall_s,
                      "rss_mb": peak_rss_mb()}))


def pty_stream(bundle: str, minutes: float) -> dict:
    """Real-time 12-lead stream: the virtual monitor here, the runtime in a child process."""
    from edge_ecg.data.synth import synthesize_schedule
    from firmware_bridge.emulator import VirtualMonitor

    seconds = minutes * 60.0
    part = seconds / 3
    rec = synthesize_schedule([("sinus_rhythm", part), ("atrial_fibrillation", part),
                               ("sinus_rhythm", part)], seed=9, snr_db=25.0)
    mon = VirtualMonitor(rec.signal, rec.fs_hz, rec.leads, speed=1.0, seconds=rec.seconds,
                         loop=False)
    port = mon.start()
    try:
        res = subprocess.run([sys.executable, __file__, "--child", "serial", "--bundle", bundle,
                              "--record", port, "--seconds", str(rec.seconds)],
                             stdout=subprocess.PIPE, text=True)
    finally:
        mon.stop()
    if res.returncode != 0:
        raise SystemExit("serial child failed")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["expected"] = int(rec.signal.shape[0])
    out["lost"] = out["expected"] - out["received"]
    out["injected"] = dict(mon.injected)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default=str(DEFAULT_BUNDLE))
    ap.add_argument("--minutes", type=float, default=10.0, help="real-time pty stream length")
    ap.add_argument("--record-minutes", type=float, default=10.0,
                    help="length of the 12-lead record replayed at max speed")
    ap.add_argument("--latency-seconds", type=float, default=60.0,
                    help="real-time replay used for the latency figures")
    ap.add_argument("--child", choices=("stream", "peers", "serial"), help=argparse.SUPPRESS)
    ap.add_argument("--record", help=argparse.SUPPRESS)
    ap.add_argument("--speed", default="max", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--pin", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "stream":
        return child_stream(args)
    if args.child == "peers":
        return child_peers(args)
    if args.child == "serial":
        return child_serial(args)

    from edge_ecg import DISCLAIMER
    from edge_ecg.runtime.bundle import load_bundle

    m = load_bundle(args.bundle)
    print(f"# edge-ecg runtime benchmark\nmachine: {this_machine().summary()}")
    print(f"bundle: {args.bundle} (model {m.model_version}, variant {m.default_variant})")
    print(DISCLAIMER)
    with tempfile.TemporaryDirectory() as tmp:
        record = write_record(Path(tmp), args.record_minutes * 60.0)
        base = ["--bundle", args.bundle, "--record", str(record)]
        thr = run_child(["--child", "stream", "--pin", *base, "--speed", "max"])
        # the same stream with the bundle's OpenVINO variant, where it has one
        ov = next((n for n, v in sorted(m.variants.items()) if v["backend"] == "openvino"
                   and v.get("precision") == m.variants[m.default_variant].get("precision")),
                  next((n for n, v in sorted(m.variants.items()) if v["backend"] == "openvino"),
                       None))
        thr_ov = (run_child(["--child", "stream", "--pin", *base, "--speed", "max",
                             "--variant", ov]) if ov else None)
        peers = run_child(["--child", "peers", "--pin", *base])
        lat = run_child(["--child", "stream", *base, "--speed", "realtime",
                         "--seconds", str(args.latency_seconds)])
    rss = thr["rss_mb"]
    rss_torch = rss_of("import torch")
    rss_ort = rss_of("import onnxruntime, numpy")
    rss_scipy = rss_of("import scipy.signal")

    x_rt = thr["signal_s"] / thr["wall_s"]
    x_off = peers["offline_signal_s"] / peers["offline_s"]
    x_naive = peers["naive_signal_s"] / peers["naive_s"]
    print(f"\n## 1. throughput: {args.record_minutes:g}-min 12-lead 500-Hz record, a prediction "
          "every 1 s, one core, 1 thread")
    print(f"{'pipeline':52s} {'x real time':>12s} {'ms / s of signal':>17s}")
    rows = [(f"edge-ecg stream, {m.default_variant} (replay, max)", x_rt)]
    if thr_ov:
        rows.append((f"edge-ecg stream, {ov} (replay, max)",
                     thr_ov["signal_s"] / thr_ov["wall_s"]))
    for name, x in (*rows,
                    ("peer: offline chain (make_windows + batch)", x_off),
                    ("peer: naive re-filter + re-detect per hop", x_naive)):
        print(f"{name:52s} {x:12.1f} {1000.0 / x:17.2f}")
    best = max(x for _, x in rows)
    print(f"stream/offline ratio {x_rt / x_off:.2f}; stream/naive ratio {x_rt / x_naive:.2f}; "
          f"target >= 200x: {'met' if best >= 200 else 'NOT met'} (best {best:.0f}x)")
    stages = thr["stages_s"]
    tot = sum(stages.values()) or 1.0
    print("stage shares (stream): " + ", ".join(
        f"{k} {1000 * v / thr['signal_s']:.2f} ms/s ({100 * v / tot:.0f}%)"
        for k, v in stages.items()))
    print(f"predictions {thr['predictions']}, withheld {thr['withheld']}, beats {thr['beats']}; "
          f"inference p50 {thr['inference_ms'][0]:.2f} ms (batched at max speed)")

    print(f"\n## 2. latency at real-time pace ({args.latency_seconds:g} s replay)")
    if np.isnan(lat["latency_ms"][1]):
        # The first prediction needs a whole window plus the next beat's decision.
        print(f"no prediction in {args.latency_seconds:g} s of signal: nothing to time (a "
              "prediction needs a full window and one more beat; use --latency-seconds >= 15)")
    else:
        print(f"sample-to-prediction p50 {lat['latency_ms'][0]:.2f} ms, p99 "
              f"{lat['latency_ms'][1]:.2f} ms (target p99 <= 50 ms: "
              f"{'met' if lat['latency_ms'][1] <= 50 else 'NOT met'}); "
              f"inference p50 {lat['inference_ms'][0]:.2f} ms")

    print(f"\n## 3. real-time stream through the pseudo-terminal ({args.minutes:g} min, 12 leads;"
          " monitor in this process, runtime in a child)")
    pty = pty_stream(args.bundle, args.minutes)
    print(f"samples expected {pty['expected']}, received {pty['received']}, lost {pty['lost']} "
          f"(target 0: {'met' if pty['lost'] == 0 else 'NOT met'}); gaps {pty['gaps']}, "
          f"CRC errors {pty['crc_errors']}, lost frames {pty['lost_frames']}, dropped chunks "
          f"{pty['dropped_chunks']}")
    latency = (f"latency p50 {pty['latency_ms'][0]:.2f} ms, p99 {pty['latency_ms'][1]:.2f} ms"
               if pty["predictions"] else "no prediction to time (stream shorter than a window "
               "and one beat; use --minutes >= 0.25)")
    print(f"predictions {pty['predictions']}, withheld {pty['withheld']}; {latency}; wall "
          f"{pty['wall_s']:.0f} s")

    print("\n## 4. peak RSS (VmHWM of separate processes)")
    print(f"{'process':52s} {'peak RSS MB':>12s}")
    print(f"{'edge-ecg runtime, serial path (the pty stream above)':52s} {pty['rss_mb']:12.1f}")
    print(f"{'edge-ecg record replay, max speed (+wfdb, record)':52s} {rss:12.1f}")
    print(f"{'peer: python + import onnxruntime, numpy':52s} {rss_ort:12.1f}")
    print(f"{'peer: python + import scipy.signal':52s} {rss_scipy:12.1f}")
    print(f"{'peer: python + import torch':52s} {rss_torch:12.1f}")
    print(f"target <= 150 MB (serial path): {'met' if pty['rss_mb'] <= 150 else 'NOT met'}")
    print(DISCLAIMER)


if __name__ == "__main__":
    main()
