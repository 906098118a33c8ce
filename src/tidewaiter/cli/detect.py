"""`tidewaiter detect`: read telemetry files, print or write the alerts they contain."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.text import Text

from tidewaiter.alerts import to_ocsf
from tidewaiter.cli.options import (
    add_detection_options,
    add_format_option,
    add_store_option,
    add_verbosity_options,
    engine_config,
    open_store,
)
from tidewaiter.cli.progress import EVERY, reading
from tidewaiter.detection.analytics import Finding
from tidewaiter.detection.baseline import Baselines
from tidewaiter.detection.suppress import SuppressionError
from tidewaiter.identity import workload_key
from tidewaiter.pipeline import Engine, EngineConfig, merge_by_time, unanalysable
from tidewaiter.printable import printable
from tidewaiter.sigma import SigmaLoadError
from tidewaiter.sinks import Sink
from tidewaiter.sinks.batch import BatchSink, OutputError
from tidewaiter.sinks.console import ConsoleSink
from tidewaiter.sinks.jsonl import JsonLinesSink
from tidewaiter.sinks.outputs import Outputs, add_output_options, batch_sinks
from tidewaiter.sources import ReadReport, all_sources, open_all
from tidewaiter.store import Store, StoreError

EXIT_OK, EXIT_ALERT, EXIT_USAGE = 0, 1, 2


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
    add_detection_options(parser)
    add_output_options(parser)
    add_verbosity_options(parser)
    parser.set_defaults(run=run)


@dataclass
class Outcome:
    report: ReadReport = field(default_factory=ReadReport)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # files that could not be opened at all
    hidden_below_min: int = 0
    ahead: list[str] = field(default_factory=list)  # records dated past the wall clock (clamped)
    ahead_total: int = 0
    suppressed: list[dict[str, Any]] = field(default_factory=list)  # held back, with the reason
    expired: list[str] = field(default_factory=list)  # expired suppressions, reported
    passed_over: list[str] = field(default_factory=list)  # files in a folder not in any format


def detect(
    paths: Sequence[str],
    config: EngineConfig,
    sinks: Sequence[Sink],
    fmt: str | None = None,
    store: Store | None = None,
    baselines: Baselines | None = None,
    progress: Callable[[ReadReport], None] | None = None,
) -> Outcome:
    """Run detection over files; every alert goes to every sink as it is decided. Suppressed
    findings are kept in the outcome (and the store), never delivered."""
    outcome = Outcome()

    def deliver(finding: Finding) -> None:
        alert = to_ocsf(finding)
        outcome.alerts.append(alert)
        if store is not None:
            store.add_alert(alert, _workload(finding))
        for sink in sinks:
            sink.write(alert)

    def hold(finding: Finding) -> None:
        alert = to_ocsf(finding)
        outcome.suppressed.append(alert)
        if store is not None:
            store.add_alert(alert, _workload(finding), suppressed_by=finding.suppressed_by)

    engine = Engine(
        deliver,
        config,
        on_suppressed=hold,
        baselines=baselines,
        on_error=unanalysable(outcome.report),
    )
    outcome.expired = [
        f"suppression {s.id} expired on {s.expires} and no longer applies"
        for s in engine.suppressor.expired
    ]
    streams = open_all(paths, outcome.report, fmt, outcome.unreadable, outcome.passed_over)
    for count, event in enumerate(merge_by_time(streams), 1):
        engine.process(event)
        if progress is not None and not count % EVERY:
            progress(outcome.report)
    engine.flush()
    outcome.report.check_forced(fmt)
    outcome.hidden_below_min = engine.suppressed_below_min
    outcome.ahead, outcome.ahead_total = engine.ahead_examples, engine.ahead
    return outcome


def run(args: argparse.Namespace) -> int:
    sinks: list[Sink] = []
    console_sink = None
    if args.json:
        sinks.append(JsonLinesSink(sys.stdout.buffer))
    else:
        console_sink = ConsoleSink(Console())
        sinks.append(console_sink)
    if args.out:
        try:
            sinks.append(JsonLinesSink.to_path(args.out))
        except OSError as exc:
            print(f"tidewaiter: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    outputs = Outputs.from_args(args)
    senders: list[BatchSink] = []
    try:
        senders = batch_sinks(outputs)
        sinks.extend(sink for _, sink in outputs.csv_sinks())
    except OutputError as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return EXIT_USAGE
    sinks.extend(senders)
    try:
        store = open_store(args, through_watch=False)
        config = engine_config(args, store)
    except (SuppressionError, StoreError, SigmaLoadError) as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return EXIT_USAGE
    baselines = store.load_baselines(learn=args.learn) if store is not None else None
    try:
        with reading("detecting", args.quiet) as progress:
            outcome = detect(args.paths, config, sinks, args.fmt, store, baselines, progress)
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
        return EXIT_USAGE
    if args.strict and outcome.report.skipped_total:
        return EXIT_USAGE
    if args.fail_on_alert and outcome.alerts:
        return EXIT_ALERT
    return EXIT_OK


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


def _workload(finding: Finding) -> str | None:
    container = finding.entity.container
    return workload_key(container) if container is not None else None
