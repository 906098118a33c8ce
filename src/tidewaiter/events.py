"""The one normalised event model every source produces and every detector reads.

Field names follow OCSF (process.cmd_line, dst_endpoint.ip, traffic.bytes_out, container.uid) so
that alerts can quote evidence without renaming. Structs are msgspec Structs: cheap to build on
the hot path and serialisable for snapshots. Times are epoch seconds, UTC. They hold only
immutable values, so they can never be part of a reference cycle: ``gc=False`` keeps them out of
the cycle collector, which otherwise walks every retained event again and again.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class Kind(StrEnum):
    PROCESS = "process"
    FILE = "file"
    NETWORK = "network"
    CONTAINER = "container"
    ORCHESTRATOR = "orchestrator"


class Activity(StrEnum):
    # process
    LAUNCH = "launch"
    EXIT = "exit"
    SCRIPT = "script"  # a script block or interpreter payload (PowerShell 4104)
    # file
    CREATE = "create"
    WRITE = "write"
    RENAME = "rename"
    DELETE = "delete"
    # network
    CONNECT = "connect"
    SEND = "send"
    CLOSE = "close"
    TRAFFIC = "traffic"  # a finished flow with byte counts (Zeek, flow logs)
    # container lifecycle and orchestrator API
    START = "start"
    STOP = "stop"
    EXEC = "exec"
    COPY = "copy"
    EXPORT = "export"
    COMMIT = "commit"
    PUSH = "push"
    OTHER = "other"


class RawRef(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """Where an event came from, so an alert can point at the exact record."""

    source: str
    path: str
    line: int | None = None
    record_id: str | None = None
    chunk: int | None = None

    def label(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
        if self.record_id is not None:
            where += f"#{self.record_id}"
        return where


class Image(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    name: str | None = None  # repository[:tag] as the runtime reports it
    uid: str | None = None  # image id or repo@sha256 digest


class Container(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    uid: str  # normalised: lower-case hex, runtime prefix removed (may be a prefix of the full id)
    name: str | None = None
    image: Image | None = None
    runtime: str | None = None
    pod_name: str | None = None
    namespace: str | None = None
    owner: str | None = None  # Kubernetes workload owner, e.g. "Deployment/api"


class Process(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    pid: int | None = None
    uid: str | None = None  # the producer's unique process id (exec_id, ProcessGuid)
    path: str | None = None  # process.file.path
    cmd_line: str | None = None
    args: tuple[str, ...] | None = None  # argv when the producer has it split
    cwd: str | None = None
    user: str | None = None
    session: str | None = None  # logon or audit session: Sysmon LogonId, auditd ses, ES asid
    parent: Process | None = None
    original_name: str | None = None  # the name inside the binary (Sysmon OriginalFileName)

    @property
    def name(self) -> str:
        path = self.path or ""
        cut = max(path.rfind("/"), path.rfind("\\"))
        return path[cut + 1 :]


class File(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    path: str
    size: int | None = None
    magic: bytes | None = None  # first bytes of content where the producer captured them


class Endpoint(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    ip: str | None = None
    port: int | None = None
    hostname: str | None = None


class Traffic(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    bytes_out: int | None = None
    bytes_in: int | None = None


class Mount(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    source: str  # the host path (or volume name)
    destination: str | None = None  # where it appears inside the container
    read_only: bool = False


class Api(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """An orchestrator or runtime API call (Kubernetes audit, Docker engine events).

    ``operation`` is the call in the producer's own words, lower case: "exec", "attach",
    "create", "start", "copy", "export", "commit", "push", "save", "tag", "die", "delete"."""

    operation: str
    resource: str | None = None  # "pods/exec", "container", "image"
    user: str | None = None
    source_ips: tuple[str, ...] = ()
    user_agent: str | None = None
    response_code: int | None = None
    target: str | None = None  # what the call acts on beyond the container: an image reference
    command: tuple[str, ...] = ()  # exec'd argv (pods/exec command=..., docker exec_start)
    mounts: tuple[Mount, ...] = ()
    privileged: bool | None = None
    host_network: bool | None = None
    response_bytes: int | None = None


class Event(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    time: float
    kind: Kind
    activity: Activity
    raw: RawRef
    host: str | None = None
    container: Container | None = None
    process: Process | None = None
    file: File | None = None
    src_endpoint: Endpoint | None = None
    dst_endpoint: Endpoint | None = None
    traffic: Traffic | None = None
    api: Api | None = None
