"""JSON documents from a byte stream, however an exporter laid them out.

SIEM exports and converters write the same records in several layouts: one object a line (JSON
lines), pretty-printed objects back to back with no separator (evtx_dump, ``jq .``), optionally
headed by ``Record N`` lines (evtx_dump's default), or one top-level array (Log Analytics,
Winlogbeat's test files, PowerShell ``ConvertTo-Json``), often on a single line hundreds of
megabytes long. The framer reads the stream in chunks and cuts it at the end of each top-level
object (or each element of a top-level array), so an array is never held whole: only one
document at a time, at most ``MAX_DOCUMENT`` bytes.

It tracks only strings and brackets, so it is cheap, and it resynchronises on damage: a raw line
break inside a string (never valid JSON) ends the broken document there, and outside an array an
object opening at the start of a line while another is still open abandons the open one (a
truncated JSON line must not swallow the file). Mismatched brackets are left to the decoder,
which reports the document as malformed.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

import msgspec

from tidewaiter.events import Event, RawRef
from tidewaiter.sources.base import AbandonedRecord, Decoder, ReadReport, RecordError, guarded
from tidewaiter.sources.fields import BOM, decode_json_line

MAX_DOCUMENT = 16 << 20  # a Sysmon record is a few KiB; a wrapper of thousands still fits
CHUNK = 1 << 16
WRAPPERS = ("events", "records")  # Elastic pipeline test files; Azure diagnostic settings
MAX_WRAPPED = 100_000  # records in one wrapper object, at most
_DECODER = msgspec.json.Decoder(dict[str, object])

# Everything up to the next bracket, line break or unfinished string, whole strings included: one
# C-level match per run, so framing costs little next to decoding.
_SKIP = re.compile(rb'(?:[^"\[\]{}\n]+|"[^"\\\n]*(?:\\[^\n][^"\\\n]*)*")*')
# The rest of a string after its opening quote: stops at the closing quote, a raw line break
# (invalid) or the end of the buffer (a lone trailing backslash waits for the next chunk).
_STRING_REST = re.compile(rb'[^"\\\n]*(?:\\[^\n][^"\\\n]*)*')
_RECORD_HEADER = re.compile(rb"Record \d+")  # evtx_dump's default output heads each record so
_BLANK = b" \t\r\n,"
_MAX_PENDING = 1024  # text between documents held back for the next chunk, at most


@dataclass(frozen=True, slots=True)
class Document:
    """One top-level JSON value's bytes (or why there is none), at the line where it starts."""

    line: int
    data: bytes = b""
    problem: str | None = None


