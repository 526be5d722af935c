"""`edge-ecg simulate`: write synthetic 12-lead records (WFDB) and an EnECG-style label table.

The folder it writes is a data set spec itself: `load_dataset("OUT/labels.jsonl", ...)` reads it
back, and `edge-ecg beats OUT/records/synth_00000` scores beat detection against the `.atr`.
"""

from __future__ import annotations

import argparse

from edge_ecg.errors import EdgeECGError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--n", type=int, default=10, help="number of records (one patient each)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each record")
    parser.add_argument("--fs", type=float, default=500.0, help="sampling rate, Hz")
    parser.add_argument("--conditions", default=None,
                        help="comma list of conditions, cycled (default: all the generator makes)")
    parser.add_argument("--schedule", default=None,
                        help="rhythm changes within each record, e.g. "
                             "'sinus_rhythm:5,atrial_fibrillation:5' "
                             "(overrides --conditions/--seconds)")
    parser.add_argument("--potassium", default=None,
                        help="comma list of normal,hyper,hypo, cycled (default: half abnormal)")
    parser.add_argument("--snr", default="none",
                        help="signal-to-noise ratio in dB, or 'none' for clean records")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fmt", choices=("16", "212"), default="16", help="WFDB sample format")
    parser.add_argument("--no-annotations", action="store_true",
                        help="do not write .atr R-peak annotations")
    parser.add_argument("--plot", action="store_true", help="also write a PNG of the first record")
    parser.add_argument("--no-progress", action="store_true")


def _schedule(text: str) -> list[tuple[str, float]]:
    out = []
    for part in text.split(","):
        cond, sep, sec = part.partition(":")
        try:
            out.append((cond.strip(), float(sec)))
        except ValueError:
            raise EdgeECGError(f"--schedule: {part!r} is not CONDITION:SECONDS") from None
        if not sep:
            raise EdgeECGError(f"--schedule: {part!r} is not CONDITION:SECONDS")
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from edge_ecg.data.synth import CONDITIONS, cohort_plan, synthesize, synthesize_schedule
    from edge_ecg.data.wfdb_io import label_line, write_label_table, write_record

    if args.n <= 0:
        raise EdgeECGError("--n must be positive")
    snr = None if str(args.snr).lower() in ("none", "clean") else float(args.snr)
    conds = args.conditions.split(",") if args.conditions else None
    kal = args.potassium.split(",") if args.potassium else None
    schedule = _schedule(args.schedule) if args.schedule else None
    unknown = [c for c in (conds or []) + [c for c, _ in (schedule or [])] if c not in CONDITIONS]
    if unknown:
        raise EdgeECGError(f"unknown condition(s) {unknown}; known: {', '.join(CONDITIONS)}")
    plan = cohort_plan(args.n, seed=args.seed, conditions=conds, potassium=kal)
    out = Path(args.out)
    rec_dir = out / "records"
    lines, first = [], None
    counts: dict[str, int] = {}
    for i, e in enumerate(tqdm(plan, desc="simulate", unit="rec", disable=args.no_progress)):
        patient = dict(fs_hz=args.fs, seed=e.seed, age=e.age, sex=e.sex, potassium=e.potassium,
                       snr_db=snr, subject_id=e.subject_id)
        if schedule:
            rec = synthesize_schedule(schedule, **patient)
        else:
            rec = synthesize(e.condition, seconds=args.seconds, **patient)
        name = f"synth_{i:05d}"
        write_record(rec, rec_dir, name, fmt=args.fmt, annotations=not args.no_annotations)
        lines.append(label_line(rec, f"records/{name}", study_id=i))
        counts[rec.labels["condition"]] = counts.get(rec.labels["condition"], 0) + 1
        if first is None:
            first = (rec, name)
    table = write_label_table(lines, out / "labels.jsonl")
    print(f"wrote {len(lines)} records to {rec_dir} and the label table {table}")
    for cond, k in sorted(counts.items()):
        print(f"  {cond:38s} {k}")
    if args.plot and first is not None:
        png = _plot(first[0], out / f"{first[1]}.png")
        print(f"plot: {png}")
    return 0


def _plot(rec, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    t = np.arange(rec.signal.shape[0]) / rec.fs_hz
    n = len(rec.leads)
    fig, axes = plt.subplots(n, 1, figsize=(12, 1.1 * n), sharex=True)
    axes = np.atleast_1d(axes)
    for j, ax in enumerate(axes):
        ax.plot(t, rec.signal[:, j], lw=0.7, color="k")
        ax.set_ylabel(rec.leads[j], rotation=0, labelpad=18)
        if rec.leads[j] == "II":
            ax.plot(rec.r_peaks / rec.fs_hz, rec.signal[rec.r_peaks, j], "r.", ms=4)
    lab = rec.labels
    axes[0].set_title(f"{lab['condition']}, potassium {lab['potassium']}, age {lab['age']}, "
                      f"{'F' if lab['gender'] else 'M'} (synthetic)")
    axes[-1].set_xlabel("s")
    fig.subplots_adjust(left=0.08, right=0.99, top=0.97, bottom=0.04, hspace=0.08)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
