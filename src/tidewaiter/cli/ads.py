"""`tidewaiter ads`: each analytic as a Palantir Alerting & Detection Strategy document."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tidewaiter.ads import render_all
from tidewaiter.cli import exits
from tidewaiter.detection.catalog import load
from tidewaiter.emulate import results


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "ads",
        help="render the analytics as Alerting & Detection Strategy documents (Markdown)",
        description="Render ANALYTIC (or every analytic) as a Palantir ADS document: Goal, "
        "Categorization, Strategy Abstract, Technical Context, Blind Spots and Assumptions, "
        "False Positives, Validation, Priority, Response, Additional Resources.",
    )
    parser.add_argument("analytic", nargs="?", metavar="ANALYTIC", help="an analytic uid")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="write one .md file per analytic (and an index)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        metavar="FILE",
        help="also say how each validating scenario's last emulation runs went",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    known = load().analytics
    if args.analytic is not None and args.analytic not in known:
        print(
            f"tidewaiter: no analytic {args.analytic!r} (one of {', '.join(known)})",
            file=sys.stderr,
        )
        return exits.NOT_FOUND
    try:
        stored = results.load(args.results) if args.results else None
    except ValueError as exc:
        print(f"tidewaiter: {exc}", file=sys.stderr)
        return exits.USAGE
    docs = render_all(stored)
    if args.analytic is not None:
        docs = {f"{args.analytic}.md": docs[f"{args.analytic}.md"]}
    if args.out is None:
        sys.stdout.write("\n".join(docs.values()))
        return exits.OK
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, text in docs.items():
            (args.out / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"tidewaiter: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return exits.USAGE
    print(f"wrote {len(docs)} file(s) to {args.out}", file=sys.stderr)
    return exits.OK