class Framer:
    def __init__(self, limit: int = MAX_DOCUMENT) -> None:
        self._limit = limit
        self._buf = bytearray()
        self._pos = 0  # next byte to scan
        self._line = 1  # line number at _pos
        self._line_start = 0  # index in _buf where the current line starts
        self._depth = 0
        self._base = 0  # 1 inside a top-level array: its elements are the documents
        self._start: int | None = None  # index of the open document's first byte
        self._start_line = 0
        self._in_string = False
        self._oversize = False
        self._junk_line = 0  # the last line already reported as text outside any document
        self._first = True

    @property
    def line(self) -> int:
        """The line the next byte fed belongs to, counted from 1 at the first byte."""
        return self._line

    @property
    def open(self) -> bool:
        """Whether a document has begun and not yet ended."""
        return self._start is not None or self._oversize or self._in_string

    def feed(self, chunk: bytes) -> list[Document]:
        self._buf += chunk
        if self._first:  # a byte-order mark, perhaps fed a byte at a time
            if len(self._buf) < len(BOM) and BOM.startswith(self._buf):
                return []
            if self._buf.startswith(BOM):
                del self._buf[: len(BOM)]
            self._first = False
        out = self._scan(final=False)
        self._trim()
        return out

    def finish(self) -> list[Document]:
        out = self._scan(final=True)
        if self._start is not None or self._oversize:
            out.append(Document(self._start_line, problem="JSON cut short at end of input"))
            self._start = None
            self._oversize = False
        self._in_string = False
        return out

    # --- scanning ---------------------------------------------------------------------------

    def _scan(self, final: bool) -> list[Document]:
        out: list[Document] = []
        buf = self._buf
        while True:
            if self._in_string:
                rest = _STRING_REST.match(buf, self._pos)
                end = rest.end() if rest else self._pos
                if end >= len(buf) or (buf[end] == 0x5C and end + 1 >= len(buf)):
                    self._pos = end  # the string (or an escape) goes on in the next chunk
                    return out
                self._in_string = False
                if buf[end] == 0x22:
                    self._pos = end + 1
                    continue
                self._pos = end  # a raw line break (alone or escaped) inside a string
                out += self._broken("malformed JSON (line break inside a string)")
                continue
            skipped = _SKIP.match(buf, self._pos)  # always matches, if only the empty string
            stop = skipped.end() if skipped else self._pos
            at_end = stop >= len(buf)
            if self._start is None and not self._oversize:
                text = buf[self._pos : stop].strip(_BLANK)
                if text and at_end and not final and len(text) < _MAX_PENDING:
                    self._pos = buf.index(text[:1], self._pos)  # may be a header cut in two
                    return out
                if text and not (self._base == 0 and _RECORD_HEADER.fullmatch(text)):
                    out += self._junk("text outside any JSON object")
            if at_end:
                self._pos = len(buf)
                return out
            token = buf[stop]
            self._pos = stop + 1
            if token == 0x0A:
                self._line += 1
                self._line_start = self._pos
            elif token == 0x22:
                if self._start is None and not self._oversize:
                    out += self._junk("text outside any JSON object")  # a bare string
                self._in_string = True
            elif token in b"{[":
                out += self._push(stop, token)
            else:
                out += self._pop(stop)

    def _push(self, at: int, token: int) -> list[Document]:
        out: list[Document] = []
        inside = self._start is not None or self._oversize
        if not inside and token == 0x5B and self._depth == 0:
            self._depth = self._base = 1  # a top-level array: its elements are the documents
            return out
        if inside and self._base == 0 and token == 0x7B and at == self._line_start:
            out += self._broken("malformed JSON (object not closed before the next line)")
            inside = False
        if not inside:
            self._start = at
            self._start_line = self._line
        self._depth += 1
        return out

    def _pop(self, at: int) -> list[Document]:
        if self._start is None and not self._oversize:
            if self._depth == 1 and self._base == 1:  # the top-level array ends
                self._depth = self._base = 0
                return []
            return self._junk("unbalanced bracket outside any JSON object")
        self._depth -= 1
        if self._depth > self._base:
            return []
        start, line = self._start, self._start_line
        self._start = None
        if self._oversize:
            self._oversize = False
            return [Document(line, problem=f"JSON record larger than {self._limit >> 20} MiB")]
        return [Document(line, bytes(self._buf[start or 0 : at + 1]))]

    def _broken(self, problem: str) -> list[Document]:
        """The open document cannot be whole: report it, and look for the next one."""
        if self._start is None and not self._oversize:
            return self._junk(problem)
        line = self._start_line
        self._start = None
        self._oversize = False
        self._depth = self._base
        return [Document(line, problem=problem)]

    def _junk(self, problem: str) -> list[Document]:
        if self._junk_line == self._line:  # one problem a line, however much junk it holds
            return []
        self._junk_line = self._line
        return [Document(self._line, problem=problem)]

    def _trim(self) -> None:
        """Drop what no document needs any more, and refuse a document past the limit."""
        if self._start is not None and self._pos - self._start > self._limit:
            self._start = None
            self._oversize = True
        keep = self._start if self._start is not None else self._pos
        if keep:
            del self._buf[:keep]
            self._pos -= keep
            self._line_start -= keep
            if self._start is not None:
                self._start -= keep


def documents(stream: BinaryIO, limit: int = MAX_DOCUMENT) -> Iterator[Document]:
    framer = Framer(limit)
    while chunk := stream.read(CHUNK):
        yield from framer.feed(chunk)
    yield from framer.finish()


def records(path: str, stream: BinaryIO, report: ReadReport) -> Iterator[tuple[int, object]]:
    """Each JSON record of a file with the line it starts at, wrappers opened, framing problems
    counted in report (a record each)."""
    for document in documents(stream):
        if document.problem is not None:
            report.records += 1
            report.skip(path, f"line {document.line}", document.problem)
            continue
        yield from _unwrap(path, document, report)


