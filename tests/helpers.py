"""Small helpers the tests share: read a file through tidewaiter's own reader."""

from __future__ import annotations

from pathlib import Path

from tidewaiter.events import Event
from tidewaiter.sources import ReadReport, open_events


def read(path: Path | str, fmt: str | None = None) -> tuple[list[Event], ReadReport]:
    report = ReadReport()
    events = list(open_events(str(path), report, fmt))
    return events, report
