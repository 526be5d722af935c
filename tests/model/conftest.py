"""Model-test fixtures: the tiny preset on a 100 Hz contract (shapes as the default, 5x fewer
samples) so the whole model suite stays well inside its time budget."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edge_ecg.model.config import ECGMoEConfig
from edge_ecg.signal.contract import SignalContract

SMALL = SignalContract(fs_hz=100.0)


@pytest.fixture(scope="session")
def small_contract() -> SignalContract:
    return SMALL


@pytest.fixture()
def tiny_cfg() -> ECGMoEConfig:
    return ECGMoEConfig.preset("tiny", contract=SMALL)


@pytest.fixture(scope="session")
def small_data():
    """60 synthetic patients, one 10-s window each, at 100 Hz (train/val split by subject)."""
    from edge_ecg.data.dataset import load_dataset
    from edge_ecg.data.tasks import DEFAULT_TASKS

    ds = load_dataset("synth:60?snr=25", SMALL, DEFAULT_TASKS, seed=1, progress=False)
    return ds
