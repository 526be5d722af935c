"""The real-data fixture (tests/conftest.py): honours EDGE_ECG_DATA, and skips a test, naming
what is missing, when a database or record it declares with `needs_data` is absent, so that a
partial data folder skips instead of erroring."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", REPO / "tests" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Item:
    """What `pytest_runtest_setup` reads of a test item."""

    def __init__(self, fixtures, marks):
        self.fixturenames = list(fixtures)
        self._marks = [pytest.mark.needs_data(*m).mark for m in marks]

    def iter_markers(self, name):
        return iter(m for m in self._marks if m.name == name)


@pytest.fixture
def partial(tmp_path, monkeypatch):
    """A data folder with MIT-BIH record 100 only and an empty cinc2017 folder."""
    (tmp_path / "mitdb").mkdir()
    (tmp_path / "mitdb" / "100.hea").write_text("100 2 360 650000\n")
    (tmp_path / "cinc2017").mkdir()
    monkeypatch.setenv("EDGE_ECG_DATA", str(tmp_path))
    return tmp_path


def test_data_root_follows_edge_ecg_data(partial, monkeypatch):
    c = _conftest()
    assert c.data_root() == partial
    monkeypatch.delenv("EDGE_ECG_DATA")
    assert c.data_root() == REPO.parent / "shared" / "data"


def test_partial_folder_skips_naming_what_is_missing(partial):
    c = _conftest()
    assert c.missing_data(["mitdb", "mitdb/100", "mitdb/201", "cinc2017", "ludb"]) == \
        ["mitdb/201", "cinc2017", "ludb"]     # an empty folder counts as absent
    with pytest.raises(pytest.skip.Exception, match=r"\['cinc2017'\] not found under .*EDGE_ECG"):
        c.pytest_runtest_setup(_Item(["shared_data"], [("cinc2017",)]))
    with pytest.raises(pytest.skip.Exception, match=r"\['mitdb/201', 'ludb'\]"):
        c.pytest_runtest_setup(_Item(["shared_data"], [("mitdb/201",), ("mitdb/100", "ludb")]))
    # what is there runs: a declared record, the default (mitdb), a test without real data
    assert c.pytest_runtest_setup(_Item(["shared_data"], [("mitdb/100",)])) is None
    assert c.pytest_runtest_setup(_Item(["shared_data"], [])) is None
    assert c.pytest_runtest_setup(_Item(["tmp_path"], [("ludb",)])) is None


def test_without_a_data_folder_every_real_data_test_skips(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_ECG_DATA", str(tmp_path / "nowhere"))
    c = _conftest()
    with pytest.raises(pytest.skip.Exception, match=r"\['mitdb'\]"):
        c.pytest_runtest_setup(_Item(["shared_data"], []))
