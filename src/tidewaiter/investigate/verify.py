"""The "verify" step: is this a known benign operation? Which benign profile or suppression came
close to covering the finding, and what the workload's baseline says is usual for it.

Profiles and suppressions judge a detection ``Finding``; an alert read back from the store or a
file is OCSF JSON, so it is turned back into the few parts of a Finding they read.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tidewaiter import alerts
from tidewaiter.detection import cmdline
from tidewaiter.detection.addresses import AddressPolicy
from tidewaiter.detection.analytics import Finding
from tidewaiter.detection.baseline import (
    BaselineConfig,
    Profile,
    destination_key,
    prefix_key,
)
from tidewaiter.detection.catalog import AnalyticSpec, load
from tidewaiter.detection.correlate import Entity
from tidewaiter.detection.signals import Destination, Signal, SignalKind
from tidewaiter.detection.suppress import NearMatch, Suppressor
from tidewaiter.events import Activity, Container, Event, Image, Kind, Process, RawRef
from tidewaiter.identity import workload_key

TOP = 5  # entries of each baseline table shown
_CONTEXT_CHECKS = frozenset({"destinations", "internal_only", "expires"})


class BaselineView(msgspec.Struct, omit_defaults=True):
    workload: str
    days: float
    trusted: bool
    events: float
    executables: list[tuple[str, float]]
    archive_shapes: list[tuple[str, float]]
    destinations: list[tuple[str, float]]
    notes: list[str]  # what the baseline says of this finding's evidence
    egress_windows: int = 0
    egress_p99_bytes: float | None = None


def container_of(alert: dict[str, Any]) -> Container | None:
    """The alert's container as the event model has it (namespace and pod from unmapped.k8s)."""
    raw = alerts.alert_container(alert)
    if not isinstance(raw, dict) or not raw.get("uid"):
        return None
    image = raw.get("image") or {}
    k8s = (alert.get("unmapped") or {}).get("k8s") or {}
    return Container(
        uid=str(raw["uid"]),
        name=raw.get("name"),
        image=Image(image.get("name"), image.get("uid")) if image else None,
        runtime=raw.get("runtime"),
        pod_name=k8s.get("pod"),
        namespace=k8s.get("namespace"),
    )


def finding_from_alert(alert: dict[str, Any], policy: AddressPolicy | None = None) -> Finding:
    """The parts of a Finding that profiles and suppressions read, rebuilt from an alert."""
    policy = policy or AddressPolicy()
    info = alert["finding_info"]
    container = container_of(alert)
    host = (alert.get("device") or {}).get("hostname")
    key = f"container:{container.uid[:12]}" if container else f"host:{(host or '').lower()}"
    catalog = load()
    analytic_uid = info["analytic"]["uid"]
    analytic = catalog.analytics.get(analytic_uid) or AnalyticSpec(
        analytic_uid, info["analytic"].get("name", analytic_uid), "", "", (), "", "", "", ""
    )
    evidence = tuple(_signal(e, host, policy) for e in alert.get("evidences", []))
    return Finding(
        uid=info["uid"],
        analytic=analytic,
        title=info.get("title", ""),
        entity=Entity(key, host, container),
        severity_id=alert.get("severity_id", 1),
        risk_score=alert.get("risk_score", 0),
        techniques=tuple(a["technique"]["uid"] for a in info.get("attacks", [])),
        evidence=evidence,
        reasons=tuple(r for r in info.get("desc", "").split("; ") if r),
    )


