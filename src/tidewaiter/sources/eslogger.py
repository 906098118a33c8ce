"""macOS Endpoint Security events as ``eslogger`` writes them: one JSON object a line.

eslogger models each line on ``es_message_t``: ``event_type`` is the ``es_event_type_t`` number,
``process`` the process that caused the event, and ``event`` holds one key named after the event
(``{"exec": {...}}``). Apple states the output is not an API and may change between releases, so
fields are read defensively: a field that is missing or of the wrong type is absent, and only a
record that cannot yield its event at all is an error.

A Mac has no containers Endpoint Security can see (Docker Desktop runs them inside a VM), and
eslogger names no host, so both stay empty.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

import msgspec

from tidewaiter.events import Activity, Event, File, Kind, Process, RawRef
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, RecordError, Source
from tidewaiter.sources.fields import BOM, decode_json_line, parse_time, to_int, to_str

Obj = dict[str, object]


# es_event_type_t values of the NOTIFY events read here, from EndpointSecurity/ESTypes.h. The
# enum only ever grows at the end, so the numbers hold across macOS releases. 14 is
# EXCHANGEDATA, not EXIT.
EXEC = 9
FORK = 11
CLOSE = 12
CREATE = 13
EXIT = 15
RENAME = 25
UNLINK = 32
WRITE = 33
_NAMES = {
    EXEC: "exec",
    FORK: "fork",
    CLOSE: "close",
    CREATE: "create",
    EXIT: "exit",
    RENAME: "rename",
    UNLINK: "unlink",
    WRITE: "write",
}

# es_destination_type_t: where a create or rename lands.
_EXISTING_FILE = 0
_NEW_PATH = 1


class _Message(msgspec.Struct):
    # ``object`` everywhere: only a line that is not a JSON object fails validation, and types
    # are coerced field by field.
    event_type: object = None
    time: object = None
    process: object = None
    event: object = None


_DECODER = msgspec.json.Decoder(_Message)


@register
class EsloggerSource(Source):
    name = "eslogger"
    title = "macOS eslogger JSON"

    def sniff(self, head: bytes) -> bool:
        line = head.removeprefix(BOM).lstrip().split(b"\n", 1)[0]
        return (
            line.startswith(b"{")
            and b'"event_type"' in line
            and b'"audit_token"' in line
            and (b'"schema_version"' in line or b'"mach_time"' in line)
        )

    def decoder(self, path: str) -> Decoder:
        return EsloggerDecoder()


class EsloggerDecoder(Decoder):
    """eslogger lines are independent messages: no state between them."""

    def feed(self, line: bytes, ref: RawRef) -> list[Event]:
        message = _decode(line)
        found = _payload(message)
        if found is None:
            return []
        name, payload = found
        what = _HANDLERS[name](payload, _obj(message.process))
        if what is None:
            return []
        kind, activity, process, file = what
        return [
            Event(
                time=parse_time(message.time),
                kind=kind,
                activity=activity,
                raw=ref,
                process=process,
                file=file,
            )
        ]


def _payload(message: _Message) -> tuple[str, Obj] | None:
    """The event's name and payload, or None for an event type tidewaiter does not use. The
    number decides which event it is; the payload must then be under that event's name."""
    body = message.event
    if body is None:
        raise RecordError("record has no event")
    if not isinstance(body, dict):
        raise RecordError("event is not an object")
    number = to_int(message.event_type)
    if number is not None:
        name = _NAMES.get(number)
    elif len(body) == 1:  # no usable number: a lone key still names the event
        name = str(next(iter(body)))
    else:
        raise RecordError("record has no event_type")
    if name is None or name not in _HANDLERS:
        return None  # open, fork, mmap, ...: nothing tidewaiter reads
    payload = body.get(name)
    if payload is None:
        raise RecordError(f"event_type {number} has no {name} payload")
    if not isinstance(payload, dict):
        raise RecordError(f"{name} payload is not an object")
    return name, payload


_What = tuple[Kind, Activity, Process | None, File | None]
_Handler = Callable[[Obj, Obj | None], _What | None]


