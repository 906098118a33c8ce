"""Everything the telemetry says about one container (or host) around an alert: its events in
time order, its process tree, the files it wrote and the connections it made, with bytes.

The telemetry is re-read through the same sources and identity resolution detection used, so
a Falco record with a 12-character id and a Tetragon record with the full id land on the same
container, and a Zeek flow lands on the container that held its source address.
"""

from __future__ import annotations

import ntpath
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from tidewaiter.alerts import alert_container, evidence_bytes_out, evidence_ref, evidence_time
from tidewaiter.detection.addresses import AddressPolicy
from tidewaiter.detection.correlate import Entity
from tidewaiter.events import Activity, Event, Kind, Process
from tidewaiter.identity import MIN_PREFIX, POD_PREFIX, Identities, normalise_container_id
from tidewaiter.pipeline import AddressBook, merge_by_time
from tidewaiter.sources import ReadReport, open_all

ARCHIVING_SIGNALS = frozenset({"archive", "encrypt", "archive_file"})
_WRITES = frozenset({Activity.CREATE, Activity.WRITE, Activity.RENAME})
_MAX_DEPTH = 64  # parent chains deeper than this are cut (a loop in bad telemetry)


class TimelineEntry(msgspec.Struct, omit_defaults=True):
    time: float
    kind: str
    activity: str
    what: str
    record: str  # file:line of the record it came from
    pid: int | None = None
    process: str | None = None
    evidence: bool = False  # one of the finding's own evidence items


class ProcessNode(msgspec.Struct, omit_defaults=True):
    key: str
    name: str
    pid: int | None = None
    path: str | None = None
    cmd_line: str | None = None
    user: str | None = None
    first_seen: float | None = None
    evidence: bool = False
    children: list[ProcessNode] = msgspec.field(default_factory=list)


class FileEntry(msgspec.Struct, omit_defaults=True):
    path: str
    seen: str  # "file event" or "named by <tool>'s command line"
    time: float | None = None
    activity: str | None = None
    pid: int | None = None
    process: str | None = None
    size: int | None = None
    records: int = 1
    evidence: bool = False


class Connection(msgspec.Struct, omit_defaults=True):
    seen: str  # "network records" or "named by <tool>'s command line"
    ip: str | None = None
    port: int | None = None
    hostname: str | None = None
    internal: bool | None = None
    pid: int | None = None
    process: str | None = None
    first_seen: float | None = None
    last_seen: float | None = None
    records: int = 0
    bytes_out: int | None = None  # None: no source reported bytes for this flow
    bytes_in: int | None = None
    evidence: bool = False


class Context(msgspec.Struct):
    subject: str  # "container <id>" or "host <name>"
    start: float
    end: float
    paths: list[str]
    unreadable: list[str]
    summary: str
    timeline: list[TimelineEntry]
    timeline_omitted: int
    process_tree: list[ProcessNode]
    files: list[FileEntry]
    connections: list[Connection]


def subject_key(alert: dict[str, Any]) -> str:
    """The correlation key detection gave the alert's entity (see pipeline.Engine._entity)."""
    container = alert_container(alert)
    uid = normalise_container_id(container.get("uid"))
    if uid:
        return f"container:{uid if uid.startswith(POD_PREFIX) else uid[:MIN_PREFIX]}"
    host = (alert.get("device") or {}).get("hostname") or "unknown host"
    return f"host:{host.lower()}"


def telemetry_paths(alert: dict[str, Any]) -> list[str]:
    """The files the alert's evidence was read from, in order, once each."""
    seen: dict[str, None] = {}
    for evidence in alert.get("evidences", []):
        path = evidence_ref(evidence).get("path")
        if isinstance(path, str) and path and path != "-":
            seen[path] = None
    return list(seen)


