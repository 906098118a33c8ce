"""Findings as OCSF Detection Finding objects (class 2004), the alert contract of every sink.

The objects validate against OCSF 1.4.0 with the container and host profiles (tests check it
with the published schema). What OCSF has no attribute for goes where it allows free data: an
evidence's time, byte counts and the record it came from (``raw_ref``) sit in the evidence's
``data``; the container is each evidence's ``container`` and, where the host is known, the
device's (OCSF has no device without a name or address); an image known only by its reference
has that reference as its ``uid``. Readers use the accessors at the end of
this module, which also read alerts stored before that layout (container and evidence time,
traffic and raw_ref at the top of their objects).
"""

from __future__ import annotations

from typing import Any

from tidewaiter import __version__
from tidewaiter.detection.analytics import Finding
from tidewaiter.detection.catalog import Catalog, load
from tidewaiter.detection.signals import Signal
from tidewaiter.events import Event, Process

OCSF_VERSION = "1.4.0"
PROFILES = ("container", "host")
UNKNOWN_DEVICE = 0  # device.type_id: a finding names a host, not what kind of device it is
REGULAR_FILE = 1  # file.type_id
CLASS_UID = 2004
CATEGORY_UID = 2
ACTIVITY_CREATE = 1
ACTIVITY_UPDATE = 2


def delivery_key(alert: dict[str, Any]) -> str:
    """What a sink deduplicates on: the finding uid, and the revision of an update (a later
    state of the same finding is a new delivery, the same state again is not)."""
    uid = str(alert["finding_info"]["uid"])
    revision = (alert.get("metadata") or {}).get("sequence") or 0
    return f"{uid}.{revision}" if revision else uid


def to_ocsf(finding: Finding, catalog: Catalog | None = None) -> dict[str, Any]:
    catalog = catalog or load()
    entity = finding.entity
    activity = ACTIVITY_UPDATE if finding.revision else ACTIVITY_CREATE
    alert: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity,
        "activity_name": "Update" if finding.revision else "Create",
        "type_uid": CLASS_UID * 100 + activity,
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
            "profiles": list(PROFILES),
            "product": {"name": "tidewaiter", "vendor_name": "tidewaiter", "version": __version__},
        },
    }
    if finding.revision:
        # The same finding with late evidence joined: the revision orders the updates.
        alert["metadata"]["sequence"] = finding.revision
        alert["finding_info"]["modified_time"] = _ms(finding.time)
    if finding.suppressed_by:
        alert["status_id"], alert["status"] = 3, "Suppressed"
        alert["status_detail"] = finding.suppressed_by
    else:
        alert["status_id"], alert["status"] = 1, "New"
    if finding.omitted:
        alert["finding_info"]["desc"] += f"; {finding.omitted} more signals not listed"
    hostname = entity.host or next((s.event.host for s in finding.evidence if s.event.host), None)
    device: dict[str, Any] = {"type_id": UNKNOWN_DEVICE}
    if hostname:
        device["hostname"] = hostname
    if entity.container is not None:
        container = entity.container
        out: dict[str, Any] = {"uid": container.uid}
        if container.name:
            out["name"] = container.name
        if container.image is not None and (container.image.uid or container.image.name):
            # OCSF requires image.uid; a source that names the image only by its reference
            # (Falco, Docker events) has that reference stand for it.
            image = container.image
            out["image"] = _strip({"name": image.name, "uid": image.uid or image.name})
        if container.runtime:
            out["runtime"] = container.runtime
        for evidence in alert["evidences"]:
            evidence["container"] = out
        if hostname:
            device["container"] = out
        if container.namespace or container.pod_name:
            alert["unmapped"] = {
                "k8s": {"namespace": container.namespace, "pod": container.pod_name}
            }
    if hostname:
        alert["device"] = device
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
    data: dict[str, Any] = {
        "time": _ms(event.time),
        "signal": signal.kind.value,
        "tool": signal.tool,
        "explanation": signal.explanation,
        "raw_ref": {k: v for k, v in _raw(event).items() if v is not None},
    }
    item: dict[str, Any] = {"data": data}
    if event.process is not None:
        item["process"] = _process(event.process, _record_uid(data["raw_ref"]))
    if event.file is not None:
        item["file"] = _file(event.file.path)
        if event.file.size is not None:
            item["file"]["size"] = event.file.size
    elif signal.archive_path:
        item["file"] = _file(signal.archive_path)
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
        data["records"] = signal.repeats
        data["last_time"] = _ms(signal.last_time or event.time)
    if signal.bytes_out is not None:  # a folded flow: the sum of its sends
        data["traffic"] = {"bytes_out": signal.bytes_out}
    elif event.traffic is not None and event.traffic.bytes_out is not None:
        data["traffic"] = _strip(
            {"bytes_out": event.traffic.bytes_out, "bytes_in": event.traffic.bytes_in}
        )
    return item


def _file(path: str) -> dict[str, Any]:
    return {"path": path, "name": _basename(path), "type_id": REGULAR_FILE}


def _basename(path: str) -> str:
    """The last component of a POSIX or Windows path (a trailing separator ignored)."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or path


def _record_uid(ref: dict[str, Any]) -> str:
    where = ref.get("line", ref.get("record_id", ref.get("chunk", "")))
    return f"{ref.get('source', '')}:{ref.get('path', '')}:{where}"


def _process(process: Process, record: str) -> dict[str, Any]:
    """OCSF needs a pid or a uid: a process known only from the record that named its command
    (a Kubernetes pods/exec, a Docker exec_create) has that record's place as its uid."""
    uid = process.uid if process.uid is not None or process.pid is not None else record
    out = _strip(
        {
            "pid": process.pid,
            "uid": uid,
            "name": _process_name(process),
            "cmd_line": process.cmd_line,
            "working_directory": process.cwd,
            "user": {"name": process.user} if process.user else None,
            "file": _file(process.path) if process.path else None,
        }
    )
    if process.parent is not None:
        out["parent_process"] = _process(process.parent, record + ":parent")
    return out


def _process_name(process: Process) -> str | None:
    if process.path:
        return _basename(process.path)
    words = (process.cmd_line or "").split(maxsplit=1)
    return _basename(words[0]) if words else None


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


# --- reading alerts ---------------------------------------------------------------------------


def alert_container(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert's container object, {} for a host finding."""
    evidences = alert.get("evidences") or [{}]
    return (
        (alert.get("device") or {}).get("container")
        or evidences[0].get("container")
        or alert.get("container")
        or {}
    )


def evidence_time(evidence: dict[str, Any]) -> int | None:
    """When the evidence's record happened, in epoch milliseconds."""
    value = (evidence.get("data") or {}).get("time", evidence.get("time"))
    return value if isinstance(value, int) else None


def evidence_ref(evidence: dict[str, Any]) -> dict[str, Any]:
    """The record the evidence came from: source, path and line, record id or EVTX chunk."""
    return (evidence.get("data") or {}).get("raw_ref") or evidence.get("raw_ref") or {}


def evidence_bytes_out(evidence: dict[str, Any]) -> int | None:
    traffic = (evidence.get("data") or {}).get("traffic") or evidence.get("traffic") or {}
    value = traffic.get("bytes_out")
    return value if isinstance(value, int) else None
