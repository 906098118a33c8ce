"""`tidewaiter coverage`: which techniques each platform's sources cover, by which analytic,
and whether the last emulation of each passed (from `tidewaiter emulate run` results)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tidewaiter.cli import exits
from tidewaiter.detection.catalog import load as load_catalog
from tidewaiter.emulate import results
from tidewaiter.emulate.coverage import Matrix, build, markdown, technique_name
from tidewaiter.emulate.navigator import layer
from tidewaiter.emulate.scenario import load_all


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "coverage",
        help="the technique, platform and source matrix, with the last emulation results",
        description="Which ATT&CK techniques each platform's sources cover, by which analytic, "
        "and whether the last emulation of each passed; optionally as Markdown or as an ATT&CK "
        "Navigator layer.",
    )
    parser.add_argument("--json", action="store_true", help="the matrix as JSON on stdout")
    parser.add_argument(
        "--results",
        type=Path,
        metavar="FILE",
        help=f"emulation results to read (default {results.default_path()})",
    )
    parser.add_argument(
        "--out", "--markdown", dest="out", type=Path, metavar="FILE",
        help="also write it as Markdown to FILE",
    )  # fmt: skip
    parser.add_argument(
        "--navigator",
        type=Path,
        metavar="FILE",
        help="also write an ATT&CK Navigator layer (format 4.5): covered and proven techniques",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = args.results or results.default_path()
    try:
        stored = results.load(path)
    except ValueError as exc:
        print(f"tidewaiter: {exc}", file=sys.stderr)
        return exits.USAGE
    matrix = build(load_all(), stored)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(msgspec.to_builtins(matrix)) + b"\n")
    else:
        render(Console(), matrix)
    if not stored.runs:
        print(
            f"no emulation results in {path}: run `tidewaiter emulate run all --write all` "
            "(and `--live` on a Linux host) first",
            file=sys.stderr,
        )
    outputs = []
    if args.out:
        outputs.append((args.out, markdown(matrix)))
    if args.navigator:
        outputs.append((args.navigator, json.dumps(layer(matrix, load_catalog()), indent=1)))
    for path, text in outputs:
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"tidewaiter: cannot write {path}: {exc}", file=sys.stderr)
            return exits.USAGE
    return exits.OK


def render(console: Console, matrix: Matrix) -> None:
    """One table a platform, a row a source (the Markdown has a row a technique: it is not
    bound to a terminal's width); analytics without their tw-archive- prefix."""
    for table in matrix.tables:
        view = Table(title=f"coverage: {table.platform}", title_justify="left")
        view.add_column("source", no_wrap=True)
        for technique in table.rows:
            view.add_column(technique, no_wrap=True)
        for source in table.sources:
            row = [Text(source)]
            for cells in table.rows.values():
                text = cells[source].text(short=True) if source in cells else "—"
                style = "red" if "✗" in text else "green" if "✓" in text else "dim"
                row.append(Text(text, style=style))
            view.add_row(*row)
        console.print(view)
        names = "; ".join(f"{t} {technique_name(t)}" for t in table.rows)
        console.print(
            Text(f"{names}. ✓ passed, ✗ failed, · not run, * a known gap open.", style="dim")
        )
    if matrix.benign:
        view = Table(title="benign scenarios (nothing above low)", title_justify="left")
        view.add_column("scenario")
        view.add_column("result")
        for name, status in matrix.benign:
            view.add_row(Text(name), Text(status))
        console.print(view)
    if matrix.gaps:
        view = Table(title="known detection gaps", title_justify="left")
        for column in ("scenario", "where", "gap"):
            view.add_column(column)
        for name, where, gap in matrix.gaps:
            view.add_row(Text(name), Text(where), Text(gap))
        console.print(view)
