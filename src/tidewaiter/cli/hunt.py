"""`tidewaiter hunt`: detection over a fleet's history, on Spark with --spark.

Without --spark it is `detect` over the same paths (``detect_files``, --jobs processes), so a
hunt can be tried on one machine and then submitted to a cluster unchanged."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.text import Text

from tidewaiter.cli import exits
from tidewaiter.cli.detect import jobs_count, printed_sinks, report_outcome
from tidewaiter.cli.options import (
    add_detection_options,
    add_format_option,
    add_verbosity_options,
    engine_config,
)
from tidewaiter.detection.suppress import SuppressionError
from tidewaiter.printable import printable
from tidewaiter.run import Outcome, detect_files
from tidewaiter.sigma import SigmaLoadError
from tidewaiter.sinks import Sink
from tidewaiter.sinks.jsonl import JsonLinesSink


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "hunt",
        help="detect over a fleet's history, on Spark with --spark",
        description="Read telemetry files, folders or globs and report what `detect` reports. "
        "With --spark the work runs on Apache Spark (pip install 'tidewaiter[spark]', Java 17): "
        "decoded, joined and detected per entity on the executors, with the same findings.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="telemetry files, folders, globs")
    add_format_option(parser)
    parser.add_argument("--spark", action="store_true", help="run on Spark")
    parser.add_argument(
        "--master",
        metavar="URL",
        help="with --spark: the Spark master (local[2], spark://host:7077, yarn); default: "
        "the one spark-submit gives, else every local core",
    )
    parser.add_argument("--json", action="store_true", help="JSON lines (OCSF) on stdout")
    parser.add_argument("--out", metavar="FILE", help="also write JSON lines (OCSF) to FILE")
    parser.add_argument(
        "--parquet",
        metavar="DIR",
        help="with --spark: also write the findings as Parquet to DIR (replaced)",
    )
    parser.add_argument(
        "--jobs", type=jobs_count, default=1, metavar="N", help="without --spark: as detect --jobs"
    )
    parser.add_argument("--fail-on-alert", action="store_true", help="exit 1 when an alert fired")
    add_detection_options(parser)
    add_verbosity_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.parquet and not args.spark:
        print("tidewaiter: --parquet needs --spark", file=sys.stderr)
        return exits.USAGE
    if args.master and not args.spark:
        print("tidewaiter: --master needs --spark", file=sys.stderr)
        return exits.USAGE
    sinks, console_sink = printed_sinks(args)
    try:
        if args.out:
            sinks.append(JsonLinesSink.to_path(args.out))
        config = engine_config(args)
    except OSError as exc:
        print(f"tidewaiter: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return exits.USAGE
    except (SuppressionError, SigmaLoadError) as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return exits.USAGE
    try:
        if args.spark:
            outcome = _on_spark(args, config, sinks)
            if outcome is None:
                return exits.USAGE
        else:
            outcome = detect_files(args.paths, config, sinks, args.fmt, jobs=args.jobs)
    finally:
        for sink in sinks:
            sink.close()
    if console_sink is not None and not outcome.alerts and outcome.report.records:
        console_sink.console.print(Text("No alerts.", style="green"))
    report_outcome(outcome, quiet=args.quiet, verbose=args.verbose)
    if outcome.unreadable:
        return exits.USAGE
    if args.fail_on_alert and outcome.alerts:
        return exits.FINDINGS
    return exits.OK


def _on_spark(args: argparse.Namespace, config: Any, sinks: list[Sink]) -> Outcome | None:
    from tidewaiter.spark import missing, running
    from tidewaiter.spark.hunt import hunt_spark

    why = missing()
    if why is not None:
        print(f"tidewaiter: --spark: {why}", file=sys.stderr)
        return None
    with running(args.master, quiet=True) as spark:
        return hunt_spark(spark, args.paths, config, sinks, args.fmt, args.parquet)
