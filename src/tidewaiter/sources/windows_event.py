"""One Windows event (System + EventData) to Events: the mapping both Sysmon readers share.

The input is the shape pyevtx-rs renders as JSON: an element with attributes becomes
``{"#attributes": {...}, "#text": value}``, one without becomes its value, and EventData is
flattened to ``{Name: value}``. sysmon_xml builds the same shape from XML, so the two readers
cannot drift apart. Values arrive as int, bool or str depending on the renderer; all are coerced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import msgspec

from tidewaiter.events import Activity, Endpoint, Event, File, Kind, Process, RawRef
from tidewaiter.sources.base import RecordError
from tidewaiter.sources.fields import parse_time, to_int, to_str

Fields = Mapping[str, object]

SYSMON_PROVIDERS = frozenset({"Microsoft-Windows-Sysmon", "Linux-Sysmon"})
# Windows PowerShell 5.1, and PowerShell 7 which logs the same event under its own provider.
POWERSHELL_PROVIDERS = {
    "Microsoft-Windows-PowerShell": "powershell.exe",
    "PowerShellCore": "pwsh.exe",
}
SCRIPT_BLOCK = 4104
_ZERO_GUID = "00000000-0000-0000-0000-000000000000"


class _Common(NamedTuple):
    time: float
    raw: RawRef
    host: str | None


def to_events(system: Fields, data: Fields, ref: RawRef) -> list[Event]:
    """Events for one record; [] for providers and event IDs tidewaiter has no use for.

    ref gets the record's EventRecordID, the number Event Viewer and exports show.
    """
    provider = to_str(attribute(system, "Provider", "Name"))
    event_id = to_int(text(system.get("EventID")))
    if not used(provider, event_id):
        return []
    record_id = to_str(text(system.get("EventRecordID")))
    if record_id is not None:
        ref = msgspec.structs.replace(ref, record_id=record_id)
    host = to_str(text(system.get("Computer")))
    if provider in SYSMON_PROVIDERS and event_id in _SYSMON:
        common = _Common(_sysmon_time(system, data), ref, host)
        return [_SYSMON[event_id](common, data)]
    if provider in POWERSHELL_PROVIDERS and event_id == SCRIPT_BLOCK:
        return _script_block(system, data, _Common(_system_time(system), ref, host), provider)
    return []


def used(provider: object, event_id: object) -> bool:
    """Whether to_events has a use for this provider's event id: readers of bulky shapes check
    it before decoding the rest of a record."""
    name, number = to_str(provider), to_int(text(event_id))
    if name in SYSMON_PROVIDERS:
        return number in _SYSMON
    return name in POWERSHELL_PROVIDERS and number == SCRIPT_BLOCK


def text(node: object) -> object:
    """An element's value, whether rendered bare or as {"#text": value, "#attributes": ...}."""
    return node.get("#text") if isinstance(node, Mapping) else node


def attribute(system: Fields, element: str, name: str) -> object:
    node = system.get(element)
    attributes = node.get("#attributes") if isinstance(node, Mapping) else None
    return attributes.get(name) if isinstance(attributes, Mapping) else None


def _system_time(system: Fields) -> float:
    return parse_time(attribute(system, "TimeCreated", "SystemTime"))


def _sysmon_time(system: Fields, data: Fields) -> float:
    # UtcTime is when Sysmon saw the activity; TimeCreated is when the log accepted the record.
    if to_str(data.get("UtcTime")) is not None:
        try:
            return parse_time(data["UtcTime"])
        except RecordError:
            pass
    return _system_time(system)


def _guid(value: object) -> str | None:
    # XML exports write {lower-case}, pyevtx-rs writes UPPER-CASE without braces: one key for
    # lineage. The zero GUID means "unknown" and must not join unrelated processes.
    guid = to_str(value)
    if guid is None:
        return None
    guid = guid.strip("{}").lower()
    return None if guid == _ZERO_GUID else guid


