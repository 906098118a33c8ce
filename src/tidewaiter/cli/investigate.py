"""`tidewaiter investigate FINDING_UID`: everything known about the finding's container around
the alert — timeline, process tree, files, connections, related findings, baseline — and which
benign profile or suppression came close to covering it. Read-only."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec
from rich.console import Console

from tidewaiter.cli import exits
from tidewaiter.cli.options import (
    StoreMissing,
    add_format_option,
    add_store_option,
    cidr,
    open_store,
    seconds,
)
from tidewaiter.detection.addresses import AddressPolicy
from tidewaiter.detection.suppress import SuppressionError, load_suppressions
from tidewaiter.findings import FindingNotFound, load
from tidewaiter.investigate import investigate, telemetry_paths
from tidewaiter.investigate.render import render
from tidewaiter.printable import printable
from tidewaiter.store import StoreError


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "investigate",
        help="everything known about a finding's container around the alert",
        description="Show the timeline, process tree, files, connections, related findings and "
        "baseline of the container (or host) of one finding, and which benign profile or "
        "suppression came close to covering it. The finding comes from the store (--db) or a "
        "file of alerts (--alerts); the telemetry is re-read from PATHS, or from the files the "
        "alert's evidence names.",
    )
    parser.add_argument("finding", metavar="FINDING_UID", help="the finding uid or a prefix")
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="telemetry files (default: the alert's sources)"
    )
    add_store_option(parser)
    parser.add_argument(
        "--alerts", metavar="FILE", help="read the finding from this file of JSON alerts"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--window",
        type=seconds,
        default=900.0,
        metavar="SECONDS",
        help="context before the first and after the last evidence (default 900)",
    )
    parser.add_argument(
        "--limit", type=int, default=1000, metavar="N", help="timeline rows (default 1000)"
    )
    add_format_option(parser)
    parser.add_argument(
        "--suppressions",
        action="append",
        default=[],
        metavar="FILE",
        help="also hold these suppressions against the finding (repeatable)",
    )
    parser.add_argument(
        "--allow-destination", action="append", default=[], metavar="HOST", help="as for detect"
    )
    parser.add_argument("--internal", type=cidr, action="append", default=[], metavar="CIDR")
    parser.add_argument("--external", type=cidr, action="append", default=[], metavar="CIDR")
    parser.add_argument("--shared-range", choices=("internal", "external"), default="internal")
    parser.set_defaults(run=run)
    # PATHs may follow the options (`--alerts FILE PATH...`), which plain argparse refuses once
    # the first positional has been filled; the parser is created by the caller, so re-class it.
    parser.__class__ = _Intermixed


class _Intermixed(argparse.ArgumentParser):
    _inner = False

    def parse_known_args(  # type: ignore[override]
        self, args: Any = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._inner:  # parse_known_intermixed_args calls back into parse_known_args
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def run(args: argparse.Namespace) -> int:
    try:
        store = open_store(args, required=args.alerts is None, read_only=True)
    except StoreMissing as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return exits.NOT_FOUND
    except StoreError as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return exits.USAGE
    try:
        alert = load(args.finding, store, args.alerts)
        rules = [rule for path in args.suppressions for rule in load_suppressions(path)]
        paths = args.paths or telemetry_paths(alert)
        result = investigate(
            alert,
            paths,
            window=args.window,
            limit=max(1, args.limit),
            store=store,
            alerts_path=args.alerts,
            suppressions=rules,
            allowed_destinations=args.allow_destination,
            policy=AddressPolicy(
                args.internal, args.external, shared_internal=args.shared_range == "internal"
            ),
            fmt=args.fmt,
        )
    except FindingNotFound as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return exits.NOT_FOUND
    except (SuppressionError, StoreError) as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return exits.USAGE
    finally:
        if store is not None:
            store.close()
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
    else:
        render(Console(), result)
    if not paths:
        print(
            "tidewaiter: no telemetry to read: the alert names no source file; give PATHs",
            file=sys.stderr,
        )
    return exits.OK
