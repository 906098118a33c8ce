"""Falco JSON alerts from a rule set that forwards container execs, file creations, connects and
sends (the shape users run to feed tidewaiter). proc.cmdline is Falco's: the process name, then
its arguments joined by spaces, unquoted."""

from __future__ import annotations

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

_PRIORITY = {"execve": "Informational", "openat": "Informational", "connect": "Notice"}


@register
class FalcoWriter(Writer):
    name = "falco"
    title = "Falco JSON"
    source = "falco"
    suffix = ".falco.jsonl"
    platforms = frozenset({"linux"})
    kinds = frozenset({"exec", "file", "network"})
    names_containers = True

    def render(self, plan: Plan) -> bytes:
        stage = plan.stage
        lines = []
        for action in sorted(plan.actions, key=lambda a: a.time):
            fields: dict[str, Any] = {**_context(action.proc, stage), "evt.time": iso(action.time)}
            if isinstance(action, Exec):
                rule, evt = "Container process launched", "execve"
            elif isinstance(action, FileCreate):
                rule, evt = "Container file created", "openat"
                fields["evt.arg.flags"] = "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC"
                fields["fd.name"] = action.path
            elif isinstance(action, Connect | Send):
                rule = "Container outbound connection"
                evt = "connect" if isinstance(action, Connect) else "sendto"
                fields["fd.name"] = (
                    f"{action.src_ip}:{action.src_port}->{action.dst_ip}:{action.dst_port}"
                )
                fields.update(
                    {
                        "fd.cip": action.src_ip,
                        "fd.cport": action.src_port,
                        "fd.sip": action.dst_ip,
                        "fd.sport": action.dst_port,
                    }
                )
                if isinstance(action, Send):
                    fields["evt.rawres"] = action.bytes
            else:
                continue
            fields["evt.type"] = evt
            record = {
                "hostname": stage.host,
                "output": f"{iso(action.time)}: {rule} (proc.cmdline={fields['proc.cmdline']})",
                "priority": _PRIORITY.get(evt, "Informational"),
                "rule": rule,
                "source": "syscall",
                "tags": ["container", "tidewaiter-emulation"],
                "time": iso(action.time),
                "output_fields": fields,
            }
            lines.append(orjson.dumps(record))
        return b"\n".join(lines) + b"\n"


def _cmdline(proc: Proc) -> str:
    return " ".join([proc.name, *proc.argv[1:]])


def _context(proc: Proc, stage: Stage) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "proc.name": proc.name,
        "proc.exepath": proc.exe,
        "proc.cmdline": _cmdline(proc),
        "proc.pid": proc.pid,
        "proc.cwd": proc.cwd.rstrip("/") + "/",
        "user.name": proc.user,
    }
    if proc.parent is not None:
        fields.update(
            {
                "proc.ppid": proc.parent.pid,
                "proc.pname": proc.parent.name,
                "proc.pcmdline": _cmdline(proc.parent),
            }
        )
    if stage.container_id is not None:
        repository, _, tag = IMAGE.rpartition(":")
        fields.update(
            {
                "container.id": stage.container_id[:12],
                "container.name": stage.container_name,
                "container.image.repository": repository,
                "container.image.tag": tag,
                "k8s.ns.name": POD_NAMESPACE,
                "k8s.pod.name": f"{stage.container_name}-0",
            }
        )
    return fields
