"""Inputs named by URI (s3a://, abfss://, gs://, hdfs://, file://): listed and read through
Spark's Hadoop file systems, which hold the cluster's credentials and connectors.

A local path (or a FUSE mount every executor sees: /dbfs, /Volumes) is opened by the tasks
themselves, so a big file can be split over them by route. A URI is listed on the driver (a
folder gives every file below it, a glob its matches, sorted, as ``expand`` does locally) and
each file is read whole by one task (``binaryFiles``); its events name it by its URI.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidewaiter.sources import UnknownFormat, open_events_in
from tidewaiter.sources.base import ReadReport

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB_CHARS = frozenset("*?[{")


def is_uri(path: str) -> bool:
    return _URI.match(path) is not None


@dataclass
class Listed:
    files: list[str] = field(default_factory=list)
    listed: set[str] = field(default_factory=set)  # found in a folder or by a glob
    problems: list[str] = field(default_factory=list)


def list_files(sc: Any, uris: Sequence[str]) -> Listed:
    """The files the URIs name, through the cluster's Hadoop file systems (on the driver)."""
    jvm, conf = sc._jvm, sc._jsc.hadoopConfiguration()
    out = Listed()
    seen: set[str] = set()

    def add(name: str, listed: bool) -> None:
        if name not in seen:
            seen.add(name)
            out.files.append(name)
            if listed:
                out.listed.add(name)

    for uri in uris:
        path = jvm.org.apache.hadoop.fs.Path(uri)
        try:
            fs = path.getFileSystem(conf)
            statuses = fs.globStatus(path)
        except Exception as exc:  # py4j carries the Java exception: its message says why
            out.problems.append(f"{uri}: cannot list ({_java_message(exc)})")
            continue
        globbed = bool(_GLOB_CHARS & set(uri))
        if not statuses:
            reason = "no file matches this pattern" if globbed else "cannot read (No such file)"
            out.problems.append(f"{uri}: {reason}")
            continue
        for status in sorted(statuses, key=lambda s: str(s.getPath().toString())):
            if status.isDirectory():
                below = fs.listFiles(status.getPath(), True)
                names = []
                while below.hasNext():
                    name = str(below.next().getPath().toString())
                    if not name.rpartition("/")[2].startswith((".", "_")):  # _SUCCESS markers
                        names.append(name)
                for name in sorted(names):
                    add(name, listed=True)
            else:
                add(str(status.getPath().toString()), listed=globbed)
    return out


def _java_message(exc: Exception) -> str:
    java = getattr(exc, "java_exception", None)
    return str(java.getMessage()) if java is not None else str(exc)


def read_whole(
    files: Iterable[tuple[str, bytes]], fmt: str | None
) -> Iterator[tuple[str, list[Any], ReadReport, list[str], bool]]:
    """(uri, events, report, problems, unknown format) for each file's bytes, as
    ``open_events`` reads a local file."""
    for uri, data in files:
        report, problems = ReadReport(), list[str]()
        events: list[Any] = []
        unknown = False
        try:
            events = list(open_events_in(io.BytesIO(data), uri, report, fmt))
        except UnknownFormat as exc:
            problems.append(str(exc))
            unknown = True
        except OSError as exc:
            problems.append(f"{uri}: cannot read ({exc.strerror or exc})")
        yield uri, events, report, problems, unknown
