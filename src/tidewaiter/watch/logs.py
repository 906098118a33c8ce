"""Watch's messages through the standard ``logging`` module, one event per line.

``text`` is what a person reads ("tidewaiter: ..."); ``json`` is one object per line for a log
pipeline: ``time``, ``level``, ``event`` (what happened: ``message``, ``status``, ``skipped``,
``alert``, ...), ``message``, and the event's own fields (``file``, ``where``, ``reason``,
``sink``, ``uid``, the status figures). JSON is the default when standard error is not a terminal.
Text from telemetry is made printable in text and escaped by the encoder in JSON.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from rich.console import Console
from rich.text import Text

from tidewaiter.printable import printable

LOGGER_NAME = "tidewaiter.watch"
FORMATS = ("json", "text")


def default_format(stream: TextIO) -> str:
    try:
        return "text" if stream.isatty() else "json"
    except ValueError:  # a closed stream
        return "json"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        entry: dict[str, Any] = {
            "time": when.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "message"),
            "message": record.getMessage(),
        }
        for key, value in getattr(record, "fields", {}).items():
            entry.setdefault(key, value)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"tidewaiter: {printable(record.getMessage())}"


class ConsoleHandler(logging.Handler):
    """Writes through the rich console, so a terminal's status line stays below the messages."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self._write = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            with self._write:
                self.console.print(Text(line), soft_wrap=True, markup=False, highlight=False)
        except Exception:
            self.handleError(record)


def configure(console: Console, fmt: str) -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    handler = ConsoleHandler(console)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
