"""Findings as OCSF Detection Finding objects (class 2004), the alert contract of every sink."""

from __future__ import annotations

from typing import Any

from tidewaiter import __version__
from tidewaiter.detection.analytics import Finding
from tidewaiter.detection.catalog import Catalog, load
from tidewaiter.detection.signals import Signal
from tidewaiter.events import Event, Process

OCSF_VERSION = "1.3.0"
CLASS_UID = 2004
CATEGORY_UID = 2
ACTIVITY_CREATE = 1


def to_ocsf(finding: Finding, catalog: Catalog | None = None) -> dict[str, Any]:
    catalog = catalog or load()
    entity = finding.entity
    alert: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "time": _ms(finding.time),
        "severity_id": finding.severity_id,
        "severity": finding.severity,
        "risk_score": finding.risk_score,
        "message": finding.title,
        "finding_info": {
            "uid": finding.uid,
            "title": finding.title,
            "desc": "; ".join(finding.reasons),
            "first_seen_time": _ms(finding.evidence[0].event.time),
            "last_seen_time": _ms(finding.time),
            "analytic": {
                "uid": finding.analytic.uid,
                "name": finding.analytic.name,
                "type_id": 1,
                "type": "Rule",
            },
            "attacks": [_attack(uid, catalog) for uid in finding.techniques],
            "types": [finding.analytic.priority],
        },
        "evidences": [_evidence(s) for s in finding.evidence],
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "tidewaiter", "vendor_name": "tidewaiter", "version": __version__},
        },
    }
    if finding.suppressed_by:
        alert["status_id"], alert["status"] = 3, "Suppressed"
        alert["status_detail"] = finding.suppressed_by
    else:
        alert["status_id"], alert["status"] = 1, "New"
    if finding.omitted:
        alert["finding_info"]["desc"] += f"; {finding.omitted} more signals not listed"
    hostname = entity.host or next((s.event.host for s in finding.evidence if s.event.host), None)
    if hostname:
        alert["device"] = {"hostname": hostname}
    if entity.container is not None:
        container = entity.container
        out: dict[str, Any] = {"uid": container.uid}
        if container.name:
            out["name"] = container.name
        if container.image is not None:
            out["image"] = {
                k: v for k, v in (("name", container.image.name), ("uid", container.image.uid)) if v
            }
        if container.runtime:
            out["runtime"] = container.runtime
        alert["container"] = out
        if container.namespace or container.pod_name:
            alert["unmapped"] = {
                "k8s": {"namespace": container.namespace, "pod": container.pod_name}
            }
    return alert


def _attack(uid: str, catalog: Catalog) -> dict[str, Any]:
    technique, tactic_name = catalog.technique(uid)
    return {
        "technique": {"uid": uid, "name": technique.name},
        "tactic": {"uid": technique.tactic, "name": tactic_name},
        "version": "v16",
    }


def _evidence(signal: Signal) -> dict[str, Any]:
    event = signal.event
    item: dict[str, Any] = {
        "time": _ms(event.time),
        "data": {
            "signal": signal.kind.value,
            "tool": signal.tool,
            "explanation": signal.explanation,
        },
        "raw_ref": {k: v for k, v in _raw(event).items() if v is not None},
    }
    if event.process is not None:
        item["process"] = _process(event.process)
    if event.file is not None:
        item["file"] = {"path": event.file.path}
        if event.file.size is not None:
            item["file"]["size"] = event.file.size
    elif signal.archive_path:
        item["file"] = {"path": signal.archive_path}
    if event.dst_endpoint is not None:
        item["dst_endpoint"] = _strip(
            {
                "ip": event.dst_endpoint.ip,
                "port": event.dst_endpoint.port,
                "hostname": event.dst_endpoint.hostname,
            }
        )
    elif signal.destination is not None:
        dst = signal.destination
        item["dst_endpoint"] = _strip({"ip": dst.ip, "port": dst.port, "hostname": dst.host})
    if event.src_endpoint is not None:
        item["src_endpoint"] = _strip(
            {"ip": event.src_endpoint.ip, "port": event.src_endpoint.port}
        )
    if signal.repeats > 1:
        item["data"]["records"] = signal.repeats
        item["data"]["last_time"] = _ms(signal.last_time or event.time)
    if signal.bytes_out is not None:  # a folded flow: the sum of its sends
        item["traffic"] = {"bytes_out": signal.bytes_out}
    elif event.traffic is not None and event.traffic.bytes_out is not None:
        item["traffic"] = _strip(
            {"bytes_out": event.traffic.bytes_out, "bytes_in": event.traffic.bytes_in}
        )
    return item


def _process(process: Process) -> dict[str, Any]:
    out = _strip(
        {
            "pid": process.pid,
            "uid": process.uid,
            "cmd_line": process.cmd_line,
            "cwd": process.cwd,
            "user": {"name": process.user} if process.user else None,
            "file": {"path": process.path} if process.path else None,
        }
    )
    if process.parent is not None:
        out["parent_process"] = _process(process.parent)
    return out


def _raw(event: Event) -> dict[str, Any]:
    raw = event.raw
    return {
        "source": raw.source,
        "path": raw.path,
        "line": raw.line,
        "record_id": raw.record_id,
        "chunk": raw.chunk,
    }


def _strip(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _ms(epoch: float) -> int:
    return round(epoch * 1000)
