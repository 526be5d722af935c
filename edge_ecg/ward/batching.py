"""Inference batched across beds: the windows due in one tick go to the backend as one batch.

Each bed keeps its own unmodified `StreamProcessor`; its backend is a `BedBackend` proxy. In a
tick, `run_tick` feeds every bed's chunks inside its own greenlet; when a bed's predictor
calls `backend.run(batch)` the proxy hands the batch to the tick and waits, the tick
concatenates the rows of every waiting bed, runs the real backend once and gives each bed its
rows back. No runtime code is copied or changed: the processors cannot tell.

Delineation the same way: inside a tick every bed's `_run_beats` makes its batch through
`_BedRows` (edge_ecg.signal.delineate.BATCH_MAKER, set in each bed's greenlet), and the tick
delineates the beats of all beds waiting, grouped by shape and config, as one `_Batch`: its
~100 numpy calls were ~28 % of the stream's CPU in a 24-bed tick when each bed paid them for
its one or two beats. Rows are independent there, so the boundaries are the same integers
(tests/ward/test_batching.py compares the events with each bed run alone).

`InvariantBackend` makes a row's outputs independent of the batch it rides in. Measured on the
bundled ONNX int8 model (tests/ward/test_batching.py): any batch of two or more rows gives
every row bit-identical outputs whatever its size and position, but a batch of one row takes
another kernel path (the arrhythmia head differs by up to ~4e-7), so a lone row is run
beside a copy of itself. With it, events are the same whether a bed shares its ticks with 0
or 59 others, and equal to a single-process `StreamProcessor` over the same backend.
"""

from __future__ import annotations

import time

import numpy as np

try:
    import greenlet
except ImportError:  # the ward extra installs it; without it, beds run one by one
    greenlet = None


class InvariantBackend:
    """A backend whose rows never run alone (see the module docstring)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.manifest = inner.manifest
        self.variant = inner.variant
        self.name = getattr(inner, "name", "backend")

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = next(iter(inputs.values())).shape[0]
        if n != 1:
            return self.inner.run(inputs)
        out = self.inner.run({k: np.concatenate([v, v]) for k, v in inputs.items()})
        return {k: np.asarray(v)[:1] for k, v in out.items()}

    def warmup(self, runs: int = 2) -> None:
        self.inner.warmup(runs)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name):
        return getattr(self.inner, name)


class BedBackend:
    """One bed's view of the shared backend: inside a tick's greenlet `run` waits for the
    tick's batch; outside one it runs at once (a single bed, a test)."""

    def __init__(self, shared: InvariantBackend) -> None:
        self.inner = shared
        self.manifest = shared.manifest
        self.variant = shared.variant
        self.name = shared.name

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        g = greenlet.getcurrent() if greenlet is not None else None
        if g is None or g.parent is None or not getattr(g, "ward_tick", False):
            return self.inner.run(inputs)
        # the arrays are views into the predictor's reused batch: copied by the concatenation
        return g.parent.switch(("run", inputs))

    def warmup(self, runs: int = 2) -> None:
        self.inner.warmup(runs)

    def close(self) -> None:
        pass

    def __getattr__(self, name):
        return getattr(self.inner, name)


class _BedRows:
    """One bed's rows of a delineation batch shared by the tick's beds (`_Batch`'s interface:
    `comb`, `out`, `usable` as views of its rows, `p_waves` for them). Made inside a tick's
    greenlet only: it hands its beats to the tick and waits for the shared batch."""

    def __init__(self, segs, r, fs, t_end, cfg) -> None:
        self._batch, self._lo, self._hi = greenlet.getcurrent().parent.switch(
            ("delineate", (segs, r, fs, t_end, cfg)))

    @property
    def comb(self) -> np.ndarray:
        return self._batch.comb[self._lo:self._hi]

    @property
    def out(self) -> np.ndarray:
        return self._batch.out[self._lo:self._hi]

    @property
    def usable(self) -> np.ndarray:
        return self._batch.usable[self._lo:self._hi]

    def p_waves(self, p_start: list) -> None:
        greenlet.getcurrent().parent.switch(("p_waves", (self._batch, self._lo, list(p_start))))


def _delineate_together(requests: list) -> dict:
    """{key: (batch, lo, hi)}: the beds' beats as one `_Batch` per (shape, R, rate, config)."""
    from edge_ecg.signal.delineate import _Batch

    groups: dict = {}
    for key, (segs, r, fs, t_end, cfg) in requests:
        groups.setdefault((segs.shape[1:], int(r), float(fs), cfg), []).append(
            (key, segs, t_end))
    out = {}
    for (_, r, fs, cfg), members in groups.items():
        batch = _Batch(np.concatenate([m[1] for m in members]), r, fs,
                       np.concatenate([m[2] for m in members]), cfg)
        lo = 0
        for key, segs, _ in members:
            out[key] = (batch, lo, lo + segs.shape[0])
            lo += segs.shape[0]
    return out


