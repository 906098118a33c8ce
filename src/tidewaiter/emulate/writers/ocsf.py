"""OCSF 1.x JSON lines: Process Activity (1007) launches, File System Activity (1001) creates,
Network Activity (4001) opens and traffic, with the container profile on container workloads."""

from __future__ import annotations

from typing import Any

import orjson

from tidewaiter.emulate.plan import IMAGE, Connect, Exec, FileCreate, Plan, Proc, Send, Stage
from tidewaiter.emulate.writers import Writer, posix_command_line, register, windows_command_line

PROCESS, FILE, NETWORK = 1007, 1001, 4001
_CATEGORY = {PROCESS: 1, FILE: 1, NETWORK: 4}


@register
class OcsfWriter(Writer):
    name = "ocsf"
    title = "OCSF JSON"
    source = "ocsf"
    suffix = ".ocsf.jsonl"
    platforms = frozenset({"linux", "windows", "macos"})
    kinds = frozenset({"exec", "file", "network"})
    names_containers = True

    def render(self, plan: Plan) -> bytes:
        stage = plan.stage
        lines = []
        for action in sorted(plan.actions, key=lambda a: a.time):
            record: dict[str, Any]
            if isinstance(action, Exec):
                record = _base(PROCESS, 1, action.time, stage)
                record["process"] = _process(action.proc, stage, parent=True)
                if action.proc.parent is not None:
                    record["actor"] = {"process": _process(action.proc.parent, stage)}
            elif isinstance(action, FileCreate):
                record = _base(FILE, 1, action.time, stage)
                record["actor"] = {"process": _process(action.proc, stage, parent=True)}
                record["file"] = {"path": action.path, "name": action.path.rsplit("/", 1)[-1]}
            elif isinstance(action, Connect | Send):
                activity = 1 if isinstance(action, Connect) else 6
                record = _base(NETWORK, activity, action.time, stage)
                record["actor"] = {"process": _process(action.proc, stage, parent=True)}
                record["src_endpoint"] = {"ip": action.src_ip, "port": action.src_port}
                record["dst_endpoint"] = {"ip": action.dst_ip, "port": action.dst_port}
                record["connection_info"] = {"protocol_name": "tcp", "direction_id": 2}
                if isinstance(action, Send):
                    record["traffic"] = {"bytes_out": action.bytes}
            else:
                continue
            lines.append(orjson.dumps(record))
        return b"\n".join(lines) + b"\n"


def _base(class_uid: int, activity_id: int, time: float, stage: Stage) -> dict[str, Any]:
    record: dict[str, Any] = {
        "class_uid": class_uid,
        "category_uid": _CATEGORY[class_uid],
        "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id,
        "severity_id": 1,
        "time": round(time * 1000),
        "device": {"hostname": stage.host, "ip": stage.host_ip},
        "metadata": {
            "version": "1.3.0",
            "product": {"name": "tidewaiter emulation", "vendor_name": "tidewaiter"},
        },
    }
    if stage.container_id is not None:
        name, _, tag = IMAGE.rpartition(":")
        record["container"] = {
            "uid": stage.container_id,
            "name": stage.container_name,
            "image": {"name": name, "tag": tag},
            "runtime": "containerd",
        }
    return record


def _process(proc: Proc, stage: Stage, parent: bool = False) -> dict[str, Any]:
    windows = stage.platform == "windows"
    command = windows_command_line(proc.argv) if windows else posix_command_line(proc.argv)
    out: dict[str, Any] = {
        "pid": proc.pid,
        "uid": proc.guid,
        "file": {"path": proc.exe, "name": proc.name},
        "cmd_line": command,
        "working_directory": proc.cwd,
        "user": {"name": proc.user},
    }
    if parent and proc.parent is not None:
        out["parent_process"] = _process(proc.parent, stage)
    return out
