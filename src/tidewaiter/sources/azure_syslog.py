"""Linux records wrapped in Microsoft Sentinel / Azure Monitor ``Syslog`` table rows.

A Syslog row (``TimeGenerated``, ``Computer``, ``HostName``, ``Facility``, ``ProcessName``,
``SyslogMessage``, ...) carries the message without its syslog header. Sysmon for Linux writes
its event XML as the message; auditd through audisp-syslog (or AUOMS relaying raw records) writes
``type=... msg=audit(...)`` records. Each message is handed to the reader of its own format.

The events keep the row's host (``Computer``, the name Log Analytics knows the machine by) and
the inner record's own time, which is when it happened (``TimeGenerated`` is when the row was
ingested; Sysmon's UtcTime and audit's msg=audit(time) are always there). Audit records of one
event are joined per host, as auditd's reader joins them per file. Rows from other programs
(cron, sshd) are read and count as nothing to use.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from functools import partial
from typing import BinaryIO

import msgspec

from tidewaiter.events import Event, RawRef
from tidewaiter.sources import register
from tidewaiter.sources.auditd import AuditDecoder
from tidewaiter.sources.base import ReadReport, RecordError, Source, guarded, guarded_flush
from tidewaiter.sources.fields import to_str
from tidewaiter.sources.json_stream import records, sniff_json
from tidewaiter.sources.sysmon_xml import parse_event

MAX_HOSTS = 4096  # hosts whose unfinished audit events are held at once; the oldest is flushed


@register
class AzureSyslog(Source):
    name = "azure-syslog"
    title = "Sentinel / Azure Monitor Syslog table export (Sysmon for Linux, auditd)"
    line_framed = False

    def sniff(self, head: bytes) -> bool:
        return sniff_json(head, b"SyslogMessage")

    def read_file(self, path: str, stream: BinaryIO, report: ReadReport) -> Iterator[Event]:
        audits: OrderedDict[str, AuditDecoder] = OrderedDict()
        line = 0
        for line, row in records(path, stream, report):
            report.records += 1
            ref = RawRef(self.name, path, line=line)
            message = _message(row)
            if message is None or not _is_audit(message):
                yield from guarded(partial(_decode, row), b"", ref, report)
                continue
            host = _host(row)
            decoder = audits.pop(host, None) or AuditDecoder()
            audits[host] = decoder  # most recent last
            events = guarded(decoder.feed, message.encode(), ref, report, count=False)
            yield from _on_host(events, host)
            decoder.account(report)
            if len(audits) > MAX_HOSTS:
                oldest, stale = audits.popitem(last=False)
                yield from _on_host(guarded_flush(stale, path, line, report), oldest)
                stale.account(report)
        for host, decoder in audits.items():
            yield from _on_host(guarded_flush(decoder, path, line, report), host)
            decoder.account(report)


def _message(row: object) -> str | None:
    return to_str(row.get("SyslogMessage")) if isinstance(row, Mapping) else None


def _is_audit(message: str) -> bool:
    return "msg=audit(" in message and "type=" in message


def _host(row: object) -> str:
    if not isinstance(row, Mapping):
        return ""
    return to_str(row.get("Computer")) or to_str(row.get("HostName")) or ""


def _on_host(events: Iterator[Event], host: str) -> Iterator[Event]:
    for event in events:
        yield msgspec.structs.replace(event, host=host or event.host)


def _decode(row: object, _: bytes, ref: RawRef) -> list[Event]:
    if not isinstance(row, Mapping):
        raise RecordError("JSON is not an object")
    message = _message(row)
    if message is None:
        raise RecordError("Syslog row without SyslogMessage")
    text = message.lstrip()
    if not text.startswith("<Event"):
        return []  # another program's message
    return list(_on_host(iter(parse_event(text.encode(), ref)), _host(row)))
