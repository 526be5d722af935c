"""Real signal in every run: the packaged MIT-BIH record 223 excerpt (edge_ecg/assets/demo, 4 min,
2 leads at 360 Hz, with the cardiologists' beat and rhythm annotations: sinus rhythm with PVCs,
a 55-s ventricular tachycardia run, bigeminy). These tests need no ../shared/data, so a clone
without it still checks the detector and the label mapping on a real ECG.

The shared data's README allows no other copy of its records in the repository than a few
seconds packaged as a demo asset, so this excerpt is the one real fixture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_ecg.data.records import BEAT_SYMBOLS, read_annotations, read_record
from edge_ecg.signal.qrs import detect_beats
from edge_ecg.signal.scoring import score_beats

EXCERPT = Path(__file__).resolve().parents[2] / "edge_ecg" / "assets" / "demo" / "mitdb_223_excerpt"
FS = 360.0


@pytest.fixture(scope="module")
def excerpt():
    rec = read_record(EXCERPT)
    ann = read_annotations(EXCERPT, "atr")
    sym = np.array(ann.symbol, dtype=object)
    return {"x": rec.signal.astype(np.float64), "fs": rec.fs_hz, "sym": sym,
            "ref": ann.sample[np.isin(sym, list(BEAT_SYMBOLS))]}


def test_excerpt_is_the_documented_record(excerpt):
    assert excerpt["fs"] == FS and excerpt["x"].shape == (int(240 * FS), 2)
    # 370 annotated beats, 122 of them PVCs (V): what the detector is scored against below
    assert excerpt["ref"].size == 370 and int((excerpt["sym"] == "V").sum()) == 122


def test_qrs_detector_finds_every_annotated_beat(excerpt):
    """Measured: lead MLII, 370 of 370 beats found (VT run included), 1 false detection,
    median error 2.8 ms; both leads together the same counts, 5.6 ms."""
    s = score_beats(excerpt["ref"], detect_beats(excerpt["x"][:, 0], FS), FS)
    assert s.sensitivity == 1.0 and s.ppv >= 0.995, s.to_dict()
    assert s.median_abs_error_ms <= 5.0
    s2 = score_beats(excerpt["ref"], detect_beats(excerpt["x"], FS), FS)
    assert s2.sensitivity == 1.0 and s2.ppv >= 0.995, s2.to_dict()


def test_streaming_equals_offline_on_the_excerpt(excerpt):
    """The VT run and bigeminy take the detector's held-candidate and search-back branches."""
    from edge_ecg.signal.qrs import qrs_detect, qrs_flush, qrs_initial

    x = excerpt["x"][:, 0]

    def run(cuts):
        st = qrs_initial(FS)
        out = []
        for a, b in zip([0, *cuts], [*cuts, len(x)]):
            beats, st = qrs_detect(x[a:b], st)
            out += beats
        out += qrs_flush(st)[0]
        return [(b.index, b.decided_at) for b in out]

    rng = np.random.default_rng(223)
    cuts = np.sort(rng.choice(np.arange(1, len(x)), size=500, replace=False)).tolist()
    assert run(cuts) == run([])


def test_rhythm_and_beat_labels_follow_the_annotations():
    """10-s windows: those inside the VT run or the bigeminy are 'other_rhythm' and every beat
    of the VT windows is V; sinus windows are 'normal_sinus' (labels from the .atr rhythm notes,
    edge_ecg.data.mitbih)."""
    from edge_ecg.data.dataset import load_dataset
    from edge_ecg.data.tasks import DEFAULT_TASKS
    from edge_ecg.signal.contract import SignalContract

    ds = load_dataset(f"mitdb:{EXCERPT}", SignalContract(), DEFAULT_TASKS, progress=False)
    rhythm = DEFAULT_TASKS["arrhythmia"].labels
    got = [rhythm[int(v)] for v in ds.labels["arrhythmia"]]
    starts = [m["start_s"] for m in ds.meta]
    assert starts == [10.0 * i for i in range(24)]
    # the .atr: (VT 38.3-93.3 s, (B 192.5-207.4 s, (VT 207.4-209.2 s, (B to 217.4 s
    other = {i for i, s in enumerate(starts) if 38.3 <= s and s + 10 <= 93.3
             or 192.5 <= s and s + 10 <= 217.4}
    assert other == {4, 5, 6, 7, 8, 20}
    assert all(got[i] == "other_rhythm" for i in other), got
    assert got.count("normal_sinus") >= 15 and got[0] == "normal_sinus"
    beat = ds.labels["beat"]
    v = DEFAULT_TASKS["beat"].labels.index("V")
    for i in (4, 5, 6, 7, 8):                       # inside the VT run: all beats ventricular
        row = beat[i][~np.isnan(beat[i])]
        assert row.size >= 10 and (row == v).all(), (i, row)
