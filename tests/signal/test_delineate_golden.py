"""Delineation is bit-exact against a stored reference on real records.

`edge_ecg.signal.delineate` was sped up for the runtime (issue 27) with the promise of the same
outputs. `data/delineate_golden.npz` holds what the implementation before that work (commit
832776d) gave on real ECGs: the packaged MIT-BIH 223 excerpt (2 leads, 360 Hz, PVCs and a VT
run), the same with a lead gone NaN and another flat, and (when ../shared/data is present)
LUDB records 1-6 (12 leads, 500 Hz). The beats fed in are stored with it, so a change of the
QRS detector does not move this reference. Any change of a boundary, of `valid` or of an RR
fails here. Regenerate (only for an intended change of outputs, said in the commit):

    python tests/signal/test_delineate_golden.py --write
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.data.records import read_record
from edge_ecg.signal.delineate import BOUNDARIES, delineate, delineate_flush, delineate_initial

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "data" / "delineate_golden.npz"
EXCERPT = REPO / "edge_ecg" / "assets" / "demo" / "mitdb_223_excerpt"
LUDB = REPO.parent / "shared" / "data" / "ludb" / "data"
LUDB_RECORDS = ("1", "2", "3", "4", "5", "6")


def _excerpt_damaged(x: np.ndarray, fs: float) -> np.ndarray:
    """Lead 0 NaN for 2 s from 30 s, lead 1 flat for 3 s from 60 s (a lead off)."""
    x = x.copy()
    x[int(30 * fs): int(32 * fs), 0] = np.nan
    x[int(60 * fs): int(63 * fs), 1] = 0.25
    return x


def cases(ludb: bool = True) -> dict[str, tuple[np.ndarray, float]]:
    rec = read_record(EXCERPT)
    x = rec.signal.astype(np.float64)
    out = {"excerpt": (x, rec.fs_hz), "excerpt_damaged": (_excerpt_damaged(x, rec.fs_hz),
                                                          rec.fs_hz)}
    if ludb and (LUDB / "1.hea").is_file():
        for name in LUDB_RECORDS:
            r = read_record(LUDB / name)
            out[f"ludb{name}"] = (r.signal.astype(np.float64), r.fs_hz)
    return out


def run(x: np.ndarray, fs: float, beats: np.ndarray, chunk: int | None = None) -> dict:
    """Delineate `x` with the given `(r, decided_at)` beats (each given with the chunk that
    holds its decision sample), in chunks of `chunk` samples (None: one call), then flush."""
    st = delineate_initial(fs)
    waves = []
    step = x.shape[0] if chunk is None else chunk
    for a in range(0, x.shape[0], step):
        b = min(a + step, x.shape[0])
        mine = [(int(r), int(d)) for r, d in beats if a <= d < b]
        w, st = delineate(x[a:b], mine, st)
        waves += w
    late = [(int(r), int(d)) for r, d in beats if d >= x.shape[0]]
    w, st = delineate(x[:0], late, st)
    waves += w
    waves += delineate_flush(st)[0]
    nb = len(BOUNDARIES)
    return {
        "r": np.array([w.r for w in waves], np.int64),
        "decided_at": np.array([w.decided_at for w in waves], np.int64),
        "valid": np.array([w.valid for w in waves], bool),
        "points": np.array([[-1 if w.points[k] is None else w.points[k] for k in BOUNDARIES]
                            for w in waves], np.int64).reshape(-1, nb),
        "per_lead": np.stack([w.per_lead for w in waves]) if waves else
        np.zeros((0, x.shape[1], nb), np.int64),
        "rr_ms": np.array([np.nan if w.rr_ms is None else w.rr_ms for w in waves], np.float64),
    }


def write() -> None:
    from edge_ecg.signal.qrs import qrs_detect, qrs_flush, qrs_initial

    arrays = {}
    for name, (x, fs) in cases().items():
        clean = np.where(np.isfinite(x), x, 0.0)
        beats, st = qrs_detect(clean, qrs_initial(fs))
        beats = beats + qrs_flush(st)[0]
        arrays[f"{name}/beats"] = np.array([(b.index, b.decided_at) for b in beats], np.int64)
        for k, v in run(x, fs, arrays[f"{name}/beats"]).items():
            arrays[f"{name}/{k}"] = v
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN, **arrays)
    print(f"wrote {GOLDEN}: {sorted({k.split('/')[0] for k in arrays})}")


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("name", ["excerpt", "excerpt_damaged", *[f"ludb{n}" for n in
                                                                   LUDB_RECORDS]])
def test_outputs_equal_the_stored_reference(golden, name):
    have = cases(ludb=name.startswith("ludb"))
    if name not in have:
        pytest.skip(f"LUDB not found under {LUDB}")
    x, fs = have[name]
    got = run(x, fs, golden[f"{name}/beats"])
    assert got["r"].size > 5
    for k, v in got.items():
        ref = golden[f"{name}/{k}"]
        assert v.shape == ref.shape, k
        # exact: the same samples, the same validity, the same RR (NaN = first beat)
        np.testing.assert_array_equal(v, ref, err_msg=f"{name}: {k} differs")


def test_reference_exercises_every_branch(golden):
    """The reference is worth its name: an invalid beat (the stream's start), beats with and
    without P waves (PVCs, the VT run), beats where only the NaN/flat lead gave nothing."""
    pts, valid = golden["excerpt_damaged/points"], golden["excerpt_damaged/valid"]
    per = golden["excerpt_damaged/per_lead"]
    assert (~valid).sum() >= 1 and valid.sum() > 300
    p = pts[valid, BOUNDARIES.index("p_on")]
    assert (p >= 0).sum() > 200 and (p < 0).sum() > 100     # PVCs and VT: no P
    assert ((per[:, 0, 3] < 0) & (per[:, 1, 3] >= 0)).sum() >= 2   # the NaN lead alone out


def test_chunked_equals_the_reference(golden):
    x, fs = cases(ludb=False)["excerpt_damaged"]
    got = run(x, fs, golden["excerpt_damaged/beats"], chunk=97)
    for k, v in got.items():
        np.testing.assert_array_equal(v, golden[f"excerpt_damaged/{k}"], err_msg=k)


def test_fast_helpers_give_numpys_floats():
    """The helpers that replaced numpy's generic functions give bit-identical results
    (odd and even lengths, ties, a zero step)."""
    from edge_ecg.signal import delineate as dl

    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 6, 11, 700):
        a = rng.standard_normal(n)
        assert dl._median(a) == np.median(a)
        m = rng.standard_normal((3, n))
        np.testing.assert_array_equal(dl._medians(m), np.median(m, axis=1))
        v = rng.integers(0, 900, n)
        assert dl._quantile(v, 0.5) == np.quantile(v, 0.5)
        assert dl._quantile(v, 0.3) == np.quantile(v, 0.3)
        if n >= 2:
            np.testing.assert_array_equal(dl._gradient(m), np.gradient(m, axis=1))
    for b0, b1, num, m in ((0.1, -0.3, 161, 150), (0.2, 0.2, 40, 30), (-1.0, 2.0, 5, 5)):
        np.testing.assert_array_equal(dl._line(b0, b1, num, m), np.linspace(b0, b1, num)[:m])


def test_waves_equal_the_one_lead_reference():
    """`_waves` (all leads at once) == `_wave` lead by lead, on filtered noise whose largest
    deviation lands anywhere, limits cutting the limbs short included."""
    from edge_ecg.signal import delineate as dl

    rng = np.random.default_rng(7)
    for trial in range(60):
        x = np.cumsum(rng.standard_normal((4, 400)), axis=1) * 0.01
        s = dl._zero_phase(x, 15.0, 500.0)
        d = dl._gradient(s) * 500.0
        lo = int(rng.integers(40, 200))
        hi = lo + int(rng.integers(20, 150))
        left, right = lo - int(rng.integers(0, 40)), min(hi + int(rng.integers(0, 80)), 399)
        limb, ref = int(rng.integers(5, 80)), int(rng.integers(0, 40))
        base = dl._medians(s[:, lo - 10: lo + 1])[:, None] if trial % 2 else \
            rng.standard_normal((4, hi - lo)) * 0.01
        on, pk, off, dev, mag = dl._waves(s, d, lo, hi, base, limb, ref, left, right)
        for i in range(4):
            ref_i = dl._wave(s[i], d[i], lo, hi, base[i] if base.shape[1] > 1 else base[i, 0],
                             limb, ref, left, right)
            assert (on[i], pk[i], off[i], dev[i]) == ref_i, (trial, i)
        np.testing.assert_array_equal(mag, np.abs(s[:, lo:hi] - base))


if __name__ == "__main__":
    if "--write" in sys.argv:
        write()
