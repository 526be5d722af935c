"""Inference batched across beds gives each bed exactly its single-process events."""

from pathlib import Path

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
    # 12-lead beds (3 leads delineated) beside a 2-lead MIT-BIH record at 360 Hz: the tick
    # delineates each shape as its own shared batch
    demo = Path(__file__).resolve().parents[2] / "edge_ecg" / "assets" / "demo"
    specs = ["synth:sinus_rhythm?seconds=24&seed=1", "synth:atrial_fibrillation?seconds=24&seed=2",
             "synth:sinus_tachycardia?seconds=24&seed=3", f"record:{demo / 'mitdb_223_excerpt'}"]
    chunks = [source_chunks(s, max_seconds=24) for s in specs]
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
    # and their beats shared delineation batches (the boundaries are in the events above)
    assert stats.delineations and stats.delineated_beats > 1.5 * stats.delineations


def test_a_bed_failing_mid_delineation_leaves_the_others_exact(backend):
    """A bed whose feed raises between its shared delineation batch and its P waves is that
    bed's failure; the bed sharing the batch still gets exactly its own events."""
    from edge_ecg.signal.delineate import BATCH_MAKER

    specs = ["synth:sinus_rhythm?seconds=12&seed=5", "synth:sinus_bradycardia?seconds=12&seed=6"]
    chunks = [source_chunks(s) for s in specs]
    ref = reference_events(chunks[1], backend)
    shared = InvariantBackend(backend)
    procs = [StreamProcessor(BedBackend(shared)) for _ in specs]
    made = {"n": 0}

    def broken_feed(p, x):
        # inside bed 0's greenlet: its second shared batch breaks when its P waves are asked
        rows_of = BATCH_MAKER.get()

        def make(*a):
            rows = rows_of(*a)
            made["n"] += 1
            if made["n"] == 2:
                # the batch it breaks in holds the other bed's beats too
                made["shared"] = rows._batch.comb.shape[0] > rows._hi - rows._lo

                def boom(p_start):
                    raise RuntimeError("bed 0 broke")
                rows.p_waves = boom
            return rows
        BATCH_MAKER.set(make)
        return p.feed(x)
    got, failed = [], []
    for k in range(max(len(c) for c in chunks)):
        work = {}
        if k < len(chunks[0]) and not failed:
            work[0] = lambda x=chunks[0][k]: broken_feed(procs[0], x)
        if k < len(chunks[1]):
            work[1] = lambda x=chunks[1][k]: procs[1].feed(x)
        for i, r in run_tick(shared, work, TickStats()).items():
            if isinstance(r, Exception):
                assert i == 0 and "bed 0 broke" in str(r)
                failed.append(r)
            elif i == 1:
                got += [comparable(e.to_json()) for e in r]
    assert failed and made["shared"]
    assert got == ref
