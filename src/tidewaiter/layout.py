"""Tables that never cut a token: a table where the cells fit the terminal whole, otherwise one
block of ``column: value`` lines per row, which the terminal wraps between words.

Ids, workload keys, destinations and scenario names are what an analyst copies from the screen
into the next command; a table squeezed into 80 columns folds or ellipsises them, so below the
width the whole table needs, the narrow layout takes over.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

Cell = str | Text
_BORDERS = 3  # a cell's padding and its share of the rules


def fits(console: Console, columns: Sequence[str], rows: Sequence[Sequence[Cell]]) -> bool:
    widths = [len(c) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(
                widths[i], max((len(line) for line in str(cell).splitlines()), default=0)
            )
    return sum(widths) + _BORDERS * len(columns) + 1 <= console.width


def print_records(
    console: Console,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    styles: Sequence[str] = (),
) -> None:
    """Rows of cells (plain strings are shown as they are, never parsed as markup)."""
    if fits(console, columns, rows):
        table = Table(title=title, title_justify="left")
        for i, column in enumerate(columns):
            table.add_column(column, no_wrap=True, style=styles[i] if i < len(styles) else None)
        for row in rows:
            table.add_row(*(c if isinstance(c, Text) else Text(c) for c in row))
        console.print(table)
        return
    if title:
        console.print(Text(title, style="bold"), soft_wrap=True)
    for row in rows:
        head = row[0] if isinstance(row[0], Text) else Text(row[0])
        console.print(Text.assemble("- ", head), soft_wrap=True)
        for column, cell in zip(columns[1:], row[1:], strict=True):
            value = cell if isinstance(cell, Text) else Text(cell)
            console.print(Text.assemble(f"  {column}: ", value), soft_wrap=True)
