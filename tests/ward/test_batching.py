"""Inference batched across beds gives each bed exactly its single-process events."""

import numpy as np
from ward_reference import comparable, reference_events, source_chunks

from edge_ecg.runtime.stream_processor import StreamProcessor
from edge_ecg.ward.batching import BedBackend, InvariantBackend, TickStats, run_tick


def test_rows_do_not_depend_on_their_batch(backend):
    """The property `InvariantBackend` rests on, measured on the bundled model: a row's
    outputs are bit-identical in any batch of two or more."""
    chunks = source_chunks("synth:atrial_fibrillation?seconds=24&seed=4")
    rows = []
    inv = InvariantBackend(backend)

    class Rec:
        manifest, variant, name = inv.manifest, inv.variant, "rec"

        def run(self, x):
            rows.extend({k: v[i:i + 1].copy() for k, v in x.items()}
                        for i in range(next(iter(x.values())).shape[0]))
            return inv.run(x)
    p = StreamProcessor(Rec())
    for c in chunks:
        p.feed(c)
    assert len(rows) >= 10
    alone = [inv.run(r) for r in rows]
    cat = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    together = inv.run(cat)
    for i, a in enumerate(alone):
        for k in a:
            assert np.array_equal(a[k][0], together[k][i]), (i, k)


def test_beds_batched_in_ticks_equal_each_bed_alone(backend):
    specs = ["synth:sinus_rhythm?seconds=24&seed=1", "synth:atrial_fibrillation?seconds=24&seed=2",
             "synth:sinus_tachycardia?seconds=24&seed=3"]
    chunks = [source_chunks(s) for s in specs]
    refs = [reference_events(c, backend) for c in chunks]
    shared = InvariantBackend(backend)
    procs = [StreamProcessor(BedBackend(shared)) for _ in specs]
    got = [[] for _ in specs]
    stats = TickStats()
    for k in range(0, max(len(c) for c in chunks), 3):      # 3 frames per bed per tick
        work = {i: (lambda p=procs[i], part=c[k:k + 3]: [e for x in part for e in p.feed(x)])
                for i, c in enumerate(chunks) if c[k:k + 3]}
        for i, r in run_tick(shared, work, stats).items():
            assert not isinstance(r, Exception), r
            got[i] += [comparable(e.to_json()) for e in r]
    assert got == refs
    assert stats.rows > stats.batches     # the beds' windows did share batches
