"""osquery scheduled query results, as the filesystem (and TLS, Kafka, ...) loggers write them.

One JSON object a line, in one of three shapes:

- event format (the default): one row a line, ``{"name", "hostIdentifier", "calendarTime",
  "unixTime", "columns": {...}, "action": "added"}``;
- batch format (``--logger_event_type=false``):
  ``"diffResults": {"added": [...], "removed": [...]}``;
- snapshot queries: ``"snapshot": [...]`` with ``"action": "snapshot"``.

Each row is one record here (a batch line holds many), located by its line and, inside a batch,
its place (``added[3]``), so one bad row is skipped alone. Removed rows are gone from the host and
carry nothing; added and snapshot rows give at most one event each.

The table is recognised by the query's name (``pack_<pack>_<query>`` usually ends in the table)
when the row has that table's columns, else by the columns alone:

- process_events (audit), bpf_process_events, es_process_events, processes, docker_processes →
  process launch (exec rows only: fork, clone, kill and exit rows give nothing);
- socket_events / bpf_socket_events with action (or syscall) connect → network connect;
- file_events (inotify FIM) CREATED / UPDATED / MOVED_TO → file create / write / rename;
  process_file_events (audit FIM) write, open+truncate → file write, rename → file rename;
- docker_containers, a running container → container start with its name and image.

Columns are text unless ``numerics`` is on, and some carry audit's raw form (process_events'
``cwd`` keeps the record's quotes, or hex): every value is coerced. The time is the row's own
``time`` column when it is an epoch number, else the batch's ``unixTime``.

Containers: a ``container_id`` column, a docker table's ``id``, or a ``cgroup_path`` naming a
container. bpf_*'s ``cid`` is a cgroup id (the inode of the cgroup directory), not a container
id, and is not reported as one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

import msgspec

from tidewaiter.events import (
    Activity,
    Container,
    Endpoint,
    Event,
    File,
    Image,
    Kind,
    Process,
    RawRef,
)
from tidewaiter.identity import container_id_from_cgroup, normalise_container_id
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, ReadReport, RecordError, Source
from tidewaiter.sources.fields import (
    BOM,
    decode_json_line,
    decode_keeping_bad_utf8,
    parse_time,
    to_int,
    to_str,
)

Columns = dict[str, object]

_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")
_CALENDAR = ("%a %b %d %H:%M:%S %Y UTC", "%a %b %d %H:%M:%S %Y")
_EXEC = frozenset({"execve", "execveat", "exec"})
_AF_UNIX = 1
_UNSPECIFIED = frozenset({"0.0.0.0", "::"})  # noqa: S104 - an address read, never bound

# Name fragments, most specific first ("bpf_process_events" before "process_events").
_HINTS = (
    ("process_file_events", "process_file"),
    ("bpf_process_events", "process"),
    ("es_process_events", "process"),
    ("process_events", "process"),
    ("docker_processes", "process"),
    ("bpf_socket_events", "socket"),
    ("socket_events", "socket"),
    ("file_events", "file"),
    ("docker_containers", "container"),
    ("processes", "process"),
)
_FILE_ACTIONS = {
    "CREATED": Activity.CREATE,
    "UPDATED": Activity.WRITE,
    "MOVED_TO": Activity.RENAME,
}
_FIM_OPERATIONS = {"write": Activity.WRITE, "open+truncate": Activity.WRITE}


class _Result(msgspec.Struct):
    # ``object`` throughout: only a line that is not a JSON object fails as a whole.
    name: object = None
    host_identifier: object = msgspec.field(default=None, name="hostIdentifier")
    calendar_time: object = msgspec.field(default=None, name="calendarTime")
    unix_time: object = msgspec.field(default=None, name="unixTime")
    action: object = None
    columns: object = None
    diff_results: object = msgspec.field(default=None, name="diffResults")
    snapshot: object = None
    decorations: object = None


_DECODER = msgspec.json.Decoder(_Result)


@dataclass(frozen=True, slots=True)
class _Row:
    where: str | None  # place in a batch line ("added[3]"); None for an event-format line
    action: str
    columns: object


@dataclass(frozen=True, slots=True)
class _Context:
    """What a line's rows share."""

    name: str
    host: str | None
    result: _Result


