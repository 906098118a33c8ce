"""The flat view of an Event that Sigma rules are matched against.

Names are tidewaiter's own (the Event model's attribute paths); the pipeline maps Sigma's field
names onto them. A value may be a tuple: the field has several values and any one may match.
"""

from __future__ import annotations

from typing import Literal

from tidewaiter.events import Activity, Event, Kind, Process

Value = str | int | bool | tuple[str, ...] | None
Category = Literal["process_creation", "file_event", "network_connection"]
MAX_ARGS = 64  # auditd a0..a63: longer argv are rare, and every a<N> must be a known field

# Which Sigma logsource category an event is, by kind and activity.
_CATEGORY: dict[Kind, tuple[Category, frozenset[Activity]]] = {
    Kind.PROCESS: ("process_creation", frozenset({Activity.LAUNCH})),
    Kind.FILE: ("file_event", frozenset({Activity.CREATE, Activity.WRITE, Activity.RENAME})),
    Kind.NETWORK: (
        "network_connection",
        frozenset({Activity.CONNECT, Activity.SEND, Activity.TRAFFIC}),
    ),
}

# The platform a source's records come from; sources not named here may carry any.
_PRODUCT = {
    "sysmon-evtx": "windows",
    "sysmon-xml": "windows",
    "eslogger": "macos",
    "auditd": "linux",
    "tetragon": "linux",
    "falco": "linux",
    "sensor": "linux",
    "hubble": "linux",
    "osquery": "linux",
}

PROCESS_FIELDS = ("path", "cmd_line", "name", "user", "cwd", "pid")
FIELDS = frozenset(
    [
        *(f"process.{f}" for f in PROCESS_FIELDS),
        *(f"process.parent.{f}" for f in PROCESS_FIELDS),
        *(f"process.args.{n}" for n in range(MAX_ARGS)),
        "file.path",
        "file.name",
        "dst_endpoint.ip",
        "dst_endpoint.port",
        "dst_endpoint.hostname",
        "src_endpoint.ip",
        "src_endpoint.port",
        "network.initiated",
        "host",
        "container.uid",
        "container.name",
        "container.image.name",
        "auditd.type",
    ]
)
# Where a keyword (a value with no field) is looked for.
KEYWORD_FIELDS = ("process.cmd_line", "process.path", "file.path", "process.parent.cmd_line")


def category(event: Event) -> Category | None:
    entry = _CATEGORY.get(event.kind)
    if entry is None or event.activity not in entry[1]:
        return None
    return entry[0]


def product(event: Event) -> str | None:
    return _PRODUCT.get(event.raw.source)


def flatten(event: Event) -> dict[str, Value]:
    out: dict[str, Value] = {"host": event.host}
    if event.process is not None:
        _process(out, "process", event.process)
        if event.process.parent is not None:
            _process(out, "process.parent", event.process.parent)
        for n, arg in enumerate((event.process.args or ())[:MAX_ARGS]):
            out[f"process.args.{n}"] = arg
        if event.raw.source == "auditd" and event.kind is Kind.PROCESS:
            # one launch is auditd's SYSCALL and EXECVE records together
            out["auditd.type"] = ("EXECVE", "SYSCALL")
    if event.file is not None:
        out["file.path"] = event.file.path
        cut = max(event.file.path.rfind("/"), event.file.path.rfind("\\"))
        out["file.name"] = event.file.path[cut + 1 :]
    for side, endpoint in (
        ("dst_endpoint", event.dst_endpoint),
        ("src_endpoint", event.src_endpoint),
    ):
        if endpoint is not None:
            out[f"{side}.ip"] = endpoint.ip
            out[f"{side}.port"] = endpoint.port
            if side == "dst_endpoint":
                out[f"{side}.hostname"] = endpoint.hostname
    if event.kind is Kind.NETWORK and event.dst_endpoint is not None:
        out["network.initiated"] = True  # sources record the sending side's connections
    if event.container is not None:
        out["container.uid"] = event.container.uid
        out["container.name"] = event.container.name
        out["container.image.name"] = event.container.image.name if event.container.image else None
    return out


def _process(out: dict[str, Value], prefix: str, process: Process) -> None:
    out[f"{prefix}.path"] = process.path
    out[f"{prefix}.cmd_line"] = process.cmd_line or (
        " ".join(process.args) if process.args else None
    )
    out[f"{prefix}.name"] = process.name or None
    out[f"{prefix}.user"] = process.user
    out[f"{prefix}.cwd"] = process.cwd
    out[f"{prefix}.pid"] = process.pid
