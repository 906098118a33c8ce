"""`tidewaiter report`: one self-contained HTML page of the findings in the store or a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from tidewaiter.cli import exits
from tidewaiter.detection.suppress import Suppressor
from tidewaiter.printable import printable
from tidewaiter.report import render
from tidewaiter.store import Store, StoreError


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "report",
        help="write an HTML report of the findings",
        description="Write one self-contained HTML page (no scripts, no network requests) of the "
        "findings in the store (--db) or an alerts file (--alerts): by severity, each with its "
        "evidence timeline, process tree, ATT&CK mapping and the closest benign profiles and "
        "suppressions, and a chart of archive and egress activity per container.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", metavar="PATH", help="read the alerts kept in this store")
    source.add_argument("--alerts", metavar="FILE", help="read OCSF alerts (JSON lines)")
    parser.add_argument(
        "--out", default="report.html", metavar="FILE", help="where to write (default report.html)"
    )
    parser.add_argument(
        "--limit", type=int, default=1000, metavar="N", help="at most N findings (default 1000)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    problems: list[str] = []
    try:
        if args.db:
            if not Path(args.db).exists():  # a report never creates a store
                raise StoreError(f"{args.db} does not exist")
            with Store(args.db) as store:
                alerts = store.alerts(limit=args.limit)
                suppressor = Suppressor(store.suppressions())
            source = args.db
        else:
            alerts = read_alerts(args.alerts, problems)[: args.limit]
            suppressor = Suppressor()
            source = args.alerts
    except (StoreError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"tidewaiter: cannot read the alerts: {printable(reason)}", file=sys.stderr)
        return exits.USAGE
    for problem in problems[:10]:
        print(f"  skipped {printable(problem)}", file=sys.stderr)
    page = render(alerts, suppressor, Path(source).name)
    try:
        Path(args.out).write_text(page, encoding="utf-8")
    except OSError as exc:
        print(f"tidewaiter: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return exits.USAGE
    skipped = f", {len(problems)} line(s) skipped" if problems else ""
    print(f"{len(alerts)} finding(s) written to {args.out}{skipped}", file=sys.stderr)
    return exits.OK


def read_alerts(path: str, problems: list[str]) -> list[dict[str, Any]]:
    """The OCSF alerts of a JSON lines file; a line that is not one is named in ``problems``."""
    alerts: list[dict[str, Any]] = []
    with open(path, "rb") as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                alert = orjson.loads(line)
            except orjson.JSONDecodeError:
                problems.append(f"{path}:{number}: not JSON")
                continue
            if not isinstance(alert, dict) or not isinstance(alert.get("finding_info"), dict):
                problems.append(f"{path}:{number}: not an OCSF finding")
                continue
            alerts.append(alert)
    return alerts
