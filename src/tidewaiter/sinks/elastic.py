"""Elasticsearch (or OpenSearch) bulk API: each alert as an ECS document, NDJSON to ``/_bulk``.

A new finding is a ``create`` action with ``_id`` = the finding uid, so a batch sent again after a
timeout is idempotent (the copy already indexed answers 409, counted as delivered). An update of a
finding (OCSF activity 2) is an ``index`` action on the same ``_id``: it overwrites the document.
The key goes in ``Authorization: ApiKey <key>``. The response is read item by item: 2xx (and 409
on create) delivered; 429 and 5xx retried; anything else refused for good with Elastic's reason.

The document maps the finding onto ECS (event.kind alert, rule, threat, container, orchestrator,
host, process, file, destination, source) and keeps the OCSF alert whole, as a JSON string in
``event.original`` (ECS's place for the original event; not indexed, so it adds no fields).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from tidewaiter.alerts import alert_container, evidence_bytes_out
from tidewaiter.printable import printable
from tidewaiter.sinks.batch import Failures, Http, check_base_url, json_object, send_one
from tidewaiter.sinks.spool import DeliveryError

INDEX = "tidewaiter-alerts"
ACTIVITY_UPDATE = 2


def iso(epoch_ms: object) -> str | None:
    if not isinstance(epoch_ms, int) or isinstance(epoch_ms, bool):
        return None
    try:
        moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ecs(alert: dict[str, Any]) -> dict[str, Any]:
    """The ECS document of an OCSF Detection Finding."""
    info = alert.get("finding_info") or {}
    analytic = info.get("analytic") or {}
    evidences = alert.get("evidences") or []
    attacks = info.get("attacks") or []
    categories = ["intrusion_detection"]
    for key, category in (("process", "process"), ("file", "file"), ("dst_endpoint", "network")):
        if any(key in e for e in evidences):
            categories.append(category)
    doc: dict[str, Any] = {
        "@timestamp": iso(alert.get("time")),
        "message": alert.get("message"),
        "event": _strip(
            {
                "kind": "alert",
                "category": categories,
                "type": ["info"],
                "id": info.get("uid"),
                "action": alert.get("activity_name"),
                "severity": alert.get("severity_id"),
                "risk_score": alert.get("risk_score"),
                "start": iso(info.get("first_seen_time")),
                "end": iso(info.get("last_seen_time")),
                "reason": info.get("desc"),
                "module": "tidewaiter",
                "dataset": "tidewaiter.alerts",
                "original": orjson.dumps(alert).decode(),
            }
        ),
        "rule": _strip(
            {
                "id": analytic.get("uid"),
                "name": analytic.get("name") or info.get("title"),
                "description": info.get("desc"),
                "category": ", ".join(info.get("types") or []) or None,
                "ruleset": "tidewaiter",
            }
        ),
        "tidewaiter": _strip(
            {
                "status": alert.get("status"),
                "status_detail": alert.get("status_detail"),
                "severity": alert.get("severity"),
                "evidence_count": len(evidences),
            }
        ),
    }
    if attacks:
        techniques = [a.get("technique") or {} for a in attacks]
        tactics = {(t.get("uid"), t.get("name")) for a in attacks if (t := a.get("tactic"))}
        doc["threat"] = {
            "framework": "MITRE ATT&CK",
            "technique": {
                "id": [t.get("uid") for t in techniques],
                "name": [t.get("name") for t in techniques],
            },
            "tactic": {
                "id": sorted(uid for uid, _ in tactics if uid),
                "name": sorted(name for _, name in tactics if name),
            },
        }
    container = alert_container(alert)
    if container:
        image = container.get("image") or {}
        doc["container"] = _strip(
            {
                "id": container.get("uid"),
                "name": container.get("name"),
                "runtime": container.get("runtime"),
                "image": _strip({"name": image.get("name")}) or None,
            }
        )
    k8s = (alert.get("unmapped") or {}).get("k8s") or {}
    if k8s:
        doc["orchestrator"] = _strip(
            {
                "type": "kubernetes",
                "namespace": k8s.get("namespace"),
                "resource": {"type": "pod", "name": k8s["pod"]} if k8s.get("pod") else None,
            }
        )
    hostname = (alert.get("device") or {}).get("hostname")
    if hostname:
        doc["host"] = {"name": hostname, "hostname": hostname}
    _first_evidence(doc, evidences)
    return doc


def _first_evidence(doc: dict[str, Any], evidences: list[dict[str, Any]]) -> None:
    """ECS has one process, file and destination per document: the first evidence naming each."""
    process = next((e["process"] for e in evidences if e.get("process")), None)
    if process:
        doc["process"] = _process(process)
        parent = process.get("parent_process")
        if parent:
            doc["process"]["parent"] = _process(parent)
        user = (process.get("user") or {}).get("name")
        if user:
            doc["user"] = {"name": user}
    file = next((e["file"] for e in evidences if e.get("file")), None)
    if file:
        doc["file"] = _strip({"path": file.get("path"), "name": file.get("name")})
        if isinstance(file.get("size"), int):
            doc["file"]["size"] = file["size"]
    flow = next((e for e in evidences if e.get("dst_endpoint")), None)
    if flow:
        dst = flow["dst_endpoint"]
        doc["destination"] = _strip(
            {"ip": dst.get("ip"), "port": dst.get("port"), "domain": dst.get("hostname")}
        )
        src = flow.get("src_endpoint") or {}
        sent = evidence_bytes_out(flow)
        source = _strip({"ip": src.get("ip"), "port": src.get("port"), "bytes": sent})
        if source:
            doc["source"] = source


def _process(process: dict[str, Any]) -> dict[str, Any]:
    return _strip(
        {
            "pid": process.get("pid"),
            "name": process.get("name"),
            "command_line": process.get("cmd_line"),
            "executable": (process.get("file") or {}).get("path"),
            "working_directory": process.get("working_directory"),
        }
    )


def _strip(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != {}}


class ElasticTransport:
    label = "elastic"

    def __init__(self, url: str, api_key: str, index: str = INDEX, timeout: float = 10.0) -> None:
        parts = check_base_url("--elastic", url)
        self.bulk_url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/_bulk"
        self.api_key = api_key  # replaced whole on reload
        self.index = index
        self._http = Http(timeout)

    def lines(self, alert: dict[str, Any]) -> bytes:
        update = alert.get("activity_id") == ACTIVITY_UPDATE
        uid = (alert.get("finding_info") or {}).get("uid")
        action = {"index" if update else "create": {"_index": self.index, "_id": uid}}
        return orjson.dumps(action) + b"\n" + orjson.dumps(ecs(alert)) + b"\n"

    def size(self, alert: dict[str, Any]) -> int:
        return len(self.lines(alert))

    def send_batch(self, alerts: list[dict[str, Any]]) -> Failures:
        body = b"".join(self.lines(alert) for alert in alerts)
        headers = {
            "Authorization": f"ApiKey {self.api_key}",
            "Content-Type": "application/x-ndjson",
        }
        status, answer = self._http.post(self.bulk_url, body, headers)
        if status in (401, 403):  # the key: the alerts are sound, retried once it is right
            raise DeliveryError(f"HTTP {status}: {_reason(json_object(answer).get('error'))}")
        if not 200 <= status < 300:
            raise DeliveryError(
                f"HTTP {status}: {_reason(json_object(answer).get('error'))}", permanent=True
            )
        reply = json_object(answer)
        items = reply.get("items")
        if not isinstance(items, list) or len(items) != len(alerts):
            raise DeliveryError("the _bulk answer does not list one item per alert")
        if not reply.get("errors"):
            return []
        failures: Failures = []
        for alert, item in zip(alerts, items, strict=True):
            result = next(iter(item.values()), None) if isinstance(item, dict) else None
            if not isinstance(result, dict):
                result = {}
            code = result.get("status")
            if not isinstance(code, int):
                failures.append((alert, DeliveryError("no status for this item")))
            elif 200 <= code < 300 or (code == 409 and "create" in item):
                continue  # 409 on create: indexed by an earlier attempt
            elif code == 429 or code >= 500:
                failures.append((alert, DeliveryError(f"item status {code}")))
            else:
                reason = f"item status {code}: {_reason(result.get('error'))}"
                failures.append((alert, DeliveryError(reason, permanent=True)))
        return failures

    def send(self, alert: dict[str, Any]) -> None:
        send_one(self, alert)

    def close(self) -> None:
        pass


def _reason(error: object) -> str:
    if isinstance(error, dict):
        return printable(f"{error.get('type', 'error')}: {error.get('reason', '')}")[:300]
    return printable(error or "no reason given")[:300]
