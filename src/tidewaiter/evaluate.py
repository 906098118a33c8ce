"""Labelled scenarios and the score of detection on them: precision and recall per analytic.

A scenario is a folder holding ``scenario.yaml`` and the telemetry it names. Its expectations
say which analytic must fire for which entity (a container id prefix or a host name), at what
severity at least; a benign scenario expects nothing above low severity. Every finding above
low that no expectation accounts for is a false positive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from tidewaiter.alerts import alert_container
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files

LOW = 2


class Expectation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    analytic: str
    entity: str  # "container:<id prefix>" or "host:<name>"
    min_severity: int = 3


class Scenario(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    name: str
    kind: Literal["attack", "benign"]
    telemetry: tuple[str, ...]
    technique: str | None = None
    source: str | None = None
    description: str = ""
    expect: tuple[Expectation, ...] = ()
    internal_cidrs: tuple[str, ...] = ()
    external_cidrs: tuple[str, ...] = ()
    allowed_destinations: tuple[str, ...] = ()  # what the deployment declared (--allow-destination)


class ScenarioError(Exception):
    """A scenario file that cannot be read; the message names the file and the field."""


@dataclass
class Result:
    scenario: Scenario
    true_positives: list[Expectation] = field(default_factory=list)
    false_negatives: list[Expectation] = field(default_factory=list)
    false_positives: list[dict[str, Any]] = field(default_factory=list)  # unexpected alerts
    skipped_records: int = 0

    @property
    def passed(self) -> bool:
        return not self.false_negatives and not self.false_positives


def load(folder: Path) -> Scenario:
    path = folder / "scenario.yaml"
    try:
        scenario = msgspec.yaml.decode(path.read_bytes(), type=Scenario)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    if scenario.kind == "attack" and not scenario.expect:
        raise ScenarioError(f"{path}: an attack scenario must expect at least one analytic")
    return scenario


def discover(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("scenario.yaml"))


def engine_config(scenario: Scenario) -> EngineConfig:
    """What the scenario's deployment declares, as detect's flags would give it."""
    return EngineConfig(
        internal_cidrs=scenario.internal_cidrs,
        external_cidrs=scenario.external_cidrs,
        allowed_destinations=scenario.allowed_destinations,
    )


def run(folder: Path, scenario: Scenario) -> Result:
    config = engine_config(scenario)
    outcome = detect_files([str(folder / t) for t in scenario.telemetry], config, [])
    result = Result(
        scenario, skipped_records=outcome.report.skipped_total + len(outcome.unreadable)
    )
    unmatched = [a for a in outcome.alerts if a["severity_id"] > LOW]
    for expected in scenario.expect:
        hit = next((a for a in outcome.alerts if _matches(a, expected)), None)
        if hit is None:
            result.false_negatives.append(expected)
            continue
        result.true_positives.append(expected)
        unmatched = [a for a in unmatched if a is not hit and not _matches(a, expected)]
    result.false_positives = unmatched
    return result


def _matches(alert: dict[str, Any], expected: Expectation) -> bool:
    if alert["finding_info"]["analytic"]["uid"] != expected.analytic:
        return False
    if alert["severity_id"] < expected.min_severity:
        return False
    kind, _, name = expected.entity.partition(":")
    if kind == "container":
        return str(alert_container(alert).get("uid", "")).startswith(name.lower())
    return str((alert.get("device") or {}).get("hostname", "")).lower() == name.lower()


@dataclass
class Score:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    @property
    def precision(self) -> float | None:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else None

    @property
    def recall(self) -> float | None:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else None


def score_by_analytic(results: Iterable[Result]) -> dict[str, Score]:
    scores: dict[str, Score] = {}
    for result in results:
        for expected in result.true_positives:
            scores.setdefault(expected.analytic, Score()).true_positives += 1
        for expected in result.false_negatives:
            scores.setdefault(expected.analytic, Score()).false_negatives += 1
        for alert in result.false_positives:
            uid = alert["finding_info"]["analytic"]["uid"]
            scores.setdefault(uid, Score()).false_positives += 1
    return dict(sorted(scores.items()))


def totals(results: Iterable[Result]) -> Counter[str]:
    counted: Counter[str] = Counter()
    for result in results:
        counted[f"{result.scenario.kind} scenarios"] += 1
        counted["passed" if result.passed else "failed"] += 1
    return counted
