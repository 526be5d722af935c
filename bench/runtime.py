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
5. A whole `edge-ecg stream` process (the console script, one core) replaying 5 min of the
   record at max speed: its start-up (launch to the `start` status event, i.e. bundle
   verified, session made, source open: ready for the first chunk), its wall time against
   the signal's, and the imports it paid for by then (`python -X importtime`); its bytecode
   cached, as an installed package's is (one untimed run writes it first).

Targets (issue 27), with every beat detected, delineated and classified: stream >= 300x real
time and >= 2x the naive peer of the same run; the whole process >= 200x; ready in < 0.5 s;
serial-path peak RSS <= 100 MB; p99 latency <= 50 ms; 0 samples lost.
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
    from edge_ecg.runtime.offline import run_offline
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
    a monitor), so its peak RSS holds only what the runtime needs: its progress is a plain
    line on stderr every minute of signal (tqdm, imported here, was 1.7 MB of that RSS)."""
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.pipeline import Pipeline
    from firmware_bridge.serial_source import SerialSource

    backend = open_backend(args.bundle, threads=1)

    class Progress:
        done = 0

        def emit(self, ev):
            d = ev.to_json()
            if d["type"] in ("prediction", "withheld"):
                t = int(d["time_s"])
                if t // 60 > self.done // 60:
                    print(f"pty stream (real time): {t} of {args.seconds:.0f} s",
                          file=sys.stderr, flush=True)
                self.done = max(self.done, t)

        def close(self):
            pass

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


def per_beat_costs(record: Path, bundle: str, repeat: int = 5) -> dict:
    """CPU time per beat (median of `repeat`) of the two per-beat stages on the record's
    first 2 min as the stream sees it (resampled to the bundle's rate, contract filter):
    delineation on the stream's leads (`delineation_columns`) and the patient context
    (`PatientContext.observe`, run per beat for bundles whose model reads `beat_ctx`) on all."""
    from edge_ecg.data.records import read_record
    from edge_ecg.runtime.beat_tracker import delineation_columns
    from edge_ecg.runtime.bundle import load_bundle
    from edge_ecg.signal.contract import SignalContract
    from edge_ecg.signal.delineate import delineate_record
    from edge_ecg.signal.filters import filter_offline
    from edge_ecg.signal.patient_context import PatientContext
    from edge_ecg.signal.qrs import qrs_detect, qrs_flush, qrs_initial
    from edge_ecg.signal.resample import resample_offline

    c = SignalContract.from_dict(load_bundle(bundle).signal)
    rec = read_record(record)
    x = rec.signal[: int(120 * rec.fs_hz)].astype(np.float32)
    if rec.fs_hz != c.fs_hz:
        x = resample_offline(x, rec.fs_hz, c.fs_hz)
    y = np.asarray(filter_offline(c.filter, x, c.fs_hz))
    beats, st = qrs_detect(y, qrs_initial(c.fs_hz))
    beats = beats + qrs_flush(st)[0]
    cols = list(delineation_columns(rec.leads))
    pre, post = c.beat_pre, c.beat_len - c.beat_pre
    rs = [b.index for b in beats if b.index >= pre and b.index + post <= y.shape[0]]

    def ctx():
        pc = PatientContext(c.fs_hz, y.shape[1], pre, post)
        for r in rs:
            pc.observe(r, y[r - pre: r + post].T)

    out = {"beats": len(beats), "leads": len(cols), "fs_hz": c.fs_hz}
    for name, fn, n in (("delineate_ms", lambda: delineate_record(y[:, cols], c.fs_hz, beats),
                         len(beats)), ("context_ms", ctx, len(rs))):
        ts = []
        for _ in range(repeat):
            t0 = time.process_time()
            fn()
            ts.append(time.process_time() - t0)
        out[name] = 1000.0 * float(np.median(ts)) / max(n, 1)
    return out


def stream_script() -> list[str]:
    """The `edge-ecg` console script of this interpreter (not a pyenv shim, whose bash
    start-up is not ours to count), run by this interpreter."""
    script = Path(sys.executable).parent / "edge-ecg"
    if script.is_file():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "import sys; from edge_ecg.cli import main; sys.exit(main())"]


def whole_process(bundle: str, record: Path, seconds: float, importtime: bool = False,
                  pycache: Path | None = None) -> dict:
    """One `edge-ecg stream` process replaying `seconds` of `record` at max speed, pinned to
    one core: wall time from launch to its `start` status event (ready for the first chunk),
    to its exit, and the events it wrote. With `importtime`, the modules it imported by the
    start event, from `-X importtime` (top-level imports, cumulative microseconds). With
    `pycache`, its bytecode is cached there (PYTHONPYCACHEPREFIX, writing allowed), as an
    installed package's is (pip compiles it at install): a checkout run with
    PYTHONDONTWRITEBYTECODE, as this machine's shell sets it, compiles every source edited
    since its .pyc again at each start (~80 ms of 40 modules, measured)."""
    cmd = stream_script()
    if importtime:
        cmd = [cmd[0], "-X", "importtime", *cmd[1:]]
    cmd += ["stream", "--source", f"record:{record}", "--bundle", bundle, "--speed", "max",
            "--seconds", str(seconds), "--output", "jsonl:-"]
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    ready = None
    counts: dict[str, int] = {}
    # this checkout's code, whatever checkout the installed console script was made from
    # (an editable install elsewhere finds no edge_ecg here)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    if pycache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryFile(mode="w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        if cpu is not None:     # pinned at once (the interpreter is still starting)
            os.sched_setaffinity(proc.pid, {cpu})
        for line in proc.stdout:
            ev = json.loads(line)
            if ready is None and ev.get("type") == "status" and ev.get("state") == "start":
                ready = time.perf_counter() - t0
            counts[ev.get("type", "?")] = counts.get(ev.get("type", "?"), 0) + 1
        rc = proc.wait()
        wall = time.perf_counter() - t0
        err.seek(0)
        stderr = err.read()
    if rc != 0:
        raise SystemExit(f"edge-ecg stream failed ({rc}):\n{stderr[-2000:]}")
    out = {"ready_s": ready, "wall_s": wall, "signal_s": seconds, "events": counts}
    if importtime:
        rows = [ln.split("|") for ln in stderr.splitlines() if ln.startswith("import time:")
                and not ln.rstrip().endswith("imported package")]
        top = [(r[2].rstrip(), int(r[1])) for r in rows if r[2].startswith(" ")
               and not r[2].startswith("  ")]
        out["imports_us"] = sum(us for _, us in top)
        out["top_imports"] = sorted(top, key=lambda t: -t[1])[:8]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default=str(DEFAULT_BUNDLE))
    ap.add_argument("--minutes", type=float, default=10.0, help="real-time pty stream length")
    ap.add_argument("--record-minutes", type=float, default=10.0,
                    help="length of the 12-lead record replayed at max speed")
    ap.add_argument("--latency-seconds", type=float, default=60.0,
                    help="real-time replay used for the latency figures")
    ap.add_argument("--process-minutes", type=float, default=5.0,
                    help="signal a whole `edge-ecg stream` process replays (section 5)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of section 1 and 5 (medians reported)")
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
        # stream and peers alternate, `--repeat` times: medians, ratios of the same run
        thrs, peerss = [], []
        for _ in range(max(args.repeat, 1)):
            thrs.append(run_child(["--child", "stream", "--pin", *base, "--speed", "max"]))
            peerss.append(run_child(["--child", "peers", "--pin", *base]))
        thr = sorted(thrs, key=lambda d: d["wall_s"])[len(thrs) // 2]
        peers = {k: float(np.median([p[k] for p in peerss])) for k in peerss[0]}
        # the same stream with the bundle's OpenVINO variant, where it has one
        ov = next((n for n, v in sorted(m.variants.items()) if v["backend"] == "openvino"
                   and v.get("precision") == m.variants[m.default_variant].get("precision")),
                  next((n for n, v in sorted(m.variants.items()) if v["backend"] == "openvino"),
                       None))
        thr_ov = (run_child(["--child", "stream", "--pin", *base, "--speed", "max",
                             "--variant", ov]) if ov else None)
        lat = run_child(["--child", "stream", *base, "--speed", "realtime",
                         "--seconds", str(args.latency_seconds)])
        # bytecode cached as an install has it: one untimed run writes it (whole_process)
        pyc = Path(tmp) / "pycache"
        whole_process(args.bundle, record, 10.0, pycache=pyc)
        procs = [whole_process(args.bundle, record, args.process_minutes * 60.0, pycache=pyc)
                 for _ in range(max(args.repeat, 1))]
        imports = whole_process(args.bundle, record, 10.0, importtime=True, pycache=pyc)
        per_beat = per_beat_costs(record, args.bundle)
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
    print(f"stream/offline ratio {x_rt / x_off:.2f}; stream/naive ratio {x_rt / x_naive:.2f} "
          f"(target >= 2: {'met' if x_rt / x_naive >= 2 else 'NOT met'}); target >= 300x: "
          f"{'met' if best >= 300 else 'NOT met'} (best {best:.0f}x; medians of "
          f"{max(args.repeat, 1)} runs: stream "
          + ", ".join(f"{d['signal_s'] / d['wall_s']:.0f}" for d in thrs) + "x)")
    stages = thr["stages_s"]
    tot = sum(stages.values()) or 1.0
    print("stage shares (stream): " + ", ".join(
        f"{k} {1000 * v / thr['signal_s']:.2f} ms/s ({100 * v / tot:.0f}%)"
        for k, v in stages.items()))
    print(f"predictions {thr['predictions']}, withheld {thr['withheld']}, beats {thr['beats']}; "
          f"inference p50 {thr['inference_ms'][0]:.2f} ms (batched at max speed)")
    print(f"per beat (CPU, median of 5, {per_beat['beats']} beats at {per_beat['fs_hz']:g} Hz): "
          f"delineation {per_beat['delineate_ms']:.3f} ms ({per_beat['leads']} leads); patient "
          f"context {per_beat['context_ms']:.3f} ms (12 leads; runs only for a bundle whose "
          "model reads beat_ctx)")

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
    print(f"{'edge-ecg record replay, max speed (record in memory)':52s} {rss:12.1f}")
    print(f"{'peer: python + import onnxruntime, numpy':52s} {rss_ort:12.1f}")
    print(f"{'peer: python + import scipy.signal':52s} {rss_scipy:12.1f}")
    print(f"{'peer: python + import torch':52s} {rss_torch:12.1f}")
    print(f"target <= 100 MB (serial path): {'met' if pty['rss_mb'] <= 100 else 'NOT met'}")

    print(f"\n## 5. a whole `edge-ecg stream` process, {args.process_minutes:g} min replayed at max "
          "speed, one core, bytecode cached")
    ready = float(np.median([p["ready_s"] for p in procs]))
    x_proc = float(np.median([p["signal_s"] / p["wall_s"] for p in procs]))
    ev = procs[0]["events"]
    print(f"ready for the first chunk (launch -> start event) {ready:.2f} s (target < 0.5 s: "
          f"{'met' if ready < 0.5 else 'NOT met'}); whole process {x_proc:.0f}x real time "
          f"(target >= 200x: {'met' if x_proc >= 200 else 'NOT met'}); runs "
          + ", ".join(f"{p['signal_s'] / p['wall_s']:.0f}x / ready {p['ready_s']:.2f} s"
                      for p in procs))
    print(f"events: {', '.join(f'{k} {v}' for k, v in sorted(ev.items()))}")
    print(f"imports by exit (-X importtime, top level): {imports['imports_us'] / 1e3:.0f} ms; "
          + ", ".join(f"{n.strip()} {us / 1e3:.0f}" for n, us in imports["top_imports"]))
    print(DISCLAIMER)


if __name__ == "__main__":
    main()
