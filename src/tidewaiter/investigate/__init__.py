"""Investigate one finding: the context of its container around the alert, related findings,
the workload's baseline, and which benign profile or suppression came close (verify).

Read-only: nothing here changes the store, the telemetry or the system.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from tidewaiter.alerts import alert_container
from tidewaiter.detection import cmdline
from tidewaiter.detection.addresses import AddressPolicy
from tidewaiter.detection.catalog import load
from tidewaiter.detection.suppress import NearMatch, Suppression, Suppressor
from tidewaiter.findings import read_alerts
from tidewaiter.investigate.context import Context, gather, subject_key, telemetry_paths
from tidewaiter.investigate.verify import (
    BaselineView,
    baseline_view,
    container_of,
    near_matches,
    workload_of,
)
from tidewaiter.store import Store

__all__ = ["Investigation", "Related", "investigate", "telemetry_paths"]


class Related(msgspec.Struct):
    uid: str
    time: int
    severity: str
    title: str
    status: str
    where: str
    shared: list[str]  # "container", "workload", "image"


class Investigation(msgspec.Struct):
    alert: dict[str, Any]
    workload: str | None
    context: Context
    related: list[Related]
    baseline: BaselineView | None
    verify: list[NearMatch]
    response: str | None  # the ADS's response guidance for this analytic


def investigate(
    alert: dict[str, Any],
    paths: Sequence[str],
    *,
    window: float = 900.0,
    limit: int = 1000,
    store: Store | None = None,
    alerts_path: str | None = None,
    suppressions: Sequence[Suppression] = (),
    allowed_destinations: Sequence[str] = (),
    policy: AddressPolicy | None = None,
    fmt: str | None = None,
) -> Investigation:
    policy = policy or AddressPolicy()
    uid = alert["finding_info"]["uid"]
    context = gather(alert, paths, window, limit, policy, fmt)
    workload = (store.alert_workload(uid) if store is not None else None) or workload_of(alert)
    related: list[Related] = []
    if store is not None:
        related += [_related(a, shared) for a, shared in store.related_alerts(uid)]
    if alerts_path is not None:
        known = {r.uid for r in related}
        related += [r for r in _related_in_file(alert, alerts_path, workload) if r.uid not in known]
    profile = None
    if store is not None and workload is not None:
        profile = store.load_baselines().profiles.get(workload)
    rules = [*suppressions, *(store.suppressions() if store is not None else ())]
    suppressor = Suppressor(rules, allowed_destinations)
    analytic = load().analytics.get(alert["finding_info"]["analytic"]["uid"])
    return Investigation(
        alert=alert,
        workload=workload,
        context=context,
        related=sorted(related, key=lambda r: r.time),
        baseline=baseline_view(profile, alert),
        verify=near_matches(alert, suppressor, policy, _ran_before(context, alert)),
        response=analytic.response if analytic is not None else None,
    )


def _ran_before(context: Context, alert: dict[str, Any]) -> frozenset[str]:
    """Executables launched in the context before the finding's first evidence."""
    first = alert["finding_info"]["first_seen_time"] / 1000
    return frozenset(
        cmdline.exe_name(entry.process)
        for entry in context.timeline
        if entry.activity == "launch" and entry.time < first and entry.process
    )


def _related_in_file(alert: dict[str, Any], path: str, workload: str | None) -> list[Related]:
    uid = alert["finding_info"]["uid"]
    mine_key = subject_key(alert) if alert_container(alert) else None
    image = (alert_container(alert).get("image") or {}).get("name")
    out = []
    for other in read_alerts(path):
        if other["finding_info"]["uid"] == uid:
            continue
        shared = []
        if mine_key is not None and alert_container(other) and subject_key(other) == mine_key:
            shared.append("container")
        if workload is not None and container_of(other) and workload_of(other) == workload:
            shared.append("workload")
        other_image = (alert_container(other).get("image") or {}).get("name")
        if image and other_image == image:
            shared.append("image")
        if shared:
            out.append(_related(other, shared))
    return out


def _related(alert: dict[str, Any], shared: list[str]) -> Related:
    container = alert_container(alert)
    host = (alert.get("device") or {}).get("hostname")
    where = f"container {str(container['uid'])[:12]}" if container.get("uid") else "host"
    if host:
        where += f" on {host}"
    return Related(
        uid=alert["finding_info"]["uid"],
        time=alert["time"],
        severity=alert.get("severity", "?"),
        title=alert["finding_info"].get("title", ""),
        status=alert.get("status", "New"),
        where=where,
        shared=shared,
    )
