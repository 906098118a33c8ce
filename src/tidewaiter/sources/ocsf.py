"""OCSF JSON lines: Process Activity (1007), File System Activity (1001), Network Activity (4001).

OCSF events come from many producers that each fill a different subset of the schema, so records
are read untyped and every field is coerced on the way out. Per the schema, Process Activity
names the launched or exiting process in ``process``; file and network classes name the acting
process in ``actor.process``. The container comes from the container profile (top-level
``container``), else from that process's own ``container``. ``time`` is epoch milliseconds.
"""

from __future__ import annotations

from typing import Any, Final

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
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, RecordError, Source
from tidewaiter.sources.fields import BOM, decode_keeping_bad_utf8, parse_time, to_int, to_str

PROCESS_ACTIVITY = 1007
FILE_SYSTEM_ACTIVITY = 1001
NETWORK_ACTIVITY = 4001

# activity_id -> Activity; ids not listed (file Read, network Listen, ...) carry nothing used here.
_ACTIVITIES: Final[dict[int, dict[int, Activity]]] = {
    PROCESS_ACTIVITY: {1: Activity.LAUNCH, 2: Activity.EXIT},
    FILE_SYSTEM_ACTIVITY: {
        1: Activity.CREATE,
        3: Activity.WRITE,
        4: Activity.DELETE,
        5: Activity.RENAME,
    },
    NETWORK_ACTIVITY: {1: Activity.CONNECT, 2: Activity.CLOSE, 6: Activity.TRAFFIC},
}
_KINDS: Final = {
    PROCESS_ACTIVITY: Kind.PROCESS,
    FILE_SYSTEM_ACTIVITY: Kind.FILE,
    NETWORK_ACTIVITY: Kind.NETWORK,
}
# Fields every OCSF event class carries beside class_uid; one of them tells OCSF from other JSON.
_BASE_FIELDS = ("activity_id", "category_uid", "type_uid")
_JSON: Final = msgspec.json.Decoder()


@register
class OcsfSource(Source):
    name = "ocsf"
    title = "OCSF JSON"

    def sniff(self, head: bytes) -> bool:
        first = head.removeprefix(BOM).lstrip().split(b"\n", 1)[0]
        try:
            record = decode_keeping_bad_utf8(_JSON.decode, first)
        except msgspec.DecodeError:
            return False
        return (
            isinstance(record, dict)
            and to_int(record.get("class_uid")) is not None
            and any(field in record for field in _BASE_FIELDS)
        )

    def decoder(self, path: str) -> Decoder:
        return OcsfDecoder()


class OcsfDecoder(Decoder):
    def feed(self, line: bytes, ref: RawRef) -> list[Event]:
        record = _load(line)
        class_uid = to_int(record.get("class_uid"))
        if class_uid is None:
            raise RecordError("record has no class_uid")
        activities = _ACTIVITIES.get(class_uid)
        if activities is None:
            return []  # an OCSF class tidewaiter does not read
        activity_id = to_int(record.get("activity_id"))
        if activity_id is None:
            raise RecordError("record has no activity_id")
        activity = activities.get(activity_id)
        if activity is None:
            return []
        return [_event(record, class_uid, activity, ref)]


def _load(line: bytes) -> dict[str, Any]:
    try:
        record = decode_keeping_bad_utf8(_JSON.decode, line.removeprefix(BOM))
    except msgspec.DecodeError:
        raise RecordError("malformed JSON") from None
    if not isinstance(record, dict):
        raise RecordError("not a JSON object")
    return record


def _event(record: dict[str, Any], class_uid: int, activity: Activity, ref: RawRef) -> Event:
    process: Process | None
    if class_uid == PROCESS_ACTIVITY:
        process = _process_activity(record, activity)
    else:
        process = _process(_obj(_obj(record, "actor"), "process"), parent=True)
    src, dst, traffic = _network(record) if class_uid == NETWORK_ACTIVITY else (None, None, None)
    return Event(
        time=_time(record),
        kind=_KINDS[class_uid],
        activity=activity,
        raw=ref,
        host=_host(record),
        container=_container(record),
        process=process,
        file=_file(record, activity) if class_uid == FILE_SYSTEM_ACTIVITY else None,
        src_endpoint=src,
        dst_endpoint=dst,
        traffic=traffic,
    )


