"""Replay: a scenario's synthetic telemetry written in one format, then read back through that
format's source and detected, exactly as `tidewaiter detect` would."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidewaiter.emulate.plan import plan
from tidewaiter.emulate.scenario import Platform, Scenario
from tidewaiter.emulate.verdict import Target, Verdict, judge
from tidewaiter.emulate.writers import Writer, available
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files


@dataclass
class ReplayResult:
    scenario: Scenario
    writer: Writer
    platform: Platform
    path: Path | None
    verdict: Verdict
    alerts: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # records the source could not read

    @property
    def passed(self) -> bool:
        return self.verdict.passed and not self.problems

    @property
    def mode(self) -> str:
        return f"replay:{self.writer.name}"


def combinations(scenario: Scenario) -> list[tuple[Writer, Platform]]:
    """Every (format, platform) in which this scenario can be written."""
    return [(w, p) for w in available() for p in w.platforms_for(scenario)]


def write(scenario: Scenario, writer: Writer, platform: Platform, path: Path) -> Path:
    path.write_bytes(writer.render(plan(scenario, platform)))
    return path


def replay(
    scenario: Scenario, writer: Writer, platform: Platform, out_dir: Path | None = None
) -> ReplayResult:
    if not writer.expresses(scenario, platform):
        raise ValueError(f"{writer.name} cannot express {scenario.id} on {platform}")
    trace = plan(scenario, platform)
    name = f"{scenario.id}.{platform}{writer.suffix}"
    with tempfile.TemporaryDirectory(prefix="tidewaiter-replay-") as scratch:
        folder = out_dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(writer.render(trace))
        config = EngineConfig(external_cidrs=trace.stage.external_cidrs)
        outcome = detect_files([str(path)], config, [], fmt=writer.source)
    problems = list(outcome.unreadable)
    if outcome.report.skipped_total:
        problems.append(f"{writer.source} could not read it all: {outcome.report.summary()}")
    container = trace.stage.container_id if writer.names_containers else None
    verdict = judge(scenario, outcome.alerts, Target(container, trace.stage.host), writer.name)
    return ReplayResult(
        scenario,
        writer,
        platform,
        path if out_dir is not None else None,
        verdict,
        outcome.alerts,
        problems,
    )
