"""The lean WFDB reader (edge_ecg.data.wfdb_reader) gives the very `Record` that wfdb gives
(edge_ecg.data.records.read_record), and `read_adc` its counts: the packaged demo record, the
packaged test excerpts (SVDB at 128 Hz, CUDB with NaN runs), records of every format it reads
(written here, and hand-made for 61, 160 and a byte offset, which wfdb cannot write), and the
shared databases' records where ../shared/data is present (MIT-BIH with its edited headers,
SVDB at 128 Hz, CUDB with invalid samples, LUDB and PTB-DB format 16, PTB-XL FLAC through wfdb
and as a format-16 copy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from edge_ecg.data import records, wfdb_reader
from edge_ecg.errors import RecordError

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
DEMO = REPO / "edge_ecg" / "assets" / "demo" / "mitdb_223_excerpt"


def assert_same(path, **kw):
    """Both readers on `path`: every field equal (NaN where NaN), dtypes and layout too."""
    a = records.read_record(path, **kw)
    b = wfdb_reader.read_record(path, **kw)
    for f in ("path", "fs_hz", "leads", "comments"):
        assert getattr(a, f) == getattr(b, f), f
    for f in ("signal", "adc", "gain", "baseline"):
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and x.shape == y.shape, f
        assert y.flags.c_contiguous, f
        np.testing.assert_array_equal(x, y, err_msg=f)      # NaN == NaN here
    if a.invalid is None:
        assert b.invalid is None
    else:
        np.testing.assert_array_equal(a.invalid, b.invalid)
    # what a replay reads: the counts and where they are invalid, no millivolts
    k = records.read_record(path, channels=kw.get("channels"), invalid="keep")
    c = wfdb_reader.read_adc(path, channels=kw.get("channels"))
    for f in ("path", "fs_hz", "leads", "comments"):
        assert getattr(k, f) == getattr(c, f), f
    for f in ("adc", "gain", "baseline"):
        x, y = getattr(k, f), getattr(c, f)
        assert x.dtype == y.dtype and x.shape == y.shape and y.flags.c_contiguous, f
        np.testing.assert_array_equal(x, y, err_msg=f)
    assert (k.invalid is None) == (c.invalid is None)
    if k.invalid is not None:
        np.testing.assert_array_equal(k.invalid, c.invalid)
    return b


def test_the_packaged_demo_record_without_wfdb():
    assert wfdb_reader.read_header(DEMO).plain            # format 212: read here
    rec = assert_same(DEMO)
    assert rec.leads == ("MLII", "V1") and rec.fs_hz == 360.0 and rec.adc.shape == (86400, 2)
    assert_same(str(DEMO) + ".hea", channels=[1])


FIXTURES = sorted((REPO / "tests" / "fixtures" / "records").glob("*.hea"))


@pytest.mark.parametrize("hea", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_the_packaged_test_excerpts_without_wfdb(hea):
    """The real excerpts the tests stream everywhere (SVDB at 128 Hz, CUDB with NaN runs)."""
    assert wfdb_reader.read_header(hea).plain
    assert_same(hea, invalid="keep")


def _write(tmp_path, fmt, name=None, invalid=True):
    rng = np.random.default_rng(int(fmt))
    hi = {"80": 127, "16": 32767, "24": 2**23 - 1, "32": 2**31 - 1, "212": 2047}[fmt]
    d = rng.integers(-hi, hi, size=(1001, 3)).astype(np.int64)   # odd: 212's half triple
    if invalid:
        d[5, 1] = wfdb_reader.INVALID_CODE[fmt]
    name = name or f"r{fmt}"
    wfdb.wrsamp(name, fs=257.5, units=["mV"] * 3, sig_name=["I", "II", "V1"], d_signal=d,
                fmt=[fmt] * 3, adc_gain=[100.0, 7.5, 1000.0], baseline=[3, -20, 0],
                comments=["age: 61"], write_dir=str(tmp_path))
    return tmp_path / name, d


@pytest.mark.parametrize("fmt", ["80", "16", "24", "32", "212"])
def test_each_format_written_by_wfdb(tmp_path, fmt):
    path, d = _write(tmp_path, fmt)
    rec = assert_same(path, invalid="keep")
    np.testing.assert_array_equal(rec.adc, d)
    assert rec.invalid.tolist() == [i == 5 for i in range(1001)]
    with pytest.raises(RecordError, match=r"1 invalid \(NaN\) sample\(s\), first at sample 5 "
                                          r"of lead 'II'"):
        wfdb_reader.read_record(path)


def _rewrite(tmp_path, fmt, data: bytes, spec: str):
    """A format-16 record rewritten by hand as `spec` (format field) with `data`."""
    _, d = _write(tmp_path, "16", name=f"src{fmt}")
    hea = (tmp_path / f"src{fmt}.hea").read_text()
    out = tmp_path / f"r{fmt}"
    (tmp_path / f"r{fmt}.dat").write_bytes(data)
    (tmp_path / f"r{fmt}.hea").write_text(
        hea.replace(f"src{fmt}", f"r{fmt}").replace(".dat 16 ", f".dat {spec} "))
    return out, d


def test_formats_wfdb_reads_but_cannot_write_and_a_byte_offset(tmp_path):
    _, d = _write(tmp_path, "16", name="probe")
    d16 = d.astype("<i2")
    cases = {"61": (d16.astype(">i2").tobytes(), "61"),
             "160": ((d16.astype(np.int32) + 32768).astype("<u2").tobytes(), "160"),
             "1616": (b"\x7f" * 6 + d16.tobytes(), "16+6")}
    for fmt, (data, spec) in cases.items():
        path, _ = _rewrite(tmp_path, fmt, data, spec)
        assert wfdb_reader.read_header(path).plain
        rec = assert_same(path, invalid="keep")
        np.testing.assert_array_equal(rec.adc, d)


def test_header_defaults_and_layout_as_wfdb(tmp_path):
    # comments anywhere, blank lines, no rate (250 Hz), gain absent or 0 (200), baseline from
    # the ADC zero or absent (0), no name, two signal files, no length (from the file size)
    d = np.arange(-40, 40, dtype="<i2").reshape(-1, 4)
    (tmp_path / "a.dat").write_bytes(np.ascontiguousarray(d[:, :2]).tobytes())
    (tmp_path / "b.dat").write_bytes(np.ascontiguousarray(d[:, 2:]).tobytes())
    (tmp_path / "h.hea").write_text(
        "# before the record line\nh 4\n\na.dat 16 0 12 7 0 0 0 first\n"
        "a.dat 16\n# between\nb.dat 16 100(-3)/uV 16 5\nb.dat 16 50.5 16\n# after\n")
    hdr = wfdb_reader.read_header(tmp_path / "h")
    assert hdr.fs_hz == 250.0 and hdr.sig_len is None
    assert [s.gain for s in hdr.signals] == [200.0, 200.0, 100.0, 50.5]
    assert [s.baseline for s in hdr.signals] == [7, 0, -3, 0]
    rec = assert_same(tmp_path / "h")
    assert rec.leads == ("first", "None", "None", "None")
    assert rec.comments == ("before the record line", "between", "after")
    np.testing.assert_array_equal(rec.adc, d)


def test_what_it_does_not_read_goes_to_wfdb(tmp_path):
    path, _ = _write(tmp_path, "16")
    hea = path.with_suffix(".hea")
    hea.write_text(hea.read_text().replace(".dat 16 ", ".dat 16x1:2 ", 1))   # a skew
    assert not wfdb_reader.read_header(path).plain
    assert_same(path, invalid="keep")


def test_errors_name_the_file(tmp_path):
    with pytest.raises(RecordError, match="WFDB header not found"):
        wfdb_reader.read_record(tmp_path / "nothing")
    path, _ = _write(tmp_path, "16", invalid=False)
    path.with_suffix(".dat").unlink()
    with pytest.raises(RecordError, match="signal file missing"):
        wfdb_reader.read_record(path)
    path, _ = _write(tmp_path, "212", name="short", invalid=False)
    hea = path.with_suffix(".hea")
    hea.write_text(hea.read_text().replace(" 1001", " 5000", 1))
    with pytest.raises(RecordError, match="bytes where the header needs"):
        wfdb_reader.read_record(path)


SHARED = [("mitdb/100", {}), ("mitdb/102", {}), ("mitdb/208", {}), ("svdb/800", {}),
          ("svdb/853", {}), ("cudb/cu11", {"invalid": "keep"}), ("cudb/cu34", {}),
          ("ludb/ludb-ecg", {}), ("ptbdb/s0010_re", {}), ("stdb/300", {}), ("nstdb/bw", {})]


@pytest.mark.parametrize("name,kw", SHARED, ids=[n for n, _ in SHARED])
def test_shared_records_as_wfdb_reads_them(name, kw):
    path = DATA / name
    if not path.with_suffix(".hea").is_file():
        pytest.skip(f"{path}.hea not here (../shared/data absent)")
    assert wfdb_reader.read_header(path).plain
    rec = assert_same(path, **kw)
    if name.startswith("cudb/cu11"):
        assert int(rec.invalid.sum()) == 1282


def test_ptbxl_flac_through_wfdb_and_as_format_16(tmp_path):
    path = DATA / "ptbxl" / "records500" / "00000" / "00001_hr"
    if not path.with_suffix(".hea").is_file():
        pytest.skip(f"{path}.hea not here (../shared/data absent)")
    assert not wfdb_reader.read_header(path).plain          # FLAC (516): wfdb reads it
    ref = assert_same(path)
    src = wfdb.rdrecord(str(path), physical=False)
    wfdb.wrsamp("copy", fs=src.fs, units=src.units, sig_name=src.sig_name,
                d_signal=src.d_signal, fmt=["16"] * src.n_sig, adc_gain=src.adc_gain,
                baseline=src.baseline, comments=src.comments, write_dir=str(tmp_path))
    rec = assert_same(tmp_path / "copy")
    np.testing.assert_array_equal(rec.adc, ref.adc)
    np.testing.assert_array_equal(rec.signal, ref.signal)
