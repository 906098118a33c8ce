"""Records received over HTTP, on disk before they are acknowledged.

Falco's http_output has no delivery ids and does not resend, so the only way not to lose a
record acknowledged just before a crash is to write it down first: each request's records are
appended to the journal and fsynced, and only then answered 200. The runner follows the journal
like any other file, so its position goes into checkpoints with the rest.

The journal is bounded. Past half its budget it is rotated (``journal`` → ``journal.1``) once the
reader has left the previous rotated segment and a checkpoint says so (``retire``); when both
segments together reach the budget, requests are refused (503) rather than dropped silently.

A write the disk cannot take (full, an I/O error) is cut back to the last whole line and raised,
so the request is answered 500, never 200; a line torn by a crash mid-write is cut on open (it was
never acknowledged).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from tidewaiter import durable


class Journal:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.rotated = path.with_name(path.name + ".1")
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.torn = durable.cut_torn_tail(self._fd)  # bytes of an unacknowledged line cut
        self._size = os.fstat(self._fd).st_size
        self._old = _identity_size(self.rotated)  # (dev, ino, size) of journal.1, if any

    def append(self, data: bytes | bytearray) -> bool:
        """Write and fsync whole lines; False when the budget is spent. OSError when the disk
        does not take them all: then none of them is in the journal."""
        with self._lock:
            old_size = self._old[2] if self._old else 0
            if self._size + old_size + len(data) > self.max_bytes:
                return False
            if self._size >= self.max_bytes // 2 and self._old is None:
                self._rotate()
            durable.append(self._fd, data, self._size, sync=True)
            self._size += len(data)
        return True

    def _rotate(self) -> None:
        os.replace(self.path, self.rotated)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        _sync_folder(self.path.parent)
        self._old = _identity_size(self.rotated)
        self._size = 0

    def retire(self, reader: tuple[int, int] | None) -> None:
        """After a checkpoint: the rotated segment goes once the saved position is past it."""
        with self._lock:
            if self._old is None or reader is None or reader == self._old[:2]:
                return
            self.rotated.unlink(missing_ok=True)
            self._old = None

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


def _identity_size(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino, info.st_size


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
