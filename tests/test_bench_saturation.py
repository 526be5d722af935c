"""bench/saturation.py: a window judged saturated counts at a clip level only where its extreme
is a count the record reaches >= 10 times; a 3-sample flat trough at 128 Hz is judged with 3
and not with 4. (bench/ is not a package: imported by path.)"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import saturation  # noqa: E402


def test_clip_windows_and_quantized_troughs_are_told_apart():
    fs, gain = 128.0, 200.0
    t = np.arange(int(60 * fs)) / fs
    counts = np.round(160 * np.sin(2 * np.pi * 1.0 * t)).astype(np.int64)
    counts[640:643] = -400                  # one broad trough, flat for 3 samples
    for beat in range(2560, 7680, 128):     # 40 s of R waves clipped at 300 for 5 samples
        counts[beat:beat + 5] = 300
    assert saturation.clip_levels(counts) == {300}
    got = saturation.judge_record(counts, gain, fs, [3, 4])
    # windows every 5 s (11 of them): the clipped beats lie in the last eight; the first three
    # have no clip, but the trough (in two) and the 1-Hz wave's own crest, quantized, sit
    # flat for 3 samples: judged with 3, not with 4
    assert got[3] == [8, 3]
    assert got[4] == [8, 0]
