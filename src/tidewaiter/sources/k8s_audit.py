"""Kubernetes API server audit events (``audit.k8s.io/v1`` Event), one JSON object a line, as the
log backend (``--audit-log-path``) and the webhook backend's collectors write them.

Two calls matter here: ``pods/exec`` and ``pods/attach`` (``kubectl cp`` is an exec of ``tar``,
its argv in the ``command`` query parameters of ``requestURI``), and pod creation, which shows
host paths mounted into a container. Everything else is read and given no events.

An audit record names a pod and a container but no container id. Events carry a synthetic id
from ``pod_container`` that the pipeline can map to the runtime's id later.
"""

from __future__ import annotations

import shlex
from urllib.parse import parse_qsl

import msgspec

from tidewaiter.events import Activity, Api, Container, Event, Image, Kind, Mount, Process, RawRef
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, RecordError, Source
from tidewaiter.sources.fields import (
    BOM,
    decode_json_line,
    decode_keeping_bad_utf8,
    parse_time,
    to_int,
    to_str,
)

Obj = dict[str, object]

_STREAMS = frozenset({"exec", "attach"})
SEEN_CAPACITY = 65_536  # audit ids remembered for de-duplication; stages arrive close together


def pod_container(namespace: str | None, pod: str | None, container: str | None) -> str:
    """The synthetic ``Container.uid`` for a container known only by name.

    ``pod:<namespace>/<pod>/<container>``, an unknown part left empty. It cannot collide with a
    runtime id (those are hex), and every source that knows a container only by its Kubernetes
    names must build it here so that the ids agree."""
    return f"pod:{namespace or ''}/{pod or ''}/{container or ''}"


class _Audit(msgspec.Struct, rename="camel"):
    # ``object`` so that only a non-object line fails validation; the request and response
    # bodies stay raw JSON and are decoded only for a pod create (a list response can be large).
    kind: object = None
    audit_id: object = msgspec.field(default=None, name="auditID")
    request_uri: object = msgspec.field(default=None, name="requestURI")
    verb: object = None
    user: object = None
    source_ips: object = msgspec.field(default=None, name="sourceIPs")
    user_agent: object = None
    object_ref: object = None
    response_status: object = None
    request_object: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    response_object: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    request_received_timestamp: object = None
    stage_timestamp: object = None


_DECODER = msgspec.json.Decoder(_Audit)
_JSON = msgspec.json.Decoder()


@register
class K8sAuditSource(Source):
    name = "k8s-audit"
    title = "Kubernetes audit log"

    def sniff(self, head: bytes) -> bool:
        line = head.removeprefix(BOM).lstrip().split(b"\n", 1)[0]
        return (
            line.startswith(b"{")
            and b"audit.k8s.io/" in line
            and b'"auditID"' in line
            and b'"stage"' in line
        )

    def decoder(self, path: str) -> Decoder:
        return K8sAuditDecoder()


class K8sAuditDecoder(Decoder):
    """Emits one event per API request.

    Depending on the audit policy's ``omitStages``, one request is logged at up to three stages
    (RequestReceived, then ResponseStarted for a streaming exec or attach, then
    ResponseComplete) under the same ``auditID``. The first stage seen gives the event; the
    later ones give nothing (counted as records with nothing to use), so one ``kubectl cp`` is
    one event. The first stage is the earliest news of the request: waiting for the last one
    would hold an exec back until its stream closes. A RequestReceived stage has no response
    code yet, which is why policies usually omit it."""

    def __init__(self, capacity: int = SEEN_CAPACITY) -> None:
        self._capacity = capacity
        self._seen: dict[str, None] = {}  # insertion-ordered: the oldest ids are dropped first

    def feed(self, line: bytes, ref: RawRef) -> list[Event]:
        audit = _decode(line)
        event = _event(audit, ref)
        if event is None or self._repeated(to_str(audit.audit_id)):
            return []
        return [event]

    def _repeated(self, audit_id: str | None) -> bool:
        """Whether this request was already emitted; remembers it otherwise. Only a record that
        gave an event is remembered, so a broken first stage leaves the next one to speak."""
        if audit_id is None:
            return False
        if audit_id in self._seen:
            return True
        self._seen[audit_id] = None
        if len(self._seen) > self._capacity:
            del self._seen[next(iter(self._seen))]
        return False


def _decode(line: bytes) -> _Audit:
    audit = decode_json_line(line, _DECODER)
    if audit.kind not in (None, "Event"):
        if audit.kind == "EventList":
            raise RecordError("an EventList document, not one event a line")
        raise RecordError("not an audit event")
    return audit


def _event(audit: _Audit, ref: RawRef) -> Event | None:
    obj_ref = audit.object_ref
    if obj_ref is None:
        return None  # a non-resource request: /healthz, /version, /metrics
    if not isinstance(obj_ref, dict):
        raise RecordError("objectRef is not an object")
    if to_str(obj_ref.get("resource")) != "pods":
        return None
    subresource = to_str(obj_ref.get("subresource"))
    if subresource in _STREAMS:
        # kubectl before 1.30 POSTs over SPDY (verb create); 1.30 and later upgrade a GET to a
        # WebSocket (verb get). Both run the command.
        return _stream(audit, obj_ref, subresource or "", ref)
    if subresource is None and to_str(audit.verb) == "create":
        if any(key == "dryRun" for key, _ in _query(audit.request_uri)):
            return None  # validated and discarded by the server: no pod exists
        return _pod_create(audit, obj_ref, ref)
    return None  # pods/log, pods/portforward, get, list, watch, delete, ...


