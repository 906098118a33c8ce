"""What a watch is doing, on standard error.

On a terminal: one status line kept at the bottom (rich), messages printed above it. Elsewhere
(a service, a pipe): a ``status`` event every ``interval`` seconds and at the end, so a log keeps
the figures without being flooded. Messages go through ``logging`` (``logs``), as text lines
starting "tidewaiter:" or as JSON objects with their fields.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from rich.console import Console
from rich.live import Live
from rich.text import Text

from tidewaiter.watch import logs


class Say(Protocol):
    """A message, with the event it reports and that event's fields (for JSON logs)."""

    def __call__(self, message: str, event: str = ..., level: int = ..., **fields: Any) -> None: ...


@dataclass
class Figures:
    events: int = 0
    containers: int = 0
    alerts: int = 0
    skipped: int = 0
    behind: int = 0  # bytes arrived and not yet read
    open_episodes: int = 0
    notes: list[str] = field(default_factory=list)  # sinks queueing or failing, HTTP refusals


class Status:
    def __init__(self, console: Console, interval: float = 60.0, log_format: str = "text") -> None:
        self.console = console
        self.interval = interval
        self.log = logs.configure(console, log_format)
        self._live: Live | None = None
        if console.is_terminal:
            self._live = Live(Text(""), console=console, refresh_per_second=4, transient=True)
            self._live.start()
        self._last = (time.monotonic(), 0)  # when the rate was last measured, events then
        self._rate = 0.0
        self._printed = time.monotonic()

    def say(
        self, message: str, event: str = "message", level: int = logging.INFO, **fields: Any
    ) -> None:
        self.log.log(level, "%s", message, extra={"event": event, "fields": fields})

    def update(self, figures: Figures, force: bool = False) -> None:
        now = time.monotonic()
        then, events_then = self._last
        if now - then >= 1.0:
            self._rate = (figures.events - events_then) / (now - then)
            self._last = (now, figures.events)
        line = self.line(figures)
        if self._live is not None:
            self._live.update(Text(line, style="dim", no_wrap=True, overflow="ellipsis"))
        elif force or (self.interval > 0 and now - self._printed >= self.interval):
            self._printed = now
            figures_now = asdict(figures)
            figures_now["events_per_second"] = round(self._rate, 1)
            self.say(line, event="status", **figures_now)

    def line(self, figures: Figures) -> str:
        """Most telling first, for a narrow terminal."""
        text = (
            f"{figures.alerts:,} alerts, {self._rate:,.0f} events/s, "
            f"{figures.containers:,} containers tracked, {figures.skipped:,} records skipped, "
            f"{figures.open_episodes:,} open, {figures.events:,} events"
        )
        if figures.behind:
            text += f", {_size(figures.behind)} behind"
        for note in figures.notes:
            text += f"; {note}"
        return text

    def close_quietly(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def close(self, figures: Figures) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self.update(figures, force=True)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{count} bytes"
