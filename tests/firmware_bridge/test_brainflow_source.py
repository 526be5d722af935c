"""brainflow: BrainFlow's synthetic board (rate, rows, continuity) and its playback board
carrying a real MIT-BIH excerpt (beats as from the record; lost rows counted as a gap)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.errors import SourceError
from edge_ecg.runtime.sources import open_source

bf = pytest.importorskip("brainflow.board_shim",
                         reason="BrainFlow not installed: pip install 'edge-ecg[brainflow]'")

TOL_S = 0.150          # AAMI EC57 beat match window


def _read(src, until_s: float | None = None, max_wall_s: float = 20.0, wrap=None) -> list:
    """The chunks `src` gives until its end (or `until_s` of signal, or `max_wall_s`);
    `wrap(shim)` stands in for the opened board's BoardShim."""
    import time

    out, t0 = [], time.monotonic()
    with src:
        if wrap is not None:
            src._shim = wrap(src._shim)
        while time.monotonic() - t0 < max_wall_s:
            try:
                c = src.read(0.2)
            except EOFError:
                break
            if c is not None:
                out.append(c)
                if until_s is not None and c.end >= until_s * c.fs_hz:
                    break
    return out


def _playback_file(path, uv: np.ndarray, drop: slice | None = None) -> str:
    """A BrainFlow CSV as the synthetic board records it: counter row 0, ECG row 1, timestamp
    row 30. All timestamps equal: the playback board paces rows by their time deltas, so the
    file plays as fast as it is read (the test need not wait 20 s of real time)."""
    from brainflow.data_filter import DataFilter

    d = bf.BoardShim.get_board_descr(bf.BoardIds.SYNTHETIC_BOARD.value)
    n = uv.size
    data = np.zeros((d["num_rows"], n))
    data[d["package_num_channel"]] = np.arange(n) % 256
    data[d["ecg_channels"][0]] = uv
    data[d["timestamp_channel"]] = 1.7e9
    if drop is not None:
        data = np.delete(data, np.arange(n)[drop], axis=1)
    DataFilter.write_file(np.ascontiguousarray(data), str(path), "w")
    return str(path)


def test_synthetic_board_rate_rows_and_continuity():
    chunks = _read(open_source("brainflow:SYNTHETIC_BOARD"), until_s=0.6)
    assert chunks and chunks[0].fs_hz == 250.0 and chunks[0].leads == ("II",)
    assert chunks[0].index == 0
    assert all(a.end == b.index for a, b in zip(chunks, chunks[1:]))     # no loss
    assert chunks[0].samples.dtype == np.int32 and chunks[0].gain[0] == 1000.0


def test_playback_of_a_real_mitbih_excerpt_gives_the_record_beats(tmp_path, shared_data):
    from scipy.signal import resample_poly

    from edge_ecg.data.records import BEAT_SYMBOLS, read_annotations, read_record
    from edge_ecg.signal.qrs import detect_beats

    rec = read_record(shared_data / "mitdb" / "100")
    seconds = 20
    mv = rec.signal[:int(seconds * rec.fs_hz), 0].astype(np.float64)
    uv = np.round(resample_poly(mv, 25, 36) * 1000.0)       # 360 -> 250 Hz, whole microvolts
    path = _playback_file(tmp_path / "mitdb100.csv", uv)
    src = open_source(f"brainflow:PLAYBACK_FILE_BOARD?file={path}&master_board=SYNTHETIC_BOARD")
    chunks = _read(src)
    got = np.concatenate([c.samples[:, 0] for c in chunks])
    assert np.array_equal(got, uv.astype(np.int32))           # every row, in microvolts
    assert src.stats()["lost_samples"] == 0

    fs = chunks[0].fs_hz
    assert chunks[0].gain[0] == 1000.0 and chunks[0].baseline[0] == 0      # counts are uV
    beats_s = detect_beats((got / 1000.0).astype(np.float32)[:, None], fs) / fs
    ann = read_annotations(shared_data / "mitdb" / "100", "atr")
    ref_s = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS]) / 360.0
    ref_s = ref_s[(ref_s > 0.5) & (ref_s < seconds - 0.5)]     # away from the excerpt's edges
    matched = sum(np.min(np.abs(beats_s - r)) <= TOL_S for r in ref_s)
    assert matched == len(ref_s)                                # every reference beat found
    inner = beats_s[(beats_s > 0.5) & (beats_s < seconds - 0.5)]
    assert len(inner) == len(ref_s)                             # and nothing else
    # the same beats the detector finds on the record itself at 360 Hz, within 2 samples
    at360 = detect_beats(mv[:, None].astype(np.float32), 360.0) / 360.0
    assert max(np.min(np.abs(at360 - b)) for b in inner) < 2 / fs