def _stream(audit: _Audit, obj_ref: Obj, operation: str, ref: RawRef) -> Event:
    pod = to_str(obj_ref.get("name"))
    if pod is None:
        raise RecordError(f"pods/{operation} without a pod name")
    namespace = to_str(obj_ref.get("namespace"))
    params = _query(audit.request_uri)
    command = tuple(value for key, value in params if key == "command")
    name = next((value for key, value in params if key == "container" and value), None)
    return Event(
        time=_time(audit),
        kind=Kind.ORCHESTRATOR,
        activity=Activity.EXEC,
        raw=ref,
        container=Container(
            uid=pod_container(namespace, pod, name), name=name, pod_name=pod, namespace=namespace
        ),
        # shlex quoting keeps `sh -c "tar cf - /x | tail -c+0"` (kubectl cp --retries) one argument.
        process=Process(cmd_line=shlex.join(command), args=command) if command else None,
        api=_api(audit, operation, f"pods/{operation}", command=command),
    )


def _pod_create(audit: _Audit, obj_ref: Obj, ref: RawRef) -> Event:
    # The body is there only at the Request and RequestResponse audit levels.
    pod = _body(audit.request_object) or {}
    metadata = _obj(pod.get("metadata")) or {}
    spec = _obj(pod.get("spec"))
    answered = _obj((_body(audit.response_object) or {}).get("metadata")) or {}
    # A controller's pod has only a generateName until the server answers with its name.
    name = (
        to_str(obj_ref.get("name"))
        or to_str(metadata.get("name"))
        or to_str(answered.get("name"))
        or to_str(metadata.get("generateName"))
    )
    namespace = to_str(obj_ref.get("namespace")) or to_str(metadata.get("namespace"))
    containers = _objects(spec.get("containers")) if spec else []
    first = containers[0] if containers else {}
    first_name = to_str(first.get("name"))
    image = to_str(first.get("image"))
    return Event(
        time=_time(audit),
        kind=Kind.ORCHESTRATOR,
        activity=Activity.OTHER,
        raw=ref,
        container=Container(
            uid=pod_container(namespace, name, first_name),
            name=first_name,
            image=Image(name=image) if image else None,
            pod_name=name,
            namespace=namespace,
        ),
        api=_api(
            audit,
            "create",
            "pods",
            mounts=_host_mounts(spec) if spec else (),
            privileged=_privileged(spec) if spec else None,
            host_network=spec.get("hostNetwork") is True if spec else None,
        ),
    )


def _api(
    audit: _Audit,
    operation: str,
    resource: str,
    command: tuple[str, ...] = (),
    mounts: tuple[Mount, ...] = (),
    privileged: bool | None = None,
    host_network: bool | None = None,
) -> Api:
    user = _obj(audit.user) or {}
    status = _obj(audit.response_status) or {}
    return Api(
        operation=operation,
        resource=resource,
        user=to_str(user.get("username")),
        source_ips=_strings(audit.source_ips),
        user_agent=to_str(audit.user_agent),
        response_code=to_int(status.get("code")),  # kept when >= 400: a denied exec is evidence
        command=command,
        mounts=mounts,
        privileged=privileged,
        host_network=host_network,
    )


def _host_mounts(spec: Obj) -> tuple[Mount, ...]:
    """Every place a hostPath volume appears in a container, or the bare volume if none mounts
    it (the host path is still exposed to whatever later mounts it)."""
    host_paths: dict[str, str] = {}
    for volume in _objects(spec.get("volumes")):
        volume_name = to_str(volume.get("name"))
        path = to_str((_obj(volume.get("hostPath")) or {}).get("path"))
        if volume_name is not None and path is not None:
            host_paths[volume_name] = path
    mounts: list[Mount] = []
    mounted: set[str] = set()
    for container in _containers(spec):
        for volume_mount in _objects(container.get("volumeMounts")):
            volume_name = to_str(volume_mount.get("name"))
            if volume_name is None or volume_name not in host_paths:
                continue
            mount = Mount(
                source=host_paths[volume_name],
                destination=to_str(volume_mount.get("mountPath")),
                read_only=volume_mount.get("readOnly") is True,
            )
            if mount not in mounts:
                mounts.append(mount)
            mounted.add(volume_name)
    mounts.extend(Mount(source=path) for name, path in host_paths.items() if name not in mounted)
    return tuple(mounts)


def _privileged(spec: Obj) -> bool:
    return any(
        (_obj(container.get("securityContext")) or {}).get("privileged") is True
        for container in _containers(spec)
    )


def _containers(spec: Obj) -> list[Obj]:
    # Init containers run on the node with the same mounts and privileges as the others.
    return _objects(spec.get("containers")) + _objects(spec.get("initContainers"))


def _time(audit: _Audit) -> float:
    """When the request arrived: the same at every stage, so the event's time does not depend
    on which stage the policy logs, and for a long exec it is when the command started, not
    when its stream closed."""
    stamp = audit.request_received_timestamp
    return parse_time(stamp if stamp is not None else audit.stage_timestamp)


def _query(uri: object) -> list[tuple[str, str]]:
    """Decoded query parameters of requestURI, in order (``command`` repeats, one per arg)."""
    if not isinstance(uri, str):
        return []
    query = uri.partition("?")[2]
    return parse_qsl(query, keep_blank_values=True, errors="replace")


def _body(raw: msgspec.Raw) -> Obj | None:
    """A request or response body. Its JSON was checked with the line, but not its text."""
    if not raw:
        return None
    try:
        return _obj(decode_keeping_bad_utf8(_JSON.decode, bytes(raw)))
    except msgspec.DecodeError:  # checked with the line already; a body never fails a record
        return None


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]  # a forwarder that flattened a one-element list
    if not isinstance(value, list):
        return ()
    return tuple(text for text in (to_str(item) for item in value) if text is not None)


def _objects(value: object) -> list[Obj]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _obj(value: object) -> Obj | None:
    return value if isinstance(value, dict) else None
