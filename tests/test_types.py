"""The device side type-checks: `python -m mypy` over pyproject's [tool.mypy] packages
(edge_ecg.signal, edge_ecg.runtime, edge_ecg.metrics, firmware_bridge), so CI's pytest fails
on a type error there, as tests/test_layers.py does on a backwards import. Its incremental
cache (.mypy_cache, ignored by git) keeps a rerun to about a second; a cold run takes ~10 s
of CPU. Skips only where mypy is not installed (it is in the `dev` extra).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_device_side_type_checks():
    pytest.importorskip("mypy", reason="mypy not installed (pip install -e .[dev])")
    res = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    assert res.stdout.startswith("Success: no issues found")
