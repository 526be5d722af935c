"""`edge-ecg demo`: a virtual bedside monitor streaming to the runtime, live predictions.

By default a real patient: 4 minutes of MIT-BIH record 223 (sinus rhythm with PVCs, a run of
ventricular tachycardia, ventricular bigeminy; a packaged asset, see
edge_ecg/assets/demo/README.md; a patient the bundled model never saw in training). With
`--patient synth`, a synthetic 12-lead patient whose rhythm changes (sinus -> atrial
fibrillation -> sinus with PVCs). The patient is played by `firmware_bridge.emulator.
VirtualMonitor` on a pseudo-terminal, read back over the real serial path (`SerialSource`:
frames, CRC, sequence numbers), and streamed through the runtime with the bundled model. Each
prediction prints one line beside the cardiologists' annotation of that window; the run ends
with the summary and a report PNG (ECG strips with the detected beats marked with the class the runtime gave each (V, S, F in
colour above the trace) and the cardiologists' labels below it, the prediction timeline
against the annotated rhythm). Each line counts the window's ectopic beats and, live, all so
far. It plays at 4x real time by default (the 4 minutes in about a minute); `--realtime` plays
at a monitor's pace. The pseudo-terminal needs a POSIX system (Linux, macOS).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from edge_ecg import DISCLAIMER
from edge_ecg.runtime.bundle import DEFAULT_BUNDLE

DEMO_RECORD = Path(__file__).resolve().parents[1] / "assets" / "demo" / "mitdb_223_excerpt"
PATIENTS = ("mitdb-223", "synth")
# The default pace: 4x real time plays the 4-minute patient in a minute, the first live line
# ~3 s after the start (the first 10-s window); --realtime (= --speed 1) for a monitor's pace.
DEFAULT_SPEED = 4.0
# MIT-BIH rhythm annotations as a monitor would name them.
RHYTHM_NAMES = {"(N": "sinus", "(SBR": "sinus brady", "(AFIB": "AF", "(AFL": "flutter",
                "(B": "V bigeminy", "(T": "V trigeminy", "(VT": "VT", "(VFL": "V flutter",
                "(SVTA": "SVTA", "(AB": "A bigeminy", "(IVR": "IVR", "(NOD": "nodal",
                "(P": "paced", "(PREX": "WPW", "(BII": "2nd AVB"}
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
    "normal_sinus": "sinus", "af_or_flutter": "AF/flutter", "other_rhythm": "other rhythm",
    "too_noisy": "noisy",
}


@dataclass
class AnnotatedRecording:
    """A real record with its cardiologists' annotations, as the demo's ground truth."""

    signal: object              # (T, L) float32 mV
    fs_hz: float
    leads: tuple
    rhythms: list               # (start, end, aux) source samples
    beats: object               # (n,) int64 reference beat samples
    symbols: object             # (n,) beat symbols

    @property
    def seconds(self) -> float:
        return self.signal.shape[0] / self.fs_hz

    @classmethod
    def read(cls, path) -> AnnotatedRecording:
        import numpy as np

        from edge_ecg.data.mitbih import rhythm_intervals
        from edge_ecg.data.records import beat_annotations, read_record

        rec = read_record(path)
        ann = beat_annotations(path)
        return cls(signal=rec.signal, fs_hz=rec.fs_hz, leads=rec.leads,
                   rhythms=rhythm_intervals(path, rec.n_samples), beats=ann.sample,
                   symbols=np.asarray(ann.symbol))

    def aux_at(self, start: int, end: int) -> str | None:
        from edge_ecg.data.mitbih import window_rhythm
        return window_rhythm(start, end, self.rhythms)

    def condition_at(self, start: int, end: int) -> str:
        """The rhythm class (the model's label) the annotations give the window."""
        from edge_ecg.data.rhythms import mitdb_class
        aux = self.aux_at(start, end)
        return mitdb_class(aux, "demo record") if aux else "unknown"

    def describe(self, start: int, end: int) -> str:
        """'VT, 12 V' : the annotated rhythm and ectopic beats of a window."""
        import numpy as np
        aux = self.aux_at(start, end)
        inside = (self.beats >= start) & (self.beats < end)
        n_v = int(np.isin(self.symbols[inside], ["V", "E"]).sum())
        n_s = int(np.isin(self.symbols[inside], ["A", "a", "J", "S"]).sum())
        ect = ", ".join(x for x in (f"{n_v} V" if n_v else "", f"{n_s} S" if n_s else "") if x)
        return RHYTHM_NAMES.get(aux, aux or "?") + (f", {ect}" if ect else "")

    @property
    def segments(self) -> list:
        """(start, end, name) runs of one annotated rhythm, merged, at least 8 s long."""
        out: list = []
        for s0, s1, aux in self.rhythms:
            name = RHYTHM_NAMES.get(aux, aux)
            if out and out[-1][2] == name:
                out[-1] = (out[-1][0], s1, name)
            else:
                out.append((s0, s1, name))
        long = [seg for seg in out if seg[1] - seg[0] >= 8 * self.fs_hz]
        return long[:4]


class SynthTruth:
    """The synthetic patient's schedule, named in the model's rhythm classes."""

    def __init__(self, rec) -> None:
        self.rec = rec
        self.signal, self.fs_hz, self.leads = rec.signal, rec.fs_hz, rec.leads
        self.seconds, self.segments = rec.seconds, rec.segments
        self.beats = None

    def condition_at(self, start: int, end: int) -> str:
        from edge_ecg.data.rhythms import synth_class
        return synth_class(self.rec.condition_at(start, end))

    def describe(self, start: int, end: int) -> str:
        return SHORT.get(self.rec.condition_at(start, end), "?")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--patient", choices=PATIENTS, default="mitdb-223",
                        help="mitdb-223: 4 minutes of a real MIT-BIH patient with PVCs, VT and "
                             "bigeminy (packaged, with the cardiologists' annotations); synth: a "
                             "synthetic 12-lead patient, sinus -> AF -> PVCs")
    parser.add_argument("--seconds", type=float, default=None,
                        help="how much of the patient to play (default: all 240 s of "
                             "mitdb-223; 45 s for synth, split over its three rhythms)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=DEFAULT_SPEED,
                      help=f"monitor speed: 1 = real time, 10 = ten times faster (default "
                           f"{DEFAULT_SPEED:g}: the 4-minute patient in about a minute)")
    pace.add_argument("--realtime", dest="speed", action="store_const", const=1.0,
                      help="play at real time, as a bedside monitor would (= --speed 1)")
    parser.add_argument("--report", default="demo_report.png", metavar="PNG",
                        help="where to write the report image")
    parser.add_argument("--bundle", default=str(DEFAULT_BUNDLE), metavar="DIR",
                        help="exported bundle (default: the bundled model)")
    parser.add_argument("--variant", default=None, help="bundle variant (default: the bundle's)")
    parser.add_argument("--seed", type=int, default=7, help="the synthetic patient")
    parser.add_argument("--snr-db", type=float, default=25.0,
                        help="synth: signal-to-noise ratio of the noise added to the patient's "
                             "ECG (a monitor is never noise-free; 0 = clean)")
    parser.add_argument("--events", default=None, metavar="FILE",
                        help="also write every event as JSON Lines to FILE")
    parser.add_argument("--show-synthetic-tasks", action="store_true",
                        help="also show, on a real patient, the tasks learned from synthetic "
                             "ECGs only (potassium), marked synthetic-only; they carry no "
                             "information on a real ECG and are hidden there by default")