@register
class OsquerySource(Source):
    name = "osquery"
    title = "osquery results JSON"

    def sniff(self, head: bytes) -> bool:
        line = head.removeprefix(BOM).lstrip().split(b"\n", 1)[0]
        if not line.startswith(b"{"):
            return False
        try:
            result = decode_keeping_bad_utf8(_DECODER.decode, line)
        except msgspec.DecodeError:
            return False
        has_rows = (
            result.columns is not None
            or result.diff_results is not None
            or result.snapshot is not None
        )
        return has_rows and (result.host_identifier is not None or result.unix_time is not None)

    def decoder(self, path: str) -> Decoder:
        return OsqueryDecoder()

    def read_file(self, path: str, stream: BinaryIO, report: ReadReport) -> Iterator[Event]:
        # A record is a row, not a line: see the module notes.
        for lineno, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            ref = RawRef(self.name, path, line=lineno)
            try:
                context, rows = _unpack(line)
            except RecordError as exc:
                report.records += 1
                report.skip(path, f"line {lineno}", str(exc))
                continue
            except Exception as exc:  # a parser bug must not lose the rest of the run
                report.records += 1
                report.skip(path, f"line {lineno}", f"unreadable record ({type(exc).__name__})")
                continue
            if not rows:  # a status log line or another program's JSON
                report.records += 1
                report.ignored += 1
                continue
            for row in rows:
                report.records += 1
                yield from _guarded_row(context, row, ref, report)


def _guarded_row(context: _Context, row: _Row, ref: RawRef, report: ReadReport) -> Iterator[Event]:
    if row.where is not None:
        ref = msgspec.structs.replace(ref, record_id=row.where)
    where = f"line {ref.line}" + (f" ({row.where})" if row.where else "")
    try:
        events = _row_events(context, row, ref)
    except RecordError as exc:
        report.skip(ref.path, where, str(exc))
        return
    except Exception as exc:  # a parser bug must not lose the rest of the run
        report.skip(ref.path, where, f"unreadable record ({type(exc).__name__}: {exc})")
        return
    if not events:
        report.ignored += 1
    report.events += len(events)
    yield from events


class OsqueryDecoder(Decoder):
    """For streams fed a line at a time, where a line (not a row) is the unit of accounting:
    a line's good rows give their events and its bad rows are dropped uncounted; a line whose
    rows all fail raises the first failure. ``read_file`` counts every row."""

    def feed(self, line: bytes, ref: RawRef) -> Iterable[Event]:
        context, rows = _unpack(line)
        events: list[Event] = []
        failure: RecordError | None = None
        for row in rows:
            row_ref = msgspec.structs.replace(ref, record_id=row.where) if row.where else ref
            try:
                events += _row_events(context, row, row_ref)
            except RecordError as exc:
                failure = failure or exc
        if failure is not None and not events:
            raise failure
        return events


# --- lines and rows --------------------------------------------------------------------------


def _unpack(line: bytes) -> tuple[_Context, list[_Row]]:
    result = _decode(line.removeprefix(BOM))
    rows: list[_Row] = []
    if result.columns is not None:
        rows.append(_Row(None, (to_str(result.action) or "added").lower(), result.columns))
    if result.diff_results is not None:
        if not isinstance(result.diff_results, dict):
            raise RecordError("diffResults is not an object")
        for action in ("added", "removed"):
            rows += _listed(result.diff_results.get(action), action)
    if result.snapshot is not None:
        rows += _listed(result.snapshot, "snapshot")
    name = (to_str(result.name) or "").lower()
    decorations = result.decorations if isinstance(result.decorations, dict) else {}
    host = to_str(result.host_identifier) or to_str(decorations.get("hostname"))
    return _Context(name, host, result), rows


def _listed(value: object, action: str) -> list[_Row]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(f"{'diffResults.' if action != 'snapshot' else ''}{action} is not a list")
    return [_Row(f"{action}[{index}]", action, row) for index, row in enumerate(value)]


def _row_events(context: _Context, row: _Row, ref: RawRef) -> list[Event]:
    if not isinstance(row.columns, dict):
        raise RecordError("row is not an object" if row.where else "columns is not an object")
    if row.action == "removed":
        return []  # gone from the host: no new process, connection or file
    columns: Columns = row.columns
    table = _table(context.name, columns)
    if table is None:
        return []
    time = _time(columns, context.result)
    if table == "process":
        return _process_row(columns, time, ref, context.host)
    if table == "socket":
        return _socket_row(columns, time, ref, context.host)
    if table in ("file", "process_file"):
        return _file_row(table, columns, time, ref, context.host)
    return _container_row(columns, time, ref, context.host)


