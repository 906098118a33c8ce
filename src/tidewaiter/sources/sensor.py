"""The live sensor's JSON lines (`tidewaiter sensor`, see sensor/schema.py).

Each record carries its process and container, so lines decode independently: the same decoder
serves a saved file and a live pipe (`tidewaiter sensor | tidewaiter watch -`). The command line
is argv quoted for a shell, so a wrapper's payload (`sh -c 'tar ... | nc ...'`) splits back into
exactly the arguments the process was given.
"""

from __future__ import annotations

import shlex

import msgspec

from tidewaiter.events import (
    Activity,
    Container,
    Endpoint,
    Event,
    File,
    Kind,
    Process,
    RawRef,
    Traffic,
)
from tidewaiter.identity import normalise_container_id
from tidewaiter.sensor.schema import DECODER, MARKER, ProcessInfo, SensorRecord
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, RecordError, Source
from tidewaiter.sources.fields import BOM, decode_keeping_bad_utf8

_SNIFF = f'{{"sensor":"{MARKER}"'.encode()
_FILE_ACTIVITY = {"create": Activity.CREATE, "rename": Activity.RENAME}
_NETWORK_ACTIVITY = {"connect": Activity.CONNECT, "send": Activity.SEND}


@register
class SensorSource(Source):
    name = "sensor"
    title = "tidewaiter sensor JSON"

    def sniff(self, head: bytes) -> bool:
        return head.removeprefix(BOM).lstrip().startswith(_SNIFF)

    def decoder(self, path: str) -> Decoder:
        return SensorDecoder()


class SensorDecoder(Decoder):
    def feed(self, line: bytes, ref: RawRef) -> list[Event]:
        try:
            record = decode_keeping_bad_utf8(DECODER.decode, line.removeprefix(BOM))
        except msgspec.ValidationError as exc:
            raise RecordError(f"not a sensor record ({exc})") from None
        except msgspec.DecodeError:
            raise RecordError("malformed JSON") from None
        if record.sensor != MARKER:
            raise RecordError(f"not a sensor record (sensor={record.sensor[:40]!r})")
        return [to_event(record, ref)]


def to_event(record: SensorRecord, ref: RawRef) -> Event:
    """The event one sensor record stands for (also used on records straight from a live
    Sensor, without a JSON round trip)."""
    process = _process(record)
    container = _container(record)
    if record.event == "exec":
        return Event(
            time=record.time,
            kind=Kind.PROCESS,
            activity=Activity.LAUNCH,
            raw=ref,
            host=record.host,
            container=container,
            process=process,
        )
    if record.event in _FILE_ACTIVITY:
        if not record.path:
            raise RecordError(f"{record.event} record without a path")
        return Event(
            time=record.time,
            kind=Kind.FILE,
            activity=_FILE_ACTIVITY[record.event],
            raw=ref,
            host=record.host,
            container=container,
            process=process,
            file=File(path=record.path),
        )
    return Event(
        time=record.time,
        kind=Kind.NETWORK,
        activity=_NETWORK_ACTIVITY[record.event],
        raw=ref,
        host=record.host,
        container=container,
        process=process,
        dst_endpoint=Endpoint(ip=record.daddr, port=record.dport),
        traffic=Traffic(bytes_out=record.bytes) if record.bytes is not None else None,
    )


def _process(record: SensorRecord) -> Process:
    parent = _parent(record.parent) if record.parent is not None else None
    if parent is None and record.ppid is not None:
        parent = Process(pid=record.ppid)
    return Process(
        pid=record.pid,
        path=record.exe,
        cmd_line=shlex.join(record.argv) if record.argv else record.exe,
        args=record.argv,
        user=str(record.uid) if record.uid is not None else None,
        parent=parent,
    )


def _parent(info: ProcessInfo) -> Process:
    return Process(
        pid=info.pid,
        path=info.exe,
        cmd_line=shlex.join(info.argv) if info.argv else info.exe,
        args=info.argv,
    )


def _container(record: SensorRecord) -> Container | None:
    uid = normalise_container_id(record.container_id)
    if uid is None:
        return None
    return Container(uid=uid, runtime=record.runtime)
