"""Elastic Common Schema documents from Linux, macOS and endpoint producers, one reader for all:
Auditbeat (the auditd module, and the system module's process and socket datasets), Elastic
Defend / Endpoint (process, file and network events) and the Filebeat / Elastic Agent Zeek module
(connection events), as JSON lines, pretty-printed documents or Elasticsearch hits (``_source``,
or a whole ``_search`` response).

What an event is comes from ECS's categorisation (``event.category``, ``event.type``,
``event.action``), and its facts from the common field sets: ``process.*`` (with ``parent``),
``file.*``, ``source.*`` / ``destination.*``, ``network.*``, ``host.*``, ``container.*`` and
``orchestrator.*`` (or Beats' ``kubernetes.*``). Fields are read nested or dotted
(``"process.pid": 1``), as exports flatten them. Where the auditd module kept the raw records
(``auditd.messages``, or ``event.original``), they go through the auditd reader, which knows
more of them (hex arguments, SOCKADDR) than the summary does. Windows event log documents
(``winlog.*``, Winlogbeat and Elastic Agent's Sysmon) are another reader's.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
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
    Traffic,
)
from tidewaiter.identity import normalise_container_id
from tidewaiter.printable import printable
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, ForeignRecord, ReadReport, RecordError, Source
from tidewaiter.sources.fields import parse_time, to_int, to_str
from tidewaiter.sources.json_stream import FramedDecoder, first_record, read_records
from tidewaiter.sources.k8s_audit import pod_container

Obj = dict[str, object]

# event.action values of producers that predate (or skip) event.category / event.type.
_ACTIONS: dict[str, tuple[Kind, Activity]] = {
    "process_started": (Kind.PROCESS, Activity.LAUNCH),  # Auditbeat system/process
    "process_stopped": (Kind.PROCESS, Activity.EXIT),
    "executed": (Kind.PROCESS, Activity.LAUNCH),  # Auditbeat auditd
    "exec": (Kind.PROCESS, Activity.LAUNCH),  # Elastic Defend (Linux, macOS)
    "socket_opened": (Kind.NETWORK, Activity.CONNECT),  # Auditbeat system/socket
    "socket_closed": (Kind.NETWORK, Activity.CLOSE),
    "connected-to": (Kind.NETWORK, Activity.CONNECT),  # Auditbeat auditd
    "connection_attempted": (Kind.NETWORK, Activity.CONNECT),  # Elastic Defend
    "disconnect_received": (Kind.NETWORK, Activity.CLOSE),
    "creation": (Kind.FILE, Activity.CREATE),  # Elastic Defend
    "overwrite": (Kind.FILE, Activity.WRITE),
    "modification": (Kind.FILE, Activity.WRITE),
    "rename": (Kind.FILE, Activity.RENAME),
    "deletion": (Kind.FILE, Activity.DELETE),
}
_FILE_TYPES = {
    "creation": Activity.CREATE,
    "change": Activity.WRITE,
    "deletion": Activity.DELETE,
}
_INBOUND = frozenset({"inbound", "ingress"})


@register
class EcsSource(Source):
    name = "ecs"
    title = "Elastic Common Schema (Auditbeat, Elastic Defend, Filebeat Zeek)"

    def sniff(self, head: bytes) -> bool:
        document = first_record(head)
        if document is None:
            return False
        hits = _hits(document)
        if hits and isinstance(hits[0], dict):
            document = hits[0]
        document = _source_of(document)
        if _is_winlog(document):
            return False  # Windows event logs in ECS: the Windows JSON reader's
        if "@timestamp" not in document:
            return False
        return "ecs" in document or "event" in document or "event.action" in document

    def near_miss(self, head: bytes) -> str | None:
        document = first_record(head)
        if document is None:
            return None
        document = _source_of(document)
        if _is_winlog(document):
            return "looks like Windows event log records in ECS (winlog.*), not read by this build"
        if "@timestamp" in document:
            return (
                "looks like an Elastic document, but it has no event.* or ecs fields to say "
                "what happened; tidewaiter reads Elastic Common Schema events"
            )
        return None

    def decoder(self, path: str) -> Decoder:
        return FramedDecoder(_record)

    def read_file(self, path: str, stream: BinaryIO, report: ReadReport) -> Iterator[Event]:
        yield from read_records(self.name, path, stream, report, _record)


def _record(record: object, ref: RawRef) -> list[Event]:
    if not isinstance(record, dict):
        raise RecordError("JSON is not an object")
    hits = _hits(record)
    if hits is not None:  # a whole _search response: its hits
        found = [_source_of(hit) for hit in hits if isinstance(hit, dict)]
        return [event for hit in found for event in _events(_Doc(hit), ref)]
    return _events(_Doc(_source_of(record)), ref)


def _hits(document: Obj) -> list[object] | None:
    outer = document.get("hits")
    hits = outer.get("hits") if isinstance(outer, dict) else None
    return hits if isinstance(hits, list) else None


def _is_winlog(document: Obj) -> bool:
    return "winlog" in document or any(key.startswith("winlog.") for key in document)


def _source_of(document: Obj) -> Obj:
    """The document itself, or the ``_source`` of an Elasticsearch hit."""
    source = document.get("_source")
    return source if isinstance(source, dict) else document


class _Doc:
    """One document, and whether any of its keys is dotted (a flattened export): only then
    is a field missing from the nested objects looked for under dotted names."""

    __slots__ = ("data", "dotted")

    def __init__(self, data: Obj) -> None:
        self.data = data
        self.dotted = _has_dotted_keys(data)


def _has_dotted_keys(node: object, depth: int = 0) -> bool:
    if isinstance(node, dict):
        return any(
            "." in key or (depth < 8 and _has_dotted_keys(value, depth + 1))
            for key, value in node.items()
        )
    return False


def _get(doc: _Doc, path: str) -> object:
    """A field by its dotted ECS name, nested (``{"process": {"pid": 1}}``), dotted
    (``{"process.pid": 1}``) or anything in between."""
    node: object = doc.data
    parts = _parts(path)
    for part in parts:
        if not isinstance(node, dict):
            return None
        if part not in node:
            return _get_mixed(doc.data, parts) if doc.dotted else None
        node = node[part]
    return node


@functools.lru_cache(maxsize=512)
def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _get_mixed(node: Obj, parts: tuple[str, ...]) -> object:
    """Every way of splitting the name into nested keys and dotted ones."""
    for cut in range(len(parts), 0, -1):
        inner = node.get(".".join(parts[:cut]))
        if inner is None:
            continue
        if cut == len(parts):
            return inner
        if isinstance(inner, dict):
            found = _get_mixed(inner, parts[cut:])
            if found is not None:
                return found
    return None


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(text for text in (to_str(item) for item in value) if text is not None)
    return ()


def _events(doc: _Doc, ref: RawRef) -> list[Event]:
    if "winlog" in doc.data:
        raise ForeignRecord("Windows event log (winlog) ECS")
    module = to_str(_get(doc, "event.module"))
    dataset = to_str(_get(doc, "event.dataset")) or ""
    if module == "zeek" or dataset.startswith("zeek."):
        return _zeek(doc, dataset, ref)
    if module == "auditd":
        raw = _auditd_lines(doc)
        if raw:
            return _through_auditd(raw, doc, ref)
    kind_activity = _classify(doc)
    if kind_activity is None:
        return []
    kind, activity = kind_activity
    event = Event(
        time=_time(doc),
        kind=kind,
        activity=activity,
        raw=_ref(doc, ref),
        host=to_str(_get(doc, "host.hostname")) or to_str(_get(doc, "host.name")),
        container=_container(doc),
        process=_process(doc),
    )
    if kind is Kind.PROCESS:
        if event.process is None:
            raise RecordError("process event without process fields")
        return [event]
    if kind is Kind.FILE:
        return [_file(doc, event)]
    return [_network(doc, event)]


def _classify(doc: _Doc) -> tuple[Kind, Activity] | None:
    categories = _strings(_get(doc, "event.category"))
    types = _strings(_get(doc, "event.type"))
    action = (to_str(_get(doc, "event.action")) or "").lower()
    if action in _ACTIONS:
        return _ACTIONS[action]
    if "process" in categories and "start" in types:
        return Kind.PROCESS, Activity.LAUNCH
    if "process" in categories and "end" in types:
        return Kind.PROCESS, Activity.EXIT
    if "file" in categories:
        for kind_of_change, activity in _FILE_TYPES.items():
            if kind_of_change in types:
                return Kind.FILE, activity
    if "network" in categories and _get(doc, "destination.ip") is not None:
        if "end" in types:
            return Kind.NETWORK, Activity.CLOSE
        if "start" in types or "connection" in types:
            return Kind.NETWORK, Activity.CONNECT
    return None


def _time(doc: _Doc) -> float:
    stamp = _get(doc, "@timestamp")
    return parse_time(stamp if stamp is not None else _get(doc, "event.created"))


def _ref(doc: _Doc, ref: RawRef) -> RawRef:
    record_id = to_str(_get(doc, "event.id"))
    return msgspec.structs.replace(ref, record_id=record_id[:128]) if record_id else ref


def _process(doc: _Doc) -> Process | None:
    process = _process_at(doc, "process")
    if process is None:
        return None
    parent = _process_at(doc, "process.parent")
    ppid = to_int(_get(doc, "process.ppid"))  # Auditbeat's system module
    if parent is None and ppid is not None:
        parent = Process(pid=ppid)
    return msgspec.structs.replace(
        process,
        user=to_str(_get(doc, "user.name")),
        parent=parent,
    )


def _process_at(doc: _Doc, prefix: str) -> Process | None:
    args = _strings(_get(doc, f"{prefix}.args")) or None
    cmd_line = to_str(_get(doc, f"{prefix}.command_line"))
    if cmd_line is None and args:
        cmd_line = " ".join(args)
    path = to_str(_get(doc, f"{prefix}.executable"))
    pid = to_int(_get(doc, f"{prefix}.pid"))
    name = to_str(_get(doc, f"{prefix}.name"))
    if path is None and name is not None:
        path = name  # Process.name is the path's last part: a bare name is the best there is
    if path is None and pid is None and cmd_line is None:
        return None
    return Process(
        pid=pid,
        uid=to_str(_get(doc, f"{prefix}.entity_id")),
        path=path,
        cmd_line=cmd_line,
        args=args,
        # process.cwd: Auditbeat before ECS 1.x named it so.
        cwd=to_str(_get(doc, f"{prefix}.working_directory")) or to_str(_get(doc, f"{prefix}.cwd")),
    )


def _container(doc: _Doc) -> Container | None:
    uid = normalise_container_id(to_str(_get(doc, "container.id")))
    namespace = to_str(_get(doc, "orchestrator.namespace")) or to_str(
        _get(doc, "kubernetes.namespace")
    )
    pod = to_str(_get(doc, "kubernetes.pod.name"))
    if pod is None and to_str(_get(doc, "orchestrator.resource.type")) == "pod":
        pod = to_str(_get(doc, "orchestrator.resource.name"))
    name = to_str(_get(doc, "container.name")) or to_str(_get(doc, "kubernetes.container.name"))
    if uid is None:
        if pod is None:
            return None
        uid = pod_container(namespace, pod, name)  # joined to the runtime's id later
    image = to_str(_get(doc, "container.image.name"))
    tags = _strings(_get(doc, "container.image.tag"))
    if image is not None and tags and ":" not in image.rpartition("/")[2]:
        image = f"{image}:{tags[0]}"
    return Container(
        uid=uid,
        name=name,
        image=Image(name=image) if image else None,
        runtime=to_str(_get(doc, "container.runtime")),
        pod_name=pod,
        namespace=namespace,
    )


def _file(doc: _Doc, event: Event) -> Event:
    path = to_str(_get(doc, "file.path"))
    if path is None:
        raise RecordError("file event without file.path")
    header = to_str(_get(doc, "file.Ext.header_bytes"))  # Elastic Defend: the first bytes, hex
    magic = None
    if header is not None:
        try:
            magic = bytes.fromhex(header[:64])
        except ValueError:
            magic = None
    # A rename's new name is file.path (Defend keeps the old one in file.Ext.original.path).
    file = File(path=path, size=to_int(_get(doc, "file.size")), magic=magic)
    return msgspec.structs.replace(event, file=file)


def _endpoint(doc: _Doc, side: str) -> Endpoint | None:
    ip = to_str(_get(doc, f"{side}.ip")) or to_str(_get(doc, f"{side}.address"))
    port = to_int(_get(doc, f"{side}.port"))
    name = to_str(_get(doc, f"{side}.domain"))
    if ip is None and name is None:
        return None
    return Endpoint(ip=ip, port=port, hostname=name)


def _network(doc: _Doc, event: Event) -> Event:
    activity = event.activity
    direction = (to_str(_get(doc, "network.direction")) or "").lower()
    if direction in _INBOUND:
        # Accepted from outside: kept, but it is not this host connecting out (as Sysmon's
        # Initiated=false), so it must not read as one.
        activity = Activity.OTHER
    sent, received = to_int(_get(doc, "source.bytes")), to_int(_get(doc, "destination.bytes"))
    return msgspec.structs.replace(
        event,
        activity=activity,
        src_endpoint=_endpoint(doc, "source"),
        dst_endpoint=_endpoint(doc, "destination"),
        traffic=Traffic(bytes_out=sent, bytes_in=received) if sent or received else None,
    )


def _zeek(doc: _Doc, dataset: str, ref: RawRef) -> list[Event]:
    """A Zeek connection as the Filebeat / Elastic Agent module indexes it: a flow seen on the
    wire, with no host or process (``host.*`` is the sensor's), joined to a container or host
    by its source address like conn.log."""
    log = dataset.removeprefix("zeek.") or "unnamed"
    if log != "connection":
        raise ForeignRecord(f"Zeek {printable(log)[:40]} log (ECS)")
    source, destination = _endpoint(doc, "source"), _endpoint(doc, "destination")
    if source is None or destination is None or source.ip is None or destination.ip is None:
        raise RecordError("Zeek connection without source and destination addresses")
    # source.bytes / destination.bytes are the IP-level orig_ip_bytes / resp_ip_bytes.
    return [
        Event(
            time=_time(doc),
            kind=Kind.NETWORK,
            activity=Activity.TRAFFIC,
            raw=msgspec.structs.replace(
                ref, record_id=to_str(_get(doc, "zeek.session_id")) or ref.record_id
            ),
            src_endpoint=source,
            dst_endpoint=destination,
            traffic=Traffic(
                bytes_out=to_int(_get(doc, "source.bytes")),
                bytes_in=to_int(_get(doc, "destination.bytes")),
            ),
        )
    ]


def _auditd_lines(doc: _Doc) -> list[str]:
    messages = _strings(_get(doc, "auditd.messages"))
    if messages:
        return list(messages)
    original = to_str(_get(doc, "event.original"))
    if original is not None and original.startswith("type="):
        return original.splitlines()
    return []


def _through_auditd(lines: Iterable[str], doc: _Doc, ref: RawRef) -> list[Event]:
    """The raw auditd records Auditbeat kept, read by the auditd reader; the document's host
    and container name the events where the records name none."""
    from tidewaiter.sources.auditd import AuditDecoder

    decoder = AuditDecoder()
    events: list[Event] = []
    for line in lines:
        events += decoder.feed(line.encode(), ref)
    events += decoder.flush()
    if decoder.failed:
        raise RecordError(decoder.failed[0][1])
    if len(events) > 1:  # Auditbeat puts the records of one event, one serial, in a document
        raise RecordError("auditd.messages hold records of more than one audit event")
    host = to_str(_get(doc, "host.hostname")) or to_str(_get(doc, "host.name"))
    container = _container(doc)  # add_docker_metadata / add_kubernetes_metadata, if present
    return [
        msgspec.structs.replace(e, host=e.host or host, container=e.container or container)
        for e in events
    ]
