"""Windows events as JSON, in the shapes SIEM pipelines and converters write them.

Every shape is brought to the System / EventData pair of ``windows_event`` and read by its one
mapping, so Sysmon event ids and PowerShell 4104 mean the same here as in EVTX and XML:

- evtx-rs / ``evtx_dump -o json|jsonl``: ``{"Event": {"System", "EventData": {Name: value}}}``,
  attributes under ``#attributes`` (or ``<Element>_attributes`` with
  ``--separate-json-attributes``);
- XML converted to JSON (xmltodict, PowerShell, Logstash's xml filter): ``Event.System`` with
  ``@Attribute`` keys and ``EventData.Data`` as ``[{"@Name": ..., "#text": ...}]``;
- Winlogbeat / Elastic Agent documents: ``event.original`` holding the event XML when kept (it is
  the record itself, so it is read first), else ``winlog.*`` plus the ECS fields the Sysmon
  pipeline moved out of ``winlog.event_data`` (``process.*``, ``file.path``, ``source.*``,
  ``destination.*``, ``user.*``, ``network.direction``); Elasticsearch hits (``_source``) too;
- NXLog ``im_msvistalog`` through Logstash, as in the OTRF Security-Datasets (Mordor): one flat
  object, ``SourceName``/``EventID``/``Hostname`` beside every EventData field;
- Microsoft Sentinel / Log Analytics rows (``SecurityEvent``, ``Event``, ``WindowsEvent`` tables):
  flat columns with ``EventData`` as an XML string (or an object).

A record of another provider (Security 4688, the Eventlog service) is read and counted as
nothing to use, not as a problem. Layout (lines, objects back to back, arrays, ``{"events":
[...]}`` / ``{"records": [...]}`` wrappers) is json_stream's business.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import BinaryIO

from tidewaiter.events import Event, RawRef
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, ReadReport, RecordError, Source
from tidewaiter.sources.fields import to_str
from tidewaiter.sources.json_stream import FramedDecoder, read_records, sniff_json
from tidewaiter.sources.sysmon_xml import parse_event, parse_event_data
from tidewaiter.sources.windows_event import Fields, to_events, used

# Sysmon EventData names and where Winlogbeat's Sysmon pipeline moves each (winlogbeat-sysmon.js
# renames them out of winlog.event_data for the events tidewaiter reads).
_ECS: dict[str, tuple[str, ...]] = {
    "ProcessGuid": ("process", "entity_id"),
    "ProcessId": ("process", "pid"),
    "Image": ("process", "executable"),
    "CommandLine": ("process", "command_line"),
    "CurrentDirectory": ("process", "working_directory"),
    "ParentProcessGuid": ("process", "parent", "entity_id"),
    "ParentProcessId": ("process", "parent", "pid"),
    "ParentImage": ("process", "parent", "executable"),
    "ParentCommandLine": ("process", "parent", "command_line"),
    "TargetFilename": ("file", "path"),
    "SourceIp": ("source", "ip"),
    "SourcePort": ("source", "port"),
    "SourceHostname": ("source", "domain"),
    "DestinationIp": ("destination", "ip"),
    "DestinationPort": ("destination", "port"),
    "DestinationHostname": ("destination", "domain"),
    "ScriptBlockText": ("powershell", "file", "script_block_text"),
}
_DIRECTION = {"egress": "true", "outbound": "true", "ingress": "false", "inbound": "false"}
_PROVIDER_KEYS = (b"SourceName", b"Provider", b"EventSourceName", b"Source", b"Channel")


def events_from_document(document: Mapping[str, object], ref: RawRef) -> list[Event]:
    """Events from one JSON record of any of the module's shapes."""
    source = document.get("_source")
    if isinstance(source, Mapping):  # an Elasticsearch hit
        document = source
    event = document.get("Event")
    if isinstance(event, Mapping):
        return _rendered(event, ref)
    winlog = document.get("winlog")
    if isinstance(winlog, Mapping):
        return _winlogbeat(document, winlog, ref)
    if any(key in document for key in ("EventID", "EventId", "EventCode")):
        return _flat(document, ref)
    raise RecordError("not a Windows event (no Event, winlog or EventID field)")


# --- evtx-rs and XML converted to JSON ------------------------------------------------------


def _rendered(event: Mapping[str, object], ref: RawRef) -> list[Event]:
    system = event.get("System")
    if not isinstance(system, Mapping):
        raise RecordError("record has no Event/System element")
    data = event.get("EventData")
    return to_events(_system(system), _data(data) if isinstance(data, Mapping) else {}, ref)


def _system(system: Mapping[str, object]) -> dict[str, object]:
    """System in evtx-rs's shape, from any of the attribute spellings."""
    out: dict[str, object] = {}
    for key, value in system.items():
        if key.endswith("_attributes") and isinstance(value, Mapping):  # evtx_dump's flag
            element = key.removesuffix("_attributes")
            out[element] = {"#attributes": value, "#text": system.get(element)}
        elif isinstance(value, Mapping) and any(str(k).startswith("@") for k in value):
            attributes = {str(k)[1:]: v for k, v in value.items() if str(k).startswith("@")}
            out[key] = {"#attributes": attributes, "#text": value.get("#text")}
        elif key not in out:
            out[key] = value
    return out


