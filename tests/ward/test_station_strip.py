"""The station's ECG strip: the drawn lead's decimated samples, converted alone, are the very
numbers the whole frame's millivolts gave (Chunk.to_mv, then the column and the grid)."""

from __future__ import annotations

import numpy as np
from ward_reference import source_chunks

from edge_ecg.signal.chunk import Chunk
from edge_ecg.ward.station import Tile
from edge_ecg.ward.technical import TechnicalLimits


def _strip_from_whole_frame(tile: Tile, c: Chunk) -> tuple[list, int]:
    j = list(c.leads).index(tile.lead)
    with np.errstate(all="ignore"):
        mv = c.to_mv()[:, j]
    pts = mv[(-c.index) % tile.step::tile.step].astype(np.float64)
    bad = ~np.isfinite(pts)
    vals = np.round(np.where(bad, 0.0, pts), 3).tolist()
    return [None if b else v for v, b in zip(vals, bad)], int(bad.sum())


def _odd(c: Chunk, gain: float, base: float, shift: int) -> Chunk:
    n = len(c.leads)
    return Chunk(c.index + shift, c.seq, 0, c.samples, np.full(n, gain, np.float32),
                 np.full(n, base, np.float32), c.leads, c.fs_hz)


def test_strip_samples_equal_the_whole_frames_millivolts():
    chunks = source_chunks("synth:atrial_fibrillation?seconds=6&seed=2", frame_s=0.1)
    # odd scales and a clock off the decimation grid; a gain that makes infinities (drawn as
    # gaps, counted)
    frames = (chunks[:20] + [_odd(c, 0.37, 11.3, 1) for c in chunks[20:40]]
              + [_odd(c, 1e-40, 0.0, 3) for c in chunks[40:45]])
    tile = Tile("icu", "b1", {"fs_hz": 500.0}, TechnicalLimits())
    want, bad_want, bad_got = [], 0, 0
    for c in frames:
        before = len(tile.strip)
        bad_got += tile.frame(c, 0.0)
        vals, bad = _strip_from_whole_frame(tile, c)
        want += vals
        bad_want += bad
        assert len(tile.strip) - before == len(vals)
    assert tile.step > 1 and len(want) > 100
    assert list(tile.strip) == want[-len(tile.strip):]
    assert bad_got == bad_want > 0 and None in tile.strip
