"""The registry of telemetry sources: one module per format, each registering itself by name.

``open_events`` is the only entry point the rest of tidewaiter needs: it picks the source (named,
or sniffed from the first bytes), reads the file through it, and accounts for every record.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import BinaryIO, TypeVar

from tidewaiter.events import Event
from tidewaiter.sources import container_log
from tidewaiter.sources.base import Decoder, ReadReport, RecordError, Source
from tidewaiter.sources.opening import (
    FIRST_LINE_MAX,
    SNIFF_BYTES,
    Opened,
    compression,
    expand,
    open_input,
    open_stream,
    read_errors,
)

__all__ = [
    "SNIFF_BYTES",
    "Decoder",
    "ReadReport",
    "RecordError",
    "Source",
    "UnknownFormat",
    "all_sources",
    "forced",
    "get",
    "open_all",
    "open_events",
    "open_events_in",
    "register",
    "sniff",
]

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
    "ecs",
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


def sniff(head: bytes, path: str, compression: str | None = None) -> Source:
    """The source a head is in; a head of container log lines gives the source of what is
    inside them, read through the envelope (sources.container_log)."""
    kind = container_log.envelope_of(head)
    if kind is None:
        return _sniff(head, path, compression)
    try:
        inner = _sniff(container_log.unwrap_head(head, kind), path, compression)
    except UnknownFormat as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        within = f"{container_log.TITLES[kind]}; inside them, {reason}"
        raise UnknownFormat(f"{path}: {within}") from None
    return container_log.wrap(inner, kind)


def forced(fmt: str, head: bytes) -> Source:
    """The source a --format names, read from inside container log lines when the head is."""
    source = get(fmt)
    kind = container_log.envelope_of(head)
    return source if kind is None else container_log.wrap(source, kind)


def _sniff(head: bytes, path: str, compression: str | None) -> Source:
    for start in _line_starts(head):
        for source in all_sources():
            if _sniffs(source, head[start:]):
                return source
    packed = f"{compression}-compressed, and its content is " if compression else ""
    if not head.strip():
        raise UnknownFormat(f"{path}: {packed or 'the file is '}empty")
    if b"\n" not in head and len(head) >= FIRST_LINE_MAX:
        raise UnknownFormat(
            f"{path}: {f'{compression}-compressed; ' if compression else ''}the first line is "
            f"longer than {FIRST_LINE_MAX} bytes, so its format cannot be recognised; "
            "name it with --format"
        )
    raise UnknownFormat(f"{path}: {packed}{closest(head)}")


def closest(head: bytes) -> str:
    """One sentence on what an unrecognised head came closest to, and why it was not read."""
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive: extract its members (unzip) and read those"
    packed = compression(head)
    if packed is not None:  # only where nothing decompressed it: watch's standard input
        return f"{packed}-compressed: decompress it on the way in (zcat FILE | tidewaiter watch -)"
    for source in all_sources():
        near = source.near_miss(head)
        if near is not None:
            return near
    return (
        f"not in a format tidewaiter reads (tried: {', '.join(s.title for s in all_sources())});"
        " name one with --format"
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

    Opening, decompressing and sniffing happen now, so a missing file, an unknown format or a
    compression this build cannot read raises here (OSError, UnknownFormat) rather than in the
    middle of a merged read."""
    return _opened_events(open_input(path), path, report, fmt)


def open_events_in(
    stream: BinaryIO, path: str, report: ReadReport, fmt: str | None = None
) -> Iterator[Event]:
    """``open_events`` for a file's bytes already open as ``stream`` (read from object storage
    by Spark), named ``path`` in the report and the events' raw references."""
    return _opened_events(open_stream(stream), path, report, fmt)


def _opened_events(
    opened: Opened, path: str, report: ReadReport, fmt: str | None
) -> Iterator[Event]:
    try:
        source = forced(fmt, opened.head) if fmt else sniff(opened.head, path, opened.compression)
    except UnknownFormat:
        opened.stream.close()
        raise
    report.files[path] = source.name
    return _events(source, path, opened.stream, report)


def _events(source: Source, path: str, stream: BinaryIO, report: ReadReport) -> Iterator[Event]:
    try:
        yield from source.read_file(path, stream, report)
    except read_errors() as exc:  # a truncated .gz: what came before it still counts
        report.skip(path, "end of readable data", f"the rest cannot be read ({exc})")
    finally:
        stream.close()


def open_all(
    paths: Sequence[str],
    report: ReadReport,
    fmt: str | None,
    unreadable: list[str],
    passed_over: list[str] | None = None,
) -> list[Iterator[Event]]:
    """Event streams from files, folders and globs (see ``opening.expand``). A file that cannot
    be read goes to unreadable with the reason; one found in a folder that is in no format goes
    to passed_over instead (a folder of logs often holds a README too), when that is given."""
    expanded = expand(paths)
    unreadable.extend(expanded.problems)
    streams: list[Iterator[Event]] = []
    for path in expanded.files:
        try:
            streams.append(open_events(path, report, fmt))
        except UnknownFormat as exc:
            if passed_over is not None and path in expanded.listed:
                passed_over.append(str(exc))
            else:
                unreadable.append(str(exc))
        except OSError as exc:
            unreadable.append(f"{path}: cannot read ({exc.strerror or exc})")
    return streams
