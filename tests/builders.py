"""Events built in tests, for the detection stages that do not care which source made them."""

from __future__ import annotations

from tidewaiter.events import (
    Activity,
    Api,
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

CID = "4f1c2b9e7d6a5c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c4b3a"
_line = iter(range(1, 1_000_000))


def ref() -> RawRef:
    return RawRef("test", "test.jsonl", line=next(_line))


def container(uid: str = CID, name: str = "api") -> Container:
    return Container(uid=uid, name=name, image=Image(name="registry.example.com/payments/api:1.4"))


def launch(
    cmd: str,
    time: float = 1000.0,
    pid: int = 100,
    path: str | None = None,
    ctr: Container | None = None,
    parent_cmd: str | None = None,
    host: str = "node-1",
) -> Event:
    parent = Process(pid=1, path=(parent_cmd or "").split(" ")[0] or None, cmd_line=parent_cmd)
    return Event(
        time=time,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(),
        host=host,
        container=ctr,
        process=Process(
            pid=pid,
            path=path or cmd.split(" ", maxsplit=1)[0],
            cmd_line=cmd,
            parent=parent if parent_cmd else None,
        ),
    )


def connect(
    dst: str,
    port: int = 443,
    time: float = 1000.0,
    sent: int | None = None,
    ctr: Container | None = None,
    pid: int = 200,
    src: str = "10.0.3.45",
    host: str = "node-1",
) -> Event:
    return Event(
        time=time,
        kind=Kind.NETWORK,
        activity=Activity.SEND if sent is not None else Activity.CONNECT,
        raw=ref(),
        host=host,
        container=ctr,
        process=Process(pid=pid, path="/usr/bin/curl", cmd_line="curl"),
        src_endpoint=Endpoint(ip=src, port=40000),
        dst_endpoint=Endpoint(ip=dst, port=port),
        traffic=Traffic(bytes_out=sent) if sent is not None else None,
    )


def flow(src: str, dst: str, port: int, time: float, sent: int) -> Event:
    """A finished flow as Zeek reports it: no process, no container."""
    return Event(
        time=time,
        kind=Kind.NETWORK,
        activity=Activity.TRAFFIC,
        raw=ref(),
        src_endpoint=Endpoint(ip=src, port=40000),
        dst_endpoint=Endpoint(ip=dst, port=port),
        traffic=Traffic(bytes_out=sent, bytes_in=100),
    )


def file_write(
    path: str,
    time: float = 1000.0,
    ctr: Container | None = None,
    size: int | None = None,
    magic: bytes | None = None,
) -> Event:
    return Event(
        time=time,
        kind=Kind.FILE,
        activity=Activity.CREATE,
        raw=ref(),
        host="node-1",
        container=ctr,
        process=Process(pid=300, path="/bin/app"),
        file=File(path=path, size=size, magic=magic),
    )


def api_call(
    operation: str,
    time: float = 1000.0,
    ctr: Container | None = None,
    kind: Kind = Kind.CONTAINER,
    activity: Activity = Activity.OTHER,
    host: str | None = "node-1",
    **fields: object,
) -> Event:
    """An orchestrator or runtime API call (Kubernetes audit, Docker engine events)."""
    command = fields.get("command", ())
    process = None
    if command:
        argv = tuple(str(a) for a in command)  # type: ignore[attr-defined]
        process = Process(cmd_line=" ".join(argv), args=argv)
    return Event(
        time=time,
        kind=kind,
        activity=activity,
        raw=ref(),
        host=host,
        container=ctr,
        process=process,
        api=Api(operation=operation, **fields),  # type: ignore[arg-type]
    )