def _unwrap(path: str, document: Document, report: ReadReport) -> Iterator[tuple[int, object]]:
    try:
        values = unwrap(document.data)
    except RecordError as exc:
        report.records += 1
        report.skip(path, f"line {document.line}", str(exc))
        return
    if len(values) > MAX_WRAPPED:
        report.records += 1  # the rest of the wrapper, as one record not read
        report.skip(path, f"line {document.line}", f"more than {MAX_WRAPPED} wrapped records")
    for value in values[:MAX_WRAPPED]:
        yield document.line, value


def unwrap(data: bytes) -> list[object]:
    """The records of one JSON document: itself, or the list a lone wrapper key holds."""
    value = decode_json_line(data, _DECODER)
    wrapped = next((value[k] for k in WRAPPERS if isinstance(value.get(k), list)), None)
    if len(value) != 1 or not isinstance(wrapped, list):
        return [value]
    return wrapped


def sniff_json(head: bytes, *keys: bytes) -> bool:
    """Whether head is JSON (an object or an array, maybe after evtx_dump's record header) with
    every one of keys as a key, not merely as a value (k8s audit's "kind": "Event")."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"Record "):
        text = text.partition(b"\n")[2].lstrip()
    return text[:1] in (b"{", b"[") and all(_key(key).search(text) for key in keys)


@functools.cache
def _key(name: bytes) -> re.Pattern[bytes]:
    return re.compile(b'"' + re.escape(name) + rb'"\s*:')


# --- reading records through a source's decoding function -----------------------------------

DecodeRecord = Callable[[object, RawRef], list[Event]]


def read_records(
    source: str, path: str, stream: BinaryIO, report: ReadReport, decode: DecodeRecord
) -> Iterator[Event]:
    """Events of every JSON record of a file, each counted in report at the line it starts."""
    for line, record in records(path, stream, report):
        report.records += 1
        ref = RawRef(source, path, line=line)
        yield from guarded(partial(_apply, decode, record), b"", ref, report)


def _apply(decode: DecodeRecord, record: object, _: bytes, ref: RawRef) -> list[Event]:
    return decode(record, ref)


class FramedDecoder(Decoder):
    """The same, for streams fed a line at a time (``watch`` following JSON lines output);
    read_records frames whole files itself, arrays included."""

    def __init__(self, decode: DecodeRecord) -> None:
        self._decode_record = decode
        self._framer = Framer()

    @property
    def assembling(self) -> bool:
        return self._framer.open

    def feed(self, line: bytes, ref: RawRef) -> Iterable[Event]:
        offset = (ref.line or 0) - self._framer.line  # the framer counts lines from its start
        return self._decode(self._framer.feed(line), ref, offset)

    def flush(self) -> Iterable[Event]:
        problems = [d.problem for d in self._framer.finish() if d.problem]
        if problems:
            raise RecordError(problems[0])
        return ()

    def _decode(self, found: list[Document], ref: RawRef, offset: int) -> list[Event]:
        events: list[Event] = []
        problem: tuple[str, int] | None = None
        for document in found:
            at = msgspec.structs.replace(ref, line=document.line + offset)
            try:
                if document.problem is not None:
                    raise RecordError(document.problem)
                for record in unwrap(document.data):
                    events += self._decode_record(record, at)
            except RecordError as exc:
                problem = problem or (str(exc), document.line + offset)
        if problem is None:
            return events
        reason, line = problem
        where = msgspec.structs.replace(ref, line=line)
        if events or line != ref.line:
            raise AbandonedRecord(reason, where, events)
        raise RecordError(reason)


def first_record(head: bytes) -> dict[str, object] | None:
    """The first JSON record of a file's head (the first element of an array, the first
    document of several, pretty-printed or not), when it is whole and an object."""
    for document in documents(io.BytesIO(head)):
        if document.problem is not None:
            return None
        try:
            values = unwrap(document.data)
        except RecordError:
            return None
        first = values[0] if values else None
        return first if isinstance(first, dict) else None
    return None


def back_to_back(data: bytes) -> list[bytes] | None:
    """The JSON documents of a line written one after another with no separator (``{..}{..}``,
    as Kinesis Data Firehose concatenates records into an object); None when it is not that."""
    found = list(documents(io.BytesIO(data)))
    if len(found) < 2 or any(d.problem is not None for d in found):
        return None
    return [d.data for d in found]
