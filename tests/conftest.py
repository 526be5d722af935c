"""Shared test fixtures: where the real records live, and skips when they are absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "mitdb").is_dir():
        pytest.skip(f"real ECG records not found at {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA
