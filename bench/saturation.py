"""How many Holter windows the runtime's saturation check withholds, and how many of them sit at
a level the recorder really clipped at, for each minimum run of samples at the extreme.

    python bench/saturation.py [--data ../shared/data/svdb] [--folds 1,2,3,4] [--runs 3,4,5]

Each SVDB record of the given folds (128 Hz, channel ECG1 as the runtime uses it), cut into
10-s windows every 5 s, judged by the runtime's own check (`edge_ecg.runtime.quality`,
`rail_run_min_samples` set to each value of `--runs`; no known ADC rails, as for a replay). A
window judged saturated counts "at a clip level" when the extreme it sits at is the record's
own extreme count and the record reaches that count >= 10 times (the level its recorder clipped
at); otherwise it is a broad wave quantized flat, and its beats were withheld for nothing. How
`rail_run_min_samples = 4` was chosen (on the training folds; fold 0 is never read by default).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_ecg.data.folds import subject_fold  # noqa: E402
from edge_ecg.runtime.quality import QualityConfig, _saturated_leads  # noqa: E402

CLIP_MIN_COUNT = 10          # samples at the record's extreme that make it a clip level


def clip_levels(counts: np.ndarray) -> set[int]:
    """The record's extreme counts reached >= CLIP_MIN_COUNT times: where its recorder clipped."""
    return {int(v) for v in (counts.min(), counts.max())
            if np.count_nonzero(counts == v) >= CLIP_MIN_COUNT}


def judge_record(counts: np.ndarray, gain: float, fs: float, runs: list[int],
                 window_s: float = 10.0, hop_s: float = 5.0) -> dict[int, list[int]]:
    """`{run: [windows at a clip level, windows at none]}` judged saturated in one record."""
    levels = clip_levels(counts)
    x = counts.astype(np.float32) / np.float32(gain)
    w, hop = int(window_s * fs), int(hop_s * fs)
    out = {k: [0, 0] for k in runs}
    cfgs = {k: replace(QualityConfig(), rail_run_min_samples=k) for k in runs}
    for s in range(0, counts.size - w + 1, hop):
        seg, cseg = x[s:s + w][None, :], counts[s:s + w]
        ok = np.ones(w, dtype=bool)
        at_clip = bool({int(cseg.min()), int(cseg.max())} & levels)
        for k in runs:
            if _saturated_leads(seg, ok, fs, cfgs[k], None)[0]:
                out[k][0 if at_clip else 1] += 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "svdb"))
    ap.add_argument("--folds", default="1,2,3,4", help="folds of records to read (0: held out)")
    ap.add_argument("--runs", default="3,4,5", help="minimum samples in a row at the extreme")
    args = ap.parse_args()
    import wfdb

    folds = {int(f) for f in args.folds.split(",") if f.strip()}
    runs = [int(r) for r in args.runs.split(",") if r.strip()]
    total = {k: [0, 0] for k in runs}
    n_rec = 0
    for hea in sorted(Path(args.data).glob("*.hea")):
        if subject_fold(f"svdb-{hea.stem}") not in folds:
            continue
        rec = wfdb.rdrecord(str(hea.with_suffix("")), physical=False, channels=[0])
        got = judge_record(rec.d_signal[:, 0], float(rec.adc_gain[0]), float(rec.fs), runs)
        n_rec += 1
        for k in runs:
            total[k][0] += got[k][0]
            total[k][1] += got[k][1]
        flagged = {k: v for k, v in got.items() if sum(v)}
        if flagged:
            print(f"{hea.stem}: " + ", ".join(f"{k} samples: {v[0]} at a clip level, {v[1]} at none"
                                              for k, v in flagged.items()), flush=True)
    print(f"\n{n_rec} records, 10-s windows every 5 s")
    print("samples in a row   windows judged saturated   of them at no clip level")
    for k in runs:
        print(f"{k:>16d}   {sum(total[k]):>24d}   {total[k][1]:>24d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
