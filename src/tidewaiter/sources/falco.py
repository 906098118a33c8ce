"""Falco alerts written with ``json_output: true`` (stdout, file_output, or http_output's body).

Falco emits only what its rules select, and a rule's ``output_fields`` hold exactly the fields its
output names. So the syscall behind an alert (``evt.type``) decides what it is: a process launch,
a file create or write, a network connect or send. When a rule leaves ``evt.type`` out, the kind is
inferred from which fields it did include; an alert with nothing usable gives no events.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from typing import NamedTuple

import msgspec

from tidewaiter.events import (
    Activity,
    Api,
    Container,
    Endpoint,
    Event,
    File,
    Image,
    Kind,
    Mount,
    Process,
    RawRef,
    Traffic,
)
from tidewaiter.identity import normalise_container_id
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, RecordError, Source
from tidewaiter.sources.fields import BOM, decode_json_line, parse_time, to_int, to_str

Fields = dict[str, object]

_EXEC = frozenset({"execve", "execveat"})
_OPEN = frozenset({"open", "openat", "openat2", "creat"})
_SEND = frozenset({"sendto", "sendmsg", "sendmmsg", "sendfile", "write", "writev", "pwrite"})
_FILE_WRITE = frozenset({"write", "writev", "pwrite"})  # the _SEND types that also write files


class _Alert(msgspec.Struct):
    # Every field is ``object`` so that only a non-object line fails validation; types drift
    # between Falco versions and are coerced field by field.
    time: object = None
    hostname: object = None
    source: object = None
    rule: object = None
    output_fields: object = None


class _What(NamedTuple):
    """The kind-specific part of an event, before the shared process and container context."""

    kind: Kind
    activity: Activity
    file: File | None = None
    src: Endpoint | None = None
    dst: Endpoint | None = None
    traffic: Traffic | None = None


_DECODER = msgspec.json.Decoder(_Alert)


@register
class FalcoSource(Source):
    name = "falco"
    title = "Falco JSON"

    def sniff(self, head: bytes) -> bool:
        line = head.removeprefix(BOM).lstrip().split(b"\n", 1)[0]
        return (
            line.startswith(b"{")
            and b'"output_fields"' in line
            and (b'"rule"' in line or b'"priority"' in line)
        )

    def decoder(self, path: str) -> Decoder:
        return FalcoDecoder()


class FalcoDecoder(Decoder):
    """Falco lines are independent records; the only state is which containers' mounts were
    already reported (rules repeat `container.mounts` on every record of a container)."""

    def __init__(self) -> None:
        self._mounts_seen: OrderedDict[str, None] = OrderedDict()

    def feed(self, line: bytes, ref: RawRef) -> list[Event]:
        alert = _decode(line)
        fields = alert.output_fields
        if fields is None:
            raise RecordError("alert has no output_fields")
        if not isinstance(fields, dict):
            raise RecordError("output_fields is not an object")
        if alert.source not in (None, "syscall"):
            return []  # plugin sources (k8s_audit, cloudtrail) carry no process or socket fields
        container = _container(fields)
        host = to_str(alert.hostname) or to_str(fields.get("evt.hostname"))
        events = self._mounts(alert, fields, container, host, ref)
        what = _what(to_str(fields.get("evt.type")), fields, to_str(alert.rule) or "")
        if what is None:
            return events
        events.append(
            Event(
                time=_time(alert, fields),
                kind=what.kind,
                activity=what.activity,
                raw=ref,
                host=host,
                container=container,
                process=_process(fields),
                file=what.file,
                src_endpoint=what.src,
                dst_endpoint=what.dst,
                traffic=what.traffic,
            )
        )
        return events

    def _mounts(
        self,
        alert: _Alert,
        fields: Fields,
        container: Container | None,
        host: str | None,
        ref: RawRef,
    ) -> list[Event]:
        """`container.mounts` ("src:dst:mode:rdwr:propagation ...") as a container-start
        event, once per container: what the container can see of the host."""
        text = to_str(fields.get("container.mounts"))
        if container is None or not text or container.uid in self._mounts_seen:
            return []
        self._mounts_seen[container.uid] = None
        if len(self._mounts_seen) > _MOUNTS_REMEMBERED:
            self._mounts_seen.popitem(last=False)
        mounts = tuple(_mount(item) for item in text.split() if item.count(":") >= 1)
        if not mounts:
            return []
        api = Api(operation="start", resource="container", mounts=mounts)
        return [
            Event(
                time=_time(alert, fields),
                kind=Kind.CONTAINER,
                activity=Activity.START,
                raw=ref,
                host=host,
                container=container,
                api=api,
            )
        ]


_MOUNTS_REMEMBERED = 65_536


def _mount(item: str) -> Mount:
    parts = item.split(":")
    writable = parts[3].lower() == "true" if len(parts) > 3 else True
    return Mount(source=parts[0], destination=parts[1] or None, read_only=not writable)


def _time(alert: _Alert, fields: Fields) -> float:
    if alert.time is not None:
        return parse_time(alert.time)
    # Some forwarders drop the top-level time; a rule may still output the event's own.
    return parse_time(fields.get("evt.rawtime", fields.get("evt.time")))


def _what(evt_type: str | None, fields: Fields, rule: str) -> _What | None:
    if evt_type is None:
        return _inferred(fields, rule)
    if evt_type in _EXEC:
        return _What(Kind.PROCESS, Activity.LAUNCH)
    if evt_type in _OPEN:
        return _file(fields, _open_activity(evt_type, fields, rule))
    if evt_type == "connect":
        return _network(fields, Activity.CONNECT)
    if evt_type in _SEND:
        sent = _network(fields, Activity.SEND)
        if sent is None and evt_type in _FILE_WRITE:
            return _file(fields, Activity.WRITE, absolute=True)
        return sent
    return None


def _inferred(fields: Fields, rule: str) -> _What | None:
    """What a rule without ``evt.type`` in its output is about, from the fields it chose."""
    connected = _network(fields, Activity.CONNECT)
    if connected is not None:
        return connected
    touched = _file(fields, _open_activity(None, fields, rule), absolute=True)
    if touched is not None:
        return touched
    has_fd = any(key.startswith("fd.") and value is not None for key, value in fields.items())
    if to_str(fields.get("proc.cmdline")) and not has_fd:
        return _What(Kind.PROCESS, Activity.LAUNCH)  # spawned_process rules output no fd fields
    return None


def _open_activity(evt_type: str | None, fields: Fields, rule: str) -> Activity | None:
    """Create or write from the open flags; read-only opens are of no use here."""
    if evt_type == "creat":
        return Activity.CREATE
    flags = to_str(fields.get("evt.arg.flags"))
    if flags is not None:  # rendered as "O_TRUNC|O_CREAT|O_WRONLY", sometimes after the number
        if "O_CREAT" in flags:
            return Activity.CREATE
        if "O_WRONLY" in flags or "O_RDWR" in flags:
            return Activity.WRITE
        return None
    open_write = fields.get("evt.is_open_write")
    if open_write is not None:
        return Activity.WRITE if open_write in (True, "true") else None
    # Nothing but the rule's name: Falco's own are "Create files below dev", "Write below etc".
    hint = rule.lower()
    if "creat" in hint:
        return Activity.CREATE
    if "writ" in hint or "modif" in hint:
        return Activity.WRITE
    return None


def _file(fields: Fields, activity: Activity | None, absolute: bool = False) -> _What | None:
    if activity is None:
        return None
    path = to_str(fields.get("fd.name")) or to_str(fields.get("evt.arg.name"))
    # fd.name also names sockets ("a:1->b:2") and pipes ("pipe:[7]"): only a path is a file.
    if path is None or (absolute and not path.startswith("/")):
        return None
    return _What(Kind.FILE, activity, file=File(path=path))


def _network(fields: Fields, activity: Activity) -> _What | None:
    ends = _endpoints(fields)
    if ends is None:
        return None
    local, remote = ends
    traffic = None
    if activity is Activity.SEND:
        sent = _bytes(fields)
        traffic = Traffic(bytes_out=sent) if sent is not None else None
    return _What(Kind.NETWORK, activity, src=local, dst=remote, traffic=traffic)


def _endpoints(fields: Fields) -> tuple[Endpoint | None, Endpoint | None] | None:
    """(local, remote) from whichever socket fields the rule output."""
    if to_str(fields.get("fd.rip")) is not None:
        remote = _endpoint(fields.get("fd.rip"), fields.get("fd.rport"))
        return _endpoint(fields.get("fd.lip"), fields.get("fd.lport")), remote
    server: Endpoint | None
    client: Endpoint | None
    if to_str(fields.get("fd.sip")) is not None or to_str(fields.get("fd.cip")) is not None:
        server = _endpoint(fields.get("fd.sip"), fields.get("fd.sport"))
        client = _endpoint(fields.get("fd.cip"), fields.get("fd.cport"))
    else:  # ports alone name no peer: fall back to the tuple in fd.name
        pair = _parse_tuple(to_str(fields.get("fd.name")))
        if pair is None:
            return None
        client, server = pair
    # A process that accepted the connection is its server: its peer is the client.
    if fields.get("fd.is_server") in (True, "true"):
        return server, client
    return client, server


def _endpoint(ip: object, port: object) -> Endpoint | None:
    address = to_str(ip)
    number = to_int(port)
    if address is None and number is None:
        return None
    return Endpoint(ip=address, port=number)


def _parse_tuple(name: str | None) -> tuple[Endpoint, Endpoint] | None:
    """Client and server of a socket fd.name: "10.0.0.2:45678->93.184.216.34:443"; IPv6 as
    libsinsp writes it ("::1:45678->::1:443") or bracketed ("[::1]:45678->[::1]:443")."""
    if name is None or name.startswith("/"):
        return None
    client, arrow, server = name.partition("->")
    if not arrow:
        return None
    left, right = _host_port(client), _host_port(server)
    if left is None or right is None:
        return None
    return left, right


def _host_port(text: str) -> Endpoint | None:
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            return None
        port = rest.removeprefix(":")
    else:
        host, colon, port = text.rpartition(":")
        if not colon:
            return None
    if not host:
        return None
    # With hostname resolution on, libsinsp writes names instead of addresses.
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return Endpoint(hostname=host, port=to_int(port))
    return Endpoint(ip=host, port=to_int(port))


def _bytes(fields: Fields) -> int | None:
    """Bytes a send returned: evt.rawres is the number, evt.res is the number on old Falco."""
    for key in ("evt.rawres", "evt.res"):
        count = to_int(fields.get(key))
        if count is not None and count > 0:
            return count
    return None


def _first(fields: Fields, *keys: str) -> str | None:
    for key in keys:
        value = to_str(fields.get(key))
        if value is not None:
            return value
    return None


def _process(fields: Fields) -> Process | None:
    pid = to_int(fields.get("proc.pid"))
    path = _first(fields, "proc.exepath", "proc.exe", "proc.name")
    cmd_line = to_str(fields.get("proc.cmdline"))  # "name arg1 arg2": Falco's, kept as written
    parent = _parent(fields)
    if pid is None and path is None and cmd_line is None and parent is None:
        return None
    return Process(
        pid=pid,
        path=path,
        cmd_line=cmd_line,
        cwd=to_str(fields.get("proc.cwd")),
        user=to_str(fields.get("user.name")),
        parent=parent,
    )


def _parent(fields: Fields) -> Process | None:
    pid = to_int(fields.get("proc.ppid"))
    # Process has no name field: the bare proc.pname in path still gives Process.name.
    path = _first(fields, "proc.pexepath", "proc.pexe", "proc.pname")
    cmd_line = to_str(fields.get("proc.pcmdline"))
    if pid is None and path is None and cmd_line is None:
        return None
    return Process(pid=pid, path=path, cmd_line=cmd_line)


def _container(fields: Fields) -> Container | None:
    uid = normalise_container_id(to_str(fields.get("container.id")))  # "host" gives None
    if uid is None:
        return None
    return Container(
        uid=uid,
        name=to_str(fields.get("container.name")),
        image=_image(fields),
        runtime=to_str(fields.get("container.type")),
        pod_name=to_str(fields.get("k8s.pod.name")),
        namespace=to_str(fields.get("k8s.ns.name")),
    )


def _image(fields: Fields) -> Image | None:
    repository = to_str(fields.get("container.image.repository"))
    tag = to_str(fields.get("container.image.tag"))
    if repository is not None:
        name: str | None = f"{repository}:{tag}" if tag else repository
    else:
        name = to_str(fields.get("container.image"))
    uid = _first(fields, "container.image.digest", "container.image.id")
    if name is None and uid is None:
        return None
    return Image(name=name, uid=uid)


def _decode(line: bytes) -> _Alert:
    return decode_json_line(line, _DECODER)