def _table(name: str, columns: Columns) -> str | None:
    """Which kind of table a row comes from: the name's hint when the columns agree."""
    for fragment, table in _HINTS:
        if fragment in name and _fits(table, columns):
            return table
    for table in ("file", "process_file", "socket", "container", "process"):
        if _fits(table, columns):
            return table
    return None


def _fits(table: str, columns: Columns) -> bool:
    if table == "file":
        return "target_path" in columns
    if table == "process_file":
        return "operation" in columns and "path" in columns
    if table == "socket":
        return "remote_address" in columns or "remote_port" in columns
    if table == "container":
        return "id" in columns and any(k in columns for k in ("image", "image_id", "state"))
    return "pid" in columns and any(k in columns for k in ("path", "cmdline", "json_cmdline"))


def _time(columns: Columns, result: _Result) -> float:
    own = to_int(columns.get("time"))  # docker_processes' "time" is CPU time ("00:00:01")
    if own is not None and own > 0:
        return parse_time(own)
    batch = to_int(result.unix_time)
    if batch is not None and batch > 0:
        return parse_time(batch)
    calendar = to_str(result.calendar_time)
    if calendar is not None:
        for layout in _CALENDAR:
            try:
                return datetime.strptime(calendar, layout).replace(tzinfo=UTC).timestamp()
            except ValueError:
                continue
        raise RecordError(f"unreadable time {calendar[:40]!r}")
    raise RecordError("record has no time")


# --- tables ----------------------------------------------------------------------------------


def _process_row(columns: Columns, time: float, ref: RawRef, host: str | None) -> list[Event]:
    syscall = to_str(columns.get("syscall"))
    if syscall is not None and syscall.lower() not in _EXEC:
        return []  # process_events' fork / clone / kill rows
    event_type = to_str(columns.get("event_type"))
    if event_type is not None and event_type.lower() != "exec":
        return []  # es_process_events' fork / exit rows
    args = _json_args(columns.get("json_cmdline"))
    process = Process(
        pid=to_int(columns.get("pid")),
        path=to_str(columns.get("path")) or to_str(columns.get("name")),
        cmd_line=to_str(columns.get("cmdline")),  # argv joined by spaces: kept as written
        args=args,
        cwd=_cwd(columns.get("cwd")),
        user=_user(columns),
        parent=_pid_only(columns.get("parent")),
    )
    return [
        Event(
            time=time,
            kind=Kind.PROCESS,
            activity=Activity.LAUNCH,
            raw=ref,
            host=host,
            container=_container(columns),
            process=process,
        )
    ]


def _socket_row(columns: Columns, time: float, ref: RawRef, host: str | None) -> list[Event]:
    action = to_str(columns.get("action")) or to_str(columns.get("syscall"))
    remote = _address(columns.get("remote_address"))
    if action is not None and action.lower() != "connect":
        return []  # bind, listen, accept
    if action is None and (remote is None or remote in _UNSPECIFIED):
        return []  # no action column: only a real peer shows this was a connect
    if to_int(columns.get("family")) == _AF_UNIX:
        return []
    dst = _endpoint(remote, columns.get("remote_port"))
    src = _endpoint(_address(columns.get("local_address")), columns.get("local_port"))
    if src is not None and src.ip in (None, *_UNSPECIFIED) and not src.port:
        src = None  # an unbound client socket: no local end yet
    return [
        Event(
            time=time,
            kind=Kind.NETWORK,
            activity=Activity.CONNECT,
            raw=ref,
            host=host,
            container=_container(columns),
            process=_actor(columns, "path", "parent"),
            src_endpoint=src,
            dst_endpoint=dst,
        )
    ]


