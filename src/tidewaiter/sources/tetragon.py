"""Tetragon (Cilium, eBPF) JSON: process exec and exit, TCP kprobes, file kprobes.

Tetragon exports one ``GetEventsResponse`` object a line, keyed by its event type
(``process_exec``, ``process_kprobe``, ...). Documentation and shared samples show the same objects
pretty-printed, so the decoder also assembles an object spread over several lines.

Records decode straight into msgspec Structs that list only the fields used here: everything else
is skipped at C speed. Decoding is non-strict, so numbers written as strings (protobuf JSON writes
64-bit integers such as ``size_arg`` that way; re-serialising pipelines do it to pids) still decode;
a field of an impossible type is dropped rather than losing the whole record.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from typing import Any, Final

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
    Traffic,
)
from tidewaiter.identity import normalise_container_id
from tidewaiter.sources import register
from tidewaiter.sources.base import AbandonedRecord, Decoder, RecordError, Source
from tidewaiter.sources.fields import BOM, decode_keeping_bad_utf8, parse_time

MAX_RECORD = 8 * 1024 * 1024  # a multi-line object larger than this is reported, not buffered
_MAX_REPAIRS = 16  # fields of the wrong type dropped from one record before giving up on it
_CACHE_LIMIT = 4096


# --- the fields tidewaiter reads (Tetragon's api/v1 tetragon.proto, JSON names) -----------------
# gc=False: these hold only strings, numbers and each other, so they cannot form cycles, and
# keeping millions of short-lived records away from the cycle collector is a measurable saving.


class _Image(msgspec.Struct, gc=False):
    id: str | None = None
    name: str | None = None


class _PodContainer(msgspec.Struct, gc=False):
    id: str | None = None
    name: str | None = None
    image: _Image | None = None


class _Pod(msgspec.Struct, gc=False):
    namespace: str | None = None
    name: str | None = None
    container: _PodContainer | None = None
    workload: str | None = None
    workload_kind: str | None = None


class _Process(msgspec.Struct, gc=False):
    exec_id: str | None = None
    pid: int | None = None
    uid: int | None = None
    cwd: str | None = None
    binary: str | None = None
    arguments: str | None = None
    start_time: str | None = None
    docker: str | None = None
    pod: _Pod | None = None


class _Sock(msgspec.Struct, gc=False):
    saddr: str | None = None
    daddr: str | None = None
    sport: int | None = None
    dport: int | None = None


class _Path(msgspec.Struct, gc=False):
    path: str | None = None


class _Arg(msgspec.Struct, gc=False):
    sock_arg: _Sock | None = None
    file_arg: _Path | None = None
    path_arg: _Path | None = None
    int_arg: int | None = None
    size_arg: int | None = None
    long_arg: int | None = None
    uint_arg: int | None = None


class _Lifecycle(msgspec.Struct, gc=False):  # process_exec and process_exit
    process: _Process | None = None
    parent: _Process | None = None


class _Kprobe(msgspec.Struct, gc=False):
    process: _Process | None = None
    parent: _Process | None = None
    function_name: str | None = None
    args: list[_Arg] | None = None


class _Connect(msgspec.Struct, gc=False):  # process_connect: Tetragon before kprobe policies
    process: _Process | None = None
    parent: _Process | None = None
    source_ip: str | None = None
    source_port: int | None = None
    destination_ip: str | None = None
    destination_port: int | None = None


class _Record(msgspec.Struct, gc=False):
    process_exec: _Lifecycle | None = None
    process_exit: _Lifecycle | None = None
    process_kprobe: _Kprobe | None = None
    process_connect: _Connect | None = None
    node_name: str | None = None
    time: str | None = None


_TYPED: Final = msgspec.json.Decoder(_Record, strict=False)
_ANY: Final = msgspec.json.Decoder()
_KEYS: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])  # top-level keys, values left unparsed

_MAPPED = frozenset({"process_exec", "process_exit", "process_kprobe", "process_connect"})
# Event types Tetragon documents that carry nothing tidewaiter uses: counted, not reported.
_UNUSED = frozenset(
    {
        "process_tracepoint", "process_loader", "process_uprobe", "process_lsm", "process_usdt",
        "process_throttle", "process_listen", "process_close", "process_accept", "tls",
        "process_sock_stats", "process_http", "interface_stats", "process_dns",
        "process_network_burst", "process_file", "process_ip_error", "process_network_watermark",
        "process_udp_seq_check_error", "process_file_exec", "process_icmp",
        "process_rawsock_create", "process_rawsock_close", "process_sandbox_syscall",
        "process_igmp_join", "process_igmp_leave", "igmp_membership_report",
        "process_multicast_sample", "powershell_script_block", "test", "rate_limit_info",
    }
)  # fmt: skip
_ENVELOPE = frozenset({"node_name", "time", "cluster_name", "node_labels", "aggregation_info"})
_EVENT_TYPES = _MAPPED | _UNUSED

_NETWORK_CALLS: Final = {
    "tcp_connect": Activity.CONNECT,
    "tcp_sendmsg": Activity.SEND,
    "tcp_close": Activity.CLOSE,
}
# Hooks whose file_arg/path_arg names a file being opened or written. fd_install is an open, but
# the event model has no open activity and policies use it to follow files written later.
_FILE_CALLS: Final = frozenset(
    {
        "fd_install", "security_file_permission", "security_path_truncate",
        "security_file_truncate", "vfs_write", "vfs_writev", "sys_write", "sys_pwrite64",
        "sys_writev", "sys_pwritev", "sys_pwritev2",
    }
)  # fmt: skip
_SYSCALL_PREFIXES = ("__x64_", "__arm64_", "__ia32_", "__se_", "__do_")
_CALL_NAMES: dict[str, str] = {}
_MAY_WRITE_OR_APPEND = 0x2 | 0x8  # security_file_permission mask bits (MAY_WRITE, MAY_APPEND)

# A process enters a container its parent is not in only through a runtime; everything else a
# containerised process starts stays in that container.
_RUNTIMES = frozenset({"runc", "crun", "youki", "runsc", "conmon", "docker-containerd-shim"})
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')  # JSON strings never span lines
_PATH_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")  # steps of a msgspec error path


@register
class TetragonSource(Source):
    name = "tetragon"
    title = "Tetragon JSON"

    def sniff(self, head: bytes) -> bool:
        return not _EVENT_TYPES.isdisjoint(_top_level_keys(head))

    def decoder(self, path: str) -> Decoder:
        return TetragonDecoder()

    def route_hint(self, line: bytes) -> bytes | None:
        # One compact object per line (a pretty-printed one is assembled by one process); the
        # container's id prefix, else the node. Plain finds: this runs on every line.
        if not line.startswith(b"{") or not line.endswith((b"}\n", b"}\r\n", b"}")):
            return None
        at = line.find(b'"docker":"')
        if at >= 0:
            return line[at + 10 : at + 22]
        at = line.find(b'"node_name":"')
        return line[at + 13 : line.find(b'"', at + 13)] if at >= 0 else b""


class TetragonDecoder(Decoder):
    def __init__(self) -> None:
        self._start: RawRef | None = None  # where the multi-line object being assembled began
        self._lines: list[bytes] = []
        self._size = 0
        self._depth = 0
        self._oversized = False
        self._containers: dict[tuple[str | None, ...], Container | None] = {}

    @property
    def assembling(self) -> bool:
        """Whether the next line continues a multi-line object (it is not a record of its own)."""
        return self._start is not None

    def feed(self, line: bytes, ref: RawRef) -> list[Event]:
        if self._start is not None:
            return self._continue(line, ref)
        try:
            # The common record straight away; anything else (a BOM, bad UTF-8, a field of the
            # wrong type, broken JSON) is decoded again by _decode, which handles each.
            record: _Record | None = _TYPED.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError):
            record = None
        try:
            if record is None:
                record = _decode(line)
        except RecordError:
            if line.strip().removeprefix(BOM) != b"{":  # how pretty-printers open an object
                raise
            self._begin(line, ref)
            return []
        return self._events(record, line, ref)

    def flush(self) -> list[Event]:
        pending, oversized = self._start, self._oversized
        self._reset()
        if pending is not None and not oversized:
            raise RecordError("unterminated multi-line record")
        return []

    # --- multi-line objects ---------------------------------------------------------------------

    def _begin(self, line: bytes, ref: RawRef) -> None:
        self._start, self._lines, self._size, self._depth = ref, [line], len(line), 1

    def starts_record(self, line: bytes) -> bool:
        return self._start is None or line[:1] == b"{"

    def _continue(self, line: bytes, ref: RawRef) -> list[Event]:
        if line[:1] == b"{":  # a new object at column 0: the buffered one never closed
            abandoned = self._start
            self._reset()
            try:
                events = self.feed(line, ref)  # the new record is read as if alone
            except RecordError as exc:  # both are bad: each is reported at its own line
                raise AbandonedRecord(
                    "unterminated multi-line record", abandoned or ref, [], then=str(exc)
                ) from exc
            raise AbandonedRecord("unterminated multi-line record", abandoned or ref, events)
        self._depth += _brace_balance(line)
        if not self._oversized:
            self._size += len(line)
            self._lines.append(line)
            if self._size > MAX_RECORD:
                self._oversized, self._lines = True, []
                if self._depth <= 0:
                    self._reset()
                raise RecordError("record larger than 8 MiB")
        if self._depth > 0:
            return []
        start, depth, oversized = self._start, self._depth, self._oversized
        data = b"".join(self._lines)
        self._reset()
        if oversized or start is None:  # the oversized record was reported when it overflowed
            return []
        if depth < 0:
            raise RecordError("malformed JSON")
        return self._events(_decode(data), data, start)

    def _reset(self) -> None:
        self._start, self._lines, self._size, self._depth, self._oversized = None, [], 0, 0, False

    # --- records to events ----------------------------------------------------------------------

    def _events(self, record: _Record, data: bytes, ref: RawRef) -> list[Event]:
        if record.process_exec is not None:
            return [self._lifecycle(record, record.process_exec, Activity.LAUNCH, ref)]
        if record.process_kprobe is not None:
            return self._kprobe(record, record.process_kprobe, ref)
        if record.process_exit is not None:
            return [self._lifecycle(record, record.process_exit, Activity.EXIT, ref)]
        if record.process_connect is not None:
            return [self._connect(record, record.process_connect, ref)]
        _check_unused(data)
        return []

    def _lifecycle(
        self, record: _Record, body: _Lifecycle, activity: Activity, ref: RawRef
    ) -> Event:
        launch = activity is Activity.LAUNCH
        proc = _required(body.process, "process_exec" if launch else "process_exit")
        # An exec happens when its process starts, so its start time stands in for a missing
        # event time (the first line of an export can lack one); for anything else it would lie.
        when = proc.start_time if launch and not record.time else record.time
        process, container = self._subject(proc, body.parent)
        return Event(
            time=_time(when),
            kind=Kind.PROCESS,
            activity=activity,
            raw=ref,
            host=record.node_name,
            container=container,
            process=process,
        )

    def _kprobe(self, record: _Record, body: _Kprobe, ref: RawRef) -> list[Event]:
        call = _call_name(body.function_name or "")
        args = body.args or []
        network = _NETWORK_CALLS.get(call)
        if network is not None:
            return [self._network(record, body, network, args, ref)]
        if call in _FILE_CALLS:
            return self._file(record, body, args, ref)
        return []  # a policy hooking something tidewaiter does not read

    def _network(
        self, record: _Record, body: _Kprobe, activity: Activity, args: list[_Arg], ref: RawRef
    ) -> Event:
        sock = _sock(args)
        if sock is None:
            raise RecordError(f"{body.function_name} without sock_arg")
        sent = _first_int(args) if activity is Activity.SEND else None
        process, container = self._subject(_required(body.process, "process_kprobe"), body.parent)
        return Event(
            time=_time(record.time),
            kind=Kind.NETWORK,
            activity=activity,
            raw=ref,
            host=record.node_name,
            container=container,
            process=process,
            src_endpoint=_endpoint(sock.saddr, sock.sport),
            dst_endpoint=_endpoint(sock.daddr, sock.dport),
            traffic=Traffic(bytes_out=sent) if sent is not None else None,
        )

    def _file(self, record: _Record, body: _Kprobe, args: list[_Arg], ref: RawRef) -> list[Event]:
        target = _file_target(args)
        if target is None or not target.path:
            raise RecordError(f"{body.function_name} without file_arg")
        if _is_read_permission(body.function_name or "", args):
            return []  # a read: the event model carries no file reads
        process, container = self._subject(_required(body.process, "process_kprobe"), body.parent)
        return [
            Event(
                time=_time(record.time),
                kind=Kind.FILE,
                activity=Activity.WRITE,
                raw=ref,
                host=record.node_name,
                container=container,
                process=process,
                file=File(path=target.path),
            )
        ]

    def _connect(self, record: _Record, body: _Connect, ref: RawRef) -> Event:
        process, container = self._subject(_required(body.process, "process_connect"), body.parent)
        return Event(
            time=_time(record.time),
            kind=Kind.NETWORK,
            activity=Activity.CONNECT,
            raw=ref,
            host=record.node_name,
            container=container,
            process=process,
            src_endpoint=_endpoint(body.source_ip, body.source_port),
            dst_endpoint=_endpoint(body.destination_ip, body.destination_port),
        )

    # --- who acted -------------------------------------------------------------------------------

    def _subject(self, proc: _Process, parent: _Process | None) -> tuple[Process, Container | None]:
        return _process(proc, parent), self._attribute(proc, parent)

    def _attribute(self, proc: _Process, parent: _Process | None) -> Container | None:
        own = self._container(proc)
        if parent is None:
            return own
        theirs = self._container(parent)
        if theirs is None or theirs is own or (own is not None and _same_id(own.uid, theirs.uid)):
            return own
        # Tetragon can report a stale container id for a freshly forked child (the corpus 7z
        # run: sh in 80976c..., its child 7z in a51959...). A child forked inside a container
        # stays in it; only a runtime exec puts a process into a container its parent is not in.
        if _is_runtime(parent.binary):
            return own
        return theirs

    def _container(self, proc: _Process) -> Container | None:
        pod = proc.pod
        spec = pod.container if pod is not None else None
        # The id decides the container; the pod name tells a record that lacks pod metadata
        # (Tetragon's pod watcher lagging) from one that has it.
        key = (spec.id if spec is not None else None, proc.docker, pod.name if pod else None)
        try:
            return self._containers[key]
        except KeyError:
            pass
        if len(self._containers) >= _CACHE_LIMIT:
            self._containers.clear()
        container = self._containers[key] = _build_container(pod, proc.docker)
        return container


# --- helpers --------------------------------------------------------------------------------------


def _decode(data: bytes) -> _Record:
    data = data.removeprefix(BOM)
    try:
        return decode_keeping_bad_utf8(_TYPED.decode, data)
    except msgspec.ValidationError:
        return _repair(_load_any(data))
    except msgspec.DecodeError:
        raise RecordError("malformed JSON") from None


def _load_any(data: bytes) -> Any:
    # The typed decoder stops at the first field of a wrong type, before it sees malformed JSON
    # further on ({"time": []]): that is only found here.
    try:
        return decode_keeping_bad_utf8(_ANY.decode, data)
    except msgspec.DecodeError:
        raise RecordError("malformed JSON") from None


def _repair(obj: Any) -> _Record:
    """The record without the fields whose type no coercion fixes (a pid of "n/a")."""
    if not isinstance(obj, dict):
        raise RecordError("not a JSON object")
    for _ in range(_MAX_REPAIRS):
        try:
            return msgspec.convert(obj, _Record, strict=False)
        except msgspec.ValidationError as exc:
            if not _drop(obj, str(exc)):
                break
    raise RecordError("unexpected field types")


def _drop(obj: dict[str, Any], message: str) -> bool:
    """Remove the value a msgspec error points at (``... - at `$.a.b[2].c` ``)."""
    _, found, path = message.rpartition(" - at `$")
    steps: list[str | int] = [
        int(index) if index else key for key, index in _PATH_STEP.findall(path)
    ]
    if not found or not steps:
        return False
    node: Any = obj
    for step in steps[:-1]:
        node = node[step]
    last = steps[-1]
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        del node[last]
        return True
    return False


def _check_unused(data: bytes) -> None:
    """Accept a record of a known type tidewaiter does not read; reject anything else."""
    keys = _top_keys(data)
    if not _UNUSED.isdisjoint(keys):
        return
    kinds = [key for key in keys if key not in _ENVELOPE]
    if not kinds:
        raise RecordError("record has no Tetragon event")
    if kinds[0] in _MAPPED:  # the key is there, its value null
        raise RecordError(f"empty {kinds[0]} record")
    raise RecordError(f"unknown Tetragon record type {kinds[0][:40]!r}")


def _time(value: str | None) -> float:
    # Tetragon writes UTC ISO 8601 with a Z, which fromisoformat reads alone; parse_time, a little
    # slower per call, handles everything else (and the errors).
    if value and value[-1] == "Z":
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    return parse_time(value)


def _top_keys(data: bytes) -> dict[str, msgspec.Raw]:
    return decode_keeping_bad_utf8(_KEYS.decode, data.removeprefix(BOM))


def _required(proc: _Process | None, what: str) -> _Process:
    if proc is None:
        raise RecordError(f"{what} record without process")
    return proc


def _process(proc: _Process, parent: _Process | None) -> Process:
    return Process(
        pid=proc.pid,
        uid=proc.exec_id,
        path=proc.binary,
        cmd_line=_cmd_line(proc.binary, proc.arguments),
        cwd=proc.cwd,
        user=str(proc.uid) if proc.uid is not None else None,
        parent=_process(parent, None) if parent is not None else None,
    )


def _cmd_line(binary: str | None, arguments: str | None) -> str | None:
    # Tetragon's arguments exclude argv[0], but some records repeat the binary there.
    if not arguments:
        return binary
    if not binary:
        return arguments
    if arguments.startswith(binary) and arguments[len(binary) : len(binary) + 1] in ("", " "):
        return arguments
    return f"{binary} {arguments}"


def _build_container(pod: _Pod | None, docker: str | None) -> Container | None:
    spec = pod.container if pod is not None else None
    raw = (spec.id if spec is not None else None) or docker  # pod has the full id, docker a prefix
    uid = normalise_container_id(raw)
    if uid is None or raw is None:
        return None
    runtime = raw.partition("://")[0].lower() if "://" in raw else None
    owner = pod.workload if pod is not None else None
    if owner and pod is not None and pod.workload_kind:
        owner = f"{pod.workload_kind}/{owner}"
    return Container(
        uid=uid,
        name=spec.name if spec is not None else None,
        image=_image(spec.image if spec is not None else None),
        runtime=runtime,
        pod_name=pod.name if pod is not None else None,
        namespace=pod.namespace if pod is not None else None,
        owner=owner or None,
    )


def _image(image: _Image | None) -> Image | None:
    if image is None or not (image.name or image.id):
        return None
    uid = image.id
    if uid and "://" in uid:  # Kubernetes writes docker-pullable://repo@sha256:...
        uid = uid.partition("://")[2]
    return Image(name=image.name or None, uid=uid or None)


def _endpoint(ip: str | None, port: int | None) -> Endpoint | None:
    return Endpoint(ip=ip or None, port=port) if ip or port is not None else None


def _same_id(one: str, other: str) -> bool:
    # Tetragon's docker field is a prefix of the full id the pod reports.
    return one.startswith(other) or other.startswith(one)


def _is_runtime(binary: str | None) -> bool:
    name = (binary or "").rpartition("/")[2]
    return name in _RUNTIMES or name.startswith("containerd-shim")


def _call_name(function: str) -> str:
    """``sys_write`` for ``__x64_sys_write`` and its other architecture spellings."""
    name = _CALL_NAMES.get(function)
    if name is None:
        name = function
        for prefix in _SYSCALL_PREFIXES:
            if function.startswith(prefix):
                name = function[len(prefix) :]
                break
        if len(_CALL_NAMES) < _CACHE_LIMIT:  # policies hook a handful of functions
            _CALL_NAMES[function] = name
    return name


def _sock(args: list[_Arg]) -> _Sock | None:
    for arg in args:
        if arg.sock_arg is not None:
            return arg.sock_arg
    return None


def _file_target(args: list[_Arg]) -> _Path | None:
    for arg in args:
        target = arg.file_arg or arg.path_arg
        if target is not None:
            return target
    return None


def _first_int(args: list[_Arg]) -> int | None:
    """The byte count of tcp_sendmsg: the first integer argument, however the policy typed it."""
    for arg in args:
        for value in (arg.int_arg, arg.size_arg, arg.long_arg, arg.uint_arg):
            if value is not None:
                return value if value >= 0 else None
    return None


def _is_read_permission(function: str, args: list[_Arg]) -> bool:
    if function != "security_file_permission":
        return False
    mask = _first_int(args)
    return mask is not None and not mask & _MAY_WRITE_OR_APPEND


def _brace_balance(line: bytes) -> int:
    text = _STRING.sub(b"", line) if b'"' in line else line
    return text.count(b"{") - text.count(b"}")


def _top_level_keys(head: bytes) -> Collection[str]:
    """Keys of the first JSON object of a head: one line, or a pretty-printed object."""
    text = head.removeprefix(BOM).lstrip()
    first, _, rest = text.partition(b"\n")
    if first.strip() != b"{":
        return _object_keys(first)
    end = text.find(b"\n}")  # pretty-printers close the top-level object at column 0
    keys = _object_keys(text[: end + 2]) if end >= 0 else ()
    if keys:
        return keys
    # The first object is cut short (by the sniff window, or in a broken file): its first key.
    key_line = rest.lstrip().split(b"\n", 1)[0]
    parts = key_line.split(b'"', 2)
    return (parts[1].decode("utf-8", "replace"),) if len(parts) == 3 and not parts[0] else ()


def _object_keys(text: bytes) -> Collection[str]:
    try:
        record = decode_keeping_bad_utf8(_ANY.decode, text)
    except msgspec.DecodeError:
        return ()
    return record.keys() if isinstance(record, dict) else ()