def gather(
    alert: dict[str, Any],
    paths: Iterable[str],
    window: float,
    limit: int,
    policy: AddressPolicy | None = None,
    fmt: str | None = None,
) -> Context:
    info = alert["finding_info"]
    start = info["first_seen_time"] / 1000 - window
    end = info["last_seen_time"] / 1000 + window
    key = subject_key(alert)
    policy = policy or AddressPolicy()
    report = ReadReport()
    unreadable: list[str] = []
    streams = open_all(list(paths), report, fmt, unreadable)
    readable = list(report.files)
    builder = _Builder(alert, policy, limit)
    for event in _own_events(merge_by_time(streams), key):
        if start <= event.time <= end:
            builder.add(event)
    subject = key.replace(":", " ", 1)
    return Context(
        subject=subject,
        start=start,
        end=end,
        paths=readable,
        unreadable=unreadable,
        summary=report.summary(),
        timeline=builder.timeline,
        timeline_omitted=builder.omitted,
        process_tree=builder.tree(),
        files=builder.file_entries(),
        connections=builder.connection_entries(),
    )


def _own_events(events: Iterator[Event], key: str) -> Iterator[Event]:
    """The events of one entity, keyed as the engine keys them (network-only flows included)."""
    identities = Identities()
    addresses = AddressBook()
    for event in events:
        if event.container is not None:
            container = identities.resolve(event.container)
            uid = container.uid
            entity = Entity(
                f"container:{uid if uid.startswith(POD_PREFIX) else uid[:MIN_PREFIX]}",
                event.host,
                container,
            )
            if event.kind is Kind.NETWORK:
                addresses.learn(event, entity)
            own = entity.key
        else:
            owner = addresses.owner(event) if event.kind is Kind.NETWORK else None
            own = owner.key if owner else f"host:{(event.host or 'unknown host').lower()}"
        if own == key:
            yield event


