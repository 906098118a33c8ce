"""JSON lines: one OCSF alert per line, to a file or standard output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import orjson

from tidewaiter.alerts import delivery_key

# With dedupe, the uids of the alerts in the last TAIL_BYTES of the file are remembered (an
# alert written again after a crash is a recent one), and at most REMEMBERED uids are kept.
TAIL_BYTES = 32 << 20
REMEMBERED = 100_000


class JsonLinesSink:
    def __init__(
        self, stream: IO[bytes], sync: bool = False, known: dict[str, None] | None = None
    ) -> None:
        self._stream = stream
        self._sync = sync  # fsync after each alert: for files that must survive a crash
        self._known = known  # uids already in the file, oldest first: not written again

    @classmethod
    def to_path(cls, path: str, sync: bool = True, dedupe: bool = False) -> JsonLinesSink:
        known = _recent_uids(Path(path)) if dedupe else None
        return cls(open(path, "ab"), sync=sync, known=known)

    def write(self, alert: dict[str, Any]) -> None:
        if self._known is not None:
            uid = delivery_key(alert)
            if uid in self._known:
                return
            self._known[uid] = None
            if len(self._known) > REMEMBERED:
                del self._known[next(iter(self._known))]
        self._stream.write(orjson.dumps(alert) + b"\n")
        self._stream.flush()
        if self._sync:
            os.fsync(self._stream.fileno())

    def commit(self) -> None:
        """Make every alert written so far durable (one fsync for a batch)."""
        self._stream.flush()
        os.fsync(self._stream.fileno())

    def close(self) -> None:
        if self._sync or self._known is not None:
            self._stream.close()


def _recent_uids(path: Path) -> dict[str, None]:
    """The finding uids at the end of an alert file, after cutting off a line torn by a crash
    (never committed, so it will be written again)."""
    try:
        with path.open("rb+") as stream:
            size = stream.seek(0, os.SEEK_END)
            start = max(0, size - TAIL_BYTES)
            stream.seek(start)
            tail = stream.read()
            if tail and not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n") + 1
                if _uid(tail[cut:]) is None:
                    stream.truncate(start + cut)
                    tail = tail[:cut]
                else:  # a whole alert that only lacks its newline
                    stream.write(b"\n")
    except FileNotFoundError:
        return {}
    lines = tail.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first line may start before the tail
    uids = (_uid(line) for line in lines[-REMEMBERED:])
    return {uid: None for uid in uids if uid is not None}


def _uid(line: bytes) -> str | None:
    try:
        alert = orjson.loads(line)
        uid = alert["finding_info"]["uid"]
        return delivery_key(alert) if isinstance(uid, str) else None
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
