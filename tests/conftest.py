"""Shared fixtures. Markers: slow, integration (real servers), shared_data (../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _offline_hub() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    path = REPO.parent / "shared" / "data"
    if not path.is_dir():
        message = f"../shared/data not found at {path}: real releases are needed for this test"
        if os.environ.get("AUTOCODER_REQUIRE_SHARED") == "1":  # CI (scripts/test.sh)
            pytest.fail(message + " (AUTOCODER_REQUIRE_SHARED=1)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return REPO / "tests" / "fixtures"
