"""Shared test fixtures: where the real records live, and skips when they are absent."""

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


REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "mitdb").is_dir():
        pytest.skip(f"real ECG records not found at {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA
