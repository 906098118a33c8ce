"""Progress for batch commands, on a terminal only: on stderr, transient, and silent when output
goes to a file or a pipe (CI logs, `| jq`), or with --quiet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from tidewaiter.sources import ReadReport


def _stderr() -> Console:
    return Console(stderr=True)


@contextmanager
def reading(label: str, quiet: bool = False) -> Iterator[Callable[[ReadReport], None]]:
    """A callback for detect's progress: records and events read so far."""
    console = _stderr()
    if quiet or not console.is_terminal:
        yield lambda report: None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[records]:,} records, {task.fields[events]:,} events"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, records=0, events=0)
        yield lambda report: bar.update(task, records=report.records, events=report.events)


@contextmanager
def counting(label: str, total: int, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """A callback for one finished item of a known number (a scenario), with its name."""
    console = _stderr()
    if quiet or not console.is_terminal:
        yield lambda name: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total, last="")
        yield lambda name: bar.update(task, advance=1, last=name)
