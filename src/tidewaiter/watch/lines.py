"""Bytes as they arrive → complete lines → a source's decoder → events.

Lines are numbered and accounted exactly as ``tidewaiter detect`` does for a whole file (blank
lines count for numbering, framing lines are fed but not counted), so an alert from a followed
file points at the same line as one from the finished file. A line with no newline yet is held
back until its newline comes; one longer than ``max_record`` is skipped with that reason, without
ever being held in memory whole.
"""

from __future__ import annotations

import contextlib
from collections import deque

from tidewaiter.events import Event, RawRef
from tidewaiter.sources import SNIFF_BYTES, UnknownFormat, forced, get, sniff
from tidewaiter.sources.base import Decoder, ReadReport, Source, guarded, guarded_flush

EVTX_MAGIC = b"ElfFile\x00"  # binary from the first byte: no line to wait for
MAX_FRAMES = 64  # framing runs remembered for resuming (a Zeek header block is one)


class LineFeeder:
    def __init__(
        self,
        source: Source,
        label: str,
        report: ReadReport,
        max_record: int,
        offset: int = 0,
        line: int = 0,
    ) -> None:
        self.source = source
        self.label = label  # the path events point at (RawRef.path)
        self.report = report
        self.max_record = max_record
        self.decoder: Decoder = source.decoder(label)
        self.offset = offset  # byte offset just after the last complete line
        self.line = line  # number of the last complete line
        self._partial = bytearray()
        self._discarding = False  # inside a line already known to be too long
        self._passed = 0  # bytes of that line passed over so far
        self._silent = False  # replaying: feed the decoder, deliver and count nothing
        # Where the latest framing lines are (Zeek header directives), as (start, end) offsets,
        # adjacent lines merged: a decoder resumed later in the file needs them fed again.
        self.frames: deque[tuple[int, int]] = deque(maxlen=MAX_FRAMES)

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete line."""
        return len(self._partial) + self._passed

    def push(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            self._take(data[start : end + 1], events)
            start = end + 1
        rest = data[start:]
        if self._discarding:
            self._passed += len(rest)  # bytes of a line already rejected are not kept
        else:
            self._partial += rest
            if len(self._partial) > self.max_record:
                self._passed += len(self._partial)
                self._partial = bytearray()
                self._discarding = True
        return events

    def _take(self, piece: bytes, events: list[Event]) -> None:
        if self._partial:
            piece = bytes(self._partial) + piece
            self._partial = bytearray()
        start = self.offset
        self.offset += self._passed + len(piece)
        self._track_frame(piece, start)
        self.line += 1
        too_long = self._discarding or len(piece) > self.max_record
        self._discarding, self._passed = False, 0
        if self._silent:
            if not too_long and piece.strip():
                self._replay_one(piece)
            return
        if too_long:
            self.report.records += 1
            self.report.skip(
                self.label, f"line {self.line}", f"record longer than {self.max_record} bytes"
            )
            return
        events += self._feed(piece)

    def _track_frame(self, piece: bytes, start: int) -> None:
        prefix = self.source.comment_prefix
        if prefix is None or not piece.startswith(prefix):
            return
        if self.frames and self.frames[-1][1] == start:
            self.frames[-1] = (self.frames[-1][0], self.offset)
        else:
            self.frames.append((start, self.offset))

    def _replay_one(self, line: bytes) -> None:
        ref = RawRef(self.source.name, self.label, line=self.line)
        with contextlib.suppress(Exception):  # it failed the first time too, reported then
            list(self.decoder.feed(line, ref))

    def _feed(self, line: bytes) -> list[Event]:
        if not line.strip():
            return []
        ref = RawRef(self.source.name, self.label, line=self.line)
        prefix = self.source.comment_prefix
        if prefix is not None and line.startswith(prefix):
            return list(guarded(self.decoder.feed, line, ref, self.report, count=False))
        self.report.records += 1
        return list(guarded(self.decoder.feed, line, ref, self.report))

    def finish(self) -> list[Event]:
        """The end of this stream (EOF of a pipe, a file rotated away or truncated): a last line
        without its newline is still a line, and the decoder gives up what it held back."""
        events: list[Event] = []
        if self._discarding or self._partial:
            self._take(b"", events)
        events += guarded_flush(self.decoder, self.label, self.line, self.report)
        return events

    def replay(self, data: bytes) -> None:
        """Feed lines that were already processed before a restart, to rebuild the decoder's
        state (a header, a record spanning lines): their events were delivered then, and their
        problems reported then."""
        self._silent = True
        try:
            self.push(data)
        finally:
            self._silent = False

    def align(self, offset: int, line: int) -> None:
        """Continue at a line boundary known from a checkpoint."""
        self.offset, self.line = offset, line
        self._partial = bytearray()
        self._discarding, self._passed = False, 0


def prime(feeder: LineFeeder, block: bytes) -> None:
    """Feed framing lines from earlier in the file (the header in force where a resumed decoder
    starts): they shape how every later line is read."""
    for piece in _lines(block):
        ref = RawRef(feeder.source.name, feeder.label, line=0)
        with contextlib.suppress(Exception):  # a bad header line was reported when it was read
            list(feeder.decoder.feed(piece, ref))


def _lines(data: bytes) -> list[bytes]:
    """Split on newline only (``bytes.splitlines`` also splits on \\r, \\x0b, ...)."""
    pieces = data.split(b"\n")
    out = [p + b"\n" for p in pieces[:-1]]
    if pieces[-1]:
        out.append(pieces[-1])
    return out


class NotFollowable(Exception):
    """The input is in a format that cannot be read as it grows; the message says why."""


# A head this long, or with this many lines, that no source recognises is not going to be
# recognised with more: the format is unknown.
SNIFF_LINES = 16


def identify(
    head: bytes, label: str, fmt: str | None, final: bool, limit: int | None = None
) -> Source | None:
    """The source for an input from its first bytes; None while too little has arrived to say.
    ``head`` holds the whole first line when it is longer than the usual sniff window (a
    Kubernetes audit record can be); a first line longer than ``limit`` is refused.
    Raises UnknownFormat, or NotFollowable for a format that is not written in lines."""
    if fmt:
        source = forced(fmt, head)
    elif head.startswith(EVTX_MAGIC):
        source = get("sysmon-evtx")
    else:
        if not final and b"\n" not in head:
            if limit is not None and len(head) > limit:
                raise UnknownFormat(
                    f"{label}: the first line is longer than {limit} bytes (--max-record), so "
                    "its format cannot be recognised; raise --max-record or name the format "
                    "with --format"
                )
            return None
        try:
            source = sniff(head, label)
        except UnknownFormat:
            if final or len(head) >= SNIFF_BYTES or head.count(b"\n") >= SNIFF_LINES:
                raise
            return None
    if not source.line_framed:
        raise NotFollowable(
            f"{label}: {source.title} is written in whole chunks, not lines, so it cannot be "
            "followed as it grows; read the finished file with `tidewaiter detect`"
        )
    return source