def _data(data: Mapping[str, object]) -> Mapping[str, object]:
    """EventData as {Name: value}, from evtx-rs's map or a converter's Data list."""
    items = data.get("Data")
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list):
        return data
    named: dict[str, object] = {}
    for item in items:
        if isinstance(item, Mapping) and (name := to_str(item.get("@Name"))) is not None:
            named[name] = item.get("#text")
    return named


# --- Winlogbeat and Elastic Agent -------------------------------------------------------------


def _winlogbeat(
    document: Mapping[str, object], winlog: Mapping[str, object], ref: RawRef
) -> list[Event]:
    original = _path(document, "event", "original")
    if isinstance(original, str) and original.lstrip().startswith("<Event"):
        try:
            return parse_event(original.encode(), ref)
        except RecordError:
            pass  # a damaged copy: the fields beside it still hold the event
    event_data = winlog.get("event_data")
    data: dict[str, object] = dict(event_data) if isinstance(event_data, Mapping) else {}
    for name, path in _ECS.items():
        if to_str(data.get(name)) is None and (value := _path(document, *path)) is not None:
            data[name] = value
    if "Initiated" not in data:
        direction = to_str(_path(document, "network", "direction"))
        if direction in _DIRECTION:
            data["Initiated"] = _DIRECTION[direction]
    if "User" not in data and (user := to_str(_path(document, "user", "name"))) is not None:
        domain = to_str(_path(document, "user", "domain"))
        data["User"] = f"{domain}\\{user}" if domain else user
    stamp = document.get("@timestamp")
    provider = winlog.get("provider_name") or _path(document, "event", "provider")
    data.setdefault("UtcTime", stamp)  # the Sysmon pipeline moved UtcTime into @timestamp
    system = {
        "Provider": _attrs(Name=provider),
        "EventID": winlog.get("event_id") or _path(document, "event", "code"),
        "EventRecordID": winlog.get("record_id"),
        "Computer": winlog.get("computer_name") or _path(document, "host", "name"),
        "TimeCreated": _attrs(SystemTime=winlog.get("time_created") or stamp),
        "Execution": _attrs(ProcessID=_path(winlog, "process", "pid")),
        "Security": _attrs(UserID=_path(winlog, "user", "identifier")),
    }
    return to_events(system, data, ref)


def _path(document: Mapping[str, object], *keys: str) -> object:
    """A nested field, written nested ({"process": {"pid": 1}}) or dotted ("process.pid")."""
    node: object = document
    for at, key in enumerate(keys):
        if not isinstance(node, Mapping):
            return None
        if key in node:
            node = node[key]
            continue
        return node.get(".".join(keys[at:]))
    return node


def _attrs(**attributes: object) -> dict[str, object]:
    return {"#attributes": attributes}


# --- NXLog / Logstash and Log Analytics: one flat object ------------------------------------


def _flat(row: Mapping[str, object], ref: RawRef) -> list[Event]:
    provider = _first(row, "Provider", "SourceName", "EventSourceName", "Source")
    event_id = _first(row, "EventID", "EventId", "EventCode")
    if not used(provider, event_id):
        return []  # most rows of a mixed export: their EventData XML need not be parsed
    event_data = row.get("EventData")
    data: Fields
    if isinstance(event_data, str) and event_data.lstrip().startswith("<"):
        data = parse_event_data(event_data)
    elif isinstance(event_data, Mapping):
        data = _data(event_data)
    else:
        data = row  # NXLog: every EventData field at top level
    system = {
        "Provider": _attrs(Name=provider),
        "EventID": event_id,
        "EventRecordID": _first(row, "EventRecordID", "RecordNumber", "EventRecordId"),
        "Computer": _first(row, "Computer", "Hostname", "ComputerName"),
        # TimeGenerated is when Log Analytics ingested the row; NXLog's EventTime is local time.
        "TimeCreated": _attrs(
            SystemTime=_first(row, "TimeCreated", "@timestamp", "EventTime", "TimeGenerated")
        ),
        "Execution": _attrs(ProcessID=_first(row, "ExecutionProcessID", "ProcessID")),
        "Security": _attrs(UserID=_first(row, "UserID", "UserSid")),
    }
    return to_events(system, data, ref)


def _first(row: Mapping[str, object], *keys: str) -> object:
    for key in keys:
        if to_str(row.get(key)) is not None:
            return row[key]
    return None


@register
class WindowsJson(Source):
    name = "windows-json"
    title = "Windows events as JSON (evtx_dump, Winlogbeat, NXLog, Sentinel)"

    def sniff(self, head: bytes) -> bool:
        if sniff_json(head, b"Event") and sniff_json(head, b"System"):
            return True
        if sniff_json(head, b"winlog"):
            return sniff_json(head, b"event_id") or sniff_json(head, b"event_data")
        flat = sniff_json(head, b"EventID") or sniff_json(head, b"EventId")
        return flat and any(sniff_json(head, key) for key in _PROVIDER_KEYS)

    def decoder(self, path: str) -> Decoder:
        return FramedDecoder(_decode)

    def read_file(self, path: str, stream: BinaryIO, report: ReadReport) -> Iterator[Event]:
        yield from read_records(self.name, path, stream, report, _decode)


def _decode(record: object, ref: RawRef) -> list[Event]:
    if not isinstance(record, Mapping):
        raise RecordError("JSON is not an object")
    return events_from_document(record, ref)
