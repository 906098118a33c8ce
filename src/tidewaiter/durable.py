"""Appending whole lines to a file, or nothing: the one place short writes and torn tails are
handled for the journal and the spools.

``os.write`` may write less than it was given (a full disk, a file size limit) and raise only
on the next call; a caller that ignores the count acknowledges bytes that are not there and
leaves a torn line that corrupts the next one. ``append`` completes a short write or, when the
rest cannot be written, cuts the file back to where the append began and raises, so the file
always ends on a whole line. ``cut_torn_tail`` does the same on open, for a crash mid-write.
"""

from __future__ import annotations

import contextlib
import errno
import os

_TAIL_SCAN = 1 << 16


def write_all(fd: int, data: bytes | bytearray) -> None:
    """Write every byte, however many calls it takes; OSError when the rest cannot go."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # not expected from a regular file, but never loop on it
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def append(fd: int, data: bytes | bytearray, end: int, sync: bool = False) -> None:
    """Append ``data`` (and fsync it with ``sync``) to a file opened with O_APPEND whose size
    is ``end``: all of it, or the file is cut back to ``end`` and OSError says why."""
    try:
        write_all(fd, data)
        if sync:
            os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):  # else the torn tail is cut on the next open
            os.ftruncate(fd, end)
        raise


def cut_torn_tail(fd: int) -> int:
    """Cut a last line that has no newline (an append interrupted by a crash); the bytes cut."""
    size = os.fstat(fd).st_size
    at = size
    while at > 0:
        start = max(0, at - _TAIL_SCAN)
        newline = os.pread(fd, at - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        at = start
    else:
        keep = 0
    if keep < size:
        os.ftruncate(fd, keep)
    return size - keep
