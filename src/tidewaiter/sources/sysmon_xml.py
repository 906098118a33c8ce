"""Windows event XML (wevtutil, Get-WinEvent ToXml) and Sysmon for Linux syslog lines.

Both carry one ``<Event>`` element a record, framed differently: wevtutil writes one a line but
breaks it wherever a value holds a newline (script blocks, command lines); a pretty-printed
``<Events>`` document spreads each over many lines; Sysmon for Linux puts one a syslog line after
a ``host sysmon:`` prefix. So lines are gathered from ``<Event`` to ``</Event>`` and each element
is one record, counted at the line where it starts.

The XML is untrusted: a DTD can define entities that expand to gigabytes (billion laughs), so a
line declaring one is refused before any parser sees it.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import msgspec

from tidewaiter.events import Event, RawRef
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, ReadReport, RecordError, Source, guarded
from tidewaiter.sources.windows_event import to_events

EVENT_NS = b"http://schemas.microsoft.com/win/2004/08/events/event"
MAX_EVENT = 4 << 20  # a Sysmon command line tops out at 32K characters; this is far beyond
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # Windows PowerShell 5.1 writes files in UTF-16

_OPEN = re.compile(rb"<Event[\s>]")  # not <Events>, <EventData>, <EventID>
_CLOSE = b"</Event>"
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)")
_STRUCTURE = re.compile(rb"\s*(?:\xef\xbb\xbf)?(?:<\?xml[^>]*\?>\s*)?(?:</?Events\b[^>]*>\s*)*")
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True, slots=True)
class Piece:
    """One record: a whole Event element, a problem, or a line outside any event."""

    line: int
    xml: bytes = b""
    problem: str | None = None

    def decode(self, xml: bytes, ref: RawRef) -> list[Event]:
        if self.problem is not None:
            raise RecordError(self.problem)
        return parse_event(xml, ref) if xml else []  # another program's syslog line: nothing


class Framer:
    """Gathers lines into Event elements; shared by the file reader and the stream decoder."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._start = 0  # line where the open event began; 0 when none is open

    def push(self, line: bytes, lineno: int) -> list[Piece]:
        if _DTD.search(line):
            return [self._refuse(lineno)]
        if not self._start and not _OPEN.search(line):
            return _outside(line, lineno)
        pieces: list[Piece] = []
        pos = 0
        while pos < len(line):
            if not self._start:
                opening = _OPEN.search(line, pos)
                if opening is None:
                    break  # the rest (</Events>, a newline) belongs to no event
                self._start, pos, scan = lineno, opening.start(), opening.end()
            else:
                scan = pos
            close = line.find(_CLOSE, scan)
            reopen = _OPEN.search(line, scan)
            if reopen and (close < 0 or reopen.start() < close):
                pieces.append(self._cut_short())  # a new event began before this one closed
                pos = reopen.start()
                continue
            if close < 0:
                self._buffer += line[pos:]
                if len(self._buffer) > MAX_EVENT:
                    pieces.append(self._cut_short(f"event larger than {MAX_EVENT >> 20} MiB"))
                break
            self._buffer += line[pos : close + len(_CLOSE)]
            pieces.append(Piece(self._start, bytes(self._buffer)))
            self._reset()
            pos = close + len(_CLOSE)
        return pieces

    def finish(self) -> list[Piece]:
        return [self._cut_short("event not closed at end of input")] if self._start else []

    def _refuse(self, lineno: int) -> Piece:
        start = self._start or lineno
        self._reset()  # an event holding a declaration is dropped whole
        return Piece(start, problem="DTD or entity declaration (refused: entity expansion)")

    def _cut_short(self, problem: str = "truncated event (no closing </Event>)") -> Piece:
        piece = Piece(self._start, problem=problem)
        self._reset()
        return piece

    def _reset(self) -> None:
        self._buffer.clear()
        self._start = 0


def _outside(line: bytes, lineno: int) -> list[Piece]:
    """A line outside any event: XML scaffolding is no record, other text is an ignored one."""
    if _STRUCTURE.fullmatch(line):
        return []
    try:
        line.decode()
    except UnicodeDecodeError:
        return [Piece(lineno, problem="not UTF-8 text outside any event")]
    if _BINARY.search(line):
        return [Piece(lineno, problem="binary data outside any event")]
    return [Piece(lineno)]


