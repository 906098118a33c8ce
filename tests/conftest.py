"""Shared test fixtures: where the real third-party corpus lives, and the project's fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# shared/ stands beside the checkout (../shared); TIDEWAITER_CORPUS overrides.
CORPUS = Path(os.environ.get("TIDEWAITER_CORPUS", ROOT.parent / "shared" / "corpus"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real third-party records; absent on a user's fresh clone, required in CI."""
    if not CORPUS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the corpus is missing at {CORPUS}")
        pytest.skip(f"the shared corpus is not at {CORPUS} (set TIDEWAITER_CORPUS)")
    return CORPUS


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES
