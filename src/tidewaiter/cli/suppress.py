"""`tidewaiter suppress add|list|remove`: suppressions kept in the store, with reason, author
and expiry. A suppression must say why and who, and should say until when."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from typing import Any

import msgspec
import orjson
from rich.console import Console
from rich.text import Text

from tidewaiter.cli import exits
from tidewaiter.cli.options import add_store_option, with_store
from tidewaiter.detection.suppress import Match, Suppression, match_problem
from tidewaiter.layout import print_records
from tidewaiter.printable import printable
from tidewaiter.store import Store

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "suppress",
        help="manage suppressions kept in the store",
        description="Suppressions hold back findings a person judged benign, each with a "
        "reason, an author and an optional expiry; detect --db and watch apply them.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="add (or replace) a suppression",
        description="Add a suppression (or replace the one with that id). Every field given "
        "must match; an unknown analytic or a malformed CIDR is refused.",
    )
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
    listing = actions.add_parser(
        "list",
        help="list the suppressions and their state",
        description="List the stored suppressions, with what each matches and whether it "
        "has expired.",
    )
    listing.add_argument("--json", action="store_true", help="as JSON lines on stdout")
    remove = actions.add_parser(
        "remove", help="remove a suppression", description="Remove the suppression ID."
    )
    remove.add_argument("id")
    add.set_defaults(run=with_store(_run))
    for sub in (listing, remove):
        sub.set_defaults(run=with_store(_run, read_only=True))
    for sub in (add, listing, remove):
        add_store_option(sub)


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
        return exits.NOT_FOUND
    _list(store, args.json)
    return exits.OK


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
        return exits.USAGE
    problem = match_problem(match)
    if problem is not None:
        print(f"tidewaiter: {printable(problem)}", file=sys.stderr)
        return exits.USAGE
    store.add_suppression(Suppression(args.id, match, args.reason, args.author, args.expires))
    print(f"added suppression {args.id}")
    return 0


def _list(store: Store, as_json: bool = False) -> None:
    today = date.today()
    rules = store.suppressions()
    if as_json:
        for rule in rules:
            document = {**msgspec.to_builtins(rule), "expired": rule.expired(today)}
            sys.stdout.buffer.write(orjson.dumps(document) + b"\n")
        return
    rows: list[list[str | Text]] = []
    for rule in rules:
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
        rows.append(
            [
                rule.id,
                printable(", ".join(f"{k}={v}" for k, v in fields.items())),
                printable(rule.reason),
                printable(rule.author),
                str(rule.expires or "never"),
                state,
            ]
        )
    columns = ("id", "match", "reason", "author", "expires", "state")
    print_records(Console(), "suppressions", columns, rows)