def _signal(item: dict[str, Any], host: str | None, policy: AddressPolicy) -> Signal:
    data = item.get("data") or {}
    try:
        kind = SignalKind(str(data.get("signal")))
    except ValueError:
        kind = SignalKind.EGRESS if item.get("dst_endpoint") else SignalKind.ARCHIVE_FILE
    process = _process(item.get("process"), 0)
    dst = item.get("dst_endpoint") or {}
    destination = None
    if dst:
        ip, hostname = dst.get("ip"), dst.get("hostname")
        internal = policy.ip_internal(ip) if ip else None
        if internal is None and hostname:
            internal = policy.host_internal(hostname)
        destination = Destination(hostname, ip, dst.get("port"), bool(internal))
    event = Event(
        time=(alerts.evidence_time(item) or 0) / 1000,
        kind=Kind.PROCESS if process is not None else Kind.NETWORK,
        activity=Activity.LAUNCH if process is not None else Activity.CONNECT,
        raw=RawRef(
            **{
                k: v
                for k, v in (alerts.evidence_ref(item) or {"source": "?", "path": "?"}).items()
                if k in ("source", "path", "line", "record_id", "chunk")
            }
        ),
        host=host,
        process=process,
    )
    return Signal(
        kind=kind,
        tool=str(data.get("tool") or ""),
        technique="",
        event=event,
        explanation=str(data.get("explanation") or ""),
        archive_path=(item.get("file") or {}).get("path"),
        destination=destination,
        bytes_out=alerts.evidence_bytes_out(item),
    )


def _process(raw: object, depth: int) -> Process | None:
    if not isinstance(raw, dict) or depth > 8:
        return None
    return Process(
        pid=raw.get("pid"),
        uid=raw.get("uid"),
        path=(raw.get("file") or {}).get("path"),
        cmd_line=raw.get("cmd_line"),
        parent=_process(raw.get("parent_process"), depth + 1),
    )


def near_matches(
    alert: dict[str, Any],
    suppressor: Suppressor,
    policy: AddressPolicy | None = None,
    recent: frozenset[str] = frozenset(),
) -> list[NearMatch]:
    """`recent`: executables that ran in the same place before the evidence, as detection
    counts them for profiles whose tool merely ran nearby (a backup script's gzip)."""
    return suppressor.explain(finding_from_alert(alert, policy), recent)


def came_close(match: NearMatch) -> bool:
    """Applies, or something of the finding itself held: a destination or expiry check alone
    says nothing about whether this is the benign operation the profile describes."""
    return match.applies or any(
        c.matched and c.condition not in _CONTEXT_CHECKS for c in match.checks
    )


def workload_of(alert: dict[str, Any]) -> str | None:
    container = container_of(alert)
    return workload_key(container) if container is not None else None


def baseline_view(
    profile: Profile | None, alert: dict[str, Any], config: BaselineConfig | None = None
) -> BaselineView | None:
    """The workload's profile in short, and what it says of each tool and destination in the
    alert's evidence."""
    if profile is None:
        return None
    config = config or BaselineConfig()
    notes: list[str] = []
    history = f"{profile.days:.1f} days of history"
    if not profile.trusted(config):
        notes.append(f"only {history}: too little to trust (needs {config.min_days:g})")
    tools: dict[str, None] = {}
    for item in alert.get("evidences", []):
        process = item.get("process") or {}
        name = cmdline.exe_name((process.get("file") or {}).get("path"))
        if name:
            tools[name] = None
    for name in tools:
        seen = profile.executables.get(name, 0.0)
        if seen >= 1:
            notes.append(f"{name} runs in this workload ({seen:.0f} times in {history})")
        else:
            notes.append(f"{name} has never run in this workload in {history}")
    destinations: dict[str, None] = {}
    for item in alert.get("evidences", []):
        dst = item.get("dst_endpoint") or {}
        if dst.get("ip"):
            destinations[destination_key(dst["ip"], dst.get("port"))] = None
    for key in destinations:
        if key in profile.destinations:
            notes.append(f"{key} is a usual destination ({profile.destinations[key]:.0f} times)")
        elif prefix_key(key) in profile.prefixes:
            notes.append(f"{key} is new, but its network {prefix_key(key)} is usual")
        else:
            notes.append(f"{key} was never a destination of this workload")
    return BaselineView(
        workload=profile.workload,
        days=round(profile.days, 2),
        trusted=profile.trusted(config),
        events=round(profile.events, 1),
        executables=_top(profile.executables),
        archive_shapes=_top(profile.archive_shapes),
        destinations=_top(profile.destinations),
        notes=notes,
        egress_windows=len(profile.window_bytes),
        egress_p99_bytes=profile.p99() if profile.window_bytes else None,
    )


def _top(table: dict[str, float]) -> list[tuple[str, float]]:
    return [(k, round(v, 1)) for k, v in sorted(table.items(), key=lambda kv: -kv[1])[:TOP]]
