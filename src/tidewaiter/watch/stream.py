"""Standard input (``-``): read what has arrived without blocking, until end of input.

A pipe has no position to resume from, so it is not checkpointed: after a restart, what the
producer writes next is read. The pipe itself is the bounded queue: while the engine is busy,
the producer blocks on a full pipe rather than anything being dropped.
"""

from __future__ import annotations

import array
import fcntl
import os
import select
import stat
import termios
from collections.abc import Callable
from typing import Any

from tidewaiter.events import Event
from tidewaiter.sources import UnknownFormat
from tidewaiter.sources.base import ReadReport
from tidewaiter.watch.lines import LineFeeder, NotFollowable, identify

CHUNK = 256 * 1024


class StreamInput:
    def __init__(
        self,
        fd: int,
        label: str,
        report: ReadReport,
        say: Callable[[str], None],
        max_record: int,
        fmt: str | None = None,
        owned: bool = False,
    ) -> None:
        self._fd = fd
        self._owned = owned  # a named pipe watch opened (standard input is the process's)
        self.label = label
        self.report = report
        self._say = say
        self.max_record = max_record
        self._fmt = fmt
        self._head = b""
        self._feeder: LineFeeder | None = None
        self._finished = False

    @property
    def name(self) -> str:
        return self.label

    @property
    def finished(self) -> bool:
        return self._finished

    def poll(self, budget: int) -> list[Event]:
        events: list[Event] = []
        while budget > 0 and not self._finished:
            ready, _, _ = select.select([self._fd], [], [], 0)
            if not ready:
                break
            data = os.read(self._fd, min(CHUNK, budget))
            if not data:
                events += self._end()
                break
            budget -= len(data)
            events += self._take(data)
        return events

    def _take(self, data: bytes) -> list[Event]:
        if self._feeder is not None:
            return self._feeder.push(data)
        self._head += data
        return self._recognise(final=False)

    def _recognise(self, final: bool) -> list[Event]:
        try:
            source = identify(self._head, self.label, self._fmt, final, limit=self.max_record)
        except (UnknownFormat, NotFollowable) as exc:
            self._say(str(exc))
            self._finished = True
            return []
        if source is None:
            return []
        self.report.files[self.label] = source.name
        self._feeder = LineFeeder(source, self.label, self.report, self.max_record)
        head, self._head = self._head, b""
        return self._feeder.push(head)

    def _end(self) -> list[Event]:
        events: list[Event] = []
        if self._feeder is None and self._head.strip():
            events += self._recognise(final=True)
        if self._feeder is not None:
            events += self._feeder.finish()
        self._finished = True
        return events

    def position(self) -> dict[str, Any] | None:
        return None

    def restore(self, position: dict[str, Any]) -> None:
        pass  # a pipe cannot be rewound

    def behind(self) -> int:
        """Bytes waiting in the pipe (0 for what the kernel cannot say)."""
        waiting = array.array("i", [0])
        try:
            fcntl.ioctl(self._fd, termios.FIONREAD, waiting)
        except OSError:
            return 0
        return int(waiting[0]) + (self._feeder.pending if self._feeder is not None else 0)

    def close(self) -> None:
        if self._owned:
            os.close(self._fd)
            self._owned = False


def open_fifo(path: str) -> int | None:
    """A descriptor for reading a named pipe without ever blocking, or None when ``path`` is
    not one. Opened for writing as well, so no writer is not end of input and opening never
    waits for one: writers may come and go while watch runs."""
    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            return None
    except OSError:
        return None
    return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
