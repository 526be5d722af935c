"""Where the shared data folder is: what a recipe's `{data}` means when it names none."""

from __future__ import annotations

from pathlib import Path

DATA_ROOT = "../shared/data"


def default_data_root() -> str:
    """Where a recipe's `{data}` points when neither the recipe's `?data=` nor its `data` key
    is given: $EDGE_ECG_DATA, else ../shared/data from the current folder, else the shared/data
    beside the repository this package runs from (so commands work from any folder)."""
    import os

    env = os.environ.get("EDGE_ECG_DATA")
    if env:
        return env
    if Path(DATA_ROOT).is_dir():
        return DATA_ROOT
    beside_repo = Path(__file__).resolve().parents[3] / "shared" / "data"
    return str(beside_repo) if beside_repo.is_dir() else DATA_ROOT
