"""`tidewaiter evaluate DIR`: run labelled scenarios and score detection on them."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.text import Text

from tidewaiter import evaluate, fleet
from tidewaiter.cli import exits
from tidewaiter.cli.options import add_verbosity_options
from tidewaiter.cli.progress import counting
from tidewaiter.layout import print_records
from tidewaiter.printable import printable


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="run labelled scenarios; print precision and recall per analytic",
        description="Run every scenario (a folder with scenario.yaml) under DIR and score "
        "the alerts against its expectations. Exits 1 when any expectation fails.",
    )
    parser.add_argument("root", metavar="DIR", type=Path, nargs="?")
    parser.add_argument(
        "--out", "--markdown", dest="out", metavar="FILE", type=Path,
        help="also write the tables as Markdown to FILE",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="the scores as one JSON object")
    add_verbosity_options(parser)
    parser.add_argument(
        "--budget",
        action="store_true",
        help="measure the false-positive budget on a generated week of a cluster and "
        "workstations (DIR: where to write it; default a temporary folder)",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="with --budget: fleet size")
    parser.add_argument("--seed", type=int, default=12, help="with --budget: the week's seed")
    parser.set_defaults(run=run)


def run_budget(args: argparse.Namespace) -> int:
    console = Console()
    if not 0 < args.scale <= 10:
        console.print(Text("tidewaiter: --scale must be above 0 and at most 10"), style="red")
        return exits.USAGE
    week = fleet.generate(seed=args.seed, scale=args.scale)
    with tempfile.TemporaryDirectory(prefix="tidewaiter-budget-") as scratch:
        folder = args.root or Path(scratch)
        figures = fleet.measure(week, folder)
    rows: list[tuple[str, ...]] = [
        (
            f.label,
            f"{f.container_alerts} in {f.container_days}",
            f"{f.per_1000_container_days:.1f}",
            f"{f.host_alerts} in {f.host_days}",
            f"{f.per_100_host_days:.1f}",
            f"{f.found} of {f.chains}",
        )
        for f in figures
    ]
    columns = (
        "run",
        "alerts above low / container-days",
        "per 1,000 container-days",
        "alerts above low / host-days",
        "per 100 host-days",
        "planted chains found at high+",
    )
    if args.json:  # one JSON document on stdout, the alerts and misses in it
        document = [
            {**dict(zip(columns, row, strict=True)), "alerts": f.noisy, "missed": f.missed}
            for f, row in zip(figures, rows, strict=True)
        ]
        sys.stdout.buffer.write(orjson.dumps(document) + b"\n")
    else:
        print_records(console, "false-positive budget", columns, rows)
        for f in figures:
            for line in f.noisy:
                console.print(Text(f"  {f.label}: {printable(line)}"))
            if f.missed:
                console.print(Text(f"  {f.label}: missed {', '.join(f.missed)}"), style="red")
    if args.out:
        args.out.write_text(_markdown(columns, rows))
    learned = figures[-1]
    met = (
        learned.per_1000_container_days <= 1
        and learned.per_100_host_days <= 1
        and not learned.missed
    )
    return 0 if met else 1


def run(args: argparse.Namespace) -> int:
    if args.budget:
        return run_budget(args)
    console = Console()
    if args.root is None:
        console.print(Text("tidewaiter: evaluate needs DIR (or --budget)"), style="red")
        return exits.USAGE
    if not args.root.is_dir():
        console.print(Text(f"tidewaiter: {printable(args.root)} is not a folder"), style="red")
        return exits.NOT_FOUND
    folders = evaluate.discover(args.root)
    if not folders:
        console.print(Text(f"tidewaiter: no scenario.yaml under {args.root}"), style="red")
        return exits.NOT_FOUND
    results: list[evaluate.Result] = []
    with counting("scenarios", len(folders), args.quiet) as done:
        for folder in folders:
            try:
                scenario = evaluate.load(folder)
            except evaluate.ScenarioError as exc:
                console.print(Text(f"tidewaiter: {printable(exc)}"), style="red")
                return exits.USAGE
            results.append(evaluate.run(folder, scenario))
            done(folder.name)
    scenario_rows = [_scenario_row(r) for r in results]
    analytic_rows = [
        _analytic_row(uid, s) for uid, s in evaluate.score_by_analytic(results).items()
    ]
    counted = evaluate.totals(results)
    summary = ", ".join(f"{n} {what}" for what, n in sorted(counted.items()))
    if args.json:
        document = {
            "scenarios": [dict(zip(_SCENARIO_COLUMNS, row, strict=True)) for row in scenario_rows],
            "analytics": [dict(zip(_ANALYTIC_COLUMNS, row, strict=True)) for row in analytic_rows],
            "totals": counted,
        }
        sys.stdout.buffer.write(orjson.dumps(document) + b"\n")
    else:
        print_records(console, "scenarios", _SCENARIO_COLUMNS, _styled(scenario_rows))
        print_records(console, "analytics", _ANALYTIC_COLUMNS, analytic_rows)
        console.print(Text(summary))
    if args.out:
        args.out.write_text(
            _markdown(_SCENARIO_COLUMNS, scenario_rows)
            + "\n"
            + _markdown(_ANALYTIC_COLUMNS, analytic_rows)
            + f"\n{summary}\n"
        )
    return 0 if all(r.passed for r in results) else 1


_SCENARIO_COLUMNS = ("scenario", "kind", "source", "technique", "TP", "FP", "FN", "result")
_ANALYTIC_COLUMNS = ("analytic", "TP", "FP", "FN", "precision", "recall")


def _scenario_row(result: evaluate.Result) -> tuple[str, ...]:
    scenario = result.scenario
    return (
        scenario.id,
        scenario.kind,
        scenario.source or "",
        scenario.technique or "",
        str(len(result.true_positives)),
        str(len(result.false_positives)),
        str(len(result.false_negatives)),
        "pass" if result.passed else "FAIL",
    )


def _analytic_row(uid: str, score: evaluate.Score) -> tuple[str, ...]:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    return (
        uid,
        str(score.true_positives),
        str(score.false_positives),
        str(score.false_negatives),
        pct(score.precision),
        pct(score.recall),
    )


def _styled(rows: list[tuple[str, ...]]) -> list[list[str | Text]]:
    """The result cell in colour: a failure must stand out."""
    return [
        [*row[:-1], Text(row[-1], style="bold red" if row[-1] == "FAIL" else "green")]
        for row in rows
    ]


def _markdown(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