def _file_row(
    table: str, columns: Columns, time: float, ref: RawRef, host: str | None
) -> list[Event]:
    process: Process | None = None
    if table == "file":
        activity = _FILE_ACTIONS.get((to_str(columns.get("action")) or "").upper())
        path = to_str(columns.get("target_path"))
    else:
        operation = (to_str(columns.get("operation")) or "").lower()
        if operation == "rename":
            activity = Activity.RENAME
            path = to_str(columns.get("dest_path")) or to_str(columns.get("path"))
        else:
            activity = _FIM_OPERATIONS.get(operation)
            path = to_str(columns.get("path"))
        process = _actor(columns, "executable", "ppid")
    if activity is None or path is None:
        return []
    return [
        Event(
            time=time,
            kind=Kind.FILE,
            activity=activity,
            raw=ref,
            host=host,
            container=_container(columns),
            process=process,
            file=File(path=path, size=to_int(columns.get("size"))),
        )
    ]


def _container_row(columns: Columns, time: float, ref: RawRef, host: str | None) -> list[Event]:
    state = to_str(columns.get("state"))
    container = _container(columns)
    if container is None or (state is not None and state.lower() != "running"):
        return []
    pid = to_int(columns.get("pid"))
    command = to_str(columns.get("command"))
    process = Process(pid=pid, cmd_line=command) if pid or command else None
    return [
        Event(
            time=time,
            kind=Kind.CONTAINER,
            activity=Activity.START,
            raw=ref,
            host=host,
            container=container,
            process=process,
        )
    ]


# --- fields ----------------------------------------------------------------------------------


def _actor(columns: Columns, path_column: str, parent_column: str) -> Process | None:
    pid = to_int(columns.get("pid"))
    path = to_str(columns.get(path_column))
    if pid is None and path is None:
        return None
    return Process(
        pid=pid,
        path=path,
        cwd=_cwd(columns.get("cwd")),
        user=_user(columns),
        parent=_pid_only(columns.get(parent_column)),
    )


def _pid_only(value: object) -> Process | None:
    pid = to_int(value)
    return Process(pid=pid) if pid is not None and pid >= 0 else None


def _user(columns: Columns) -> str | None:
    uid = to_int(columns.get("uid"))
    if uid is not None:
        return str(uid)
    return to_str(columns.get("username")) or to_str(columns.get("user"))


def _cwd(value: object) -> str | None:
    """process_events copies audit's CWD as written: quoted, or hex when it holds a space."""
    text = to_str(value)
    if text is None:
        return None
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1] or None
    if not text.startswith("/") and _HEX.fullmatch(text):
        return bytes.fromhex(text).decode("utf-8", "replace")
    return text


def _json_args(value: object) -> tuple[str, ...] | None:
    """bpf_process_events' json_cmdline: argv as a JSON array in a string."""
    if isinstance(value, list):
        items: object = value
    else:
        text = to_str(value)
        if text is None or not text.startswith("["):
            return None
        try:
            items = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return None
    if not isinstance(items, list) or not items:
        return None
    return tuple(item if isinstance(item, str) else str(item) for item in items)


def _address(value: object) -> str | None:
    """An address as text, IPv4-mapped IPv6 unwrapped; other text is returned as written."""
    text = to_str(value)
    if text is None:
        return None
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)  # ::ffff:a.b.c.d is an IPv4 peer
    return str(address)


def _endpoint(address: str | None, port: object) -> Endpoint | None:
    number = to_int(port) or None  # 0: no port
    if address is None and number is None:
        return None
    try:
        ipaddress.ip_address(address or "")
    except ValueError:  # not an address: a name, where a pipeline resolved it
        return Endpoint(hostname=address, port=number)
    return Endpoint(ip=address, port=number)


def _container(columns: Columns) -> Container | None:
    uid = normalise_container_id(to_str(columns.get("container_id")))
    if uid is None:
        docker_id = normalise_container_id(to_str(columns.get("id")))
        if docker_id is not None and _CONTAINER_ID.fullmatch(docker_id):
            uid = docker_id
    if uid is None:
        cgroup = to_str(columns.get("cgroup_path"))
        uid = container_id_from_cgroup(cgroup) if cgroup else None
    if uid is None:
        return None
    name = to_str(columns.get("container_name")) or to_str(columns.get("name"))
    image = to_str(columns.get("image"))
    image_id = to_str(columns.get("image_id"))
    is_docker_row = "image" in columns or "image_id" in columns
    return Container(
        uid=uid,
        name=name.lstrip("/") if name and is_docker_row else to_str(columns.get("container_name")),
        image=Image(name=image, uid=image_id) if image or image_id else None,
    )


def _decode(line: bytes) -> _Result:
    return decode_json_line(line, _DECODER)
