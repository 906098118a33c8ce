"""How much of tidewaiter's recall plain Sigma keeps: the exported rules run over the scenarios.

For every attack expectation of the labelled scenario set that tidewaiter meets, three questions:
did any exported single-event rule match a record of the expected container or host at all; did
one match at the expectation's severity (a rule's level); and would the exported correlation
rules (archive, then transfer, per container or host, within the window) have fired. Benign
scenarios count the other way: a single-event rule at medium or above, or a correlation, is
noise. The difference is what tidewaiter's correlation and command-line reading add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tidewaiter import evaluate
from tidewaiter.detection.addresses import AddressPolicy
from tidewaiter.detection.analytics import SIGMA_LEVELS
from tidewaiter.detection.correlate import ARCHIVING, CARRYING, CorrelationConfig
from tidewaiter.detection.signals import Signal
from tidewaiter.events import Event
from tidewaiter.sigma.export import export
from tidewaiter.sigma.load import Rules, load_documents
from tidewaiter.sources import ReadReport, open_events

MEDIUM = 3


@dataclass
class Figures:
    expectations: int = 0  # attack expectations in the set
    tidewaiter: int = 0  # ... that tidewaiter meets
    any_match: int = 0  # ... of those, where some exported rule matched the entity at all
    at_severity: int = 0  # ... where one matched at the expected severity
    correlated: int = 0  # ... where the exported correlation rules would fire
    benign: int = 0  # benign scenarios
    benign_noisy: int = 0  # ... where a single-event rule at medium or above matched
    benign_correlated: int = 0  # ... where a correlation rule would fire
    missed: list[str] = field(default_factory=list)  # scenarios plain Sigma misses entirely

    def percent(self, part: int) -> str:
        return f"{100 * part / self.tidewaiter:.0f}%" if self.tidewaiter else "n/a"

    def lines(self) -> list[str]:
        return [
            f"attack expectations: {self.expectations}; tidewaiter meets {self.tidewaiter}",
            f"plain Sigma, any exported rule on the entity: {self.any_match} "
            f"({self.percent(self.any_match)} of tidewaiter's)",
            f"plain Sigma, a rule at the expected severity: {self.at_severity} "
            f"({self.percent(self.at_severity)})",
            f"Sigma correlation rules (archive then transfer): {self.correlated} "
            f"({self.percent(self.correlated)})",
            f"benign scenarios: {self.benign}; a single-event rule at medium or above fires in "
            f"{self.benign_noisy}, a correlation rule in {self.benign_correlated}",
        ]


def exported_rules() -> Rules:
    """The exported single-event rules, loaded through pySigma like a user's."""
    rules = Rules()
    documents = [r.body for r in export() if "correlation" not in r.body]
    load_documents(documents, Path("sigma-export"), rules)
    if rules.problems:
        raise ValueError("; ".join(rules.problems))
    return rules


def measure(root: Path, config: CorrelationConfig | None = None) -> Figures:
    config = config or CorrelationConfig()
    rules = exported_rules()
    figures = Figures()
    for folder in evaluate.discover(root):
        scenario = evaluate.load(folder)
        signals = _signals(folder, scenario, rules)
        if scenario.kind == "benign":
            figures.benign += 1
            levels = [SIGMA_LEVELS[s.rule.level] for s in signals if s.rule]
            figures.benign_noisy += any(level >= MEDIUM for level in levels)
            figures.benign_correlated += any(
                _correlated(group, config.window) for group in _groups(signals).values()
            )
            continue
        result = evaluate.run(folder, scenario)
        met = {id(e) for e in result.true_positives}
        for expected in scenario.expect:
            figures.expectations += 1
            if id(expected) not in met:
                continue
            figures.tidewaiter += 1
            mine = [s for s in signals if _on(s.event, expected.entity)]
            figures.any_match += bool(mine)
            figures.at_severity += any(
                s.rule and SIGMA_LEVELS[s.rule.level] >= expected.min_severity for s in mine
            )
            figures.correlated += _correlated(mine, config.window)
            if not mine:
                figures.missed.append(scenario.id)
    return figures


def _signals(folder: Path, scenario: evaluate.Scenario, rules: Rules) -> list[Signal]:
    policy = AddressPolicy(scenario.internal_cidrs, scenario.external_cidrs)
    found: list[Signal] = []
    for telemetry in scenario.telemetry:
        for event in open_events(str(folder / telemetry), ReadReport()):
            found += rules.signals(event, policy)
    return sorted(found, key=lambda s: s.event.time)


def _on(event: Event, entity: str) -> bool:
    kind, _, name = entity.partition(":")
    if kind == "container":
        return event.container is not None and event.container.uid.startswith(name.lower())
    return (event.host or "").lower() == name.lower()


def _groups(signals: list[Signal]) -> dict[str, list[Signal]]:
    """What the correlation rules group by: the container id, else the host."""
    groups: dict[str, list[Signal]] = {}
    for signal in signals:
        event = signal.event
        key = f"c:{event.container.uid}" if event.container else f"h:{event.host}"
        groups.setdefault(key, []).append(signal)
    return groups


def _correlated(signals: list[Signal], window: float) -> bool:
    """temporal_ordered: an archiving rule's match, then a transfer rule's, within the window."""
    archived = [s.event.time for s in signals if s.kind in ARCHIVING]
    carried = [s.event.time for s in signals if s.kind in CARRYING]
    return any(0 <= c - a <= window for a in archived for c in carried)