class _Builder:
    def __init__(self, alert: dict[str, Any], policy: AddressPolicy, limit: int) -> None:
        self.policy = policy
        self.limit = limit
        self.alert = alert
        evidences = alert.get("evidences", [])
        self.evidence_at = {
            (evidence_time(e), (e.get("process") or {}).get("pid"))
            for e in evidences
            if evidence_time(e) is not None
        }
        self.timeline: list[TimelineEntry] = []
        self.omitted = 0
        self.nodes: dict[str, ProcessNode] = {}
        self.parents: dict[str, str] = {}
        self.by_pid: dict[int, str] = {}
        self.files: dict[str, FileEntry] = {}
        self.flows: dict[tuple[str | None, int | None, str | None, int | None], Connection] = {}

    def add(self, event: Event) -> None:
        process = event.process
        pid = process.pid if process else None
        evidence = (round(event.time * 1000), pid) in self.evidence_at
        if len(self.timeline) < self.limit:
            self.timeline.append(
                TimelineEntry(
                    time=event.time,
                    kind=event.kind.value,
                    activity=event.activity.value,
                    what=_describe(event),
                    record=_record(event),
                    pid=pid,
                    process=_name(process),
                    evidence=evidence,
                )
            )
        else:
            self.omitted += 1
        if process is not None:
            self._process(process, event.time, evidence, 0)
        if event.file is not None and event.activity in _WRITES:
            self._file(event, evidence)
        if event.dst_endpoint is not None and event.kind is Kind.NETWORK:
            self._flow(event, evidence)

    # --- processes -------------------------------------------------------------------------

    def _key(self, process: Process) -> str | None:
        if process.uid:
            return f"uid:{process.uid}"
        if process.pid is not None:
            return self.by_pid.get(process.pid, f"pid:{process.pid}")
        return None

    def _process(
        self, process: Process, time: float | None, evidence: bool, depth: int
    ) -> str | None:
        key = self._key(process)
        if key is None or depth > _MAX_DEPTH:
            return None
        node = self.nodes.get(key)
        if node is None:
            node = ProcessNode(key=key, name=_name(process) or "?")
            self.nodes[key] = node
        # The first record of a process describes it; later ones (an exit) only fill gaps.
        node.pid = node.pid if node.pid is not None else process.pid
        node.path = node.path or process.path
        if node.name == "?" and process.path:
            node.name = _name(process) or "?"
        node.cmd_line = node.cmd_line or process.cmd_line
        node.user = node.user or process.user
        if time is not None and (node.first_seen is None or time < node.first_seen):
            node.first_seen = time
        node.evidence = node.evidence or evidence
        if process.pid is not None:
            self.by_pid.setdefault(process.pid, key)
        if process.parent is not None and key not in self.parents:
            parent = self._process(process.parent, None, False, depth + 1)
            if parent is not None and not self._is_ancestor(key, parent):
                self.parents[key] = parent
        return key

    def _is_ancestor(self, key: str, start: str) -> bool:
        current: str | None = start
        for _ in range(_MAX_DEPTH * 4):
            if current is None:
                return False
            if current == key:
                return True
            current = self.parents.get(current)
        return True  # a chain this long is a loop: refuse the link

    def tree(self) -> list[ProcessNode]:
        roots: list[ProcessNode] = []
        for key, node in self.nodes.items():
            parent = self.parents.get(key)
            if parent is None or parent not in self.nodes:
                roots.append(node)
            else:
                self.nodes[parent].children.append(node)

        def order(nodes: list[ProcessNode]) -> float:
            times = [n.first_seen for n in nodes if n.first_seen is not None]
            return min(times) if times else float("inf")

        def sort(nodes: list[ProcessNode]) -> None:
            nodes.sort(key=lambda n: (n.first_seen or order(n.children), n.pid or 0))
            for node in nodes:
                sort(node.children)

        sort(roots)
        return roots

    # --- files -----------------------------------------------------------------------------

    def _file(self, event: Event, evidence: bool) -> None:
        assert event.file is not None  # noqa: S101 - checked by the caller
        path = event.file.path
        entry = self.files.get(path)
        if entry is None:
            process = event.process
            self.files[path] = FileEntry(
                path=path,
                seen="file event",
                time=event.time,
                activity=event.activity.value,
                pid=process.pid if process else None,
                process=_name(process),
                size=event.file.size,
                evidence=evidence,
            )
            return
        entry.records += 1
        entry.evidence = entry.evidence or evidence
        if event.file.size is not None:
            entry.size = max(entry.size or 0, event.file.size)

    def file_entries(self) -> list[FileEntry]:
        entries = list(self.files.values())
        known = {_basename(p) for p in self.files}
        for evidence in self.alert.get("evidences", []):
            path = (evidence.get("file") or {}).get("path")
            data = evidence.get("data") or {}
            if not path or data.get("signal") not in ARCHIVING_SIGNALS:
                continue
            if path in self.files or _basename(path) in known:
                continue
            known.add(_basename(path))
            process = evidence.get("process") or {}
            entries.append(
                FileEntry(
                    path=path,
                    seen=f"named by {data.get('tool') or 'the'}'s command line",
                    time=(evidence_time(evidence) or 0) / 1000,
                    pid=process.get("pid"),
                    process=data.get("tool"),
                    evidence=True,
                )
            )
        return sorted(entries, key=lambda e: e.time or 0.0)

    # --- connections -----------------------------------------------------------------------

    def _flow(self, event: Event, evidence: bool) -> None:
        dst = event.dst_endpoint
        assert dst is not None  # noqa: S101 - checked by the caller
        process = event.process
        pid = process.pid if process else None
        key = (dst.ip, dst.port, dst.hostname, pid)
        flow = self.flows.get(key)
        if flow is None:
            flow = Connection(
                seen="network records",
                ip=dst.ip,
                port=dst.port,
                hostname=dst.hostname,
                internal=self.policy.ip_internal(dst.ip) if dst.ip else None,
                pid=pid,
                process=_name(process),
                first_seen=event.time,
            )
            self.flows[key] = flow
        flow.records += 1
        flow.last_seen = event.time
        flow.evidence = flow.evidence or evidence
        traffic = event.traffic
        if traffic is not None and traffic.bytes_out is not None:
            flow.bytes_out = (flow.bytes_out or 0) + traffic.bytes_out
        if traffic is not None and traffic.bytes_in is not None:
            flow.bytes_in = (flow.bytes_in or 0) + traffic.bytes_in

    def connection_entries(self) -> list[Connection]:
        entries = list(self.flows.values())
        seen = {(c.ip or c.hostname) for c in entries}
        for evidence in self.alert.get("evidences", []):
            dst = evidence.get("dst_endpoint") or {}
            where = dst.get("ip") or dst.get("hostname")
            if not where or where in seen:
                continue
            seen.add(where)
            data = evidence.get("data") or {}
            process = evidence.get("process") or {}
            ip = dst.get("ip")
            entries.append(
                Connection(
                    seen=f"named by {data.get('tool') or 'the'}'s command line",
                    ip=ip,
                    port=dst.get("port"),
                    hostname=dst.get("hostname"),
                    internal=self.policy.ip_internal(ip) if ip else None,
                    pid=process.get("pid"),
                    process=data.get("tool"),
                    first_seen=(evidence_time(evidence) or 0) / 1000,
                    last_seen=(evidence_time(evidence) or 0) / 1000,
                    bytes_out=evidence_bytes_out(evidence),
                    evidence=True,
                )
            )
        return sorted(entries, key=lambda c: c.first_seen or 0.0)


