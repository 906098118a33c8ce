"""`tidewaiter detect`: read telemetry files, print or write the alerts they contain."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from tidewaiter.cli import exits
from tidewaiter.cli.options import (
    add_detection_options,
    add_format_option,
    add_store_option,
    add_verbosity_options,
    engine_config,
    open_store,
)
from tidewaiter.cli.progress import reading
from tidewaiter.detection.suppress import SuppressionError
from tidewaiter.parallel import available_cores
from tidewaiter.printable import printable
from tidewaiter.run import Outcome, detect_files
from tidewaiter.sigma import SigmaLoadError
from tidewaiter.sinks import Sink
from tidewaiter.sinks.batch import BatchSink, OutputError
from tidewaiter.sinks.console import ConsoleSink
from tidewaiter.sinks.jsonl import JsonLinesSink
from tidewaiter.sinks.outputs import Outputs, add_output_options, batch_sinks
from tidewaiter.sources import all_sources
from tidewaiter.store import StoreError


def add_parser(commands: Any) -> None:
    formats = ", ".join(s.name for s in all_sources())
    parser = commands.add_parser(
        "detect",
        help="detect archive staging and exfiltration in telemetry files",
        description="Read telemetry files (format sniffed, or named with --format) and report "
        "archive staging and exfiltration per container. Use - for standard input.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="telemetry files, or - for stdin")
    add_format_option(parser, help=f"input format ({formats}); sniffed when left out")
    parser.add_argument("--json", action="store_true", help="JSON lines (OCSF) on stdout")
    parser.add_argument("--out", metavar="FILE", help="also append JSON lines (OCSF) to FILE")
    parser.add_argument(
        "--strict", action="store_true", help="exit 2 when any record or file could not be read"
    )
    parser.add_argument("--fail-on-alert", action="store_true", help="exit 1 when an alert fired")
    parser.add_argument(
        "--show-suppressed",
        action="store_true",
        help="list the findings held back by a benign profile or suppression, with the reason",
    )
    add_store_option(parser)
    parser.add_argument(
        "--learn",
        action="store_true",
        help="with --db: also learn baselines from this input (windows with alerts left out)",
    )
    parser.add_argument(
        "--jobs",
        type=jobs_count,
        default=1,
        metavar="N",
        help="processes to shard the work over by container and host; the findings are the "
        f"same for any N (default 1; this machine has {available_cores()} cores). Each worker "
        "holds its share of the input in memory",
    )
    add_detection_options(parser)
    add_output_options(parser)
    add_verbosity_options(parser)
    parser.set_defaults(run=run)


def jobs_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of processes: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("--jobs must be at least 1")
    return value


def printed_sinks(args: argparse.Namespace) -> tuple[list[Sink], ConsoleSink | None]:
    """Where `--json` or the console view prints alerts (the console sink, when it is one)."""
    if args.json:
        return [JsonLinesSink(sys.stdout.buffer)], None
    console_sink = ConsoleSink(Console())
    return [console_sink], console_sink


def run(args: argparse.Namespace) -> int:
    sinks, console_sink = printed_sinks(args)
    if args.out:
        try:
            sinks.append(JsonLinesSink.to_path(args.out))
        except OSError as exc:
            print(f"tidewaiter: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return exits.USAGE
    outputs = Outputs.from_args(args)
    senders: list[BatchSink] = []
    try:
        senders = batch_sinks(outputs)
        sinks.extend(sink for _, sink in outputs.csv_sinks())
    except OutputError as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return exits.USAGE
    sinks.extend(senders)
    try:
        store = open_store(args, through_watch=False)
        config = engine_config(args, store)
    except (SuppressionError, StoreError, SigmaLoadError) as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return exits.USAGE
    baselines = store.load_baselines(learn=args.learn) if store is not None else None
    try:
        with reading("detecting", args.quiet) as progress:
            outcome = detect_files(
                args.paths, config, sinks, args.fmt, store, baselines, args.jobs, progress
            )
        if store is not None and baselines is not None and args.learn:
            store.save_baselines(baselines)
    finally:
        for sink in sinks:
            sink.close()
        if store is not None:
            store.close()
    if args.show_suppressed and outcome.suppressed:
        print(f"{len(outcome.suppressed)} suppressed:", file=sys.stderr)
        for alert in outcome.suppressed:
            info = alert["finding_info"]
            line = f"  {info['uid'][:12]} {info['title']}: {alert['status_detail']}"
            print(printable(line), file=sys.stderr)
    if console_sink is not None and not outcome.alerts and outcome.report.records:
        console_sink.console.print(Text("No alerts.", style="green"))
    report_outcome(outcome, quiet=args.quiet, verbose=args.verbose)
    if report_delivery(senders) or outcome.unreadable:
        return exits.USAGE
    if args.strict and outcome.report.skipped_total:
        return exits.USAGE
    if args.fail_on_alert and outcome.alerts:
        return exits.FINDINGS
    return exits.OK


def report_outcome(outcome: Outcome, quiet: bool = False, verbose: bool = False) -> None:
    """The summary on stderr: what was read, what was skipped and where, what was hidden.
    --quiet keeps only what could not be read at all; --verbose adds the count per reason.

    Plain lines, never wrapped, so they can be grepped and parsed."""
    for problem in outcome.unreadable:
        print(f"tidewaiter: {printable(problem)}", file=sys.stderr)
    if quiet:
        return
    for passed in outcome.passed_over:
        print(f"  not read: {printable(passed)}", file=sys.stderr)
    for note in outcome.report.notes:
        print(f"tidewaiter: {printable(note)}", file=sys.stderr)
    report = outcome.report
    if verbose:
        for reason, count in report.skipped.most_common():
            print(f"  {count} skipped: {printable(reason)}", file=sys.stderr)
    for example in report.examples:
        print(f"  skipped {example}", file=sys.stderr)
    if report.skipped_total > len(report.examples):
        more = report.skipped_total - len(report.examples)
        print(f"  ... and {more} more skipped", file=sys.stderr)
    if outcome.ahead_total:
        print(
            f"tidewaiter: {outcome.ahead_total} record(s) dated in the future, past the wall "
            "clock: their time was clamped so they cannot end other episodes",
            file=sys.stderr,
        )
        for stated in outcome.ahead:
            print(f"  dated ahead {printable(stated)}", file=sys.stderr)
    for expired in outcome.expired:
        print(f"tidewaiter: {printable(expired)}", file=sys.stderr)
    summary = report.summary() + f"; {len(outcome.alerts)} alert(s)"
    if outcome.hidden_below_min:
        summary += f", {outcome.hidden_below_min} below --min-severity"
    if outcome.suppressed:
        summary += f", {len(outcome.suppressed)} suppressed (--show-suppressed lists them)"
    print(summary, file=sys.stderr)


def report_delivery(senders: Sequence[BatchSink]) -> int:
    """One line per SIEM output on stderr; the number of alerts it did not take."""
    lost = 0
    for sender in senders:
        for problem in sender.problems:
            print(f"  {problem}", file=sys.stderr)
        print(sender.summary(), file=sys.stderr)
        lost += sender.refused + sender.undelivered
    return lost