def _is_true(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _actor(data: Fields) -> Process:
    """The process a Sysmon event is about (or that performed it)."""
    return Process(
        pid=to_int(data.get("ProcessId")),
        uid=_guid(data.get("ProcessGuid")),
        path=to_str(data.get("Image")),
        user=to_str(data.get("User")),
        session=to_str(data.get("LogonId")),
    )


def _parent(data: Fields) -> Process | None:
    parent = Process(
        pid=to_int(data.get("ParentProcessId")),
        uid=_guid(data.get("ParentProcessGuid")),
        path=to_str(data.get("ParentImage")),
        cmd_line=to_str(data.get("ParentCommandLine")),
        user=to_str(data.get("ParentUser")),
    )
    return None if parent == Process() else parent


def _endpoint(ip: object, port: object, hostname: object) -> Endpoint | None:
    endpoint = Endpoint(ip=to_str(ip), port=to_int(port), hostname=to_str(hostname))
    return None if endpoint == Endpoint() else endpoint


def _process_create(common: _Common, data: Fields) -> Event:
    process = msgspec.structs.replace(
        _actor(data),
        cmd_line=to_str(data.get("CommandLine")),
        cwd=to_str(data.get("CurrentDirectory")),
        parent=_parent(data),
        original_name=to_str(data.get("OriginalFileName")),
    )
    return _event(common, Kind.PROCESS, Activity.LAUNCH, process=process)


def _process_exit(common: _Common, data: Fields) -> Event:
    return _event(common, Kind.PROCESS, Activity.EXIT, process=_actor(data))


def _network_connect(common: _Common, data: Fields) -> Event:
    # Initiated=false is an accepted inbound connection: kept, but it is not this host connecting
    # out, so it must not read as one.
    activity = Activity.CONNECT if _is_true(data.get("Initiated")) else Activity.OTHER
    return _event(
        common,
        Kind.NETWORK,
        activity,
        process=_actor(data),
        src=_endpoint(data.get("SourceIp"), data.get("SourcePort"), data.get("SourceHostname")),
        dst=_endpoint(
            data.get("DestinationIp"), data.get("DestinationPort"), data.get("DestinationHostname")
        ),
    )


def _file_event(activity: Activity) -> Callable[[_Common, Fields], Event]:
    def build(common: _Common, data: Fields) -> Event:
        path = to_str(data.get("TargetFilename"))
        if path is None:
            raise RecordError(f"file {activity} event without TargetFilename")
        return _event(common, Kind.FILE, activity, process=_actor(data), file=File(path=path))

    return build


def _script_block(system: Fields, data: Fields, common: _Common, provider: str) -> list[Event]:
    script = to_str(data.get("ScriptBlockText"))
    if script is None:
        return []
    # A long script is logged in parts (MessageNumber of MessageTotal). Each part becomes its own
    # event and is not reassembled: the detector matches per part, and a part lost to log
    # rotation must not hide the others.
    process = Process(
        pid=to_int(attribute(system, "Execution", "ProcessID")),
        path=to_str(data.get("Path")) or POWERSHELL_PROVIDERS[provider],
        cmd_line=script,
        user=to_str(attribute(system, "Security", "UserID")),
    )
    return [_event(common, Kind.PROCESS, Activity.SCRIPT, process=process)]


def _event(
    common: _Common,
    kind: Kind,
    activity: Activity,
    *,
    process: Process,
    file: File | None = None,
    src: Endpoint | None = None,
    dst: Endpoint | None = None,
) -> Event:
    return Event(
        time=common.time,
        kind=kind,
        activity=activity,
        raw=common.raw,
        host=common.host,
        process=process,
        file=file,
        src_endpoint=src,
        dst_endpoint=dst,
    )


_SYSMON: dict[int, Callable[[_Common, Fields], Event]] = {
    1: _process_create,
    3: _network_connect,
    5: _process_exit,
    11: _file_event(Activity.CREATE),
    23: _file_event(Activity.DELETE),  # FileDelete: the file was archived
    26: _file_event(Activity.DELETE),  # FileDeleteDetected: logged only
}
