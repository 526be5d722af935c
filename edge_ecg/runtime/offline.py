"""`run_offline`: the training chain on a whole signal, for parity with the stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_ecg.signal.contract import SignalContract


def run_offline(signal: np.ndarray, fs_hz: float, leads, bundle, hop_s: float | None = None,
                batch: int = 16) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The training chain on a whole signal: `make_windows` -> the backend, batched.

    `bundle` is a bundle directory or an open `Backend`. Returns `(starts (N,) model clock,
    outputs {name: (N, ...)})`, for parity with `StreamProcessor(keep_outputs=True)`.
    """
    from edge_ecg.data.windows import make_windows
    from edge_ecg.runtime.backends import Backend, open_backend
    from edge_ecg.signal.contract import stack_inputs

    backend = bundle if isinstance(bundle, Backend) else open_backend(Path(bundle))
    contract = SignalContract.from_dict(backend.manifest.signal)
    starts, items = make_windows(np.asarray(signal), fs_hz, tuple(leads), contract, hop_s=hop_s)
    outs: dict[str, list] = {}
    for i in range(0, len(items), batch):
        o = backend.run(stack_inputs(items[i:i + batch]))
        for k, v in o.items():
            outs.setdefault(k, []).append(np.asarray(v))
    return np.asarray(starts, dtype=np.int64), {k: np.concatenate(v) for k, v in outs.items()}


__all__ = ["run_offline"]