def _describe(event: Event) -> str:
    process = event.process
    if event.kind is Kind.PROCESS:
        if event.activity is Activity.LAUNCH:
            return f"exec {(process.cmd_line or process.path or '?') if process else '?'}"
        if event.activity is Activity.EXIT:
            return f"exit {_name(process) or '?'}"
        return f"{event.activity.value} {(process.cmd_line or '') if process else ''}"[:400]
    if event.kind is Kind.FILE and event.file is not None:
        size = f" ({event.file.size} bytes)" if event.file.size is not None else ""
        return f"{event.activity.value} {event.file.path}{size}"
    if event.kind is Kind.NETWORK:
        text = event.activity.value
        if event.src_endpoint is not None and event.src_endpoint.ip:
            text += f" from {_endpoint(event.src_endpoint.ip, event.src_endpoint.port)}"
        dst = event.dst_endpoint
        if dst is not None:
            text += f" to {_endpoint(dst.ip or dst.hostname, dst.port)}"
        traffic = event.traffic
        if traffic is not None and traffic.bytes_out is not None:
            text += f", {traffic.bytes_out} bytes out"
        if traffic is not None and traffic.bytes_in is not None:
            text += f", {traffic.bytes_in} bytes in"
        return text
    if event.api is not None:
        api = event.api
        text = " ".join(x for x in (api.operation, api.resource, api.target) if x)
        if api.command:
            text += f": {' '.join(api.command)}"
        if api.user:
            text += f" by {api.user}"
        return text
    return f"{event.kind.value} {event.activity.value}"


def _endpoint(host: str | None, port: int | None) -> str:
    where = host or "?"
    if ":" in where and port is not None:
        where = f"[{where}]"
    return f"{where}:{port}" if port is not None else where


def _record(event: Event) -> str:
    return (
        f"{_basename(event.raw.path)}"
        + (f":{event.raw.line}" if event.raw.line is not None else "")
        + (f"#{event.raw.record_id}" if event.raw.record_id is not None else "")
    )


def _basename(path: str) -> str:
    return ntpath.basename(path.replace("\\", "/").rsplit("/", 1)[-1])


def _name(process: Process | None) -> str | None:
    if process is None:
        return None
    return process.name or (process.cmd_line.split(" ", 1)[0] if process.cmd_line else None)
