"""`tidewaiter suppress add|list|remove`: suppressions kept in the store, with reason, author
and expiry. A suppression must say why and who, and should say until when."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tidewaiter.cli.options import add_store_option, with_store
from tidewaiter.detection.suppress import Match, Suppression
from tidewaiter.printable import printable
from tidewaiter.store import Store

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("suppress", help="manage suppressions kept in the store")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add (or replace) a suppression")
    add.add_argument("id", type=_rule_id, help="a short name for the suppression")
    add.add_argument("--reason", required=True, help="why these findings are benign")
    add.add_argument("--author", required=True, help="who decided it")
    add.add_argument(
        "--expires",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="the day after which it no longer applies",
    )
    add.add_argument("--analytic", help="only this analytic (e.g. tw-archive-exfil)")
    add.add_argument("--workload", help="a glob over the workload key (see baseline show)")
    add.add_argument("--image", help="a glob over the image name or repository")
    add.add_argument(
        "--command",
        dest="command_glob",
        metavar="GLOB",
        help="a glob over an evidence command line",
    )
    add.add_argument("--destination", help="a CIDR or host glob every transfer must match")
    listing = actions.add_parser("list", help="list the suppressions and their state")
    remove = actions.add_parser("remove", help="remove a suppression")
    remove.add_argument("id")
    for sub in (add, listing, remove):
        add_store_option(sub)
        sub.set_defaults(run=with_store(_run))


def _rule_id(text: str) -> str:
    if not _ID.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: use letters, digits, '.', '_' or '-'")
    return text


def _run(store: Store, args: argparse.Namespace) -> int:
    if args.action == "add":
        return _add(store, args)
    if args.action == "remove":
        if store.remove_suppression(args.id):
            print(f"removed suppression {args.id}")
            return 0
        print(f"tidewaiter: no suppression named {printable(args.id)}", file=sys.stderr)
        return 2
    _list(store)
    return 0


def _add(store: Store, args: argparse.Namespace) -> int:
    match = Match(
        analytic=args.analytic,
        workload=args.workload,
        image=args.image,
        command=args.command_glob,
        destination=args.destination,
    )
    if match == Match():
        print(
            "tidewaiter: a suppression needs at least one --analytic, --workload, --image, "
            "--command or --destination",
            file=sys.stderr,
        )
        return 2
    store.add_suppression(Suppression(args.id, match, args.reason, args.author, args.expires))
    print(f"added suppression {args.id}")
    return 0


def _list(store: Store) -> None:
    today = date.today()
    table = Table(title="suppressions", title_justify="left")
    for column in ("id", "match", "reason", "author", "expires", "state"):
        table.add_column(column)
    for rule in store.suppressions():
        fields = {
            k: v
            for k, v in (
                ("analytic", rule.match.analytic),
                ("workload", rule.match.workload),
                ("image", rule.match.image),
                ("command", rule.match.command),
                ("destination", rule.match.destination),
            )
            if v
        }
        state = (
            Text("expired", style="red") if rule.expired(today) else Text("active", style="green")
        )
        table.add_row(
            Text(rule.id),
            Text(printable(", ".join(f"{k}={v}" for k, v in fields.items()))),
            Text(printable(rule.reason)),
            Text(printable(rule.author)),
            Text(str(rule.expires or "never")),
            state,
        )
    Console().print(table)
