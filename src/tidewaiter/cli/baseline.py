"""`tidewaiter baseline learn|show`: per-workload baselines kept in the store."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tidewaiter.cli.detect import report_outcome
from tidewaiter.cli.options import (
    add_detection_options,
    add_store_option,
    engine_config,
    with_store,
)
from tidewaiter.detection.baseline import Profile
from tidewaiter.detection.suppress import SuppressionError
from tidewaiter.printable import printable
from tidewaiter.run import detect_files
from tidewaiter.store import Store


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("baseline", help="learn and show per-workload baselines")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    learn = actions.add_parser("learn", help="learn baselines from telemetry files")
    learn.add_argument("paths", nargs="+", metavar="PATH")
    learn.add_argument("--format", dest="fmt", metavar="NAME")
    add_detection_options(learn)
    show = actions.add_parser("show", help="print a workload's baseline (or list them all)")
    show.add_argument("workload", nargs="?", help="a workload key, or a part of one")
    for sub in (learn, show):
        add_store_option(sub)
        sub.set_defaults(run=with_store(_run))


def _run(store: Store, args: argparse.Namespace) -> int:
    if args.action == "learn":
        return _learn(store, args)
    return _show(store, args.workload)


def _learn(store: Store, args: argparse.Namespace) -> int:
    try:
        config = engine_config(args, store)
    except SuppressionError as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return 2
    baselines = store.load_baselines(learn=True, exclude_flagged=False)
    # The findings are stored like detect's, so each one it asks you to review opens in
    # `investigate` (and `alerts` lists them).
    outcome = detect_files(args.paths, config, [], args.fmt, store=store, baselines=baselines)
    store.save_baselines(baselines)
    report_outcome(outcome)  # what was read, skipped, not read, and why
    print(f"learned {len(baselines.profiles)} workload baseline(s)", file=sys.stderr)
    raised = [a for a in outcome.alerts if a["severity_id"] > 2]
    if raised:
        # Explicit learning trusts the period it is given; say what in it alerted.
        print(
            f"{len(raised)} alert(s) above low fired in this period and are now part of the "
            f"baseline ({baselines.flagged_windows} window(s)); review them with "
            "`tidewaiter investigate UID --db STORE`:",
            file=sys.stderr,
        )
        for alert in raised:
            info = alert["finding_info"]
            print(
                printable(f"  {info['uid'][:12]} {alert['severity']}: {info['title']}"),
                file=sys.stderr,
            )
    return 2 if outcome.unreadable else 0


def _show(store: Store, wanted: str | None) -> int:
    profiles = store.load_baselines().profiles
    console = Console()
    if wanted is None:
        table = Table(title="baselines", title_justify="left")
        for column in ("workload", "history", "events", "executables", "destinations", "windows"):
            table.add_column(column)
        for workload, profile in sorted(profiles.items()):
            table.add_row(
                Text(printable(workload)),
                Text(_history(profile)),
                Text(f"{profile.events:.0f}"),
                Text(str(len(profile.executables))),
                Text(str(len(profile.destinations))),
                Text(str(len(profile.window_bytes))),
            )
        console.print(table)
        return 0
    matches = [p for w, p in profiles.items() if wanted in w]
    if len(matches) != 1:
        names = ", ".join(sorted(profiles)) or "none"
        print(
            f"tidewaiter: {len(matches)} workloads match {printable(wanted)!r} (known: "
            f"{printable(names)})",
            file=sys.stderr,
        )
        return 2
    _print_profile(console, matches[0])
    return 0


def _print_profile(console: Console, profile: Profile) -> None:
    console.print(Text(f"{printable(profile.workload)} — {_history(profile)}", style="bold"))
    for title, table in (
        ("executables", profile.executables),
        ("archiver shapes", profile.archive_shapes),
        ("destinations", profile.destinations),
        ("destination prefixes", profile.prefixes),
    ):
        rows = Table(title=title, title_justify="left")
        rows.add_column(title[:-1] if title.endswith("s") else title)
        rows.add_column("weight (decayed count)")
        for key, count in sorted(table.items(), key=lambda kv: -kv[1])[:25]:
            rows.add_row(Text(printable(key)), Text(f"{count:.1f}"))
        console.print(rows)
    if profile.window_bytes:
        median, mad = profile.median_mad()
        console.print(
            Text(
                f"egress per 10-minute window: {len(profile.window_bytes)} windows, p99 "
                f"{profile.p99():.0f} bytes, median {10**median:.0f} bytes (MAD {mad:.2f} in log10)"
            )
        )


def _history(profile: Profile) -> str:
    first = datetime.fromtimestamp(profile.first_seen, UTC).strftime("%Y-%m-%d %H:%M")
    last = datetime.fromtimestamp(profile.last_seen, UTC).strftime("%Y-%m-%d %H:%M")
    return f"{profile.days:.1f} days ({first} to {last} UTC)"
