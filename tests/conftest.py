"""Shared test fixtures: where the real records live ($EDGE_ECG_DATA, else ../shared/data), and
skips, per database a test declares, when they are absent; the suite's bundle-trust setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The bundles tests build in temporary folders (the runtime's fixture bundle, manifests
# rewritten to provoke one error) are unsigned, as a developer's are: the suite runs them with
# unsigned bundles allowed, and the shipped bundle is still checked against the shipped key.
# The tests of the signature policy clear this (tests/runtime/test_bundle_signing.py).
os.environ["EDGE_ECG_ALLOW_UNSIGNED"] = "1"
os.environ.pop("EDGE_ECG_TRUSTED_KEYS", None)      # the shipped key, whatever this shell says


def pytest_configure(config):
    # allowed above on purpose: its warning would repeat in every test that builds a bundle
    config.addinivalue_line(
        "filterwarnings", "ignore::edge_ecg.runtime.signing.UnsignedBundleWarning")
    config.addinivalue_line(
        "markers", "needs_data(*paths): the real data a test reads through `shared_data`, "
                   "relative to the data root: a database folder ('cinc2017') or a record "
                   "('mitdb/201'); the test skips, with the missing ones named, where any is "
                   "absent. Unmarked tests that use `shared_data` need 'mitdb'.")


REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def data_root() -> Path:
    """$EDGE_ECG_DATA where set (as the recipes read it: edge_ecg.data.data_root), else
    ../shared/data beside the repository."""
    env = os.environ.get("EDGE_ECG_DATA")
    return Path(env) if env else SHARED_DATA


def _present(path: Path) -> bool:
    """A database folder holding something, a WFDB record (its header), or a file."""
    if path.is_dir():
        return any(path.iterdir())
    return path.is_file() or path.with_name(path.name + ".hea").is_file()


def missing_data(needs: list[str], root: Path | None = None) -> list[str]:
    root = data_root() if root is None else root
    return [n for n in needs if not _present(root / n)]


def pytest_runtest_setup(item):
    """Skip a test that reads real data before any fixture touches it (module-scoped fixtures
    included), when a database or record it declares (`needs_data`) is absent: a partial data
    folder skips, with the reason, instead of erroring."""
    if "shared_data" not in item.fixturenames:
        return
    needs = [n for m in item.iter_markers("needs_data") for n in m.args] or ["mitdb"]
    missing = missing_data(needs)
    if missing:
        pytest.skip(f"real ECG data {missing} not found under {data_root()} (set EDGE_ECG_DATA "
                    "or put ../shared/data beside the repository)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data root; what each test needs is checked in `pytest_runtest_setup`."""
    return data_root()


@pytest.fixture()
def engine_restored():
    """bench/alarms.py patches AlarmEngine to log its inputs, once per (worker) process; in a
    test that process is pytest's: the patch is undone after the test."""
    from edge_ecg.runtime.alarms import AlarmEngine

    saved = {k: AlarmEngine.__dict__[k] for k in ("observe", "observe_vf")}
    yield
    for k, v in saved.items():
        setattr(AlarmEngine, k, v)
    if "_bench_logging" in AlarmEngine.__dict__:
        del AlarmEngine._bench_logging
