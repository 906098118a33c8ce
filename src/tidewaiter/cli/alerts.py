"""`tidewaiter alerts`: the alerts kept in the store; `--suppressed` lists the held-back ones."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
from rich.console import Console
from rich.text import Text

from tidewaiter.cli.options import add_store_option, with_store
from tidewaiter.printable import printable
from tidewaiter.sinks.console import render
from tidewaiter.store import Store


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "alerts",
        help="list the alerts kept in the store",
        description="List the alerts kept in the store (by detect --db and watch), most severe "
        "first; --suppressed lists the findings a benign profile or suppression held back, "
        "with the reason.",
    )
    parser.add_argument(
        "--suppressed",
        action="store_true",
        help="list the findings held back by a profile or suppression",
    )
    parser.add_argument("--json", action="store_true", help="JSON lines (OCSF) on stdout")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    add_store_option(parser)
    parser.set_defaults(run=with_store(_run, read_only=True))


def _run(store: Store, args: argparse.Namespace) -> int:
    alerts = store.alerts(suppressed=args.suppressed, limit=args.limit)
    if args.json:
        for alert in alerts:
            sys.stdout.buffer.write(orjson.dumps(alert) + b"\n")
        return 0
    console = Console()
    if not alerts:
        what = "held-back findings" if args.suppressed else "alerts"
        console.print(Text(f"No {what} in the store.", style="green"))
        return 0
    render(console, alerts)
    if args.suppressed:
        for alert in alerts:
            console.print(
                printable(f"{alert['finding_info']['uid'][:12]}: {alert.get('status_detail', '')}"),
                markup=False,
            )
    return 0
