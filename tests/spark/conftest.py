"""One SparkSession on local[2] for the whole test session: starting Spark's JVM takes seconds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tidewaiter.spark import missing, session


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """Spark on two local cores; skipped where pyspark or Java is missing, required in CI."""
    why = missing()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Spark cannot run: {why}")
        pytest.skip(why)
    started = session("local[2]", partitions=2, quiet=True)
    yield started
    started.stop()
