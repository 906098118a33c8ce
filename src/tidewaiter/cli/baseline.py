"""`tidewaiter baseline learn|show`: per-workload baselines kept in the store."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Console
from rich.text import Text

from tidewaiter.cli import exits
from tidewaiter.cli.detect import report_outcome
from tidewaiter.cli.options import (
    add_detection_options,
    add_format_option,
    add_store_option,
    add_verbosity_options,
    engine_config,
    with_store,
)
from tidewaiter.cli.progress import reading
from tidewaiter.detection.baseline import Baselines, Profile
from tidewaiter.detection.suppress import SuppressionError
from tidewaiter.layout import print_records
from tidewaiter.pipeline import EngineConfig
from tidewaiter.printable import printable
from tidewaiter.run import Outcome, detect_files
from tidewaiter.store import Store


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "baseline",
        help="learn and show per-workload baselines",
        description="Per-workload baselines (executables, archiver shapes, destinations, egress "
        "per 10-minute window) kept in the store, which detect --db scores findings against.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    learn = actions.add_parser(
        "learn",
        help="learn baselines from telemetry files",
        description="Learn every workload's baseline from telemetry files (the whole period "
        "given, alerts included: they are listed for review and stored for investigate).",
    )
    learn.add_argument("paths", nargs="+", metavar="PATH")
    add_format_option(learn)
    learn.add_argument(
        "--spark",
        action="store_true",
        help="learn on Spark (pip install 'tidewaiter[spark]', Java 17): the same baselines",
    )
    learn.add_argument("--master", metavar="URL", help="with --spark: the Spark master")
    add_detection_options(learn)
    add_verbosity_options(learn)
    show = actions.add_parser(
        "show",
        help="print a workload's baseline (or list them all)",
        description="List the workloads with a baseline, or print one workload's baseline "
        "(a key or a part of one) in full.",
    )
    show.add_argument("workload", nargs="?", help="a workload key, or a part of one")
    show.add_argument("--json", action="store_true", help="as JSON on stdout")
    learn.set_defaults(run=with_store(_run))
    show.set_defaults(run=with_store(_run, read_only=True))
    for sub in (learn, show):
        add_store_option(sub)


def _run(store: Store, args: argparse.Namespace) -> int:
    if args.action == "learn":
        return _learn(store, args)
    return _show(store, args.workload, args.json)


def _learn(store: Store, args: argparse.Namespace) -> int:
    try:
        config = engine_config(args, store)
    except SuppressionError as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return exits.USAGE
    if args.master and not args.spark:
        print("tidewaiter: --master needs --spark", file=sys.stderr)
        return exits.USAGE
    baselines = store.load_baselines(learn=True, exclude_flagged=False)
    # The findings are stored like detect's, so each one it asks you to review opens in
    # `investigate` (and `alerts` lists them).
    if args.spark:
        learned = _learn_on_spark(store, args, config, baselines)
        if learned is None:
            return exits.USAGE
        outcome = learned
    else:
        with reading("learning", args.quiet) as progress:
            outcome = detect_files(
                args.paths, config, [], args.fmt, store, baselines, progress=progress
            )
    store.save_baselines(baselines)
    # What was read, skipped, not read, and why.
    report_outcome(outcome, quiet=args.quiet, verbose=args.verbose)
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
    return exits.USAGE if outcome.unreadable else exits.OK


def _learn_on_spark(
    store: Store, args: argparse.Namespace, config: EngineConfig, baselines: Baselines
) -> Outcome | None:
    """Learn on Spark into ``baselines`` (saved by the caller) and store the period's findings
    as one process would have; None when Spark cannot start (said on stderr)."""
    from tidewaiter.spark import missing, running
    from tidewaiter.spark.hunt import learn_spark

    why = missing()
    if why is not None:
        print(f"tidewaiter: --spark: {why}", file=sys.stderr)
        return None
    with running(args.master, quiet=True) as spark:
        learned = learn_spark(spark, args.paths, config, baselines.profiles, args.fmt)
    outcome = learned.outcome
    for alert in [*outcome.alerts, *outcome.suppressed]:
        workload, suppressed_by = learned.stored.get(alert["finding_info"]["uid"], (None, None))
        store.add_alert(alert, workload, suppressed_by=suppressed_by)
    baselines.profiles.update(learned.profiles)
    baselines.changed.update(learned.profiles)
    baselines.flagged_windows += learned.flagged_windows
    return outcome


def _show(store: Store, wanted: str | None, as_json: bool = False) -> int:
    profiles = store.load_baselines().profiles
    console = Console()
    if wanted is None:
        if as_json:
            listed = [_summary(p) for _, p in sorted(profiles.items())]
            sys.stdout.buffer.write(orjson.dumps(listed) + b"\n")
            return exits.OK
        rows = [
            [
                printable(workload),
                _history(profile),
                f"{profile.events:.0f}",
                str(len(profile.executables)),
                str(len(profile.destinations)),
                str(len(profile.window_bytes)),
            ]
            for workload, profile in sorted(profiles.items())
        ]
        columns = ("workload", "history", "events", "executables", "destinations", "windows")
        print_records(console, "baselines", columns, rows)
        return exits.OK
    matches = [p for w, p in profiles.items() if wanted in w]
    if len(matches) != 1:
        names = ", ".join(sorted(profiles)) or "none"
        print(
            f"tidewaiter: {len(matches)} workloads match {printable(wanted)!r} (known: "
            f"{printable(names)})",
            file=sys.stderr,
        )
        return exits.NOT_FOUND if not matches else exits.USAGE
    if as_json:
        profile = matches[0]
        document = {
            **_summary(profile),
            "executables": profile.executables,
            "archive_shapes": profile.archive_shapes,
            "destinations": profile.destinations,
            "prefixes": profile.prefixes,
        }
        sys.stdout.buffer.write(orjson.dumps(document) + b"\n")
        return exits.OK
    _print_profile(console, matches[0])
    return exits.OK


def _summary(profile: Profile) -> dict[str, object]:
    return {
        "workload": profile.workload,
        "first_seen": profile.first_seen,
        "last_seen": profile.last_seen,
        "days": round(profile.days, 2),
        "events": round(profile.events, 1),
        "executables": len(profile.executables),
        "destinations": len(profile.destinations),
        "windows": len(profile.window_bytes),
    }


def _print_profile(console: Console, profile: Profile) -> None:
    console.print(Text(f"{printable(profile.workload)} — {_history(profile)}", style="bold"))
    for title, table in (
        ("executables", profile.executables),
        ("archiver shapes", profile.archive_shapes),
        ("destinations", profile.destinations),
        ("destination prefixes", profile.prefixes),
    ):
        column = title[:-1] if title.endswith("s") else title
        top = sorted(table.items(), key=lambda kv: -kv[1])[:25]
        rows = [[printable(key), f"{count:.1f}"] for key, count in top]
        print_records(console, title, (column, "weight (decayed count)"), rows)
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
