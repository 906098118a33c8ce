"""JSON documents however they are laid out in a file: one a line, pretty-printed over many lines
(sample and golden files, `jq .` output), several back to back, or an array of them.

A decoder built on ``DocumentDecoder`` is fed lines like any other and hands each whole document
(each element of an array) to ``document``. Strings in JSON cannot hold a raw newline, so braces
and brackets can be balanced line by line once strings are blanked out.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Collection

import msgspec

from tidewaiter.events import Event, RawRef
from tidewaiter.sources.base import AbandonedRecord, Decoder, RecordError
from tidewaiter.sources.fields import BOM, decode_json_line

MAX_DOCUMENT = 8 << 20
_STRING = re.compile(rb'"(?:[^"\\\n]|\\.)*"')
_ADJACENT = re.compile(rb"}\s*{")
_ANY = msgspec.json.Decoder()
_RAWS = msgspec.json.Decoder(list[msgspec.Raw])


def balance(line: bytes) -> int:
    """Opening minus closing braces and brackets outside strings."""
    text = _STRING.sub(b"", line) if b'"' in line else line
    return text.count(b"{") + text.count(b"[") - text.count(b"}") - text.count(b"]")


class DocumentDecoder(Decoder):
    def __init__(self) -> None:
        self._start: RawRef | None = None
        self._lines: list[bytes] = []
        self._size = 0
        self._depth = 0

    @abstractmethod
    def document(self, data: bytes, ref: RawRef) -> list[Event]:
        """Events of one whole JSON document (its bytes; decode with decode_json_line)."""

    @property
    def assembling(self) -> bool:
        return self._start is not None

    def starts_record(self, line: bytes) -> bool:
        return self._start is None or line[:1] in (b"{", b"[")

    def feed(self, line: bytes, ref: RawRef) -> list[Event]:
        if self._start is not None:
            return self._continue(line, ref)
        text = line.removeprefix(BOM).strip()
        try:
            return self._whole(text, ref)  # most lines are whole documents: no balancing
        except RecordError:
            depth = balance(text) if text[:1] in (b"{", b"[") else 0
            if depth <= 0:
                raise
        # The start of a document spread over lines (pretty-printed).
        self._start, self._lines, self._size, self._depth = ref, [text], len(text), depth
        return []

    def flush(self) -> list[Event]:
        pending = self._start
        self._reset()
        if pending is not None:
            raise RecordError("unterminated multi-line JSON document")
        return []

    def _continue(self, line: bytes, ref: RawRef) -> list[Event]:
        if line[:1] in (b"{", b"[") and self._depth > 0:
            # A new document at column 0 while one is still open: that one never closed.
            abandoned = self._start or ref
            self._reset()
            try:
                events = self.feed(line, ref)
            except RecordError as exc:
                raise AbandonedRecord(
                    "unterminated multi-line JSON document", abandoned, [], then=str(exc)
                ) from exc
            raise AbandonedRecord("unterminated multi-line JSON document", abandoned, events)
        self._depth += balance(line)
        self._size += len(line)
        if self._size > MAX_DOCUMENT:
            self._reset()
            raise RecordError(f"JSON document larger than {MAX_DOCUMENT >> 20} MiB")
        self._lines.append(line)
        if self._depth > 0:
            return []
        start = self._start or ref
        data = b"".join(self._lines)
        self._reset()
        return self._whole(data.strip(), start)

    def _whole(self, data: bytes, ref: RawRef) -> list[Event]:
        if data.startswith(b"["):
            events: list[Event] = []
            for item in decode_json_line(data, _RAWS):
                events += self.document(bytes(item), ref)
            return events
        if data.startswith(b"{") and _ADJACENT.search(data):
            return self._back_to_back(data, ref)
        return self.document(data, ref)

    def _back_to_back(self, data: bytes, ref: RawRef) -> list[Event]:
        """Documents written one after another with no separator (``}{``)."""
        try:
            return self.document(data, ref)
        except RecordError:
            pieces = back_to_back(data)
            if pieces is None:
                raise
        events: list[Event] = []
        for piece in pieces:
            events += self.document(piece, ref)
        return events

    def _reset(self) -> None:
        self._start, self._lines, self._size, self._depth = None, [], 0, 0


_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]]')


def back_to_back(data: bytes) -> list[bytes] | None:
    """The JSON values of a line written one after another with no separator (``{..}{..}``, as
    Kinesis Data Firehose concatenates records into an object); None when the line is not that."""
    if not _ADJACENT.search(data):
        return None
    pieces: list[bytes] = []
    start = depth = 0
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token in (b"{", b"["):
            depth += 1
        elif token in (b"}", b"]"):
            depth -= 1
            if depth == 0:
                pieces.append(data[start : match.end()].strip())
                start = match.end()
    if depth != 0 or data[start:].strip() or len(pieces) < 2:
        return None
    return pieces


def first_document(head: bytes) -> dict[str, object] | None:
    """The first JSON object of a head: one line, the first of an array, or pretty-printed
    (closed by a ``}`` at column 0); None when the head does not start with one."""
    text = head.removeprefix(BOM).lstrip()
    if text.startswith(b"["):
        text = text[1:].lstrip()
    if not text.startswith(b"{"):
        return None
    line = text.split(b"\n", 1)[0]
    for candidate in (line, text[: text.find(b"\n}") + 2] if b"\n}" in text else b""):
        if not candidate:
            continue
        try:
            value = _ANY.decode(candidate.rstrip().rstrip(b","))
        except (msgspec.DecodeError, UnicodeDecodeError):
            continue
        if isinstance(value, dict):
            return value
    return None


def keys_of(head: bytes) -> Collection[str]:
    document = first_document(head)
    return document.keys() if document is not None else ()
