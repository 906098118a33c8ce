"""The registry of telemetry sources: one module per format, each registering itself by name.

``open_events`` is the only entry point the rest of tidewaiter needs: it picks the source (named,
or sniffed from the first bytes), reads the file through it, and accounts for every record.
"""

from __future__ import annotations

import importlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from tidewaiter.events import Event
from tidewaiter.sources.base import Decoder, ReadReport, RecordError, Source

__all__ = [
    "Decoder",
    "ReadReport",
    "RecordError",
    "Source",
    "UnknownFormat",
    "all_sources",
    "get",
    "open_events",
    "register",
    "sniff",
]

SNIFF_BYTES = 64 * 1024
FIRST_LINE_MAX = 16 << 20  # a longer first line is not read whole to recognise the format
# Sniff order (all_sources sorts by it, whatever the import order): the more specific formats first.
_MODULES = (
    "sysmon_evtx",
    "windows_json",
    "azure_syslog",
    "tetragon",
    "falco",
    "sensor",
    "k8s_audit",
    "eslogger",
    "ocsf",
    "docker_events",
    "hubble",
    "osquery",
    "auditd",
    "sysmon_xml",
    "zeek",
    "vpcflow",  # last: its text sniff is the loosest
)

_registry: dict[str, Source] = {}
S = TypeVar("S", bound=type[Source])


class UnknownFormat(Exception):
    """The input is in no format tidewaiter reads."""


def register(cls: S) -> S:
    """Class decorator: make a source available by its name."""
    if cls.name in _registry:
        raise ValueError(f"source {cls.name!r} registered twice")
    _registry[cls.name] = cls()
    return cls


_loaded = False


def _load() -> None:
    """Import every source module once (importing one directly must not hide the others)."""
    global _loaded  # noqa: PLW0603 - a process-wide, import-once registry
    if not _loaded:
        for module in _MODULES:
            importlib.import_module(f"tidewaiter.sources.{module}")
        _loaded = True


def all_sources() -> list[Source]:
    _load()
    # In _MODULES order, not import order: a source may import another's helpers first.
    return sorted(_registry.values(), key=_rank)


def _rank(source: Source) -> int:
    module = type(source).__module__.rpartition(".")[2]
    return _MODULES.index(module) if module in _MODULES else len(_MODULES)


def get(name: str) -> Source:
    _load()
    try:
        return _registry[name]
    except KeyError:
        raise UnknownFormat(
            f"unknown format {name!r}; known formats: {', '.join(sorted(_registry))}"
        ) from None


SNIFF_LINES = 8  # a file whose first lines are damaged is still recognised by the next ones


def sniff(head: bytes, path: str) -> Source:
    for start in _line_starts(head):
        for source in all_sources():
            if _sniffs(source, head[start:]):
                return source
    if not head.strip():
        raise UnknownFormat(f"{path}: the file is empty")
    if b"\n" not in head and len(head) >= FIRST_LINE_MAX:
        raise UnknownFormat(
            f"{path}: the first line is longer than {FIRST_LINE_MAX} bytes, so its format "
            "cannot be recognised; name it with --format"
        )
    raise UnknownFormat(
        f"{path}: not in a format tidewaiter reads (tried: "
        f"{', '.join(s.title for s in all_sources())}); name one with --format"
    )


def _sniffs(source: Source, head: bytes) -> bool:
    """A sniffer that fails (JSON nested deeper than the decoder's recursion limit) has not
    recognised its format; it must not stop the run."""
    try:
        return source.sniff(head)
    except (RecursionError, ValueError, MemoryError):
        return False


def _line_starts(head: bytes) -> Iterator[int]:
    start = 0
    for _ in range(SNIFF_LINES):
        yield start
        newline = head.find(b"\n", start)
        if newline < 0 or newline + 1 >= len(head):
            return
        start = newline + 1


def open_events(path: str, report: ReadReport, fmt: str | None = None) -> Iterator[Event]:
    """Events from one file ("-" for standard input), every record counted in report.

    Opening and sniffing happen now, so a missing file or an unknown format raises here
    (OSError, UnknownFormat) rather than in the middle of a merged read."""
    stream: BinaryIO
    if path == "-":
        stdin = cast(io.BufferedReader, sys.stdin.buffer)
        stream = stdin
        head = stdin.peek(SNIFF_BYTES)  # whatever is buffered: enough to sniff
        if head and b"\n" not in head:  # a first line longer than the buffer: read it whole
            head = _first_line(stdin)
            stream = io.BufferedReader(_Prefixed(head, stdin))
    else:
        stream = Path(path).open("rb")  # noqa: SIM115 - closed by _events
        head = _head(stream)
        stream.seek(0)
    try:
        source = get(fmt) if fmt else sniff(head, path)
    except UnknownFormat:
        if stream is not sys.stdin.buffer:
            stream.close()
        raise
    report.files[path] = source.name
    return _events(source, path, stream, report)


def _head(stream: BinaryIO) -> bytes:
    """The sniff window, or the whole first line when it is longer (a Kubernetes audit record
    can be): sources recognise a format by its first line."""
    head = stream.read(SNIFF_BYTES)
    while b"\n" not in head and len(head) < FIRST_LINE_MAX:
        more = stream.read(SNIFF_BYTES * 4)
        if not more:
            break
        head += more
    return head


def _first_line(stream: io.BufferedReader) -> bytes:
    head = b""
    while b"\n" not in head and len(head) < FIRST_LINE_MAX:
        more = stream.read1(SNIFF_BYTES)
        if not more:
            break
        head += more
    return head


class _Prefixed(io.RawIOBase):
    """Bytes already taken from a stream to sniff it, then the rest of the stream."""

    def __init__(self, head: bytes, rest: io.BufferedReader) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if self._head:
            size = min(len(target), len(self._head))
            target[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._rest.read1(len(target))
        target[: len(data)] = data
        return len(data)


def _events(source: Source, path: str, stream: BinaryIO, report: ReadReport) -> Iterator[Event]:
    try:
        yield from source.read_file(path, stream, report)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
