"""Windows EVTX files (Sysmon, PowerShell), read with pyevtx-rs.

pyevtx-rs raises RuntimeError from ``next()`` for a chunk or record it cannot parse and resumes
with the next one when iterated again; its message names the physical chunk ("Failed to parse
chunk number 9"), the chunk's record range ("chunk containing record IDs 1..44") or the record
("Failed to parse record number 45"). It says nothing about a file cut short: a partial last
chunk is silently dropped, so the file layout is checked here before parsing.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO

import evtx
import msgspec
import orjson

from tidewaiter.events import Event, RawRef
from tidewaiter.sources import register
from tidewaiter.sources.base import ReadReport, RecordError, Source, guarded
from tidewaiter.sources.fields import to_int
from tidewaiter.sources.windows_event import to_events

MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
HEADER_SIZE = 4096  # the header block as Windows writes it (its size field is ignored)
CHUNK_SIZE = 65536
_DIRTY = 0x1  # header flag: the log was not closed cleanly, its chunk count may be stale
MAX_REPEATS = 100  # the same error this many times in a row: the parser is not advancing

_CHUNK_NO = re.compile(r"chunk number (\d+)")
_CHUNK_IDS = re.compile(r"chunk containing record IDs (\d+)\.\.(\d+)")
_RECORD_NO = re.compile(r"record number (\d+)")
_NOISE = re.compile(r",? expected|,? found|`| at offset| \(need")


@dataclass(slots=True)
class Layout:
    """What the file's own headers say, checked before pyevtx-rs reads it."""

    problems: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)
    ranges: list[tuple[int, int, int]] = field(default_factory=list)  # (first id, last id, chunk)
    readable: bool = True  # False when there is not even a whole file header

    def chunk_of(self, record_id: int) -> int | None:
        at = bisect_right(self.ranges, (record_id, 2**64, 0)) - 1
        if at >= 0 and self.ranges[at][0] <= record_id <= self.ranges[at][1]:
            return self.ranges[at][2]
        return None


def scan_layout(stream: BinaryIO) -> Layout:
    layout = Layout()
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    header = stream.read(128)
    if not header.startswith(MAGIC):
        layout.problems.append(("file header", "not an EVTX file (no ElfFile signature)"))
    elif size < HEADER_SIZE:
        layout.problems.append(("file header", f"truncated file header ({size} bytes)"))
    if layout.problems:
        layout.readable = False
        return layout
    chunks, tail = divmod(size - HEADER_SIZE, CHUNK_SIZE)
    header_ok = zlib.crc32(header[:120]) == struct.unpack_from("<I", header, 124)[0]
    (listed,) = struct.unpack_from("<H", header, 42)
    (flags,) = struct.unpack_from("<I", header, 120)
    if not header_ok:
        layout.problems.append(("file header", "damaged file header (checksum mismatch)"))
    if tail:
        layout.problems.append(
            (f"chunk {chunks}", f"truncated chunk ({tail} of {CHUNK_SIZE} bytes), records lost")
        )
    elif header_ok and not flags & _DIRTY and listed > chunks:
        layout.problems.append(
            (f"chunk {chunks}", f"file truncated: header lists {listed} chunks, {chunks} present")
        )
    layout.ranges = sorted(_chunk_ranges(stream, chunks))
    stream.seek(0)
    return layout


def _chunk_ranges(stream: BinaryIO, chunks: int) -> Iterator[tuple[int, int, int]]:
    """Each readable chunk's record-id range, to place records and errors in their chunk."""
    for number in range(chunks):
        stream.seek(HEADER_SIZE + number * CHUNK_SIZE)
        head = stream.read(40)
        if len(head) == 40 and head.startswith(CHUNK_MAGIC):
            first, last = struct.unpack_from("<QQ", head, 24)
            if first <= last:
                yield first, last, number


