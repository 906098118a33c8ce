"""JSON lines: one OCSF alert per line, to a file or standard output."""

from __future__ import annotations

import os
from typing import IO, Any

import orjson


class JsonLinesSink:
    def __init__(self, stream: IO[bytes], sync: bool = False) -> None:
        self._stream = stream
        self._sync = sync  # fsync after each alert: for files that must survive a crash

    @classmethod
    def to_path(cls, path: str) -> JsonLinesSink:
        return cls(open(path, "ab"), sync=True)

    def write(self, alert: dict[str, Any]) -> None:
        self._stream.write(orjson.dumps(alert) + b"\n")
        self._stream.flush()
        if self._sync:
            os.fsync(self._stream.fileno())

    def close(self) -> None:
        if self._sync:
            self._stream.close()
