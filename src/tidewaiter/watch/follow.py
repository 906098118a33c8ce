"""Following a file as it grows, like ``tail -F``, with positions that survive a restart.

A file is known by its identity (device, inode), not its name. Reading stops at the last
complete line; at the end of what is there, the name is looked at again:

* the name now leads to another file (rotated: ``mv log log.1``, a new ``log``): the old file is
  read to its end, its last line and the decoder are finished, and the new file starts at 0;
* the name is gone (rotated, no new file yet): the old file is still followed;
* the file is shorter than what was read (``copytruncate``): it starts again at 0.

A position is (identity, byte offset, line number) plus the last point where the decoder held
nothing back. Resuming re-feeds the lines between the two to the decoder without delivering their
events (they were processed before the checkpoint), so a record spanning lines, or a Zeek header,
is read as it would have been. A file rotated while tidewaiter was stopped is found again by its
inode in the same folder and finished before the new one.
"""

from __future__ import annotations

import copy
import hashlib
import os
import stat
from collections.abc import Callable
from typing import Any

from tidewaiter.events import Event
from tidewaiter.sources import SNIFF_BYTES, UnknownFormat, get
from tidewaiter.sources.base import ReadReport, Source
from tidewaiter.watch.lines import LineFeeder, NotFollowable, identify, prime

CHUNK = 256 * 1024
HEAD = 1024  # bytes at the start of a file that fingerprint it
Say = Callable[[str], None]


