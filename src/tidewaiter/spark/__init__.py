"""tidewaiter on Apache Spark: `hunt --spark` and `baseline learn --spark`.

PySpark is an optional dependency (the ``spark`` extra, ``make spark``) and needs a Java 17
runtime; nothing here imports it until a Spark run starts, so the rest of tidewaiter works
without it. The Spark API is used through this package only, and typed here at its edge.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_MASTER = "local[*]"
QUIET_LOG = Path(__file__).with_name("log4j2-quiet.properties").as_uri()


class SparkUnavailable(Exception):
    """PySpark or Java is missing; the message says how to get it."""


def missing() -> str | None:
    """Why a Spark run cannot start here, or None when it can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed: run `make spark` (or pip install 'tidewaiter[spark]')"
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and os.path.exists(os.path.join(java_home, "bin", "java"))) and not (
        shutil.which("java")
    ):
        return "java not found: Spark needs a Java 17 runtime (Debian: openjdk-17-jre-headless)"
    return None


def session(
    master: str | None = None,
    partitions: int | None = None,
    quiet: bool = False,
    conf: dict[str, str] | None = None,
) -> Any:
    """A SparkSession: the given master, else the one spark-submit set, else every local core.

    The Python workers run this interpreter, so they import this same tidewaiter. Local runs
    bind to the loopback address and start no web UI; ``quiet`` keeps Spark's progress bars and
    warnings off the terminal (a command prints its own summary). ``conf`` is set before the
    JVM starts (spark.driver.memory can only be set then)."""
    why = missing()
    if why is not None:
        raise SparkUnavailable(why)
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    effective = master or _submitted_conf().get("spark.master") or DEFAULT_MASTER
    builder = SparkSession.builder.appName("tidewaiter").master(effective)
    if effective.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # read as the JVM starts
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
        )
    if partitions is not None:
        builder = builder.config("spark.sql.shuffle.partitions", str(partitions))
    if quiet:
        builder = builder.config("spark.ui.showConsoleProgress", "false")
        if effective.startswith("local"):  # the JVM starts here: errors only (a cluster logs)
            builder = builder.config(
                "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={QUIET_LOG}"
            )
    for name, value in (conf or {}).items():
        builder = builder.config(name, value)
    spark = builder.getOrCreate()
    if quiet:
        spark.sparkContext.setLogLevel("ERROR")
    return spark


def _submitted_conf() -> dict[str, str]:
    """What spark-submit passed down (it sets the master for a job it submits)."""
    from pyspark import SparkConf

    return dict(SparkConf().getAll())


@contextmanager
def running(master: str | None = None, quiet: bool = False) -> Iterator[Any]:
    """A session for one command: stopped at the end unless it was already running (a
    notebook's, a test session's), which is joined and left as it was."""
    from pyspark.sql import SparkSession

    joined = SparkSession.getActiveSession() is not None
    spark = session(master, quiet=quiet)
    try:
        yield spark
    finally:
        if not joined:
            spark.stop()
