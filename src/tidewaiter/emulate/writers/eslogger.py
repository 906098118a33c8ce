"""macOS Endpoint Security as `eslogger exec create` prints it: one es_message_t a line. No
network events exist in Endpoint Security, and no container is visible from the Mac."""

from __future__ import annotations

import posixpath
from typing import Any

import orjson

from tidewaiter.emulate.plan import Exec, FileCreate, Plan, Proc
from tidewaiter.emulate.writers import Writer, iso, register

EXEC, CREATE = 9, 13
_NEW_PATH = 1


@register
class EsloggerWriter(Writer):
    name = "eslogger"
    title = "macOS eslogger JSON"
    source = "eslogger"
    suffix = ".eslogger.jsonl"
    platforms = frozenset({"macos"})
    kinds = frozenset({"exec", "file"})
    names_containers = False

    def render(self, plan: Plan) -> bytes:
        lines = []
        for sequence, action in enumerate(sorted(plan.actions, key=lambda a: a.time), start=1):
            if isinstance(action, Exec):
                proc = action.proc
                # The instigator of an exec is the same pid in its image before the exec: after
                # fork, a copy of the parent.
                before = proc.parent or proc
                instigator = _process(proc, executable=before.exe, ppid=before.pid)
                body: dict[str, Any] = {
                    "exec": {
                        "target": _process(proc),
                        "args": list(proc.argv),
                        "cwd": {"path": proc.cwd, "path_truncated": False},
                        "script": None,
                    }
                }
                event_type = EXEC
            elif isinstance(action, FileCreate):
                instigator = _process(action.proc)
                folder, name = posixpath.split(action.path)
                body = {
                    "create": {
                        "destination_type": _NEW_PATH,
                        "destination": {
                            "new_path": {
                                "dir": {"path": folder or "/", "path_truncated": False},
                                "filename": name,
                                "mode": 420,
                            }
                        },
                    }
                }
                event_type = CREATE
            else:
                continue  # Endpoint Security has no network events
            message = {
                "schema_version": 1,
                "mach_time": int(action.time * 1e9),
                "event_type": event_type,
                "thread": {"thread_id": 1_000_000 + sequence},
                "version": 7,
                "seq_num": sequence,
                "global_seq_num": sequence,
                "time": iso(action.time),
                "process": instigator,
                "event": body,
            }
            lines.append(orjson.dumps(message))
        return b"\n".join(lines) + b"\n"


def _process(proc: Proc, executable: str | None = None, ppid: int | None = None) -> dict[str, Any]:
    parent = proc.parent.pid if proc.parent is not None else 1
    return {
        "audit_token": {
            "auid": 501, "euid": 501, "egid": 20, "ruid": 501, "rgid": 20,
            "pid": proc.pid, "asid": 100004, "pidversion": 20000 + proc.pid,
        },
        "ppid": parent if ppid is None else ppid,
        "original_ppid": parent,
        "group_id": proc.pid,
        "session_id": 812,
        "is_platform_binary": proc.exe.startswith(("/bin/", "/usr/bin/", "/sbin/")),
        "is_es_client": False,
        "signing_id": f"com.apple.{proc.name}",
        "team_id": None,
        "executable": {"path": executable or proc.exe, "path_truncated": False},
        "start_time": iso(proc.start, 6),
    }  # fmt: skip
