"""The live sensor's own JSON lines, so its reader is replayed like every other source."""

from __future__ import annotations

from msgspec.structs import replace

from tidewaiter.emulate.plan import Connect, Exec, FileCreate, Plan, Proc, Script
from tidewaiter.emulate.writers import Writer, register
from tidewaiter.sensor.schema import ENCODER, MARKER, VERSION, ProcessInfo, SensorRecord


@register
class SensorWriter(Writer):
    name = "sensor"
    title = "tidewaiter sensor JSON"
    source = "sensor"
    suffix = ".sensor.jsonl"
    platforms = frozenset({"linux"})
    kinds = frozenset({"exec", "file", "network"})
    names_containers = True

    def render(self, plan: Plan) -> bytes:
        stage = plan.stage
        lines = []
        for action in sorted(plan.actions, key=lambda a: a.time):
            if isinstance(action, Script):
                continue
            proc = action.proc
            base = SensorRecord(
                sensor=MARKER,
                v=VERSION,
                time=round(action.time, 6),
                event="exec",
                host=stage.host,
                pid=proc.pid,
                ppid=proc.parent.pid if proc.parent else None,
                uid=0,
                exe=proc.exe,
                argv=proc.argv,
                cgroup_id=4242,
                cgroup=f"/{stage.container_id}",
                container_id=stage.container_id,
            )
            if isinstance(action, Exec):
                record = replace(base, parent=_parent(proc))
            elif isinstance(action, FileCreate):
                record = replace(base, event="create", path=action.path, flags=0o1101)
            elif isinstance(action, Connect):
                record = replace(
                    base, event="connect", family=2, daddr=action.dst_ip, dport=action.dst_port,
                    ret=0,
                )  # fmt: skip
            else:
                record = replace(
                    base, event="send", family=2, daddr=action.dst_ip, dport=action.dst_port,
                    bytes=action.bytes, sends=max(1, action.bytes // 65536),
                )  # fmt: skip
            lines.append(ENCODER.encode(record))
        return b"\n".join(lines) + b"\n"


def _parent(proc: Proc) -> ProcessInfo | None:
    parent = proc.parent
    return ProcessInfo(parent.pid, parent.exe, parent.argv) if parent is not None else None
