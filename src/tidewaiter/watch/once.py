"""A compressed file among the watched ones (a rotated ``events.json.1.gz``, or a member of a zip
archive): read once, through the same decompression as ``tidewaiter detect``, and never followed,
since a compressed file is finished when it is written.

Its position is the count of decompressed bytes and lines read, with the file's identity, size
and modification time: after a restart the same file is decompressed again, the part already read
re-fed to the decoder without delivering anything (as a followed file's is), and the rest read.
A file that changed meanwhile is read again from the start.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, BinaryIO

from tidewaiter.events import Event
from tidewaiter.sources import UnknownFormat
from tidewaiter.sources.base import ReadReport
from tidewaiter.sources.opening import (
    MAGIC_BYTES,
    compression,
    on_disk,
    open_input,
    read_errors,
)
from tidewaiter.watch.lines import LineFeeder, NotFollowable, identify

CHUNK = 256 * 1024


class OnceInput:
    def __init__(
        self,
        path: str,
        report: ReadReport,
        say: Callable[[str], None],
        max_record: int,
        fmt: str | None = None,
    ) -> None:
        self.path = path
        self.report = report
        self._say = say
        self.max_record = max_record
        self._fmt = fmt
        self._stream: BinaryIO | None = None
        self._feeder: LineFeeder | None = None
        self._finished = False
        self._stamp: dict[str, int] | None = None
        self._resume: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.path

    @property
    def finished(self) -> bool:
        return self._finished

    def poll(self, budget: int) -> list[Event]:
        if self._finished:
            return []
        if self._stream is None and not self._open():
            return []
        stream, feeder = self._stream, self._feeder
        if stream is None or feeder is None:
            return []
        events: list[Event] = []
        try:
            while budget > 0:
                data = stream.read(min(CHUNK, budget))
                if not data:
                    events += feeder.finish()
                    self._done()
                    break
                budget -= len(data)
                events += feeder.push(data)
        except read_errors() as exc:  # a truncated archive: what came before it counts
            self.report.skip(self.path, f"line {feeder.line + 1}", f"cannot read on ({exc})")
            events += feeder.finish()
            self._done()
        return events

    def _open(self) -> bool:
        try:
            info = os.stat(on_disk(self.path))  # a zip member: its archive's stamp
            opened = open_input(self.path)
        except OSError as exc:
            self._say(f"{self.path}: cannot read ({exc.strerror or exc})")
            self._finished = True
            return False
        self._stamp = _stamp(info)
        try:
            source = identify(opened.head, self.path, self._fmt, final=True)
        except (UnknownFormat, NotFollowable) as exc:
            opened.stream.close()
            self._say(str(exc))
            self._finished = True
            return False
        if source is None:  # final: a source or an exception; kept for the type checker
            opened.stream.close()
            self._finished = True
            return False
        self._stream = opened.stream
        self.report.files[self.path] = source.name
        self._feeder = LineFeeder(source, self.path, self.report, self.max_record)
        resume, self._resume = self._resume, None
        if resume is not None and resume.get("stamp") == self._stamp:
            if resume.get("done"):
                self._done()
                return False
            _skip_to(opened.stream, self._feeder, int(resume["offset"]), int(resume["line"]))
        return True

    def _done(self) -> None:
        self._finished = True
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def position(self) -> dict[str, Any] | None:
        if self._stamp is None or self._feeder is None:
            return None
        return {
            "stamp": self._stamp,
            "offset": self._feeder.offset,
            "line": self._feeder.line,
            "done": self._finished,
        }

    def restore(self, position: dict[str, Any]) -> None:
        self._resume = position

    def behind(self) -> int:
        return 0  # decompressed sizes are not known before reading

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def _skip_to(stream: BinaryIO, feeder: LineFeeder, offset: int, line: int) -> None:
    """Re-feed what was read before the restart without delivering it."""
    left = offset
    while left > 0:
        data = stream.read(min(CHUNK, left))
        if not data:
            break
        left -= len(data)
        feeder.replay(data)
    feeder.align(offset, line)


def _stamp(info: os.stat_result) -> dict[str, int]:
    return {
        "dev": info.st_dev,
        "ino": info.st_ino,
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
    }


def is_compressed(path: str) -> bool:
    """Whether a regular file starts with a compression's magic bytes."""
    try:
        with open(path, "rb") as stream:
            return compression(stream.read(MAGIC_BYTES)) is not None
    except OSError:
        return False
