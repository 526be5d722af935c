"""Synthetic 12-lead generator speed beside NeuroKit2's simulators, measured in the same run.

    python bench/synth.py

Prints median wall time per 10-s record at 500 Hz and the ratio to our noisy 12-lead record.
"""

from __future__ import annotations

import platform
import time
import warnings

import numpy as np

from edge_ecg.data.synth import synthesize


def median_ms(fn, repeats: int) -> float:
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def main() -> None:
    warnings.filterwarnings("ignore")
    import neurokit2 as nk

    synthesize()  # warm caches before timing
    rows = [
        ("edge-ecg synthesize, 12 leads, clean",
         median_ms(lambda i: synthesize("sinus_rhythm", seconds=10, seed=i), 30)),
        ("edge-ecg synthesize, 12 leads, PVCs + noise 20 dB",
         median_ms(lambda i: synthesize("premature_ventricular_contractions", seconds=10,
                                        seed=i, snr_db=20), 30)),
        ("neurokit2 ecg_simulate ecgsyn, 1 lead",
         median_ms(lambda i: nk.ecg_simulate(duration=10, sampling_rate=500, method="ecgsyn",
                                             random_state=i), 5)),
        ("neurokit2 ecg_simulate multileads, 12 leads",
         median_ms(lambda i: nk.ecg_simulate(duration=10, sampling_rate=500, method="multileads",
                                             random_state=i), 3)),
    ]
    base = rows[1][1]
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}")
    print("10 s at 500 Hz, median wall ms, ratio to edge-ecg noisy 12-lead")
    for name, ms in rows:
        print(f"{name:52s} {ms:9.1f} ms  {ms / base:7.1f}x")


if __name__ == "__main__":
    main()
