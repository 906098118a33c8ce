"""`tidewaiter emulate`: list the scenarios; run them live in real containers, or write their
telemetry in a producer's format and replay it through detection. Every run's verdict is stored
for `tidewaiter coverage`."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import orjson
from rich.console import Console
from rich.text import Text

from tidewaiter.cli import exits
from tidewaiter.emulate import results
from tidewaiter.emulate.live import (
    LiveResult,
    LiveUnavailable,
    live_missing,
    live_sensor,
    run_live,
)
from tidewaiter.emulate.replay import ReplayResult, combinations, replay
from tidewaiter.emulate.scenario import PLATFORMS, Scenario, get, load_all
from tidewaiter.emulate.verdict import Check, Verdict
from tidewaiter.emulate.writers import available
from tidewaiter.printable import printable
from tidewaiter.sensor.runner import SensorError

_STYLE = {"pass": "green", "FAIL": "bold red", "known gap": "yellow", "gap closed": "cyan"}


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "emulate",
        help="adversary emulation: scenarios run live in containers or replayed as telemetry",
        description="Run the bundled emulation scenarios and check that detection concludes "
        "what each expects.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list",
        help="list the scenarios",
        description="List the bundled emulation scenarios: id, techniques, platforms, whether "
        "they run live, and what each expects.",
    )
    listing.add_argument("--platform", choices=PLATFORMS, help="only scenarios for this platform")
    listing.add_argument("--json", action="store_true", help="as JSON lines on stdout")
    listing.set_defaults(run=run_list)

    run = actions.add_parser(
        "run",
        help="run a scenario live (--live) or write and replay its telemetry (--write)",
        description="Run SCENARIO (or all) live in a real container with the sensor watching, "
        "or write the telemetry it would produce in FORMAT (or all formats that can express it) "
        "and replay that through detection. Prints pass or fail per expected analytic.",
    )
    run.add_argument("scenario", metavar="SCENARIO", help="a scenario id, or all")
    how = run.add_mutually_exclusive_group(required=True)
    how.add_argument("--live", action="store_true", help="run in a real container (Linux, root)")
    formats = ", ".join(w.name for w in available())
    how.add_argument("--write", metavar="FORMAT", help=f"write and replay: {formats}, or all")
    run.add_argument("--platform", choices=PLATFORMS, help="with --write: only this platform")
    run.add_argument(
        "--out-dir", type=Path, metavar="DIR", help="with --write: keep the telemetry files here"
    )
    run.add_argument(
        "--keep", type=Path, metavar="DIR", help="with --live: keep what the sensor saw here"
    )
    run.add_argument(
        "--runtime", choices=("runc", "podman"), default="runc", help="with --live (default runc)"
    )
    run.add_argument(
        "--results",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"where verdicts are stored (default {results.default_path()})",
    )
    run.add_argument("--no-record", action="store_true", help="do not store the verdicts")
    run.set_defaults(run=run_scenarios)


def run_list(args: argparse.Namespace) -> int:
    """Two lines a scenario, ids never cut: the id, techniques, platforms and how it runs live;
    then its name and what it expects."""
    console = Console(highlight=False)
    shown = [s for s in load_all() if not args.platform or args.platform in s.platforms]
    if args.json:
        for scenario in shown:
            sys.stdout.buffer.write(orjson.dumps(msgspec.to_builtins(scenario)) + b"\n")
        return exits.OK
    width = max((len(s.id) for s in shown), default=0)
    for scenario in shown:
        live = f"live: {scenario.rootfs}" if scenario.live_capable else "replay only"
        line = Text(f"{scenario.id:<{width}}  ", style="bold")
        line.append(f"{', '.join(scenario.all_techniques)}  [{', '.join(scenario.platforms)}]  ")
        line.append(live, style="dim")
        console.print(line, overflow="ignore", crop=False)
        console.print(Text(f"    {scenario.name}; expects {_expects(scenario)}", style="dim"))
    return exits.OK


def _expects(scenario: Scenario) -> str:
    wanted = [
        f"{e.analytic} ≥{e.min_severity}" if e.min_severity != "low" else e.analytic
        for e in scenario.expect
        if e.gap is None
    ]
    if scenario.quiet:
        wanted.append("nothing above low")
    return "; ".join(dict.fromkeys(wanted))


def run_scenarios(args: argparse.Namespace) -> int:
    try:
        chosen = list(load_all()) if args.scenario == "all" else [get(args.scenario)]
    except KeyError as exc:
        print(f"tidewaiter: {exc.args[0]}", file=sys.stderr)
        return exits.NOT_FOUND
    console = Console()
    outcome = _live(chosen, args, console) if args.live else _replays(chosen, args, console)
    if outcome is None:
        return exits.USAGE
    records, failed = outcome
    if records and not args.no_record:
        path = args.results or results.default_path()
        try:
            results.store(path, records)
        except (OSError, ValueError) as exc:
            print(f"tidewaiter: cannot store results in {path}: {exc}", file=sys.stderr)
    total = len(records)
    summary = f"{total - failed} of {total} passed"
    console.print(Text(summary, style="bold green" if not failed else "bold red"))
    return exits.FINDINGS if failed else exits.OK


def _live(
    chosen: list[Scenario], args: argparse.Namespace, console: Console
) -> tuple[list[results.RunRecord], int] | None:
    runnable = [s for s in chosen if s.live_capable]
    if not runnable:
        print(f"tidewaiter: {live_missing(chosen[0], args.runtime)}", file=sys.stderr)
        return None
    missing = live_missing(runnable[0], args.runtime)
    if missing:
        print(f"tidewaiter: {missing}", file=sys.stderr)
        return None
    elsewhere = [s.id for s in chosen if not s.live_capable]
    if elsewhere:
        console.print(
            Text(
                f"{len(elsewhere)} scenario(s) run on other platforms only and are not run "
                "live: replay them with --write",
                style="dim",
            )
        )
    records: list[results.RunRecord] = []
    failed = 0
    try:
        with live_sensor() as shared:
            for scenario in runnable:
                try:
                    result = run_live(scenario, shared=shared, runtime=args.runtime, keep=args.keep)
                except LiveUnavailable as exc:
                    print(f"tidewaiter: {exc}", file=sys.stderr)
                    return None
                _print_live(console, result)
                records.append(_record(scenario.id, "live", "linux", result.verdict, result))
                failed += not result.passed
    except SensorError as exc:
        print(f"tidewaiter: {exc}", file=sys.stderr)
        return None
    return records, failed


def _replays(
    chosen: list[Scenario], args: argparse.Namespace, console: Console
) -> tuple[list[results.RunRecord], int] | None:
    names = {w.name for w in available()}
    if args.write != "all" and args.write not in names:
        print(
            f"tidewaiter: no writer for {args.write!r}; formats: {', '.join(sorted(names))}",
            file=sys.stderr,
        )
        return None
    records: list[results.RunRecord] = []
    failed = 0
    for scenario in chosen:
        pairs = [
            (w, p)
            for w, p in combinations(scenario)
            if args.write in ("all", w.name) and args.platform in (None, p)
        ]
        if not pairs and len(chosen) == 1:
            print(
                f"tidewaiter: {args.write} cannot express {scenario.id} "
                f"({', '.join(scenario.platforms)})",
                file=sys.stderr,
            )
            return None
        for writer, platform in pairs:
            result = replay(scenario, writer, platform, args.out_dir)
            _print_replay(console, result)
            records.append(
                _record(scenario.id, result.mode, platform, result.verdict, result, result.problems)
            )
            failed += not result.passed
    return records, failed


def _record(
    scenario: str,
    mode: str,
    platform: str,
    verdict: Verdict,
    result: LiveResult | ReplayResult,
    problems: list[str] | None = None,
) -> results.RunRecord:
    problems = problems if problems is not None else getattr(result, "problems", [])
    passed = verdict.passed and not problems
    fired = tuple(sorted({a["finding_info"]["analytic"]["uid"] for a in result.alerts}))
    failing = [c for c in verdict.checks if not c.passed and c.gap is None]
    detail = "; ".join([*problems, *(f"{c.what}: {c.detail}" for c in failing)])
    return results.RunRecord(
        scenario=scenario,
        mode=mode,
        platform=platform,
        passed=passed,
        time=results.now(),
        fired=fired,
        gaps=tuple(c.gap for c in verdict.open_gaps if c.gap),
        detail=detail[:2000],
    )


def _check_line(check: Check) -> Text:
    line = Text("  ")
    line.append(f"{check.label:<10}", style=_STYLE.get(check.label, ""))
    line.append(printable(check.what))
    line.append(f" — {printable(check.detail)}", style="dim")
    if check.gap is not None:
        line.append(f" (gap: {printable(' '.join(check.gap.split()))})", style="dim yellow")
    return line


def _print_live(console: Console, result: LiveResult) -> None:
    verdict = "pass" if result.passed else "FAIL"
    head = Text(f"{verdict:<5}", style=_STYLE[verdict])
    head.append(f" {result.scenario.id}  live in {result.runtime} container ")
    head.append(result.container_id[:12] or "(not started)", style="bold")
    head.append(f"  {result.timings.get('total', 0.0):.1f} s", style="dim")
    console.print(head)
    kinds = Counter(r.event for r in result.records)
    seen = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "nothing"
    sink = (
        f"; the sink received {result.sink_bytes} bytes in {result.sink_connections} connection(s)"
        if result.scenario.sink is not None
        else ""
    )
    console.print(Text(f"  the sensor saw {seen}{sink}", style="dim"))
    for check in result.verdict.checks:
        console.print(_check_line(check))
    for problem in result.problems:
        console.print(Text(f"  problem   {printable(problem)}", style="red"))


def _print_replay(console: Console, result: ReplayResult) -> None:
    verdict = "pass" if result.passed else "FAIL"
    head = Text(f"{verdict:<5}", style=_STYLE[verdict])
    head.append(f" {result.scenario.id}  {result.writer.name} ({result.platform})")
    if result.path is not None:
        head.append(f"  {result.path}", style="dim")
    console.print(head)
    for check in result.verdict.checks:
        if not check.passed or check.gap is not None:
            console.print(_check_line(check))
    for problem in result.problems:
        console.print(Text(f"  problem   {printable(problem)}", style="red"))
