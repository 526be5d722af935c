"""Reliability fixtures: one real ONNX bundle for the session, and its backend."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))   # reliability_harness, fuzz_targets

from reliability_harness import bundle_for_tests


@pytest.fixture(scope="session")
def rel_bundle(tmp_path_factory) -> Path:
    """The default bundle once exported, else the runtime helper's fixture bundle."""
    return bundle_for_tests(tmp_path_factory.mktemp("rel_bundle"))


@pytest.fixture(scope="session")
def rel_backend(rel_bundle):
    from edge_ecg.runtime.backends import open_backend

    be = open_backend(rel_bundle)
    yield be
    be.close()
