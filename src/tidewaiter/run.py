"""The detection run over telemetry files, below any command line.

`tidewaiter detect`, `evaluate`, `emulate`, the `--jobs` workers and the Spark job all call
``detect_files``: open the files (format sniffed or named), merge their events by time, run one
``Engine`` and hand every alert to every sink as it is decided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidewaiter.alerts import to_ocsf
from tidewaiter.detection.analytics import Finding
from tidewaiter.detection.baseline import Baselines
from tidewaiter.events import Event
from tidewaiter.identity import workload_key
from tidewaiter.pipeline import Engine, EngineConfig, merge_by_time, unanalysable
from tidewaiter.sinks import Sink
from tidewaiter.sources import ReadReport, open_all
from tidewaiter.store import Store


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
    worker_cpu_s: list[float] = field(default_factory=list)  # --jobs: each worker's CPU time


PROGRESS_EVERY = 4096  # events between two progress callbacks: a bar must not cost detection


def detect_files(
    paths: Sequence[str],
    config: EngineConfig,
    sinks: Sequence[Sink],
    fmt: str | None = None,
    store: Store | None = None,
    baselines: Baselines | None = None,
    jobs: int = 1,
    progress: Callable[[ReadReport], None] | None = None,
) -> Outcome:
    """Run detection over files; every alert goes to every sink as it is decided. Suppressed
    findings are kept in the outcome (and the store), never delivered.

    With ``jobs`` > 1 the work is sharded by entity over that many processes (tidewaiter.parallel)
    with the same alerts, delivered in time order at the end. A store (baselines learn across
    entities) and standard input keep the single streaming process."""
    if jobs > 1 and store is None and baselines is None and "-" not in paths:
        from tidewaiter.parallel import detect_parallel  # it builds on this module

        return detect_parallel(paths, config, sinks, jobs, fmt)
    outcome = Outcome()

    def deliver(finding: Finding) -> None:
        alert = to_ocsf(finding)
        outcome.alerts.append(alert)
        if store is not None:
            store.add_alert(alert, workload_of(finding))
        for sink in sinks:
            sink.write(alert)

    def hold(finding: Finding) -> None:
        alert = to_ocsf(finding)
        outcome.suppressed.append(alert)
        if store is not None:
            store.add_alert(alert, workload_of(finding), suppressed_by=finding.suppressed_by)

    engine = Engine(
        deliver,
        config,
        on_suppressed=hold,
        baselines=baselines,
        on_error=unanalysable(outcome.report),
    )
    outcome.expired = expired_suppressions(engine)
    for count, event in enumerate(merge_by_time(open_streams(paths, outcome, fmt)), 1):
        engine.process(event)
        if progress is not None and not count % PROGRESS_EVERY:
            progress(outcome.report)
    engine.flush()
    outcome.report.check_forced(fmt)
    outcome.hidden_below_min = engine.suppressed_below_min
    outcome.ahead, outcome.ahead_total = engine.ahead_examples, engine.ahead
    return outcome


def open_streams(paths: Sequence[str], outcome: Outcome, fmt: str | None) -> list[Iterator[Event]]:
    """Event streams from files, folders and globs; what cannot be read is named in the
    outcome."""
    return open_all(paths, outcome.report, fmt, outcome.unreadable, outcome.passed_over)


def expired_suppressions(engine: Engine) -> list[str]:
    return [
        f"suppression {s.id} expired on {s.expires} and no longer applies"
        for s in engine.suppressor.expired
    ]


def workload_of(finding: Finding) -> str | None:
    """The workload a finding is stored under (its baseline's key), if it is a container's."""
    container = finding.entity.container
    return workload_key(container) if container is not None else None
