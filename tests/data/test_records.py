"""WFDB records: round trips through wfdb, and a specific RecordError for each bad input."""

import numpy as np
import pytest
import wfdb

from edge_ecg.data.records import (
    Annotations,
    Record,
    beat_annotations,
    find_beat_extension,
    read_annotations,
    read_record,
)
from edge_ecg.errors import RecordError


def write(tmp_path, name="rec", n=1000, fs=250, leads=("I", "II"), p_signal=None, fmt="16"):
    rng = np.random.default_rng(0)
    if p_signal is None:
        p_signal = np.round(rng.standard_normal((n, len(leads))), 3)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(leads), sig_name=list(leads),
                p_signal=p_signal, fmt=[fmt] * len(leads), adc_gain=[1000.0] * len(leads),
                baseline=[0] * len(leads), comments=["age: 61", "sex: F"], write_dir=str(tmp_path))
    return tmp_path / name, p_signal


def test_round_trip_with_and_without_hea(tmp_path):
    path, sig = write(tmp_path)
    rec = read_record(path)
    assert isinstance(rec, Record)
    assert rec.signal.dtype == np.float32 and rec.signal.shape == (1000, 2)
    assert rec.adc.dtype == np.int32
    np.testing.assert_allclose(rec.signal, sig, atol=1e-6)
    np.testing.assert_allclose((rec.adc - rec.baseline) / rec.gain, rec.signal, atol=1e-6)
    assert rec.fs_hz == 250.0 and rec.leads == ("I", "II") and "age: 61" in rec.comments
    assert rec.seconds == 4.0
    again = read_record(str(path) + ".hea", channels=[1])
    assert again.leads == ("II",)
    np.testing.assert_array_equal(again.signal[:, 0], rec.signal[:, 1])


def test_missing_header(tmp_path):
    with pytest.raises(RecordError, match="nothere.hea"):
        read_record(tmp_path / "nothere")


def test_missing_signal_file(tmp_path):
    path, _ = write(tmp_path)
    (tmp_path / "rec.dat").unlink()
    with pytest.raises(RecordError, match="rec"):
        read_record(path)


def test_garbled_header(tmp_path):
    (tmp_path / "bad.hea").write_text("this is not a header\n\x00\x01")
    with pytest.raises(RecordError, match="bad"):
        read_record(tmp_path / "bad")


def test_truncated_signal_file(tmp_path):
    path, _ = write(tmp_path)
    data = (tmp_path / "rec.dat").read_bytes()
    (tmp_path / "rec.dat").write_bytes(data[:0])
    with pytest.raises(RecordError):
        read_record(path)


def test_nan_samples_are_reported_with_position(tmp_path):
    sig = np.zeros((500, 2))
    sig[123, 1] = np.nan
    path, _ = write(tmp_path, p_signal=sig)
    with pytest.raises(RecordError, match=r"sample 123 of lead 'II'"):
        read_record(path)


def test_bad_channel_index(tmp_path):
    path, _ = write(tmp_path)
    with pytest.raises(RecordError):
        read_record(path, channels=[5])


def test_annotations_pick_atr_then_beat_and_keep_beats_only(tmp_path):
    path, _ = write(tmp_path)
    wfdb.wrann("rec", "beat", np.array([10, 300, 600]), symbol=["N", "V", "Q"],
               write_dir=str(tmp_path))
    assert find_beat_extension(path) == "beat"
    assert beat_annotations(path).symbol == ("N", "V", "Q")
    wfdb.wrann("rec", "atr", np.array([5, 100, 200, 400]), symbol=["+", "N", "~", "A"],
               write_dir=str(tmp_path))
    assert find_beat_extension(path) == "atr"
    beats = beat_annotations(path)
    assert isinstance(beats, Annotations)
    assert beats.sample.tolist() == [100, 400] and beats.symbol == ("N", "A")
    assert beats.sample.dtype == np.int64
    assert len(read_annotations(path, "atr")) == 4


def test_missing_annotations(tmp_path):
    path, _ = write(tmp_path)
    with pytest.raises(RecordError, match="no beat annotations"):
        beat_annotations(path)
    with pytest.raises(RecordError, match="rec.xyz"):
        read_annotations(path, "xyz")


def test_corrupt_annotation_file(tmp_path):
    path, _ = write(tmp_path)
    (tmp_path / "rec.atr").write_bytes(b"\xff\xff\x00")
    with pytest.raises(RecordError, match="rec.atr"):
        beat_annotations(path)


def test_real_mitdb_record(shared_data):
    rec = read_record(shared_data / "mitdb" / "100")
    assert rec.fs_hz == 360.0 and rec.leads == ("MLII", "V5") and rec.signal.shape == (650000, 2)
    ann = beat_annotations(shared_data / "mitdb" / "100")
    assert len(ann) == 2273                                    # MIT-BIH 100: 2273 beats
    assert find_beat_extension(shared_data / "mitdb" / "105") == "beat"
