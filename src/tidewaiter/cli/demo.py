"""`tidewaiter demo`: the ADS's scenarios on bundled telemetry, and the alerts they raise.

The bundled files are telemetry this project wrote in the producers' real formats: a Linux
container that tars data and uploads it (Tetragon), a Windows host that compresses a folder with
PowerShell and hands it to a container that sends it out (Sysmon), and a nightly database backup
that tars and copies to an internal store (Falco), which must stay quiet.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from dataclasses import dataclass
from importlib import resources
from typing import Any

from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from tidewaiter.layout import print_records
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files
from tidewaiter.sinks.console import render


@dataclass(frozen=True)
class Scenario:
    title: str
    files: tuple[str, ...]
    story: str
    expect_analytic: str | None  # the analytic that must fire above low severity; None: nothing


SCENARIOS = (
    Scenario(
        "Linux: tar in a Kubernetes pod, then an upload",
        ("linux-tar-upload.tetragon.jsonl",),
        "tar -czf /tmp/archive.tar.gz /sensitive/data inside payments/api, then curl -T to a "
        "public address (Tetragon process and kprobe events)",
        "tw-archive-exfil",
    ),
    Scenario(
        "Windows: Compress-Archive, then a container carries it out",
        ("windows-compress-archive.sysmon.xml",),
        "Compress-Archive -Path C:\\SensitiveData\\* "
        "-DestinationPath C:\\Archive\\SensitiveData.zip, docker run -v C:\\Archive:/data, "
        "egress through Docker Desktop (Sysmon EIDs 1, 11, 3)",
        "tw-archive-exfil",
    ),
    Scenario(
        "Benign: nightly database backup to an internal store",
        ("benign-nightly-backup.falco.jsonl",),
        "pg_dump | tar -czf in the pg-backup container, rsync to backup-store.internal (Falco)",
        None,
    ),
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the bundled scenarios and show the alerts",
        description="Run detection on the bundled telemetry (a Linux pod that tars and uploads, "
        "a Windows host that compresses a folder for a container to carry out, and a nightly "
        "backup that must stay quiet) and show the alerts and whether each scenario passed.",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    results: list[tuple[Scenario, bool, str]] = []
    data = resources.files("tidewaiter.demo")
    for scenario in SCENARIOS:
        console.print(Rule(Text(scenario.title, style="bold")))
        console.print(Text(scenario.story, style="dim"))
        with ExitStack() as stack:
            paths = [str(stack.enter_context(resources.as_file(data / f))) for f in scenario.files]
            outcome = detect_files(paths, EngineConfig(), [])
        render(console, outcome.alerts)
        if not outcome.alerts:
            console.print(Text("No alerts.", style="green"))
        console.print(Text(outcome.report.summary(), style="dim"))
        results.append((scenario, *_verdict(scenario, outcome.alerts)))
    _summary(console, results)
    return 0 if all(ok for _, ok, _ in results) else 1


def _verdict(scenario: Scenario, alerts: list[dict[str, Any]]) -> tuple[bool, str]:
    raised = [a for a in alerts if a["severity_id"] > 2]
    if scenario.expect_analytic is None:
        got = ", ".join(a["finding_info"]["title"] for a in raised) or "nothing above low"
        return not raised, got
    fired = [a for a in raised if a["finding_info"]["analytic"]["uid"] == scenario.expect_analytic]
    got = ", ".join(f"{a['severity']}: {a['finding_info']['title']}" for a in fired) or "no alert"
    return bool(fired), got


def _summary(console: Console, results: list[tuple[Scenario, bool, str]]) -> None:
    rows = [
        [
            scenario.title,
            "an exfiltration alert" if scenario.expect_analytic else "nothing above low",
            got,
            Text("pass", style="green") if ok else Text("FAIL", style="bold red"),
        ]
        for scenario, ok, got in results
    ]
    print_records(console, "demo scenarios", ("scenario", "expected", "got", "result"), rows)