def _exec(payload: Obj, actor: Obj | None) -> _What:
    target = payload.get("target")
    if not isinstance(target, dict):
        raise RecordError("exec without a target process")
    args = _args(payload.get("args"))
    token = _obj(target.get("audit_token")) or {}
    process = Process(
        pid=to_int(token.get("pid")),
        path=_path(target.get("executable")),
        cmd_line=shlex.join(args) if args else None,  # quoted so that shlex.split gives argv back
        args=args,
        cwd=_path(payload.get("cwd")),
        user=_user(token),
        session=to_str(token.get("asid")),
        parent=_parent(target, actor),
    )
    return Kind.PROCESS, Activity.LAUNCH, process, None


def _parent(target: Obj, actor: Obj | None) -> Process | None:
    """The process that launched the target.

    exec keeps the pid, so the instigating ``process`` is the target's own pid in its image
    before the exec: after fork (or posix_spawn) a copy of the parent, whose executable is the
    parent's. Its pid would name the child itself, so the pid is the target's ppid instead."""
    actor = actor or {}
    pid = to_int(target.get("ppid"))
    if pid is None:
        pid = to_int(actor.get("ppid"))
    path = _path(actor.get("executable"))
    if pid is None and path is None:
        return None
    return Process(pid=pid, path=path)


def _exit(payload: Obj, actor: Obj | None) -> _What:
    return Kind.PROCESS, Activity.EXIT, _actor(actor), None


def _create(payload: Obj, actor: Obj | None) -> _What:
    path = _destination(payload)
    if path is None:
        raise RecordError("create without a destination path")
    return Kind.FILE, Activity.CREATE, _actor(actor), File(path=path)


def _rename(payload: Obj, actor: Obj | None) -> _What:
    path = _destination(payload)
    if path is None:
        raise RecordError("rename without a destination path")
    return Kind.FILE, Activity.RENAME, _actor(actor), File(path=path)


def _close(payload: Obj, actor: Obj | None) -> _What | None:
    if payload.get("modified") not in (True, "true"):
        return None  # a close after reading says nothing about the file's content
    return _target_file(payload, actor, Activity.WRITE, "close")


def _unlink(payload: Obj, actor: Obj | None) -> _What:
    return _target_file(payload, actor, Activity.DELETE, "unlink")


def _write(payload: Obj, actor: Obj | None) -> _What:
    return _target_file(payload, actor, Activity.WRITE, "write")


def _target_file(payload: Obj, actor: Obj | None, activity: Activity, name: str) -> _What:
    path = _path(payload.get("target"))
    if path is None:
        raise RecordError(f"{name} without a target path")
    return Kind.FILE, activity, _actor(actor), File(path=path)


_HANDLERS: dict[str, _Handler] = {
    "exec": _exec,
    "exit": _exit,
    "create": _create,
    "rename": _rename,
    "close": _close,
    "unlink": _unlink,
    "write": _write,
}


def _destination(payload: Obj) -> str | None:
    """The path a create or rename lands on: an existing file, or a directory and a name."""
    destination = _obj(payload.get("destination"))
    if destination is None:
        return None
    kind = to_int(payload.get("destination_type"))
    existing = _path(destination.get("existing_file"))
    if kind == _EXISTING_FILE or (kind != _NEW_PATH and existing is not None):
        return existing
    new_path = _obj(destination.get("new_path"))
    if new_path is None:
        return None
    directory = _path(new_path.get("dir"))
    filename = to_str(new_path.get("filename"))
    if directory is None or filename is None:
        return None
    return f"{directory.rstrip('/')}/{filename}"


def _actor(process: Obj | None) -> Process | None:
    if process is None:
        return None
    token = _obj(process.get("audit_token")) or {}
    pid = to_int(token.get("pid"))
    path = _path(process.get("executable"))
    if pid is None and path is None:
        return None
    return Process(pid=pid, path=path, user=_user(token), session=to_str(token.get("asid")))


def _args(value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not value:
        return None
    return tuple(arg if isinstance(arg, str) else "" if arg is None else str(arg) for arg in value)


def _user(token: Obj) -> str | None:
    euid = to_int(token.get("euid"))  # the effective uid decides what the process may read
    return str(euid) if euid is not None else None


def _path(file: object) -> str | None:
    """``es_file_t.path``: eslogger writes every file as ``{"path": ..., "stat": ...}``."""
    if not isinstance(file, dict):
        return None
    path = file.get("path")
    return path if isinstance(path, str) and path else None


def _obj(value: object) -> Obj | None:
    return value if isinstance(value, dict) else None


def _decode(line: bytes) -> _Message:
    return decode_json_line(line, _DECODER)
