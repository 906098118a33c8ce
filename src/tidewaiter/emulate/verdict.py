"""Did detection conclude what the scenario expects? One check per expectation, plus quiet.

The same judgement serves live runs and replays. The entity an expectation names is the
scenario's container (by its id) or its host; a format that cannot name containers (auditd,
Sysmon, eslogger) can only be judged at the host, and the check says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tidewaiter.alerts import alert_container
from tidewaiter.emulate.scenario import Expect, Scenario, severity_level

LOW = severity_level("low")

Alert = dict[str, Any]


@dataclass(frozen=True)
class Check:
    what: str  # "tw-archive-exfil for the container, at least high", "nothing above low"
    passed: bool
    detail: str  # what fired (or did not)
    gap: str | None = None  # a known detection gap: reported, not counted

    @property
    def label(self) -> str:
        if self.gap is not None:
            return "gap closed" if self.passed else "known gap"
        return "pass" if self.passed else "FAIL"


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks if c.gap is None)

    @property
    def open_gaps(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.gap is not None and not c.passed)


@dataclass(frozen=True)
class Target:
    """Who the alerts must name: the container (None when the telemetry cannot name one) and
    the host."""

    container_id: str | None
    host: str | None

    def describe(self, entity: str) -> str:
        if entity == "container" and self.container_id is not None:
            return f"container {self.container_id[:12]}"
        if entity == "container":
            return f"host {self.host or '?'} (this telemetry names no containers)"
        return f"host {self.host or '?'}"

    def names(self, alert: Alert, entity: str) -> bool:
        container = alert_container(alert)
        uid = container.get("uid") if isinstance(container, dict) else None
        if entity == "container" and self.container_id is not None:
            return isinstance(uid, str) and _same_container(uid, self.container_id)
        if uid is not None:
            return False  # an alert about some container, not about the host
        hostname = (alert.get("device") or {}).get("hostname")
        return self.host is None or hostname in (None, self.host)


def judge(scenario: Scenario, alerts: Iterable[Alert], target: Target, mode: str) -> Verdict:
    """``mode`` is "live" or the format replayed: it decides which known gaps apply."""
    alerts = list(alerts)
    checks = [_expectation(e, alerts, target, e.gap_for(mode)) for e in scenario.expect]
    if scenario.quiet:
        checks.append(_quiet(scenario, alerts, target))
    return Verdict(tuple(checks))


def _expectation(expect: Expect, alerts: list[Alert], target: Target, gap: str | None) -> Check:
    low, high = severity_level(expect.min_severity), severity_level(expect.max_severity)
    bounds = f"at least {expect.min_severity}" if low > 1 else "any severity"
    if high < 5:
        bounds += f", at most {expect.max_severity}"
    what = f"{expect.analytic} for {target.describe(expect.entity)}, {bounds}"
    if expect.techniques:
        what += f", naming {', '.join(expect.techniques)}"
    mine = [a for a in alerts if target.names(a, expect.entity)]
    same = [a for a in mine if _analytic(a) == expect.analytic]
    good = [
        a
        for a in same
        if low <= a["severity_id"] <= high and set(expect.techniques) <= _techniques(a)
    ]
    if good:
        detail = "fired: " + "; ".join(_describe(a) for a in good)
    elif same:
        detail = "fired outside the expectation: " + "; ".join(_describe(a) for a in same)
    elif mine:
        detail = "not fired; instead: " + "; ".join(_describe(a) for a in mine)
    else:
        detail = f"not fired; {len(alerts)} alert(s) in all, none for this entity"
    return Check(what, bool(good), detail, gap)


def _quiet(scenario: Scenario, alerts: list[Alert], target: Target) -> Check:
    entity = "container" if scenario.live_capable else "host"
    loud = [a for a in alerts if target.names(a, entity) and a["severity_id"] > LOW]
    detail = "; ".join(_describe(a) for a in loud) if loud else "nothing above low fired"
    return Check(f"nothing above low for {target.describe(entity)}", not loud, detail)


def _analytic(alert: Alert) -> str:
    return str(alert["finding_info"]["analytic"]["uid"])


def _techniques(alert: Alert) -> set[str]:
    return {a["technique"]["uid"] for a in alert["finding_info"].get("attacks", [])}


def _describe(alert: Alert) -> str:
    return f"{alert['severity']} {_analytic(alert)} ({alert['finding_info']['title']})"


def _same_container(reported: str, expected: str) -> bool:
    reported, expected = reported.lower(), expected.lower()
    return reported.startswith(expected) or expected.startswith(reported)
