"""Kubernetes API server audit events (``audit.k8s.io/v1`` Event), one JSON object a line, as the
log backend (``--audit-log-path``) and the webhook backend's collectors write them.

Two calls matter here: ``pods/exec`` and ``pods/attach`` (``kubectl cp`` is an exec of ``tar``,
its argv in the ``command`` query parameters of ``requestURI``), and pod creation, which shows
host paths mounted into a container. Everything else is read and given no events.

Managed clusters deliver the same events in an envelope, unwrapped here so that a ``pods/exec``
reads the same from every one:

- AKS diagnostic settings (``category`` ``kube-audit`` / ``kube-audit-admin``): the event in
  ``properties.log``, as a JSON string or an object;
- EKS control-plane logging to CloudWatch Logs: each event in ``message`` (``@message`` from Logs
  Insights), or a subscription's ``logEvents`` batch, or a ``filter-log-events`` ``events`` list;
- GKE Cloud Audit Logs: a LogEntry whose ``protoPayload`` has ``methodName``
  (``io.k8s.core.v1.pods.exec.create``), ``resourceName``, ``authenticationInfo`` and
  ``requestMetadata``; records of other Google Cloud services are passed over. GKE writes no
  query string: an exec's command is read where the entry has it (``request.command``).

An audit record names a pod and a container but no container id. Events carry a synthetic id
from ``pod_container`` that the pipeline can map to the runtime's id later.
"""

from __future__ import annotations

import shlex
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode

import msgspec

from tidewaiter.events import Activity, Api, Container, Event, Image, Kind, Mount, Process, RawRef
from tidewaiter.printable import printable
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, ForeignRecord, RecordError, Source
from tidewaiter.sources.fields import (
    BOM,
    decode_json_line,
    decode_keeping_bad_utf8,
    parse_time,
    to_int,
    to_str,
)
from tidewaiter.sources.json_stream import back_to_back

Obj = dict[str, object]
T = TypeVar("T")

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
    # Envelopes of managed clusters (see the module's docstring); raw until needed.
    properties: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    proto_payload: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    message: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    at_message: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw, name="@message")
    log_events: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    events: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    message_type: object = None
    category: object = None
    insert_id: object = None
    timestamp: object = None
    resource: object = None


class _AksProperties(msgspec.Struct):
    log: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class _LogEvent(msgspec.Struct):
    message: object = None


class _GkePayload(msgspec.Struct, rename="camel"):
    service_name: object = None
    method_name: object = None
    resource_name: object = None
    authentication_info: object = None
    request_metadata: object = None
    status: object = None
    request: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    response: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


_DECODER = msgspec.json.Decoder(_Audit)
_AKS = msgspec.json.Decoder(_AksProperties)
_LOG_EVENTS = msgspec.json.Decoder(list[_LogEvent])
_GKE = msgspec.json.Decoder(_GkePayload)
_TEXT = msgspec.json.Decoder(str)
# google.rpc.Code to the HTTP status the API server would have answered.
_GRPC_TO_HTTP = {0: 200, 3: 400, 5: 404, 6: 409, 7: 403, 9: 400, 10: 409, 16: 401, 13: 500, 14: 503}
_JSON = msgspec.json.Decoder()


@register
class K8sAuditSource(Source):
    name = "k8s-audit"
    title = "Kubernetes audit log"

    def sniff(self, head: bytes) -> bool:
        line = head.removeprefix(BOM).lstrip().split(b"\n", 1)[0]
        if not line.startswith(b"{"):
            return False
        if b"audit.k8s.io/" in line:  # the event itself, or escaped inside an envelope
            return (b'"auditID"' in line and b'"stage"' in line) or b'\\"auditID\\"' in line
        if b'"protoPayload"' in line:  # any Cloud Audit Logs entry: GKE's are among them
            return b"google.cloud.audit.AuditLog" in line
        # A CloudWatch Logs subscription batch from an EKS control plane's audit stream.
        return b'"logEvents"' in line and b"kube-apiserver-audit" in line

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
        try:
            audits = _unwrap(_decode(line))
        except ForeignRecord:
            raise
        except RecordError:
            # Kinesis Data Firehose writes CloudWatch Logs batches into S3 back to back.
            pieces = back_to_back(line.strip())
            if pieces is None:
                raise
            audits = _pieces(pieces)
        events: list[Event] = []
        for audit in audits:
            event = _event(audit, ref)
            if event is not None and not self._repeated(to_str(audit.audit_id)):
                events.append(event)
        return events

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


def _pieces(pieces: list[bytes]) -> list[_Audit]:
    """The audit events of records written back to back; others among them are passed over."""
    audits: list[_Audit] = []
    foreign: ForeignRecord | None = None
    for piece in pieces:
        try:
            audits += _unwrap(_decode(piece))
        except ForeignRecord as exc:
            foreign = exc
    if not audits and foreign is not None:
        raise foreign
    return audits


def _decode(line: bytes) -> _Audit:
    return _checked(decode_json_line(line, _DECODER))


def _checked(audit: _Audit) -> _Audit:
    if audit.kind not in (None, "Event"):
        if audit.kind == "EventList":
            raise RecordError("an EventList document, not one event a line")
        raise RecordError("not an audit event")
    return audit


