"""What a running watch reports to Prometheus and to a Kubernetes probe.

The loop's thread owns every figure. Once a round it publishes an immutable ``Sample``; the HTTP
thread only reads the latest one (a reference swap), so a scrape never sees half a round and never
slows detection. Counters only grow, as Prometheus expects: they are kept since the process
started (a restart resets them, which ``rate()`` handles).

Labels are bounded: inputs and sinks are the configured ones, reasons come from ``ReadReport``
(which caps them), analytics and severities from the catalog, and suppressions by the profile or
rule id, never by anything telemetry can invent.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from tidewaiter.detection.analytics import Finding


@dataclass(frozen=True)
class InputSample:
    name: str
    fmt: str
    records: int
    events: int
    behind_bytes: int
    behind_seconds: float | None  # wall clock minus the newest event time read; None before one
    failing: str | None  # why the last read failed, while it fails


@dataclass(frozen=True)
class SinkSample:
    name: str
    delivered: int
    failed: int
    spool_depth: int | None  # None for a sink without a spool
    failing_for: float  # seconds the sink has been failing (0 when it works)


@dataclass(frozen=True)
class Sample:
    taken: float  # time.time()
    inputs: tuple[InputSample, ...] = ()
    sinks: tuple[SinkSample, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=dict)
    findings: Mapping[tuple[str, str], int] = field(default_factory=dict)
    suppressed: Mapping[str, int] = field(default_factory=dict)
    containers: int = 0
    open_episodes: int = 0
    checkpoint_age: float | None = None  # seconds since the last saved checkpoint
    unsaved_for: float = 0.0  # seconds the oldest change not yet checkpointed has waited
    checkpoint_failing: str | None = None


class Tally:
    """What the loop counts as it goes (its thread only)."""

    def __init__(self) -> None:
        self.records: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.newest: dict[str, float] = {}  # input -> newest event time read
        self.findings: Counter[tuple[str, str]] = Counter()
        self.suppressed: Counter[str] = Counter()

    def read(self, name: str, records: int, events: int, newest: float | None) -> None:
        self.records[name] += records
        self.events[name] += events
        if newest is not None and newest > self.newest.get(name, float("-inf")):
            self.newest[name] = newest

    def finding(self, finding: Finding) -> None:
        self.findings[(finding.analytic.uid, finding.severity.lower())] += 1

    def held_back(self, finding: Finding) -> None:
        by = finding.suppressed_by or "unknown"
        self.suppressed[by.partition(":")[0].strip()] += 1


class WatchCollector(Collector):
    """Turns the latest ``Sample`` into Prometheus metric families at each scrape."""

    def __init__(self) -> None:
        self.sample = Sample(taken=time.time())

    def collect(self) -> Iterator[Metric]:
        s = self.sample
        records = CounterMetricFamily(
            "tidewaiter_records_read", "Records read, per input", labels=["input", "format"]
        )
        events = CounterMetricFamily(
            "tidewaiter_events_read", "Events decoded from the records, per input",
            labels=["input", "format"],
        )  # fmt: skip
        lag_bytes = GaugeMetricFamily(
            "tidewaiter_input_lag_bytes", "Bytes arrived and not read yet", labels=["input"]
        )
        lag_seconds = GaugeMetricFamily(
            "tidewaiter_input_lag_seconds",
            "Now minus the newest event time read from the input",
            labels=["input"],
        )
        up = GaugeMetricFamily("tidewaiter_input_up", "1 while the input reads", labels=["input"])
        for i in s.inputs:
            records.add_metric([i.name, i.fmt], i.records)
            events.add_metric([i.name, i.fmt], i.events)
            lag_bytes.add_metric([i.name], i.behind_bytes)
            if i.behind_seconds is not None:
                lag_seconds.add_metric([i.name], i.behind_seconds)
            up.add_metric([i.name], 0 if i.failing else 1)
        yield from (records, events, lag_bytes, lag_seconds, up)

        skipped = CounterMetricFamily(
            "tidewaiter_records_skipped", "Records that could not be used", labels=["reason"]
        )
        for reason, count in s.skipped.items():
            skipped.add_metric([reason], count)
        yield skipped

        findings = CounterMetricFamily(
            "tidewaiter_findings", "Findings delivered as alerts", labels=["analytic", "severity"]
        )
        for (analytic, severity), count in s.findings.items():
            findings.add_metric([analytic, severity], count)
        suppressed = CounterMetricFamily(
            "tidewaiter_findings_suppressed",
            "Findings held back, by the benign profile or suppression",
            labels=["by"],
        )
        for by, count in s.suppressed.items():
            suppressed.add_metric([by], count)
        yield from (findings, suppressed)

        delivered = CounterMetricFamily(
            "tidewaiter_alerts_delivered", "Alerts a sink accepted", labels=["sink"]
        )
        failed = CounterMetricFamily(
            "tidewaiter_alerts_failed", "Failed writes or deliveries", labels=["sink"]
        )
        spool = GaugeMetricFamily(
            "tidewaiter_spool_depth", "Alerts waiting in a sink's spool", labels=["sink"]
        )
        failing = GaugeMetricFamily(
            "tidewaiter_sink_failing_seconds", "How long a sink has been failing", labels=["sink"]
        )
        for k in s.sinks:
            delivered.add_metric([k.name], k.delivered)
            failed.add_metric([k.name], k.failed)
            if k.spool_depth is not None:
                spool.add_metric([k.name], k.spool_depth)
            failing.add_metric([k.name], k.failing_for)
        yield from (delivered, failed, spool, failing)

        if s.checkpoint_age is not None:
            yield GaugeMetricFamily(
                "tidewaiter_checkpoint_age_seconds",
                "Seconds since the last checkpoint was saved",
                value=s.checkpoint_age + max(0.0, time.time() - s.taken),
            )
        yield GaugeMetricFamily(
            "tidewaiter_containers_tracked", "Containers detection holds state for",
            value=s.containers,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "tidewaiter_episodes_open", "Archive episodes waiting for a transfer or the window",
            value=s.open_episodes,
        )  # fmt: skip


@dataclass(frozen=True)
class Readiness:
    """/readyz: ready while every input reads, changes reach a checkpoint in time, and no sink
    has been failing longer than ``sink_failing``."""

    checkpoint_interval: float
    sink_failing: float = 300.0

    def problems(self, s: Sample) -> list[str]:
        problems = [f"input {i.name} cannot be read: {i.failing}" for i in s.inputs if i.failing]
        if s.checkpoint_failing:
            problems.append(f"the last checkpoint failed: {s.checkpoint_failing}")
        late = max(3 * self.checkpoint_interval, 30.0)
        if s.unsaved_for > late:
            problems.append(f"changes have waited {s.unsaved_for:.0f} s for a checkpoint")
        problems += [
            f"sink {k.name} has been failing for {k.failing_for:.0f} s"
            for k in s.sinks
            if k.failing_for > self.sink_failing
        ]
        if time.time() - s.taken > late:
            problems.append(f"the watch loop has not reported for {time.time() - s.taken:.0f} s")
        return problems


def registry(collector: WatchCollector) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg
