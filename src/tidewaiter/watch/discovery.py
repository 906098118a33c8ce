"""Files that appear in a watched folder or glob after `watch` started.

The folders and globs on the command line are expanded again every few seconds, and a new file is
watched as those found at start were: followed from its first line, or read once when compressed
or a zip's member. A node makes new files all the time: a restarted sensor pod gets a new
container log (``/var/log/pods/.../1.log``), an export rotates to a new file.

Rotation also makes copies of what is already watched, and reading those again would replay
every record: the followed file renamed (``tetragon.log`` to ``tetragon.log.1``, the same inode),
compressed (kubelet's ``0.log.20261207-050000.gz``, logrotate's ``.1.gz``) or copied before it is
truncated (``copytruncate``). Each watched file's inode and first line are recorded while it is
there; a new file with a known inode or first line is named once as a copy and not read. A new
file whose first line is not written yet cannot be a finished copy, so it is followed.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from tidewaiter.sources.opening import expand, is_pattern, open_input, read_errors, split_member
from tidewaiter.watch.inputs import Input

RESCAN_SECONDS = 5.0
HEAD_BYTES = 4096  # the first line, or this much of it, tells a copy from a new file
REMEMBERED = 4096  # inodes and first lines of watched files kept to recognise their copies
K = TypeVar("K")


class Discovery:
    def __init__(
        self,
        paths: Sequence[str],
        make_input: Callable[[str], Input],
        say: Callable[[str], None],
        watched: Iterable[str],
        interval: float = RESCAN_SECONDS,
    ) -> None:
        # Only folders and globs can gain files; a named file is followed by name already.
        self.patterns = [p for p in paths if os.path.isdir(p) or is_pattern(p)]
        self._make_input = make_input
        self._say = say
        self._interval = interval
        self._next = 0.0
        self._known: set[str] = set(watched)
        self._inodes: OrderedDict[tuple[int, int], None] = OrderedDict()
        self._heads: OrderedDict[bytes, None] = OrderedDict()
        if self.patterns:  # before anything rotates: a rename at once is still known
            for path in self._known:
                self._remember(path)

    @property
    def active(self) -> bool:
        """Whether anything can still appear: the run does not end while it can."""
        return bool(self.patterns)

    def poll(self, now: float) -> list[Input]:
        """New inputs, at most once every ``interval`` seconds (``now``: a monotonic clock)."""
        if not self.patterns or now < self._next:
            return []
        self._next = now + self._interval
        for path in sorted(self._known):
            self._remember(path)
        found: list[Input] = []
        for path in expand(self.patterns).files:
            if path in self._known:
                continue
            self._known.add(path)
            copy = self._copy_of(path)
            if copy is not None:
                self._say(f"{path} appeared: {copy}, so it is not read again")
                continue
            self._say(f"{path} appeared: watching it from its first line")
            found.append(self._make_input(path))
            self._remember(path)
        return found

    def _remember(self, path: str) -> None:
        """Record a watched file's inode and first line while it is still there."""
        identity = _identity(path)
        if identity is None or identity in self._inodes:
            return
        head = _first_line(path)
        if head is None:
            return  # nothing whole to recognise it by yet: asked again at the next scan
        _add(self._inodes, identity)
        _add(self._heads, head)

    def _copy_of(self, path: str) -> str | None:
        identity = _identity(path)
        if identity is not None and identity in self._inodes:
            return "the same file as one already watched (renamed by rotation)"
        head = _first_line(path)
        if head is not None and head in self._heads:
            return "a rotated copy of a file already watched (the same first record)"
        return None


def _identity(path: str) -> tuple[int, int] | None:
    """A regular file's (device, inode); None for anything else (a pipe is never opened here:
    opening one without a writer would block the loop)."""
    if split_member(path) is not None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else None


def _first_line(path: str) -> bytes | None:
    """A digest of the file's first line (decompressed), or None before one is written."""
    if split_member(path) is None and not os.path.isfile(path):
        return None
    try:
        opened = open_input(path)
    except OSError:
        return None
    try:
        head = opened.head[:HEAD_BYTES]
    finally:
        try:
            opened.stream.close()
        except read_errors():
            pass
    end = head.find(b"\n")
    if end < 0 and len(head) < HEAD_BYTES:
        return None
    line = head if end < 0 else head[:end]
    return hashlib.blake2b(line, digest_size=16).digest() if line.strip() else None


def _add(seen: OrderedDict[K, None], key: K) -> None:
    seen[key] = None
    if len(seen) > REMEMBERED:
        seen.popitem(last=False)
