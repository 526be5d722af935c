"""One thread per process for the numerical libraries under numpy (OpenBLAS, MKL, OpenMP).

The runtime computes on small arrays and batches its own inference (onnxruntime's threads are
set per session: `--threads`, a profile's `runtime_threads`). A BLAS thread pool gains nothing
on those arrays, and its idle workers spin on the other cores: `edge-ecg stream` replaying 5 min
of MIT-BIH 203 took 1.85 s of CPU with OpenBLAS's default pool on a 2-core machine and 1.41 s
with one thread, for the same events. On a bedside board that CPU is the ward's, or the
battery's.

The pools read these variables once, when numpy is first imported. `edge-ecg` calls
`one_thread_per_process` before a device or ward command imports anything numerical; called
later it changes nothing, and says so. A variable the environment already sets is left as set.
"""

from __future__ import annotations

import os
import sys

VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def one_thread_per_process() -> bool:
    """Set each of `VARIABLES` the environment leaves unset to 1. False when numpy was already
    imported: its pools have started and keep their size."""
    for k in VARIABLES:
        os.environ.setdefault(k, "1")
    return "numpy" not in sys.modules
