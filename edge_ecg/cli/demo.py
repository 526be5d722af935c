"""`edge-ecg demo`: a virtual bedside monitor streaming to the runtime, live predictions.

A synthetic 12-lead patient whose rhythm changes (sinus -> atrial fibrillation -> sinus with
PVCs) is played by `firmware_bridge.emulator.VirtualMonitor` on a pseudo-terminal, read back
over the real serial path (`SerialSource`: frames, CRC, sequence numbers), and streamed through
the runtime with the bundled model. Each prediction prints one line; the run ends with the
summary and a report PNG (ECG strips with the detected beats, the prediction timeline against
the true rhythm).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_ecg import DISCLAIMER
from edge_ecg.cli.stream import DEFAULT_BUNDLE

SCHEDULE = ("sinus_rhythm", "atrial_fibrillation", "premature_ventricular_contractions")
WIRE_LEADS = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")   # the 8 independent leads
SHORT = {
    "sinus_rhythm": "sinus", "sinus_bradycardia": "sinus brady", "sinus_tachycardia": "sinus tachy",
    "sinus_arrhythmia": "sinus arrh", "atrial_fibrillation": "AF",
    "af_rapid_ventricular_response": "AF RVR", "atrial_flutter": "flutter",
    "premature_atrial_contractions": "PACs", "premature_ventricular_contractions": "PVCs",
    "first_degree_av_block": "1st AVB", "ventricular_paced": "paced",
    "left_bundle_branch_block": "LBBB", "right_bundle_branch_block": "RBBB",
    "supraventricular_tachycardia": "SVT", "other": "other",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=45.0,
                        help="length of the patient's recording (split over three rhythms)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="monitor speed: 1 = real time, 10 = ten times faster")
    parser.add_argument("--report", default="demo_report.png", metavar="PNG",
                        help="where to write the report image")
    parser.add_argument("--bundle", default=str(DEFAULT_BUNDLE), metavar="DIR",
                        help="exported bundle (default: the bundled model)")
    parser.add_argument("--variant", default=None, help="bundle variant (default: the bundle's)")
    parser.add_argument("--seed", type=int, default=7, help="the synthetic patient")
    parser.add_argument("--snr-db", type=float, default=25.0,
                        help="signal-to-noise ratio of the noise added to the patient's ECG "
                             "(a monitor is never noise-free; 0 = clean)")
    parser.add_argument("--events", default=None, metavar="FILE",
                        help="also write every event as JSON Lines to FILE")


class LiveDisplay:
    """A sink printing one compact line per prediction or withheld window."""

    def __init__(self, truth, out=sys.stdout) -> None:
        self.truth = truth
        self.out = out
        self.events: list = []

    def emit(self, ev) -> None:
        self.events.append(ev)
        d = ev.to_json()
        kind = d["type"]
        if kind == "prediction":
            o = d["outputs"]
            parts = [f"t={d['time_s']:6.1f}s"]
            if "rr_interval" in o:
                rr = o["rr_interval"]["value"]
                hr = f"{60000.0 / rr:5.0f}" if rr > 0 else "  ---"
                parts.append(f"HR {hr} bpm (RR {rr:4.0f} ms)")
            if "arrhythmia" in o:
                a = o["arrhythmia"]
                parts.append(f"{SHORT.get(a['label'], a['label']):>11} {a['prob']:.2f}")
            if "potassium" in o:
                k = o["potassium"]
                parts.append(f"K+ {k['label']} {k['prob']:.2f}")
            parts.append(f"[{d['latency_ms']:.1f} ms]")
            parts.append(f"true: {SHORT.get(self._truth(d), self._truth(d))}")
            print("  ".join(parts), file=self.out, flush=True)
        elif kind == "withheld":
            print(f"t={d['time_s']:6.1f}s  withheld: {', '.join(d['reasons'])}  "
                  f"true: {SHORT.get(self._truth(d), self._truth(d))}", file=self.out, flush=True)
        elif kind == "gap":
            print(f"t={d['time_s']:6.1f}s  GAP of {d['length']} samples ({d['cause']})",
                  file=self.out, flush=True)

    def _truth(self, d: dict) -> str:
        fs = self.truth.fs_hz
        end = int(round(d["time_s"] * fs))
        return self.truth.condition_at(end - int(10 * fs), end)

    def close(self) -> None:
        self.out.flush()


def write_report(path: str | Path, truth, events: list, labels: list[str], wire_leads) -> Path:
    """ECG strips with detected beats (one per rhythm) and the prediction timeline."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fs = truth.fs_hz
    beats = np.array([e.time_s for e in events if e.to_json()["type"] == "beat"])
    preds = [e.to_json() for e in events if e.to_json()["type"] == "prediction"]
    held = [e.to_json() for e in events if e.to_json()["type"] == "withheld"]
    segs = truth.segments
    fig = plt.figure(figsize=(13, 3.0 + 1.9 * len(segs)))
    gs = fig.add_gridspec(len(segs) + 1, 1, height_ratios=[1.0] * len(segs) + [1.6])
    ii = truth.leads.index("II")
    for k, (s0, s1, cond) in enumerate(segs):
        ax = fig.add_subplot(gs[k])
        mid = (s0 + s1) // 2
        a, b = max(s0, mid - int(3 * fs)), min(s1, mid + int(3 * fs))
        t = np.arange(a, b) / fs
        ax.plot(t, truth.signal[a:b, ii], lw=0.8, color="k")
        bt = beats[(beats >= a / fs) & (beats < b / fs)]
        bi = np.clip(np.round(bt * fs).astype(int), a, b - 1)
        ax.plot(bt, truth.signal[bi, ii], "o", ms=5, mfc="none", color="tab:red",
                label="detected beats (runtime)")
        ax.set_ylabel("II (mV)")
        ax.set_title(f"{cond} ({s0 / fs:.0f}-{s1 / fs:.0f} s): lead II, streamed over the "
                     f"serial link ({len(wire_leads)} leads)", fontsize=9, loc="left")
        ax.legend(loc="upper right", fontsize=7)
    ax = fig.add_subplot(gs[-1])
    cls = {c: i for i, c in enumerate(labels)}
    # the true rhythm over the window ending at each prediction
    t_all = np.arange(10.0, truth.seconds + 0.01, 0.5)
    true_y = [cls.get(truth.condition_at(int((t - 10) * fs), int(t * fs)), np.nan) for t in t_all]
    ax.step(t_all, true_y, where="post", color="tab:green", lw=6, alpha=0.35,
            label="true rhythm (majority of the 10-s window)")
    if preds:
        pt = [p["time_s"] for p in preds]
        py = [cls.get(p["outputs"]["arrhythmia"]["label"], np.nan) if "arrhythmia" in p["outputs"]
              else np.nan for p in preds]
        pp = [p["outputs"]["arrhythmia"]["prob"] if "arrhythmia" in p["outputs"] else 0.5
              for p in preds]
        sc = ax.scatter(pt, py, c=pp, cmap="viridis", vmin=0, vmax=1, s=28, zorder=3,
                        label="predicted class (colour = probability)")
        fig.colorbar(sc, ax=ax, pad=0.01, fraction=0.03, label="probability")
    if held:
        ax.scatter([h["time_s"] for h in held], [-1] * len(held), marker="x", color="grey",
                   label="withheld")
    ax.set_yticks(range(-1, len(labels)))
    ax.set_yticklabels(["withheld"] + [SHORT.get(c, c) for c in labels], fontsize=7)
    ax.set_xlabel("time (s): each prediction is placed at its window's end")
    ax.set_xlim(0, truth.seconds + 0.5)
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title("arrhythmia predictions vs the true rhythm", fontsize=9, loc="left")
    fig.suptitle("edge-ecg demo: virtual monitor -> serial -> runtime\n" + DISCLAIMER,
                 fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from edge_ecg.data.synth import synthesize_schedule
    from edge_ecg.errors import SourceError
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.events import JsonlSink
    from edge_ecg.runtime.pipeline import Pipeline
    from firmware_bridge.emulator import VirtualMonitor
    from firmware_bridge.serial_source import SerialSource

    if not args.seconds >= 12:
        raise SourceError(f"--seconds {args.seconds}: the model needs 10-s windows; give >= 12")
    backend = open_backend(args.bundle, variant=args.variant)
    print(DISCLAIMER, flush=True)
    part = args.seconds / len(SCHEDULE)
    truth = synthesize_schedule([(c, part) for c in SCHEDULE], fs_hz=500.0, seed=args.seed,
                                snr_db=args.snr_db or None)
    wire = np.stack([truth.signal[:, truth.leads.index(n)] for n in WIRE_LEADS], axis=1)
    monitor = VirtualMonitor(wire, truth.fs_hz, WIRE_LEADS, speed=args.speed,
                             seconds=truth.seconds, loop=False)
    port = monitor.start()
    print(f"virtual monitor on {port}: {len(WIRE_LEADS)} leads x {truth.fs_hz:g} Hz, "
          f"{truth.seconds:.0f} s at {args.speed:g}x; rhythm "
          + " -> ".join(f"{SHORT[c]} ({part:.0f} s)" for c in SCHEDULE), flush=True)
    print(f"model {backend.manifest.model_version} ({backend.variant.name}, {backend.name}); "
          "first prediction after the first 10-s window", flush=True)
    display = LiveDisplay(truth)
    sinks = [display] + ([JsonlSink(args.events)] if args.events else [])
    source = SerialSource(port)
    pipe = Pipeline(source, backend, sinks,
                    info={"source": f"serial:{port}", "demo": True, "disclaimer": DISCLAIMER})
    try:
        summary = pipe.run(max_seconds=truth.seconds)
    finally:
        monitor.stop()
        backend.close()
    for line in summary.lines():
        print(line)
    labels = next((list(t["labels"]) for t in backend.manifest.tasks
                   if t["name"] == "arrhythmia"), [])
    out = write_report(args.report, truth, display.events, labels, WIRE_LEADS)
    print(f"report: {out}")
    print(DISCLAIMER, flush=True)
    return 0