def _process_activity(record: dict[str, Any], activity: Activity) -> Process:
    process = _process(_obj(record, "process"), parent=True)
    if process is None:
        raise RecordError("process activity without process")
    if process.parent is None and activity is Activity.LAUNCH:
        # The actor of a launch is the process that started it: its parent on Linux.
        actor = _process(_obj(_obj(record, "actor"), "process"), parent=False)
        process = msgspec.structs.replace(process, parent=actor)
    return process


def _process(obj: dict[str, Any], *, parent: bool) -> Process | None:
    if not obj:
        return None
    user = _obj(obj, "user")
    return Process(
        pid=to_int(obj.get("pid")),
        uid=to_str(obj.get("uid")),
        path=to_str(_obj(obj, "file").get("path")) or to_str(obj.get("path")),
        cmd_line=to_str(obj.get("cmd_line")),
        cwd=to_str(obj.get("working_directory")),
        user=to_str(user.get("name")) or to_str(user.get("uid")),
        parent=_process(_obj(obj, "parent_process"), parent=False) if parent else None,
    )


def _file(record: dict[str, Any], activity: Activity) -> File:
    # A rename's result is the name that now exists on disk (file is the old name).
    target = _obj(record, "file_result") if activity is Activity.RENAME else {}
    if to_str(target.get("path")) is None:
        target = _obj(record, "file")
    path = to_str(target.get("path"))
    if path is None:
        raise RecordError("file activity without file.path")
    return File(path=path, size=to_int(target.get("size")))


def _network(record: dict[str, Any]) -> tuple[Endpoint | None, Endpoint, Traffic | None]:
    dst = _endpoint(_obj(record, "dst_endpoint"))
    if dst is None:
        raise RecordError("network activity without dst_endpoint")
    counts = _obj(record, "traffic")
    sent, received = to_int(counts.get("bytes_out")), to_int(counts.get("bytes_in"))
    counted = sent is not None or received is not None
    traffic = Traffic(bytes_out=sent, bytes_in=received) if counted else None
    return _endpoint(_obj(record, "src_endpoint")), dst, traffic


def _endpoint(obj: dict[str, Any]) -> Endpoint | None:
    ip, port, hostname = to_str(obj.get("ip")), to_int(obj.get("port")), to_str(obj.get("hostname"))
    if ip is None and port is None and hostname is None:
        return None
    return Endpoint(ip=ip, port=port, hostname=hostname)


def _container(record: dict[str, Any]) -> Container | None:
    obj = (
        _obj(record, "container")
        or _obj(_obj(record, "process"), "container")
        or _obj(_obj(_obj(record, "actor"), "process"), "container")
    )
    uid = normalise_container_id(to_str(obj.get("uid")))
    if uid is None:
        return None
    return Container(
        uid=uid,
        name=to_str(obj.get("name")),
        image=_image(_obj(obj, "image")),
        runtime=to_str(obj.get("runtime")),
    )


def _image(obj: dict[str, Any]) -> Image | None:
    name, tag, uid = to_str(obj.get("name")), to_str(obj.get("tag")), to_str(obj.get("uid"))
    if name and tag and ":" not in name.rpartition("/")[2]:
        name = f"{name}:{tag}"  # OCSF keeps the tag apart; the model writes repository[:tag]
    if name is None and uid is None:
        return None
    return Image(name=name, uid=uid)


def _host(record: dict[str, Any]) -> str | None:
    device = _obj(record, "device")
    return to_str(device.get("hostname")) or to_str(device.get("name"))


def _time(record: dict[str, Any]) -> float:
    value = record.get("time")
    if value is None:
        value = record.get("time_dt")  # the optional ISO 8601 sibling
    return parse_time(value)


def _obj(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}