def _p_waves_together(requests: list) -> None:
    """Each shared batch's P waves in one call, every row's P search start as its bed gave it
    (rows of a bed that failed meanwhile: None, bounded by the window only; nobody reads them)."""
    by_batch: dict = {}
    for _, (batch, lo, p_start) in requests:
        by_batch.setdefault(id(batch), (batch, []))[1].append((lo, p_start))
    for batch, parts in by_batch.values():
        p = [None] * batch.comb.shape[0]
        for lo, p_start in parts:
            p[lo:lo + len(p_start)] = p_start
        batch.p_waves(p)


class TickStats:
    """Batch sizes and inference times of the ticks run so far."""

    def __init__(self) -> None:
        self.batches = 0
        self.rows = 0
        self.infer_s = 0.0
        self.max_rows = 0
        self.delineations = 0      # shared delineation batches
        self.delineated_beats = 0  # the beats in them

    def to_dict(self) -> dict:
        return {"batches": self.batches, "rows": self.rows,
                "delineations": self.delineations, "delineated_beats": self.delineated_beats,
                "mean_rows": round(self.rows / self.batches, 2) if self.batches else 0.0,
                "max_rows": self.max_rows, "infer_s": round(self.infer_s, 3)}


def run_tick(backend: InvariantBackend, work: dict, stats: TickStats | None = None) -> dict:
    """Run `work` = {key: callable()} (each feeds one bed's chunks and returns its events),
    batching every backend call made meanwhile. Returns {key: result or the exception}."""
    results: dict = {}
    if greenlet is None:
        for key, fn in work.items():
            try:
                results[key] = fn()
            except Exception as exc:   # one bed's failure is that bed's, reported by the caller
                results[key] = exc
        return results

    from edge_ecg.signal.delineate import BATCH_MAKER

    def body(fn):
        BATCH_MAKER.set(_BedRows)       # this greenlet's context only
        return ("done", fn())

    waiting: dict = {}
    for key, fn in work.items():
        g = greenlet.greenlet(body)
        g.ward_tick = True
        waiting[key] = (g, fn)
    # first round: start every bed; afterwards resume those waiting for inference
    pending = {key: g.switch for key, (g, _) in waiting.items()}
    args = {key: (fn,) for key, (_, fn) in waiting.items()}
    while pending:
        requests, delin, pwaves = [], [], []
        for key, step in pending.items():
            try:
                r = step(*args[key])
            except Exception as exc:
                results[key] = exc
                continue
            if r[0] == "done":
                results[key] = r[1]
            elif r[0] == "delineate":
                delin.append((key, r[1]))
            elif r[0] == "p_waves":
                pwaves.append((key, r[1]))
            else:
                requests.append((key, r[1]))
        pending, args = {}, {}
        for kind, reqs, step_all in (("delineate", delin, _delineate_together),
                                     ("p_waves", pwaves, _p_waves_together)):
            if not reqs:
                continue
            try:
                got = step_all(reqs)
            except Exception as exc:   # every bed of the batch gets the error, as below
                for key, _ in reqs:
                    try:
                        waiting[key][0].throw(exc)
                    except Exception as e2:
                        results[key] = e2
                continue
            if stats is not None and kind == "delineate":
                batches = {id(b): b for b, _, _ in got.values()}
                stats.delineations += len(batches)
                stats.delineated_beats += sum(b.comb.shape[0] for b in batches.values())
            for key, _ in reqs:
                pending[key] = waiting[key][0].switch
                args[key] = (got[key],) if kind == "delineate" else (None,)
        if not requests:
            continue
        sizes = [next(iter(inp.values())).shape[0] for _, inp in requests]
        names = list(requests[0][1])
        batch = {k: np.concatenate([inp[k] for _, inp in requests]) for k in names}
        t0 = time.perf_counter()
        try:
            out = backend.run(batch)
        except Exception as exc:       # the backend failed: every waiting bed gets the error
            for key, _ in requests:
                g = waiting[key][0]
                try:
                    g.throw(exc)
                except Exception as e2:
                    results[key] = e2
            continue
        if stats is not None:
            stats.batches += 1
            stats.rows += sum(sizes)
            stats.max_rows = max(stats.max_rows, sum(sizes))
            stats.infer_s += time.perf_counter() - t0
        off = 0
        for (key, _), n in zip(requests, sizes):
            rows = {k: np.asarray(v)[off:off + n] for k, v in out.items()}
            off += n
            pending[key] = waiting[key][0].switch
            args[key] = (rows,)
    return results
