"""Tetragon export JSON: process_exec, and process_kprobe for fd_install (files opened),
tcp_connect and tcp_sendmsg (with the byte count), as the usual tracing policies produce."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from tidewaiter.emulate.plan import (
    IMAGE,
    POD_NAMESPACE,
    Connect,
    Exec,
    FileCreate,
    Plan,
    Proc,
    Send,
    Stage,
)
from tidewaiter.emulate.writers import Writer, iso, register


@register
class TetragonWriter(Writer):
    name = "tetragon"
    title = "Tetragon JSON"
    source = "tetragon"
    suffix = ".tetragon.jsonl"
    platforms = frozenset({"linux"})
    kinds = frozenset({"exec", "file", "network"})
    names_containers = True

    def render(self, plan: Plan) -> bytes:
        stage = plan.stage
        lines = []
        for action in sorted(plan.actions, key=lambda a: a.time):
            body: dict[str, Any]
            if isinstance(action, Exec):
                kind = "process_exec"
                body = {"process": _process(action.proc, stage), **_parent(action.proc, stage)}
            elif isinstance(action, FileCreate):
                kind = "process_kprobe"
                body = _kprobe(action.proc, stage, "fd_install", [
                    {"int_arg": 3}, {"file_arg": {"path": action.path, "permission": "-rw-r--r--"}},
                ])  # fmt: skip
            elif isinstance(action, Connect):
                kind = "process_kprobe"
                body = _kprobe(action.proc, stage, "tcp_connect", [{"sock_arg": _sock(action)}])
            elif isinstance(action, Send):
                kind = "process_kprobe"
                body = _kprobe(
                    action.proc, stage, "tcp_sendmsg",
                    [{"sock_arg": _sock(action)}, {"int_arg": action.bytes}],
                )  # fmt: skip
            else:
                continue  # Tetragon does not see PowerShell script blocks
            record = {kind: body, "node_name": stage.host, "time": iso(action.time)}
            lines.append(orjson.dumps(record))
        return b"\n".join(lines) + b"\n"


def _exec_id(proc: Proc, stage: Stage) -> str:
    return base64.b64encode(f"{stage.host}:{proc.pid}:{proc.guid}".encode()).decode()


def _arguments(argv: tuple[str, ...]) -> str:
    """Tetragon's ``arguments``: argv after argv[0], an argument with spaces in double quotes."""
    out = []
    for arg in argv[1:]:
        if arg and not any(c in arg for c in ' \t"\\'):
            out.append(arg)
        else:
            out.append('"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return " ".join(out)


def _process(proc: Proc, stage: Stage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "exec_id": _exec_id(proc, stage),
        "pid": proc.pid,
        "uid": 0,
        "cwd": proc.cwd.rstrip("/") + "/",
        "binary": proc.exe,
        "arguments": _arguments(proc.argv),
        "flags": "execve clone",
        "start_time": iso(proc.start),
        "auid": 4294967295,
    }
    if stage.container_id is not None:
        out["pod"] = {
            "namespace": POD_NAMESPACE,
            "name": f"{stage.container_name}-0",
            "container": {
                "id": f"containerd://{stage.container_id}",
                "name": "workload",
                "image": {"id": f"{IMAGE}@sha256:{stage.container_id}", "name": IMAGE},
                "start_time": iso(proc.start - 3600),
                "pid": 1,
            },
            "workload": stage.container_name,
            "workload_kind": "Pod",
        }
        out["docker"] = stage.container_id[:31]
    if proc.parent is not None:
        out["parent_exec_id"] = _exec_id(proc.parent, stage)
    return out


def _parent(proc: Proc, stage: Stage) -> dict[str, Any]:
    return {"parent": _process(proc.parent, stage)} if proc.parent is not None else {}


def _kprobe(proc: Proc, stage: Stage, function: str, args: list[Any]) -> dict[str, Any]:
    return {
        "process": _process(proc, stage),
        **_parent(proc, stage),
        "function_name": function,
        "args": args,
        "action": "KPROBE_ACTION_POST",
        "policy_name": "tidewaiter-emulation",
    }


def _sock(action: Connect | Send) -> dict[str, Any]:
    return {
        "family": "AF_INET",
        "type": "SOCK_STREAM",
        "protocol": "IPPROTO_TCP",
        "saddr": action.src_ip,
        "daddr": action.dst_ip,
        "sport": action.src_port,
        "dport": action.dst_port,
    }
