"""The sensor's output: one JSON object a line, the contract between `tidewaiter sensor` and the
`sensor` source that reads it (also through a pipe: `tidewaiter sensor | tidewaiter watch -`).

Every record is self-contained: it names its process (executable and argv, from the sensor's
process table) and its container, so a reader needs no state to turn a line into an event.
"""

from __future__ import annotations

from typing import Literal

import msgspec

MARKER = "tidewaiter-sensor"  # the first key's value; what the source sniffs
VERSION = 1

RecordKind = Literal["exec", "create", "rename", "connect", "send"]


class ProcessInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    pid: int
    exe: str | None = None
    argv: tuple[str, ...] | None = None


class SensorRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    sensor: str  # always MARKER, always first: sniffing looks at the first bytes of a line
    v: int
    time: float  # epoch seconds, UTC
    event: RecordKind
    host: str
    pid: int
    ppid: int | None = None
    uid: int | None = None
    exe: str | None = None
    argv: tuple[str, ...] | None = None
    argv_truncated: bool = False  # more arguments than the sensor reads, or one cut at its length
    parent: ProcessInfo | None = None
    cgroup_id: int | None = None
    cgroup: str | None = None  # the cgroup v2 path, when it could be resolved
    container_id: str | None = None
    runtime: str | None = None
    path: str | None = None  # create, rename
    flags: int | None = None  # open(2) flags of a create
    family: int | None = None  # 2 (IPv4) or 10 (IPv6)
    daddr: str | None = None
    dport: int | None = None
    ret: int | None = None  # connect's return: 0, or -115 (in progress)
    bytes: int | None = None  # send: bytes of the sends folded into this record
    sends: int | None = None  # send: how many sends were folded


ENCODER = msgspec.json.Encoder()
DECODER = msgspec.json.Decoder(SensorRecord)