def parse_event(xml: bytes, ref: RawRef) -> list[Event]:
    """Events from one ``<Event>`` element (Windows namespace or none)."""
    if _DTD.search(xml):  # the framer refuses these first; kept so this function is safe alone
        raise RecordError("DTD or entity declaration (refused: entity expansion)")
    # An undecodable byte in a command line must not drop the event: replace it, keep the rest.
    try:
        root = ET.fromstring(xml.decode("utf-8", errors="replace"))  # noqa: S314 - DTDs refused above
    except ET.ParseError as exc:
        raise RecordError(f"malformed XML ({str(exc).partition(':')[0]})") from None
    if _local(root.tag) != "Event":
        raise RecordError(f"not an Event element: <{_local(root.tag)}>")
    parts = {_local(child.tag): child for child in root}
    system = parts.get("System")
    if system is None:
        raise RecordError("Event has no System element")
    event_data = parts.get("EventData")
    data = _event_data(event_data) if event_data is not None else {}
    return to_events(_system(system), data, ref)


def parse_event_data(xml: str) -> dict[str, object]:
    """The named Data of an EventData element given as text (Log Analytics keeps EventData as
    an XML string, the Microsoft Monitoring Agent inside a <DataItem>), wherever it sits."""
    if _DTD.search(xml.encode()):
        raise RecordError("DTD or entity declaration (refused: entity expansion)")
    try:
        root = ET.fromstring(xml)  # noqa: S314 - DTDs refused above
    except ET.ParseError as exc:
        raise RecordError(f"malformed EventData XML ({str(exc).partition(':')[0]})") from None
    return _event_data(root.iter())


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _system(system: ET.Element) -> dict[str, object]:
    """System children in pyevtx-rs's JSON shape, so windows_event reads both sources alike."""
    out: dict[str, object] = {}
    for child in system:
        if child.attrib:
            node: dict[str, object] = {"#attributes": dict(child.attrib)}
            if child.text and child.text.strip():
                node["#text"] = child.text.strip()
            out[_local(child.tag)] = node
        else:
            out[_local(child.tag)] = (child.text or "").strip()
    return out


def _event_data(elements: Iterable[ET.Element]) -> dict[str, object]:
    return {
        name: child.text
        for child in elements
        if _local(child.tag) == "Data" and (name := child.get("Name"))
    }


def _sniff_text(head: bytes) -> bytes:
    if head.startswith(_UTF16_BOMS):
        return head[: len(head) // 2 * 2].decode("utf-16", errors="ignore").encode()
    return head


def _utf8_lines(stream: BinaryIO) -> Iterator[bytes]:
    """The stream's lines as UTF-8, re-encoding a UTF-16 file (it is read whole to do so)."""
    lines = iter(stream)
    first = next(lines, b"")
    if not first.startswith(_UTF16_BOMS):
        yield first
        yield from lines
        return
    text = (first + stream.read()).decode("utf-16", errors="replace")
    for line in io.StringIO(text):
        yield line.encode()


class XmlDecoder(Decoder):
    """For streams fed a line at a time (read_file does its own counting, one record an event)."""

    def __init__(self) -> None:
        self._framer = Framer()

    def feed(self, line: bytes, ref: RawRef) -> Iterable[Event]:
        # A problem raises and so loses any good event sharing its line: only a corrupted line
        # can hold both, and the problem is still counted.
        events: list[Event] = []
        for piece in self._framer.push(line, ref.line or 0):
            events += piece.decode(piece.xml, msgspec.structs.replace(ref, line=piece.line))
        return events

    def flush(self) -> Iterable[Event]:
        unfinished = self._framer.finish()
        if unfinished:
            raise RecordError(unfinished[0].problem or "event not closed at end of input")
        return ()


@register
class SysmonXml(Source):
    name = "sysmon-xml"
    title = "Sysmon XML (Windows export, Sysmon for Linux syslog)"

    def sniff(self, head: bytes) -> bool:
        text = _sniff_text(head)
        if EVENT_NS in text and (b"<Event " in text or b"<Events>" in text):
            return True
        return b"sysmon" in text and b"<Event>" in text

    def decoder(self, path: str) -> Decoder:
        return XmlDecoder()

    def read_file(self, path: str, stream: BinaryIO, report: ReadReport) -> Iterator[Event]:
        framer = Framer()
        for lineno, line in enumerate(_utf8_lines(stream), start=1):
            yield from self._pieces(path, framer.push(line, lineno), report)
        yield from self._pieces(path, framer.finish(), report)

    def _pieces(self, path: str, pieces: list[Piece], report: ReadReport) -> Iterator[Event]:
        for piece in pieces:
            report.records += 1
            yield from guarded(piece.decode, piece.xml, RawRef(self.name, path, piece.line), report)