def locate(message: str, layout: Layout, last_id: int | None) -> str:
    """Where a pyevtx-rs error happened, from its message (see the module docstring)."""
    if match := _CHUNK_NO.search(message):
        return f"chunk {match[1]}"
    if match := _CHUNK_IDS.search(message):
        chunk = layout.chunk_of(int(match[1]))
        return f"chunk {chunk}" if chunk is not None else f"records {match[1]}..{match[2]}"
    if match := _RECORD_NO.search(message):
        chunk = layout.chunk_of(int(match[1]))
        return f"record {match[1]}" + (f" (chunk {chunk})" if chunk is not None else "")
    return f"after record {last_id}" if last_id is not None else "before the first record"


def cause(message: str) -> str:
    """The innermost cause, without the bytes and offsets that would split the counts."""
    detail = _NOISE.split(message.rsplit(": ", 1)[-1])[0].strip(" .,:")
    kind = "corrupt chunk" if "chunk" in message.partition(":")[0] else "corrupt record"
    return f"{kind} ({detail or 'parse error'})"


@register
class SysmonEvtx(Source):
    name = "sysmon-evtx"
    title = "Windows EVTX (Sysmon, PowerShell)"
    line_framed = False

    def sniff(self, head: bytes) -> bool:
        return head.startswith(MAGIC)

    def read_file(self, path: str, stream: BinaryIO, report: ReadReport) -> Iterator[Event]:
        if not stream.seekable():  # standard input: pyevtx-rs and the layout check both seek
            stream = io.BytesIO(stream.read())
        layout = scan_layout(stream)
        for where, reason in layout.problems:
            report.skip(path, where, reason)
        if not layout.readable:
            return
        try:
            records = evtx.PyEvtxParser(stream).records_json()
        except (OSError, RuntimeError, ValueError) as exc:
            report.skip(path, "file header", f"unreadable EVTX file ({exc})")
            return
        yield from self._records(path, records, layout, report)

    def _records(
        self, path: str, records: Iterator[object], layout: Layout, report: ReadReport
    ) -> Iterator[Event]:
        last_id: int | None = None
        previous, repeats = "", 0
        for item in _resilient(records):
            report.records += 1
            if isinstance(item, Exception):
                message = str(item)
                repeats = repeats + 1 if message == previous else 0
                previous = message
                where = locate(message, layout, last_id)
                if repeats >= MAX_REPEATS:
                    report.skip(path, where, "parser stopped advancing; rest of file not read")
                    return
                report.skip(path, where, cause(message))
                continue
            previous = ""
            header_id, data = _unpack(item)
            last_id = header_id if header_id is not None else last_id
            chunk = layout.chunk_of(header_id) if header_id is not None else None
            ref = RawRef(self.name, path, record_id=None if header_id is None else str(header_id))
            yield from guarded(partial(_decode, chunk), data, ref, report)


def _resilient(records: Iterator[object]) -> Iterator[object]:
    """Every record, and every error in its place: pyevtx-rs resumes after raising."""
    while True:
        try:
            item = next(records)
        except StopIteration:
            return
        except Exception as exc:  # RuntimeError for bad data, OSError for I/O; any other is a bug
            item = exc
        yield item  # older pyevtx-rs yields the exception object itself: handled the same way


def _unpack(item: object) -> tuple[int | None, bytes]:
    """The record-header id and the JSON text of one pyevtx-rs record."""
    if not isinstance(item, dict):
        return None, b""
    data = item.get("data")
    return to_int(item.get("event_record_id")), data.encode() if isinstance(data, str) else b""


def _decode(chunk: int | None, data: bytes, ref: RawRef) -> list[Event]:
    # The chunk is added only here so that a bad record is reported as "record N", not "chunk C".
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise RecordError("record is not valid JSON") from None
    return events_from_json(document, msgspec.structs.replace(ref, chunk=chunk))


def events_from_json(document: object, ref: RawRef) -> list[Event]:
    """Events from one record as pyevtx-rs renders it: {"Event": {"System", "EventData"}}."""
    event = document.get("Event") if isinstance(document, dict) else None
    system = event.get("System") if isinstance(event, dict) else None
    if not isinstance(event, dict) or not isinstance(system, dict):
        raise RecordError("record has no Event/System element")
    data = event.get("EventData")
    return to_events(system, data if isinstance(data, dict) else {}, ref)
