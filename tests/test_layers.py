"""The import layers hold: `lint-imports` checks pyproject's [tool.importlinter] contracts.

signal -> data -> metrics -> model -> export and signal -> firmware_bridge -> runtime ->
profiles, cli on top; no torch, peft, model or export on the device side or in the metrics; no
cycles between sibling modules. A backwards import fails here, so CI (which runs the suite)
enforces the layering. Skips only where import-linter is not installed (it is in the `dev`
extra).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    pytest.importorskip("importlinter", reason="import-linter not installed (pip install -e .[dev])")
    res = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                               "lint_imports_command()", "--no-cache", "--no-logo"],
        cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout
