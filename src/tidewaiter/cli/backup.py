"""`tidewaiter backup FILE`: a consistent copy of the store, also while watch holds it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tidewaiter.cli.options import add_store_option, with_store
from tidewaiter.printable import printable
from tidewaiter.store import Store, StoreError


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "backup",
        help="copy the store to a new DuckDB file, consistently, also while watch runs",
        description="Copy the whole store (alerts, suppressions, baselines, checkpoints, audit "
        "log) into a new DuckDB file in one transaction. While a watch holds the store, the copy "
        "is made by that watch, so FILE must be a path it can write.",
    )
    parser.add_argument("target", metavar="FILE", help="the new DuckDB file")
    add_store_option(parser)
    parser.set_defaults(run=with_store(_run))


def _run(store: Store, args: argparse.Namespace) -> int:
    try:
        store.backup(args.target)
    except StoreError as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return 2
    print(f"backed up {store.path} to {args.target}")
    return 0