def test_playback_rows_missing_from_the_file_are_a_counted_gap(tmp_path):
    uv = 100.0 * np.sin(np.arange(2000) / 10.0)
    path = _playback_file(tmp_path / "lossy.csv", uv, drop=slice(700, 737))
    src = open_source(f"brainflow:PLAYBACK_FILE_BOARD?file={path}&master_board=SYNTHETIC_BOARD")
    chunks = _read(src)
    idx = np.concatenate([np.arange(c.index, c.end) for c in chunks])
    assert np.array_equal(idx, np.r_[0:700, 737:2000])          # the gap, at its place
    assert src.stats()["lost_samples"] == 37 and src.stats()["gaps"] == 1
    got = np.concatenate([c.samples[:, 0] for c in chunks])
    assert np.array_equal(got, np.round(np.delete(uv, np.arange(700, 737))).astype(np.int32))


def test_unknown_board_and_missing_playback_parameters_are_clear_errors():
    with pytest.raises(SourceError, match="unknown board"):
        open_source("brainflow:NO_SUCH_THING").open()
    with pytest.raises(SourceError, match="master_board"):
        open_source("brainflow:PLAYBACK_FILE_BOARD?file=x.csv").open()
    with pytest.raises(SourceError, match="unknown parameter"):
        open_source("brainflow:SYNTHETIC_BOARD?bogus=1").open()


def test_a_loss_longer_than_the_counter_period_is_sized_from_the_timestamps():
    src = open_source("brainflow:SYNTHETIC_BOARD")
    src.open()                      # descriptor rows and rate; the board itself is not read
    src.close()
    d = bf.BoardShim.get_board_descr(bf.BoardIds.SYNTHETIC_BOARD.value)

    def block(first: int, n: int) -> np.ndarray:
        data = np.zeros((d["num_rows"], n))
        k = np.arange(first, first + n)
        data[d["package_num_channel"]] = k % 256
        data[d["timestamp_channel"]] = 1000.0 + k / 250.0
        data[d["ecg_channels"][0]] = k
        return data

    src._split(block(0, 100))
    src._split(block(100 + 300, 50))         # 300 rows lost: the counter alone says 44
    chunks = list(src._chunks)
    assert [(c.index, c.end) for c in chunks] == [(0, 100), (400, 450)]
    assert src.stats()["lost_samples"] == 300 and src.stats()["gaps"] == 1


class _Trickle:
    """A BoardShim that hands over at most `k` rows a read: the last rows of a playback come
    after the sample index (which counts the rows missing from the file) has passed the file's
    row count, as they do when the board is read promptly."""

    def __init__(self, shim, k: int = 7) -> None:
        self.shim, self.k = shim, k

    def get_board_data_count(self) -> int:
        return min(self.shim.get_board_data_count(), self.k)

    def get_board_data(self, n: int):
        return self.shim.get_board_data(min(n, self.k))

    def __getattr__(self, name):
        return getattr(self.shim, name)


def test_a_playback_read_in_small_pieces_ends_after_its_last_row(tmp_path):
    uv = 100.0 * np.sin(np.arange(600) / 10.0)
    path = _playback_file(tmp_path / "lossy.csv", uv, drop=slice(200, 237))
    src = open_source(f"brainflow:PLAYBACK_FILE_BOARD?file={path}&master_board=SYNTHETIC_BOARD")
    out = _read(src, wrap=_Trickle)
    idx = np.concatenate([np.arange(c.index, c.end) for c in out])
    assert np.array_equal(idx, np.r_[0:200, 237:600])       # every row, the gap at its place
    got_uv = np.concatenate([c.samples[:, 0] for c in out]) / src.gain * 1000.0   # counts -> uV
    assert np.allclose(got_uv, np.delete(uv, np.arange(200, 237)), atol=1000.0 / src.gain)


class _Overwritten(_Trickle):
    """Rows 300-319 of the stream lost inside BrainFlow (its ring buffer overwritten before a
    read): they never come, so the rows read never reach the file's row count."""

    seen = 0

    def get_board_data(self, n: int):
        data = self.shim.get_board_data(min(n, self.k))
        pos = self.seen + np.arange(data.shape[1])
        self.seen += data.shape[1]
        return data[:, (pos < 300) | (pos >= 320)]


def test_a_playback_with_rows_lost_inside_brainflow_still_ends(tmp_path):
    import time

    uv = 100.0 * np.sin(np.arange(600) / 10.0)
    path = _playback_file(tmp_path / "p.csv", uv)
    src = open_source(f"brainflow:PLAYBACK_FILE_BOARD?file={path}&master_board=SYNTHETIC_BOARD")
    t0 = time.monotonic()
    out = _read(src, max_wall_s=10.0, wrap=_Overwritten)
    assert time.monotonic() - t0 < 8.0, "the playback never ended"
    idx = np.concatenate([np.arange(c.index, c.end) for c in out])
    assert np.array_equal(idx, np.r_[0:300, 320:600])
    assert src.stats()["lost_samples"] == 20
