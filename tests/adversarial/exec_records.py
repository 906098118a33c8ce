"""Exec records for adversarial tests, written as each producer writes them: the attacker
controls the argv (and here the binary's name), never the record's framing.

A chain is a list of argv (argv[0] is the binary's path), run one second apart in one container.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import orjson

from tidewaiter.emulate.writers.tetragon import _arguments as tetragon_arguments

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
CONTAINER = "5f0c2b8e9d7a41c3b6e8f9a0d1c2b3a4e5f60718293a4b5c6d7e8f9a0b1c2d3e"
IMAGE = "registry.example.com/payments/api:1.4"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def tetragon(chain: list[list[str]]) -> bytes:
    lines = []
    for index, argv in enumerate(chain):
        time = T0 + index
        exec_id = base64.b64encode(f"node-1:{4200 + index}:{time}".encode()).decode()
        process: dict[str, Any] = {
            "exec_id": exec_id,
            "pid": 4200 + index,
            "uid": 0,
            "cwd": "/",
            "binary": argv[0],
            "arguments": tetragon_arguments(tuple(argv)),
            "flags": "execve clone",
            "start_time": _iso(time),
            "pod": {
                "namespace": "payments",
                "name": "api-0",
                "container": {
                    "id": f"containerd://{CONTAINER}",
                    "name": "api",
                    "image": {"id": f"{IMAGE}@sha256:{CONTAINER}", "name": IMAGE},
                    "start_time": _iso(T0 - 3600),
                    "pid": 1,
                },
            },
            "docker": CONTAINER[:31],
        }
        record = {"process_exec": {"process": process}, "node_name": "node-1", "time": _iso(time)}
        lines.append(orjson.dumps(record))
    return b"\n".join(lines) + b"\n"


def falco(chain: list[list[str]]) -> bytes:
    lines = []
    for index, argv in enumerate(chain):
        time = T0 + index
        name = argv[0].rsplit("/", 1)[-1]
        fields = {
            "evt.type": "execve",
            "evt.time": _iso(time),
            "proc.name": name,
            "proc.exepath": argv[0],
            "proc.cmdline": " ".join([name, *argv[1:]]),
            "proc.pid": 4200 + index,
            "container.id": CONTAINER[:12],
            "container.name": "api",
            "container.image.repository": IMAGE.rsplit(":", 1)[0],
            "k8s.ns.name": "payments",
            "k8s.pod.name": "api-0",
        }
        record = {
            "hostname": "node-1",
            "output": f"{_iso(time)}: Container process launched",
            "priority": "Notice",
            "rule": "Container process launched",
            "source": "syscall",
            "time": _iso(time),
            "output_fields": fields,
        }
        lines.append(orjson.dumps(record))
    return b"\n".join(lines) + b"\n"


def sysmon(chain: list[list[str]], original: dict[int, str] | None = None) -> bytes:
    """Sysmon event 1 as `wevtutil qe /f:xml` writes it; ``original`` gives OriginalFileName
    (from the PE header) by position in the chain."""
    events = []
    for index, argv in enumerate(chain):
        time = T0 + index
        stamp = datetime.fromtimestamp(time, UTC)
        data = {
            "UtcTime": stamp.strftime("%Y-%m-%d %H:%M:%S.000"),
            "ProcessGuid": f"{{4f1c2a9e-f0a2-65e6-3c04-{index:012x}}}",
            "ProcessId": str(6500 + index),
            "Image": argv[0],
            "OriginalFileName": (original or {}).get(index, argv[0].rsplit("\\", 1)[-1]),
            "CommandLine": " ".join(f'"{a}"' if " " in a else a for a in argv),
            "CurrentDirectory": "C:\\Users\\jdoe\\",
            "User": "CORP\\jdoe",
            "ParentProcessId": "4420",
            "ParentImage": "C:\\Windows\\explorer.exe",
            "ParentCommandLine": "C:\\Windows\\Explorer.EXE",
        }
        body = "".join(f"<Data Name='{k}'>{escape(v)}</Data>" for k, v in data.items())
        events.append(
            "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>"
            "<Provider Name='Microsoft-Windows-Sysmon' "
            "Guid='{5770385f-c22a-43e0-bf4c-06f5698ffbd9}'/><EventID>1</EventID>"
            f"<TimeCreated SystemTime='{_iso(time)}'/><EventRecordID>{10000 + index}"
            "</EventRecordID><Execution ProcessID='2988' ThreadID='3644'/>"
            "<Channel>Microsoft-Windows-Sysmon/Operational</Channel>"
            "<Computer>WS-FIN-07.corp.example</Computer><Security UserID='S-1-5-18'/></System>"
            f"<EventData>{body}</EventData></Event>"
        )
    return ("\n".join(events) + "\n").encode()


WRITERS = {"tetragon": tetragon, "falco": falco}


def write(tmp_path: Path, fmt: str, chain: list[list[str]]) -> Path:
    path = tmp_path / f"chain.{fmt}.jsonl"
    path.write_bytes(WRITERS[fmt](chain))
    return path