def _unwrap(audit: _Audit) -> list[_Audit]:
    """The audit events a record holds: itself, or those inside a managed cluster's envelope."""
    if audit.audit_id is not None or audit.kind is not None:
        return [audit]
    if audit.properties:  # AKS
        category = to_str(audit.category)
        if category not in (None, "kube-audit", "kube-audit-admin"):
            raise ForeignRecord(f"AKS {printable(category or '')[:40]} log")
        return [_inner(_json(_AKS, audit.properties).log, "properties.log")]
    if audit.proto_payload:  # GKE
        return [_gke(audit)]
    if audit.message_type == "CONTROL_MESSAGE":  # CloudWatch's reachability check
        raise ForeignRecord("CloudWatch Logs control message")
    batch = audit.log_events or audit.events  # a subscription batch, or filter-log-events
    if batch:
        return _batch(_json(_LOG_EVENTS, batch))
    for raw, where in ((audit.message, "message"), (audit.at_message, "@message")):
        if raw:  # one CloudWatch Logs event (EKS), as exported or forwarded
            return [_inner(_json(_TEXT, raw), where)]
    return [audit]  # an event without kind or auditID: read as it is


def _batch(log_events: list[_LogEvent]) -> list[_Audit]:
    """The audit events of a batch of CloudWatch Logs events; others in it are passed over."""
    audits: list[_Audit] = []
    for log_event in log_events:
        try:
            audits.append(_inner(log_event.message, "message"))
        except ForeignRecord:
            continue
    if log_events and not audits:
        raise ForeignRecord("CloudWatch Logs batch without audit events")
    return audits


def _json(decoder: msgspec.json.Decoder[T], raw: msgspec.Raw | bytes) -> T:
    try:
        return decode_json_line(bytes(raw), decoder)
    except RecordError as exc:
        raise RecordError(f"unexpected envelope ({exc})") from None


def _inner(value: object, where: str) -> _Audit:
    """An audit event held in an envelope field: a JSON string, or the object itself."""
    if isinstance(value, msgspec.Raw):
        data = bytes(value)
        if data.startswith(b'"'):
            value = _json(_TEXT, data)
        elif data.startswith(b"{"):
            return _checked(_json(_DECODER, data))
        else:
            raise RecordError(f"{where} holds no audit event")
    if not isinstance(value, str) or not value.lstrip().startswith("{"):
        raise ForeignRecord(f"{where.split(maxsplit=1)[0]} that is not an audit event")
    try:
        audit = _checked(decode_json_line(value.encode(), _DECODER))
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}") from None
    if audit.audit_id is None:
        raise ForeignRecord(f"{where.split(maxsplit=1)[0]} that is not an audit event")
    return audit


def _gke(entry: _Audit) -> _Audit:
    """A GKE Cloud Audit Logs entry as the audit event the API server logged."""
    payload = _json(_GKE, entry.proto_payload)
    service = to_str(payload.service_name)
    if service != "k8s.io":
        raise ForeignRecord(f"Google Cloud {printable(service or 'unnamed')[:60]} audit")
    method = to_str(payload.method_name) or ""
    name = to_str(payload.resource_name) or ""
    auth = _obj(payload.authentication_info) or {}
    meta = _obj(payload.request_metadata) or {}
    status = _obj(payload.status) or {}
    code = to_int(status.get("code"))
    request = _body(payload.request) or {}
    # GKE's resourceName has no query string; an exec's options, when present, are the request.
    command = request.get("command")  # every argument kept, "-" included (tar cf - /data)
    params = (
        [("command", c) for c in command if isinstance(c, str)] if isinstance(command, list) else []
    )
    container = to_str(request.get("container"))
    if container is not None:
        params.append(("container", container))
    caller = to_str(meta.get("callerIp"))
    return msgspec.structs.replace(
        _Audit(),
        kind="Event",
        audit_id=to_str(entry.insert_id),
        request_uri="/" + name + ("?" + urlencode(params) if params else ""),
        verb=method.rpartition(".")[2] or None,
        user={"username": to_str(auth.get("principalEmail"))},
        source_ips=[caller] if caller else [],
        user_agent=to_str(meta.get("callerSuppliedUserAgent")),
        object_ref=_gke_object(name),
        response_status={"code": _http_status(code, _gke_object(name))},
        request_object=payload.request,
        response_object=payload.response,
        request_received_timestamp=entry.timestamp,
    )


def _http_status(code: int | None, obj_ref: Obj | None) -> int:
    """The HTTP status for a google.rpc.Code (none, or 0, is OK): an exec or attach that was let
    through is the protocol upgrade the API server answers it with."""
    if code:
        return _GRPC_TO_HTTP.get(code, 500)
    streaming = obj_ref is not None and obj_ref.get("subresource") in _STREAMS
    return 101 if streaming else 200


def _gke_object(name: str) -> Obj | None:
    """objectRef from a resourceName: ``<group>/<version>/namespaces/<ns>/<resource>/<name>
    [/<subresource>]``, or ``<group>/<version>/<resource>/<name>`` when cluster-scoped."""
    parts = name.split("/")
    if len(parts) >= 5 and parts[2] == "namespaces":
        ref: Obj = {"namespace": parts[3], "resource": parts[4]}
        rest = parts[5:]
    elif len(parts) >= 3:
        ref, rest = {"resource": parts[2]}, parts[3:]
    else:
        return None  # readyz, livez, version: a non-resource request
    if rest:
        ref["name"] = rest[0]
    if len(rest) > 1:
        ref["subresource"] = rest[1]
    return ref


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
