"""Telemetry kept as Parquet: one raw record a row, in the producer's own format (a lake's copy
of an export: a Kafka topic's ``value``, a Tetragon, Falco or Zeek JSON line), in a string or
binary column.

Each Parquet file is read as one telemetry file whose lines are its rows in order (Spark's
``_metadata.row_index``), decoded by the same sources as a file: an event names the Parquet
file and its row as its line (row index + 1). The record column is the table's only string or
binary column, else one named ``value``, ``record``, ``raw`` or ``line``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, cast

from tidewaiter.events import Event
from tidewaiter.sources import SNIFF_BYTES, forced, sniff
from tidewaiter.sources.base import ReadReport, read_lines

SUFFIX = ".parquet"
_NAMED = ("value", "record", "raw", "line")


def is_parquet(path: str) -> bool:
    return path.lower().endswith(SUFFIX)


def record_column(schema: Any) -> str | None:
    """The column holding the records, from a DataFrame's schema; None when none is clear."""
    texts = [f.name for f in schema.fields if f.dataType.typeName() in ("string", "binary")]
    if len(texts) == 1:
        return str(texts[0])
    return next((name for name in _NAMED if name in texts), None)


def rows(spark: Any, files: Iterable[tuple[int, str]]) -> tuple[Any, list[str]]:
    """(part number, (row index, record)) for every row of the files, and the problems of the
    files that cannot be read as a table of records."""
    from pyspark.sql import functions

    frames, problems = [], []
    for number, path in files:
        try:
            frame = spark.read.parquet(path)
        except Exception as exc:  # Spark's AnalysisException: the file is not a Parquet table
            problems.append(f"{path}: cannot read as Parquet ({str(exc).splitlines()[0]})")
            continue
        column = record_column(frame.schema)
        if column is None:
            names = ", ".join(f.name for f in frame.schema.fields)
            problems.append(f"{path}: no column of records (a string or binary one) in {names}")
            continue
        frames.append(
            frame.select(
                functions.lit(number).alias("part"),
                functions.col("_metadata.row_index").alias("row"),
                functions.col(column).alias("record"),
            )
        )
    if not frames:
        return None, problems
    table = frames[0]
    for frame in frames[1:]:
        table = table.unionByName(frame)
    return table.rdd.map(_keyed), problems


def _keyed(row: Any) -> tuple[int, tuple[int, bytes]]:
    record = row[2]
    if record is None:
        data = b""
    elif isinstance(record, str):
        data = record.encode("utf-8", "surrogateescape")
    else:
        data = bytes(record)
    return int(row[0]), (int(row[1]), data)


def decode_rows(
    path: str, found: Iterable[tuple[int, bytes]], fmt: str | None, report: ReadReport
) -> list[Event]:
    """One Parquet file's records, in row order, through the source that reads them (named, or
    sniffed from the first rows). Raises UnknownFormat (tidewaiter.sources)."""
    ordered = sorted(found)
    size = ordered[-1][0] + 1 if ordered else 0
    lines = [b"\n"] * size  # a row with no record stays a (blank, skipped) line
    for index, data in ordered:
        lines[index] = data.rstrip(b"\r\n") + b"\n"
    head = b"".join(_head(lines))
    source = forced(fmt, head) if fmt else sniff(head, path)
    report.files[path] = source.name
    return list(read_lines(source, path, cast(BinaryIO, iter(lines)), report))


def _head(lines: list[bytes]) -> Iterator[bytes]:
    size = 0
    for line in lines:
        yield line
        size += len(line)
        if size >= SNIFF_BYTES:
            return
