"""Cilium Hubble flows: ``hubble observe -o json`` (or ``-o jsonpb``) lines.

Both print the GetFlowsResponse, ``{"flow": {...}, "node_name", "time"}``; with the CLI's legacy
JSON setting (``compat.legacy-json-output``) ``-o json`` prints the bare flow object instead, and
both are read. Keys are the protobuf field names (``IP``, ``l4``, ``TCP``, ``source_port``,
``traffic_direction``, ``is_reply``). Hubble counts no bytes: a flow says that a pod opened or
used a connection to an address, and which pod it was.

Only traffic a pod sent out becomes an event: egress, not a reply, and let through (forwarded,
or allowed by a policy in audit mode). Hubble knows the pod, not its container: the event
carries the synthetic id ``pod:<namespace>/<pod>/`` (``identity.pod_container_id``), which the
pipeline resolves to the real container once a runtime record names that pod.
"""

from __future__ import annotations

import ipaddress
import math

import msgspec

from tidewaiter.events import Activity, Container, Endpoint, Event, Kind, RawRef
from tidewaiter.identity import pod_container_id
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, RecordError, Source
from tidewaiter.sources.fields import BOM, decode_json_line, parse_time, to_str

Fields = dict[str, object]

# AUDIT: a policy in audit mode would have dropped it, but it went out. REDIRECTED flows are left
# to the L7 proxy's own flow, which says whether the proxy let the request through.
_PASSED = frozenset({"FORWARDED", "AUDIT"})
_PORTED = ("TCP", "UDP", "SCTP")
_MAX_PORT = 65535

_ANY = msgspec.json.Decoder()


@register
class HubbleSource(Source):
    name = "hubble"
    title = "Cilium Hubble flows JSON"

    def sniff(self, head: bytes) -> bool:
        line = head.removeprefix(BOM).lstrip().split(b"\n", 1)[0]
        if not line.startswith(b"{") or b'"verdict"' not in line:
            return False
        try:
            record = _decode(line)
        except RecordError:
            return False
        flow = record.get("flow", record)
        return isinstance(flow, dict) and "verdict" in flow and "IP" in flow

    def decoder(self, path: str) -> Decoder:
        return HubbleDecoder()


class HubbleDecoder(Decoder):
    """Hubble lines are independent records: no state between them."""

    def feed(self, line: bytes, ref: RawRef) -> list[Event]:
        response = _decode(line)
        flow = _flow(response)
        if flow is None:
            return []  # node status and lost-events notices carry no flow
        if not _outbound(flow):
            return []
        ip = _object(flow, "IP")
        if ip is None:
            return []  # an L2-only flow (ARP): no addresses
        src_port, dst_port, activity = _layer4(_object(flow, "l4"))
        uuid = _text(flow, "uuid")  # what `hubble observe --uuid` finds the flow by
        return [
            Event(
                time=_time(flow.get("time") or response.get("time")),
                kind=Kind.NETWORK,
                activity=activity,
                raw=msgspec.structs.replace(ref, record_id=uuid) if uuid else ref,
                host=_text(flow, "node_name") or _text(response, "node_name"),
                container=_pod(_object(flow, "source")),
                src_endpoint=Endpoint(ip=_address(ip.get("source")), port=src_port),
                dst_endpoint=Endpoint(
                    ip=_address(ip.get("destination")),
                    port=dst_port,
                    hostname=_first_name(flow.get("destination_names")),
                ),
            )
        ]


def _decode(line: bytes) -> Fields:
    record = decode_json_line(line, _ANY)
    if not isinstance(record, dict):
        raise RecordError("JSON is not an object")
    return record


def _flow(response: Fields) -> Fields | None:
    """The flow of a GetFlowsResponse, or the line itself in the legacy output."""
    if "flow" in response:
        return _object(response, "flow")
    if "verdict" in response:
        return response
    if "node_status" in response or "lost_events" in response:
        return None  # relay notices about nodes and dropped buffers: no flow
    raise RecordError("record has no flow")


def _outbound(flow: Fields) -> bool:
    """Whether the flow is a pod's own traffic leaving it and let through."""
    verdict = flow.get("verdict")
    if not isinstance(verdict, str):
        raise RecordError("flow has no verdict")
    if verdict not in _PASSED:
        return False  # DROPPED, ERROR: nothing left; TRACED, TRANSLATED: no decision yet
    if flow.get("traffic_direction") != "EGRESS":
        return False
    # is_reply absent means unknown; the deprecated "reply" is only ever set when true.
    return flow.get("is_reply") is not True and flow.get("reply") is not True


def _layer4(l4: Fields | None) -> tuple[int | None, int | None, Activity]:
    """Source and destination port, and CONNECT for a TCP SYN without ACK (else SEND)."""
    if l4 is None:
        return None, None, Activity.SEND
    for protocol in _PORTED:
        ports = _object(l4, protocol)
        if ports is None:
            continue
        activity = Activity.SEND
        flags = _object(ports, "flags") if protocol == "TCP" else None
        if flags is not None and flags.get("SYN") is True and flags.get("ACK") is not True:
            activity = Activity.CONNECT
        return _port(ports.get("source_port")), _port(ports.get("destination_port")), activity
    return None, None, Activity.SEND  # ICMP: no ports


def _pod(endpoint: Fields | None) -> Container | None:
    """The sending pod, by its synthetic container id; None for the host or the world."""
    if endpoint is None:
        return None
    namespace, pod = _text(endpoint, "namespace"), _text(endpoint, "pod_name")
    if namespace is None or pod is None:
        return None
    return Container(
        uid=pod_container_id(namespace, pod),
        pod_name=pod,
        namespace=namespace,
        owner=_owner(endpoint.get("workloads")),
    )


def _owner(workloads: object) -> str | None:
    if not isinstance(workloads, list) or not workloads or not isinstance(workloads[0], dict):
        return None
    kind, name = to_str(workloads[0].get("kind")), to_str(workloads[0].get("name"))
    return f"{kind}/{name}" if kind and name else None


def _object(fields: Fields, key: str) -> Fields | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RecordError(f"{key} is not an object")
    return value


def _text(fields: Fields, key: str) -> str | None:
    value = fields.get(key)
    return to_str(value) if isinstance(value, str) else None


def _time(value: object) -> float:
    try:
        moment = parse_time(value)
    except OverflowError:  # JSON integers have no size limit
        raise RecordError("time out of range") from None
    if not math.isfinite(moment):
        raise RecordError("time out of range")
    return moment


def _address(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise RecordError("flow has no IP address")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise RecordError(f"unreadable IP address {value[:40]!r}") from None
    return value


def _port(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):  # protojson writes uint32 as numbers
        raise RecordError("port is not a number")
    if not 0 <= value <= _MAX_PORT:
        raise RecordError("port out of range")
    return value


def _first_name(names: object) -> str | None:
    """The first DNS name Cilium's DNS proxy saw for the destination address."""
    if isinstance(names, list) and names and isinstance(names[0], str):
        return to_str(names[0])
    return None