class FileFollower:
    def __init__(
        self,
        path: str,
        report: ReadReport,
        say: Say,
        max_record: int,
        fmt: str | None = None,
        label: str | None = None,
        name: str | None = None,
        from_end: bool = False,
    ) -> None:
        self.path = path
        self.label = label or path  # what events point at
        self._name = name or os.path.abspath(path)  # the key of its checkpoint position
        self.report = report
        self._say = say
        self.max_record = max_record
        self._fmt = fmt
        self._from_end = from_end
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None
        self._read = 0  # file offset read up to, a partial last line included
        self._source: Source | None = None
        self._feeder: LineFeeder | None = None
        self._idle = (0, 0)  # (offset, line) where the decoder last held nothing back
        self._resume: dict[str, Any] | None = None
        self._failed: tuple[int, int] | None = None  # a file that cannot be read, until replaced
        self._pending_resume: dict[str, Any] | None = None  # for the file just opened
        self._head: tuple[int, str] | None = None  # (size, digest) of the file's first bytes
        self._waiting_said = False
        self._problem: str | None = None  # the last problem reported, until it goes away

    @property
    def name(self) -> str:
        return self._name

    @property
    def _file(self) -> int:
        if self._fd is None:
            raise RuntimeError("no file is open")  # a bug in the caller, not an input problem
        return self._fd

    @property
    def finished(self) -> bool:
        return False  # a followed file may always grow

    # --- reading ---------------------------------------------------------------------------

    def poll(self, budget: int) -> list[Event]:
        events: list[Event] = []
        if self._fd is None and not self._open():
            return events
        if self._feeder is None and not self._start():
            return self._check_replaced(events) if self._fd is not None else events
        while budget > 0 and self._fd is not None:
            chunk = os.read(self._fd, min(CHUNK, budget))
            if not chunk:
                return self._check_replaced(events)
            self._read += len(chunk)
            budget -= len(chunk)
            if self._feeder is not None:
                events += self._feeder.push(chunk)
        return events  # the budget is spent: there is more to read, no need to look around

    def _open(self) -> bool:
        resume, self._resume = self._resume, None
        try:
            # O_NONBLOCK: opening a named pipe with no writer would block until a signal no
            # longer stops watch; a regular file reads the same either way.
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            if resume is not None and self._reopen_rotated(resume, None):
                return True
            self._resume = resume  # still to be applied when the file appears
            if not self._waiting_said:
                self._say(f"waiting for {self.path} to appear")
                self._waiting_said = True
            return False
        except OSError as exc:
            self._fail(None, f"{self.path}: cannot read ({exc.strerror or exc})")
            return False
        info = os.fstat(fd)
        ident = (info.st_dev, info.st_ino)
        if ident == self._failed:
            os.close(fd)
            return False
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            self._fail(
                ident,
                f"{self.path}: not a regular file; a named pipe is read as a stream when it "
                "is there as watch starts, or pipe it to standard input",
            )
            return False
        self._waiting_said = False
        self._problem = None
        if resume is not None and not _same_file(fd, ident, resume):
            if self._reopen_rotated(resume, fd):
                return True
            self._say(
                f"{self.path} was replaced while tidewaiter was stopped and the old file is gone: "
                f"what followed its line {resume['line']} was not read"
            )
            resume = None
        elif resume is not None and info.st_size < resume["offset"]:
            self._say(f"{self.path} was truncated while tidewaiter was stopped; reading from 0")
            resume = None
        self._attach(fd, ident, resume)
        return True

    def _reopen_rotated(self, resume: dict[str, Any], fd: int | None) -> bool:
        """Finish a file that was rotated while tidewaiter was stopped, found by its inode."""
        found = find_by_identity(self.path, resume["dev"], resume["ino"])
        if found is None:
            return False
        try:
            old = os.open(found, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        if not _same_file(old, (resume["dev"], resume["ino"]), resume):
            os.close(old)
            return False
        if fd is not None:
            os.close(fd)
        self._say(f"{self.path} was rotated while tidewaiter was stopped; finishing {found} first")
        self._attach(old, (resume["dev"], resume["ino"]), resume)
        return True

    def _attach(
        self, fd: int, ident: tuple[int, int] | None, resume: dict[str, Any] | None
    ) -> None:
        self._fd, self._ident, self._read = fd, ident, 0
        self._source = self._feeder = None
        self._head = None
        self._idle = (0, 0)
        self._pending_resume = resume

    def _start(self) -> bool:
        """Recognise the format from the head of the file and place the reader: at the resumed
        position, at the end (--from-end, first sight only), or at 0."""
        fd = self._file
        if self._source is None:
            head = self._head_bytes(fd)
            resume = self._pending_resume
            try:
                known = _known_source(resume.get("source")) if resume is not None else None
                self._source = known or identify(
                    head, self.path, self._fmt, final=False, limit=self.max_record
                )
            except (UnknownFormat, NotFollowable) as exc:
                self._fail(self._ident, str(exc))
                return False
            if self._source is None:
                return False
        self.report.files[self.label] = self._source.name
        resume, self._pending_resume = self._pending_resume, None
        if resume is not None:
            self._feeder = self._resumed(self._source, resume)
        else:
            offset, line = self._end_of_lines() if self._from_end else (0, 0)
            self._feeder = LineFeeder(
                self._source, self.label, self.report, self.max_record, offset, line
            )
        self._from_end = False  # only for a file seen for the first time
        self._read = self._feeder.offset
        os.lseek(fd, self._read, os.SEEK_SET)
        self._idle = (self._feeder.offset, self._feeder.line)
        return True

    def _head_bytes(self, fd: int) -> bytes:
        """The sniff window, or the whole first line when it is longer (up to just past
        max-record, where identify gives up on it)."""
        head = os.pread(fd, SNIFF_BYTES, 0)
        while b"\n" not in head and len(head) <= self.max_record:
            more = os.pread(fd, min(CHUNK, self.max_record + 1 - len(head)), len(head))
            if not more:
                break
            head += more
        return head

    def _resumed(self, source: Source, resume: dict[str, Any]) -> LineFeeder:
        fd = self._file
        idle_offset, idle_line = resume.get("idle_offset", 0), resume.get("idle_line", 0)
        feeder = LineFeeder(
            source, self.label, self.report, self.max_record, idle_offset, idle_line
        )
        frames = [(int(a), int(b)) for a, b in resume.get("frames", [])]
        for start, end in frames:
            if start < idle_offset:
                prime(feeder, os.pread(fd, min(end, idle_offset) - start, start))
        at = idle_offset
        while at < resume["offset"]:
            data = os.pread(fd, min(CHUNK, resume["offset"] - at), at)
            if not data:
                break
            at += len(data)
            feeder.replay(data)
        replayed = list(feeder.frames)
        feeder.align(resume["offset"], resume["line"])
        feeder.frames.clear()
        feeder.frames.extend(frames)
        feeder.frames.extend(f for f in replayed if f not in frames)
        return feeder

    def _end_of_lines(self) -> tuple[int, int]:
        """Offset and number of the last complete line, counting the lines passed over."""
        fd = self._file
        offset = lines = scan = 0
        while data := os.pread(fd, CHUNK, scan):
            lines += data.count(b"\n")
            cut = data.rfind(b"\n")
            if cut >= 0:
                offset = scan + cut + 1
            scan += len(data)
        return offset, lines

    def _check_replaced(self, events: list[Event]) -> list[Event]:
        """At the end of the file: has the name moved on to another file, or was it cut?"""
        try:
            now = os.stat(self.path)
        except OSError:
            return events  # rotated away and not recreated yet: the old file may still grow
        if (now.st_dev, now.st_ino) != self._ident:
            events += self._drain()
            events += self._finish()
            self._close_fd()
            if self._open() and self._start():
                events += self.poll(CHUNK)
            return events
        size = os.fstat(self._file).st_size
        if self._feeder is not None and self._feeder.offset == size < self._read:
            # Only an unfinished last line was cut (a journal append the disk did not take):
            # what was read whole stands.
            self._feeder.align(self._feeder.offset, self._feeder.line)
            self._read = size
            os.lseek(self._file, size, os.SEEK_SET)
        elif size < self._read:
            events += self._finish()
            self._say(f"{self.path} was truncated; reading it again from the start")
            fd, ident = self._file, self._ident
            self._attach(fd, ident, None)
            os.lseek(fd, 0, os.SEEK_SET)
        return events

    def _drain(self) -> list[Event]:
        """What the writer added to a rotated file before we noticed the rotation."""
        events: list[Event] = []
        while self._fd is not None and self._feeder is not None:
            chunk = os.read(self._fd, CHUNK)
            if not chunk:
                break
            self._read += len(chunk)
            events += self._feeder.push(chunk)
        return events

    def _finish(self) -> list[Event]:
        if self._feeder is not None:
            return self._feeder.finish()
        if self._fd is not None and self._source is None and self._read == 0:
            # rotated away before we could recognise it: try with whatever it holds
            head = self._head_bytes(self._fd)
            if head.strip():
                try:
                    source = identify(head, self.path, self._fmt, final=True)
                except (UnknownFormat, NotFollowable) as exc:
                    self._say(str(exc))
                    return []
                if source is None:
                    return []
                feeder = LineFeeder(source, self.label, self.report, self.max_record)
                return feeder.push(self._read_all()) + feeder.finish()
        return []

    def _read_all(self) -> bytes:
        fd = self._file
        os.lseek(fd, 0, os.SEEK_SET)
        parts: list[bytes] = []
        while chunk := os.read(fd, CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def _fail(self, ident: tuple[int, int] | None, message: str) -> None:
        if message != self._problem:  # said once, not at every poll while it lasts
            self._say(message)
            self._problem = message
        self._failed = ident
        self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = self._ident = self._source = self._feeder = None
        self._pending_resume = None
        self._read = 0

    # --- checkpoints -----------------------------------------------------------------------

    def position(self) -> dict[str, Any] | None:
        if self._fd is None or self._ident is None:
            return self._resume  # not opened yet: keep what the last checkpoint said
        feeder = self._feeder
        if feeder is None:
            if self._pending_resume is not None:
                return self._pending_resume
            dev, ino = self._ident
            return {"dev": dev, "ino": ino, "offset": 0, "line": 0, "source": None}
        if _holds_nothing(feeder):
            self._idle = (feeder.offset, feeder.line)
        dev, ino = self._ident
        position: dict[str, Any] = {
            "dev": dev,
            "ino": ino,
            "head": self._fingerprint(feeder.offset),
            "offset": feeder.offset,
            "line": feeder.line,
            "idle_offset": self._idle[0],
            "idle_line": self._idle[1],
            "source": feeder.source.name,
        }
        if feeder.frames:
            position["frames"] = [list(frame) for frame in feeder.frames]
        return position

    def _fingerprint(self, offset: int) -> str:
        """A digest of the first bytes read: an inode number can be reused by a new file while
        tidewaiter is stopped, the content it started with cannot."""
        size = min(offset, HEAD)
        if self._head is None or self._head[0] < size:
            self._head = (size, _digest(os.pread(self._file, size, 0)))
        return f"{self._head[0]}:{self._head[1]}"

    def restore(self, position: dict[str, Any]) -> None:
        self._resume = position

    def behind(self) -> int:
        if self._fd is None:
            return 0
        waiting = os.fstat(self._fd).st_size - self._read
        try:
            now = os.stat(self.path)
        except OSError:
            return max(waiting, 0)
        if (now.st_dev, now.st_ino) != self._ident:
            waiting += now.st_size  # the next file is already there
        return max(waiting, 0)

    def close(self) -> None:
        self._close_fd()


def _same_file(fd: int, ident: tuple[int, int], position: dict[str, Any]) -> bool:
    if (position["dev"], position["ino"]) != ident:
        return False
    size, _, digest = str(position.get("head", "")).partition(":")
    if not size.isdigit():
        return True  # a position without a fingerprint: the identity has to do
    return _digest(os.pread(fd, int(size), 0)) == digest


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _known_source(name: str | None) -> Source | None:
    try:
        return get(name) if name else None
    except UnknownFormat:
        return None


def _holds_nothing(feeder: LineFeeder) -> bool:
    """Whether the decoder would give nothing more if the stream ended here: then a fresh
    decoder started at this line reads what follows the same way. Probed on a copy."""
    probe = copy.deepcopy(feeder.decoder)
    try:
        return not list(probe.flush())
    except Exception:
        return False


def find_by_identity(path: str, dev: int, ino: int) -> str | None:
    """A file with this identity beside ``path`` (or beside the file it links to): where a
    rotation moved it."""
    folders = {os.path.dirname(os.path.abspath(path)), os.path.dirname(os.path.realpath(path))}
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.inode() == ino and entry.is_file() and entry.stat().st_dev == dev:
                    return entry.path
            except OSError:
                continue
    return None
