"""AWS VPC Flow Logs as text: space-separated fields, one flow record a line.

The default format is the version 2 fields in a fixed order. A custom format chooses its fields
and their order; files delivered to S3 open with a header line naming them (``version
account-id ...``), and that header is what this source reads columns by. CloudWatch Logs
delivers no header, so there only the default format can be read. A header met mid-file
(concatenated S3 objects) replaces the one before.

A record is one direction of a flow through one network interface in one capture window:
``bytes`` went from ``srcaddr`` to ``dstaddr``. ``-`` means the field does not apply. Records
without traffic (NODATA, SKIPDATA) and rejected flows carry nothing to use. Flow logs know
interfaces, not processes: a record names a container only through the ECS fields.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tidewaiter.events import Activity, Container, Endpoint, Event, Kind, RawRef, Traffic
from tidewaiter.identity import normalise_container_id
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, RecordError, Source
from tidewaiter.sources.fields import BOM

_HEADER_PREFIX = b"version "
DEFAULT_FIELDS = (
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
)
# Fields that identify a line as a header (versions 2 to 8). A header may also name fields added
# after these; only the ones read here must be present.
_KNOWN = frozenset(
    (
        *DEFAULT_FIELDS,
        "vpc-id",
        "subnet-id",
        "instance-id",
        "tcp-flags",
        "type",
        "pkt-srcaddr",
        "pkt-dstaddr",
        "region",
        "az-id",
        "sublocation-type",
        "sublocation-id",
        "pkt-src-aws-service",
        "pkt-dst-aws-service",
        "flow-direction",
        "traffic-path",
        "ecs-cluster-arn",
        "ecs-cluster-name",
        "ecs-container-instance-arn",
        "ecs-container-instance-id",
        "ecs-container-id",
        "ecs-second-container-id",
        "ecs-service-name",
        "ecs-task-definition-arn",
        "ecs-task-arn",
        "ecs-task-id",
        "reject-reason",
    )
)
_FIELD_NAME = re.compile(r"[a-z][a-z0-9-]*\Z")
_DEFAULT_RECORD = re.compile(rb"[2-9] (?:\d{12}|unknown) (?:eni-[0-9a-f]+|-) ")
_UNUSABLE_STATUS = frozenset({"NODATA", "SKIPDATA"})  # no traffic, or records lost to capacity
_MAX_PORT = 65535
_MAX_DIGITS = 19


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each field this source reads sits in a record."""

    width: int
    declared_by: str  # how a wrong field count is explained
    columns: dict[str, int]
    missing: str | None  # why records under this layout cannot be read

    def value(self, fields: list[str], name: str) -> str | None:
        index = self.columns.get(name)
        if index is None or fields[index] == "-":
            return None
        return fields[index]


def _layout(names: Sequence[str], declared_by: str) -> _Layout:
    columns = {name: i for i, name in enumerate(names)}
    lacking = [
        wanted
        for wanted, either in (
            ("srcaddr", ("srcaddr", "pkt-srcaddr")),
            ("dstaddr", ("dstaddr", "pkt-dstaddr")),
            ("start", ("start",)),
        )
        if not any(name in columns for name in either)
    ]
    missing = f"header lacks {', '.join(lacking)}" if lacking else None
    return _Layout(len(names), declared_by, columns, missing)


_DEFAULT_LAYOUT = _layout(DEFAULT_FIELDS, "the default format has")


def is_header(fields: list[str]) -> bool:
    """A line of field names: every word a name, at least one of them a known field."""
    return (
        bool(fields)
        and all(_FIELD_NAME.match(word) for word in fields)
        and any(word in _KNOWN for word in fields)
    )


@register
class VpcFlowSource(Source):
    name = "vpcflow"
    title = "AWS VPC Flow Logs"
    # The header line of the default format and of most custom ones, which keep version first:
    # framing, not a record. A custom header that starts with another field is still read as
    # the header, but counted as a record with nothing to use.
    comment_prefix = _HEADER_PREFIX

    def sniff(self, head: bytes) -> bool:
        line = head.removeprefix(BOM).lstrip().split(b"\n", 1)[0]
        if _DEFAULT_RECORD.match(line):
            return True
        # A header naming only known fields: the decoder also takes fields newer than these,
        # but a file led by one needs --format.
        names = set(line.decode("ascii", "replace").split())
        return (
            bool(names)
            and names <= _KNOWN
            and bool(names & {"srcaddr", "pkt-srcaddr"})
            and bool(names & {"dstaddr", "pkt-dstaddr"})
        )

    def decoder(self, path: str) -> Decoder:
        return VpcFlowDecoder()


class VpcFlowDecoder(Decoder):
    def __init__(self) -> None:
        self._layout = _DEFAULT_LAYOUT

    def feed(self, line: bytes, ref: RawRef) -> list[Event]:
        line = line.removeprefix(BOM)
        fields = line.decode("utf-8", "replace").split()
        if is_header(fields):
            self._layout = _layout(fields, "the header declares")
            return []
        if line.startswith(_HEADER_PREFIX):
            raise RecordError("header line with words that are not field names")
        return _events(self._layout, fields, ref)


def _events(layout: _Layout, fields: list[str], ref: RawRef) -> list[Event]:
    if len(fields) != layout.width:
        raise RecordError(f"{len(fields)} fields, {layout.declared_by} {layout.width}")
    if layout.missing is not None:
        raise RecordError(layout.missing)
    if layout.value(fields, "log-status") in _UNUSABLE_STATUS:
        return []
    # A rejected flow was dropped at the interface: no data moved, so nothing to use.
    if layout.value(fields, "action") == "REJECT":
        return []
    # pkt-* is the packet's own address where an interface forwards for another (a NAT gateway,
    # an EKS pod behind its node's interface): the address other sources know the pod by.
    src = _address(layout.value(fields, "pkt-srcaddr") or layout.value(fields, "srcaddr"))
    dst = _address(layout.value(fields, "pkt-dstaddr") or layout.value(fields, "dstaddr"))
    start = _number(layout.value(fields, "start"), "start")
    if start is None:
        raise RecordError("flow record has no start time")
    sent = _number(layout.value(fields, "bytes"), "bytes")
    return [
        Event(
            time=float(start),
            kind=Kind.NETWORK,
            activity=Activity.TRAFFIC,
            raw=ref,
            container=_container(layout, fields),
            src_endpoint=Endpoint(ip=src, port=_port(layout.value(fields, "srcport"))),
            dst_endpoint=Endpoint(ip=dst, port=_port(layout.value(fields, "dstport"))),
            traffic=Traffic(bytes_out=sent),
        )
    ]


def _address(text: str | None) -> str:
    if text is None:
        raise RecordError("flow record has no addresses")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise RecordError(f"unreadable address {text[:40]!r}") from None
    return text


def _number(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    # Every numeric field is at most a 64-bit integer: 19 digits.
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_DIGITS:
        raise RecordError(f"unreadable {name} {text[:40]!r}")
    return int(text)


def _port(text: str | None) -> int | None:
    port = _number(text, "port")
    if port is not None and port > _MAX_PORT:
        raise RecordError("port out of range")
    return port


def _container(layout: _Layout, fields: list[str]) -> Container | None:
    """The ECS task container (version 7 fields) that sent the flow.

    ``ecs-container-id`` names the container behind the interface whichever way the traffic
    went; only on an egress record is that container the sender. Naming it on an ingress record
    would tie the remote address to the container."""
    if layout.value(fields, "flow-direction") != "egress":
        return None
    uid = normalise_container_id(layout.value(fields, "ecs-container-id"))
    return Container(uid=uid) if uid else None