def _ms(v) -> str:
    return "---" if v is None else f"{v:3.0f}"


class LiveDisplay:
    """A sink printing one compact line per prediction or withheld window."""

    def __init__(self, truth, out=sys.stdout, show_synthetic: bool = False) -> None:
        self.truth = truth
        self.out = out
        # Potassium learned from synthetic ECGs only (no real labels exist here): on a real
        # ECG it calls 20-53 % of windows abnormal (bench/potassium_real), so a real stream
        # hides it unless asked; the synthetic patient shows it.
        self.show_synthetic = show_synthetic or isinstance(truth, SynthTruth)
        self.events: list = []
        self.ectopic: dict[str, int] = {}        # live count of the beat classes so far

    def emit(self, ev) -> None:
        self.events.append(ev)
        d = ev.to_json()
        kind = d["type"]
        if kind == "beat" and d.get("beat_class"):
            self.ectopic[d["beat_class"]] = self.ectopic.get(d["beat_class"], 0) + 1
        if kind == "prediction":
            o = d["outputs"]
            parts = [f"t={d['time_s']:6.1f}s"]
            if "rr_interval" in o:
                rr = o["rr_interval"]["value"]
                hr = f"{60000.0 / rr:5.0f}" if rr > 0 else "  ---"
                parts.append(f"HR {hr} bpm (RR {rr:4.0f} ms)")
            iv = d.get("intervals") or {}
            if iv.get("qrs_ms") is not None:
                # the window's median intervals from the delineated beats (edge_ecg.signal)
                qtc = iv.get("qtc_bazett_ms")
                parts.append(f"PR {_ms(iv.get('pr_ms'))} QRS {_ms(iv.get('qrs_ms'))} "
                             f"QTc {_ms(qtc)}")
            if "arrhythmia" in o:
                a = o["arrhythmia"]
                parts.append(f"{SHORT.get(a['label'], a['label']):>11} {a['prob']:.2f}")
            if "beat" in o:
                # ectopic beats: this window's, and counted live since the start
                b = o["beat"]
                win = "".join(f" {c}{n}" for c, n in sorted(b["counts"].items()) if c != "N")
                flags = " ".join(f for f in ("bigeminy", "trigeminy") if b.get(f))
                run = b["longest_run"]
                runs = f" run V{run['V']}" if run.get("V", 0) >= 2 else ""
                total = " ".join(f"{c}{self.ectopic.get(c, 0)}" for c in ("V", "S", "F"))
                parts.append(f"ectopy[{(win.strip() or 'none')}{runs}{' ' + flags if flags else ''}"
                             f"; total {total}]")
            if "potassium" in o and self.show_synthetic:
                k = o["potassium"]
                parts.append(f"K+ {k['label']} {k['prob']:.2f} (synthetic-only)")
            parts.append(f"[{d['latency_ms']:.1f} ms]")
            parts.append(f"annotated: {self._truth(d)}")
            print("  ".join(parts), file=self.out, flush=True)
        elif kind == "withheld":
            print(f"t={d['time_s']:6.1f}s  withheld: {', '.join(d['reasons'])}  "
                  f"annotated: {self._truth(d)}", file=self.out, flush=True)
        elif kind == "gap":
            print(f"t={d['time_s']:6.1f}s  GAP of {d['length']} samples ({d['cause']})",
                  file=self.out, flush=True)

    def _truth(self, d: dict) -> str:
        """The annotation of the window ending at the event: its rhythm class and, in words,
        the annotated rhythm and ectopic beats."""
        fs = self.truth.fs_hz
        end = int(round(d["time_s"] * fs))
        start = max(0, end - int(10 * fs))
        cls = self.truth.condition_at(start, end)
        return f"{SHORT.get(cls, cls):<12} ({self.truth.describe(start, end)})"

    def close(self) -> None:
        self.out.flush()


