"""Soak: hours of signal through the whole runtime at high speed; memory, handles, accounting.

    python bench/soak.py                          # 24 h of signal, synthetic source, max speed
    python bench/soak.py --hours 2 --png soak.png
    python bench/soak.py --hours 0.5 --source pty --speed 60 --faults drop=0.001,seed=1

The runtime is the real one: `Pipeline` (reader thread, bounded queue, ring buffers, beat
tracker, quality, ONNX/OpenVINO backend) writing JSON Lines (to /dev/null by default). Sources:
`synth` loops a synthetic 8-lead patient (edge_ecg.data.synth, quantised as a device would) with
an ever-growing sample index, as fast as the runtime takes it; `pty` streams the same signal
from the virtual monitor over a real pseudo-terminal through SerialSource at `--speed` x real
time (optionally with link faults). Reported: RSS sampled over the run and its linear-fit slope
(MB per signal hour, after a warm-up), open file descriptors and threads at the end, and
received + lost == sent (samples). A leak of 1 MB/h is 24 MB a day: the bedside budget
matters (profiles/*.toml budget.peak_rss_mb).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "reliability"))

from edge_ecg.signal.chunk import Chunk
from edge_ecg.signal.source import Source

LEADS8 = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
GAIN = 1000.0


class LoopingSynth(Source):
    """A synthetic patient looped for `total` samples, indices growing (max speed)."""

    def __init__(self, counts: np.ndarray, fs_hz: float, total: int, chunk: int) -> None:
        self.counts = counts
        self.fs_hz = fs_hz
        self.total = int(total)
        self.chunk = int(chunk)
        self.live = False             # a replay: the reader waits for the consumer
        self.sent = 0
        self._gain = np.full(counts.shape[1], GAIN)
        self._base = np.zeros(counts.shape[1], np.int64)

    def open(self) -> None:
        self.sent = 0

    def read(self, timeout_s: float = 0.1):
        if self.sent >= self.total:
            raise EOFError("soak signal exhausted")
        n = min(self.chunk, self.total - self.sent)
        a = self.sent % self.counts.shape[0]
        idx = (a + np.arange(n)) % self.counts.shape[0]
        c = Chunk(index=self.sent, seq=self.sent // self.chunk,
                  device_time_us=int(self.sent * 1e6 / self.fs_hz), samples=self.counts[idx],
                  gain=self._gain, baseline=self._base, leads=LEADS8, fs_hz=self.fs_hz)
        self.sent += n
        return c

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, int]:
        return {"sent_samples": self.sent}


class CountingSink:
    """Counts events by type (keeps none: storing a day of events would be the leak)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def emit(self, event) -> None:
        k = type(event).__name__
        self.counts[k] = self.counts.get(k, 0) + 1

    def close(self) -> None:
        pass


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def main(argv=None) -> int:
    import psutil

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=24.0, help="hours of signal (default 24)")
    ap.add_argument("--bundle", default=None, help="bundle dir (default: the bundled default "
                    "bundle, else the runtime test fixture bundle built in a temp dir)")
    ap.add_argument("--variant", default=None)
    ap.add_argument("--source", choices=("synth", "pty"), default="synth")
    ap.add_argument("--speed", type=float, default=60.0, help="pty: x real time")
    ap.add_argument("--faults", default=None, help="pty: virtual monitor fault spec")
    ap.add_argument("--loop-minutes", type=float, default=5.0, help="synthetic record length")
    ap.add_argument("--chunk-s", type=float, default=1.0, help="synth: chunk length")
    ap.add_argument("--sample-every-s", type=float, default=2.0, help="RSS sampling, wall s")
    ap.add_argument("--jsonl", default=os.devnull, help="where the events go")
    ap.add_argument("--png", default=None, help="write RSS over time to this PNG")
    args = ap.parse_args(argv)

    import tqdm as tqdm_mod
    from tqdm import tqdm

    tqdm_mod.tqdm.monitor_interval = 0     # no tqdm monitor thread: the thread count is ours

    from reliability_harness import bundle_for_tests

    from edge_ecg.data.synth import synthesize
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.events import JsonlSink
    from edge_ecg.runtime.pipeline import Pipeline

    proc_ps = psutil.Process()
    fs = 500.0
    total = round(args.hours * 3600 * fs)
    tmp = tempfile.TemporaryDirectory(prefix="edge-ecg-soak-")
    bundle = Path(args.bundle) if args.bundle else bundle_for_tests(Path(tmp.name))
    rec = synthesize("sinus_rhythm", seconds=args.loop_minutes * 60, fs_hz=fs, seed=7,
                     leads=LEADS8)
    counts = np.rint(np.asarray(rec.signal, np.float64) * GAIN).astype(np.int32)
    backend = open_backend(bundle, variant=args.variant, threads=1)

    vm = None
    if args.source == "synth":
        source = LoopingSynth(counts, fs, total, round(args.chunk_s * fs))
    else:
        from reliability_harness import FiniteSerial

        from firmware_bridge.emulator import VirtualMonitor
        from firmware_bridge.serial_source import SerialSource

        vm = VirtualMonitor(counts / GAIN, fs, LEADS8, speed=args.speed, faults=args.faults,
                            seconds=args.hours * 3600, loop=True)
        vm.start()
        source = FiniteSerial(SerialSource(vm.path), vm, quiet_s=1.0,
                              wall_limit_s=args.hours * 3600 / args.speed * 3 + 60)
    counter = CountingSink()
    sinks = [counter, JsonlSink(args.jsonl)]
    pipe = Pipeline(source, backend, sinks, queue_chunks=64 if args.source == "synth" else 512)

    samples_rss: list[tuple[float, float, float]] = []    # (wall s, signal h, RSS MB)
    fds0, threads0 = open_fds(), proc_ps.num_threads()
    stop = threading.Event()
    bar = tqdm(total=total, unit="sample", unit_scale=True, desc="soak", mininterval=2.0)

    def monitor() -> None:
        t0 = time.perf_counter()
        last = 0
        while not stop.is_set():
            n = pipe.processor.summary.samples
            samples_rss.append((time.perf_counter() - t0, n / fs / 3600.0,
                                proc_ps.memory_info().rss / 2**20))
            bar.update(n - last)
            last = n
            stop.wait(args.sample_every_s)

    mon = threading.Thread(target=monitor, daemon=True)
    mon.start()
    summary = pipe.run(handle_signals=True)
    stop.set()
    mon.join()
    bar.close()
    samples_rss.append((summary.wall_s, summary.samples / fs / 3600.0,
                        proc_ps.memory_info().rss / 2**20))
    if vm is not None:
        vm.stop()
    backend.close()
    fds1, threads1 = open_fds(), proc_ps.num_threads()

    # Accounting: received + lost == sent.
    st = summary.source
    if args.source == "synth":
        sent = source.sent
        lost_link = 0
    else:
        spf = vm.info.samples_per_frame
        sent = total
        lost_link = st.get("lost_frames", 0) * spf
    received_by_source = (summary.samples + summary.dropped_samples) if args.source == "synth" \
        else sum(c.n_samples for c in source.chunks)
    processed = summary.samples
    ok = received_by_source + lost_link == sent and processed + summary.gap_samples == sent

    arr = np.asarray(samples_rss)
    warm = arr[:, 1] >= 0.1 * arr[-1, 1]            # skip the first 10 % (allocator warm-up)
    fit = arr[warm] if warm.sum() >= 3 else arr
    slope_sig = float(np.polyfit(fit[:, 1], fit[:, 2], 1)[0]) if np.ptp(fit[:, 1]) > 0 else float("nan")
    slope_wall = float(np.polyfit(fit[:, 0] / 3600, fit[:, 2], 1)[0]) if np.ptp(fit[:, 0]) > 0 else float("nan")

    sig_h = summary.samples / fs / 3600.0
    print(f"\nsoak on {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs), "
          f"bundle {bundle.name} variant {backend.variant.name}, source {args.source}"
          + (f" x{args.speed:g} faults={args.faults}" if args.source == "pty" else " (max speed)"))
    rows = [
        ("signal processed", f"{sig_h:.3f} h ({summary.samples} samples)"),
        ("wall time", f"{summary.wall_s:.1f} s ({sig_h * 3600 / max(summary.wall_s, 1e-9):.0f}x real time)"),
        ("predictions / withheld", f"{summary.predictions} / {summary.withheld} {summary.withheld_reasons}"),
        ("beats", f"{summary.beats}"),
        ("RSS start / end / max", f"{arr[0, 2]:.1f} / {arr[-1, 2]:.1f} / {arr[:, 2].max():.1f} MB"),
        ("RSS slope (fit, after 10 % warm-up)", (f"{slope_sig:+.3f} MB per signal hour "
                                                  f"({slope_wall:+.2f} MB per wall hour)")),
        ("open fds start / end", f"{fds0} / {fds1}"),
        ("threads start / end", f"{threads0} / {threads1}"),
        ("samples sent", f"{sent}"),
        ("received (source) + lost (link)", (f"{received_by_source} + {lost_link} = "
                                             f"{received_by_source + lost_link}")),
        ("processed + gap samples", (f"{processed} + {summary.gap_samples} = "
                                     f"{processed + summary.gap_samples}")),
        ("dropped chunks (consumer behind)", f"{summary.dropped_chunks} ({summary.dropped_samples} samples)"),
        ("accounting", "OK: received + lost == sent" if ok else "MISMATCH"),
        ("inference p50 / p99", f"{summary.inference_ms_p50:.2f} / {summary.inference_ms_p99:.2f} ms"),
    ]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print(f"{'RSS samples':<{w}}  " + ", ".join(f"{h:.2f}h:{m:.1f}MB" for _, h, m in arr[
        np.linspace(0, len(arr) - 1, min(len(arr), 8)).astype(int)]))
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot(arr[:, 1], arr[:, 2], lw=1)
        ax.set_xlabel("signal processed (h)")
        ax.set_ylabel("RSS (MB)")
        ax.set_title(f"edge-ecg soak: {slope_sig:+.3f} MB per signal hour")
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)
        print(f"wrote {args.png}")
    tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