def write_report(path: str | Path, truth, events: list, labels: list[str], wire_leads,
                 seconds: float | None = None) -> Path:
    """ECG strips with detected beats (one per rhythm) and the prediction timeline."""
    import matplotlib

    from edge_ecg.signal.leads import canonical_lead
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fs = truth.fs_hz
    beat_evs = [e.to_json() for e in events if e.to_json()["type"] == "beat"]
    beats = np.array([e["time_s"] for e in beat_evs])
    beat_cls = np.array([e.get("beat_class") or "" for e in beat_evs])
    preds = [e.to_json() for e in events if e.to_json()["type"] == "prediction"]
    held = [e.to_json() for e in events if e.to_json()["type"] == "withheld"]
    played = truth.seconds if seconds is None else min(seconds, truth.seconds)
    # strips of the rhythms that were played (`--seconds` may stop before the last ones)
    segs = [(s0, min(s1, int(played * fs)), c) for s0, s1, c in truth.segments
            if s0 + 8 * fs <= played * fs] or truth.segments[:1]
    fig = plt.figure(figsize=(13, 3.0 + 1.9 * len(segs)))
    gs = fig.add_gridspec(len(segs) + 1, 1, height_ratios=[1.0] * len(segs) + [1.6])
    canon = [canonical_lead(n) for n in truth.leads]
    ii = canon.index("II") if "II" in canon else 0
    ref = getattr(truth, "beats", None)
    for k, (s0, s1, cond) in enumerate(segs):
        ax = fig.add_subplot(gs[k])
        mid = (s0 + s1) // 2
        a, b = max(s0, mid - int(3 * fs)), min(s1, mid + int(3 * fs))
        t = np.arange(a, b) / fs
        ax.plot(t, truth.signal[a:b, ii], lw=0.8, color="k")
        inside = (beats >= a / fs) & (beats < b / fs)
        bt, bc = beats[inside], beat_cls[inside]
        bi = np.clip(np.round(bt * fs).astype(int), a, b - 1)
        hi = float(truth.signal[a:b, ii].max())
        # each detected beat marked with the class the runtime gave it (ectopic ones in colour)
        for cls_name, style, colour in (("N", "o", "tab:grey"), ("V", "v", "tab:red"),
                                        ("S", "^", "tab:orange"), ("F", "D", "tab:purple"),
                                        ("Q", "s", "tab:brown"), ("", "o", "k")):
            sel = bc == cls_name
            if sel.any():
                ax.plot(bt[sel], truth.signal[bi[sel], ii], style, ms=6, mfc="none",
                        color=colour, label=f"runtime: {cls_name or 'unclassified'}")
        for t_b, c_b in zip(bt, bc):
            if c_b and c_b != "N":
                ax.text(t_b, hi + 0.1, c_b, ha="center", va="bottom", fontsize=7,
                        color="tab:red", fontweight="bold")
        if ref is not None:
            sel = (ref >= a) & (ref < b)
            lo = float(truth.signal[a:b, ii].min())
            for r, sym in zip(ref[sel], truth.symbols[sel]):
                ax.text(r / fs, lo - 0.15, sym, ha="center", va="top", fontsize=7,
                        color="tab:blue" if sym == "N" else "tab:orange", fontweight="bold")
            ax.set_ylim(lo - 0.6, hi + 0.5)
            ax.plot([], [], "s", color="tab:orange", label="cardiologists' beat labels "
                    "(N normal, V PVC, A PAC, F fusion)")
        ax.set_ylabel(f"{truth.leads[ii]} (mV)")
        seg_iv = [p.get("intervals") or {} for p in preds
                  if s0 / fs + 10 <= p["time_s"] <= s1 / fs]
        med = {k: np.median([v[k] for v in seg_iv if v.get(k) is not None])
               for k in ("pr_ms", "qrs_ms", "qtc_bazett_ms")
               if any(v.get(k) is not None for v in seg_iv)}
        iv_txt = ("; median " + ", ".join(f"{k.split('_')[0].upper()} {v:.0f} ms"
                                          for k, v in med.items())) if med else ""
        ax.set_title(f"{cond} ({s0 / fs:.0f}-{s1 / fs:.0f} s){iv_txt}: lead {truth.leads[ii]}, "
                     f"streamed over the "
                     f"serial link ({len(wire_leads)} leads)", fontsize=9, loc="left")
        if k == 0:   # one legend, see-through, so it hides no beat
            ax.legend(loc="upper right", fontsize=7, framealpha=0.4)
    ax = fig.add_subplot(gs[-1])
    cls = {c: i for i, c in enumerate(labels)}
    # the true rhythm over the window ending at each prediction
    t_all = np.arange(10.0, played + 0.01, 0.5)
    true_y = [cls.get(truth.condition_at(int((t - 10) * fs), int(t * fs)), np.nan) for t in t_all]
    ax.step(t_all, true_y, where="post", color="tab:green", lw=6, alpha=0.35,
            label="annotated rhythm (majority of the 10-s window)")
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
    ax.set_xlim(0, played + 0.5)
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title("rhythm predictions vs the annotated rhythm", fontsize=9, loc="left")
    import textwrap
    fig.suptitle("edge-ecg demo: virtual monitor -> serial -> runtime\n"
                 + "\n".join(textwrap.wrap(DISCLAIMER, 150)), fontsize=9)
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
    from edge_ecg.signal.leads import canonical_lead
    from firmware_bridge.emulator import VirtualMonitor
    from firmware_bridge.serial_source import SerialSource

    backend = open_backend(args.bundle, variant=args.variant)
    print(DISCLAIMER, flush=True)
    if args.patient == "synth":
        seconds = 45.0 if args.seconds is None else args.seconds
        if not seconds >= 12:
            raise SourceError(f"--seconds {seconds}: the model needs 10-s windows; give >= 12")
        part = seconds / len(SCHEDULE)
        truth = SynthTruth(synthesize_schedule([(c, part) for c in SCHEDULE], fs_hz=500.0,
                                               seed=args.seed, snr_db=args.snr_db or None))
        wire_leads = WIRE_LEADS
        story = "synthetic patient, rhythm " + " -> ".join(
            f"{SHORT[c]} ({part:.0f} s)" for c in SCHEDULE)
    else:
        truth = AnnotatedRecording.read(DEMO_RECORD)
        seconds = truth.seconds if args.seconds is None else min(args.seconds, truth.seconds)
        if not seconds >= 12:
            raise SourceError(f"--seconds {seconds}: the model needs 10-s windows; give >= 12")
        wire_leads = tuple(canonical_lead(n) or n for n in truth.leads)
        story = ("MIT-BIH record 223 (540-780 s; a patient the model never saw): "
                 + " -> ".join(name for _, _, name in truth.segments))
    wire = np.stack([truth.signal[:, truth.leads.index(n) if n in truth.leads else k]
                     for k, n in enumerate(wire_leads)], axis=1)
    monitor = VirtualMonitor(wire, truth.fs_hz, wire_leads, speed=args.speed,
                             seconds=seconds, loop=False)
    port = monitor.start()
    print(f"virtual monitor on {port}: {len(wire_leads)} leads x {truth.fs_hz:g} Hz, "
          f"{seconds:.0f} s at {args.speed:g}x; {story}", flush=True)
    print(f"model {backend.manifest.model_version} ({backend.variant.name}, {backend.name}); "
          "first prediction after the first 10-s window", flush=True)
    display = LiveDisplay(truth, show_synthetic=args.show_synthetic_tasks)
    sinks = [display] + ([JsonlSink(args.events)] if args.events else [])
    source = SerialSource(port)
    pipe = Pipeline(source, backend, sinks,
                    info={"source": f"serial:{port}", "demo": True, "disclaimer": DISCLAIMER})
    try:
        summary = pipe.run(max_seconds=seconds)
    finally:
        monitor.stop()
        backend.close()
    for line in summary.lines():
        print(line)
    labels = next((list(t["labels"]) for t in backend.manifest.tasks
                   if t["name"] == "arrhythmia"), [])
    out = write_report(args.report, truth, display.events, labels, wire_leads, seconds)
    print(f"report: {out}")
    print(DISCLAIMER, flush=True)
    return 0
