"""CSV for spreadsheets and Timesketch: one row per finding, or one row per evidence (a timeline).

Both carry the columns Timesketch's CSV import requires, ``message``, ``datetime`` (ISO 8601) and
``timestamp_desc``, plus ``timestamp`` (epoch microseconds, which Timesketch also reads) and
extra columns of their own. An update of a finding already written is a new row.

Telemetry is attacker-controlled and a spreadsheet runs a cell that starts with ``=``, ``+``,
``-`` or ``@`` (or a tab or carriage return before them) as a formula. Every text cell that starts
with one of those characters is written with a leading apostrophe (OWASP's advice), which the
spreadsheet shows as text; numbers tidewaiter itself wrote are left as they are.
"""

from __future__ import annotations

import csv
import os
from typing import IO, Any

from tidewaiter.alerts import alert_container, evidence_bytes_out, evidence_ref, evidence_time
from tidewaiter.sinks.elastic import iso

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

FINDING_COLUMNS = (
    "datetime",
    "timestamp",
    "timestamp_desc",
    "message",
    "finding_uid",
    "activity",
    "severity",
    "risk_score",
    "status",
    "analytic",
    "techniques",
    "tactics",
    "container_id",
    "container_name",
    "image",
    "host",
    "first_seen",
    "last_seen",
    "evidence_count",
)

TIMELINE_COLUMNS = (
    "datetime",
    "timestamp",
    "timestamp_desc",
    "message",
    "finding_uid",
    "finding_title",
    "severity",
    "signal",
    "tool",
    "container_id",
    "host",
    "pid",
    "command_line",
    "parent_command_line",
    "file_path",
    "destination",
    "bytes_out",
    "source_record",
)


def cell(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def finding_row(alert: dict[str, Any]) -> dict[str, object]:
    info = alert.get("finding_info") or {}
    attacks = info.get("attacks") or []
    container = alert_container(alert)
    time_ms = alert.get("time")
    return {
        "datetime": iso(time_ms),
        "timestamp": _micros(time_ms),
        "timestamp_desc": "Finding decided",
        "message": alert.get("message"),
        "finding_uid": info.get("uid"),
        "activity": alert.get("activity_name"),
        "severity": alert.get("severity"),
        "risk_score": alert.get("risk_score"),
        "status": alert.get("status"),
        "analytic": (info.get("analytic") or {}).get("uid"),
        "techniques": " ".join(str((a.get("technique") or {}).get("uid")) for a in attacks),
        "tactics": " ".join(sorted({str((a.get("tactic") or {}).get("name")) for a in attacks})),
        "container_id": container.get("uid"),
        "container_name": container.get("name"),
        "image": (container.get("image") or {}).get("name"),
        "host": (alert.get("device") or {}).get("hostname"),
        "first_seen": iso(info.get("first_seen_time")),
        "last_seen": iso(info.get("last_seen_time")),
        "evidence_count": len(alert.get("evidences") or []),
    }


def timeline_rows(alert: dict[str, Any]) -> list[dict[str, object]]:
    info = alert.get("finding_info") or {}
    container = alert_container(alert)
    rows = []
    for evidence in alert.get("evidences") or []:
        data = evidence.get("data") or {}
        process = evidence.get("process") or {}
        dst = evidence.get("dst_endpoint") or {}
        ref = evidence_ref(evidence)
        when = evidence_time(evidence)
        where = ref.get("line", ref.get("record_id", ref.get("chunk")))
        destination = dst.get("hostname") or dst.get("ip")
        if destination and dst.get("port") is not None:
            destination = f"{destination}:{dst['port']}"
        rows.append(
            {
                "datetime": iso(when),
                "timestamp": _micros(when),
                "timestamp_desc": "Evidence recorded",
                "message": data.get("explanation") or data.get("signal"),
                "finding_uid": info.get("uid"),
                "finding_title": info.get("title"),
                "severity": alert.get("severity"),
                "signal": data.get("signal"),
                "tool": data.get("tool"),
                "container_id": container.get("uid"),
                "host": (alert.get("device") or {}).get("hostname"),
                "pid": process.get("pid"),
                "command_line": process.get("cmd_line"),
                "parent_command_line": (process.get("parent_process") or {}).get("cmd_line"),
                "file_path": (evidence.get("file") or {}).get("path"),
                "destination": destination,
                "bytes_out": evidence_bytes_out(evidence),
                "source_record": ":".join(
                    str(part) for part in (ref.get("source"), ref.get("path"), where) if part
                )
                or None,
            }
        )
    return rows


def _micros(epoch_ms: object) -> int | None:
    if isinstance(epoch_ms, int) and not isinstance(epoch_ms, bool):
        return epoch_ms * 1000
    return None


class CsvSink:
    """Appends rows to a CSV file (the header written once, when the file is new or empty)."""

    def __init__(self, path: str, timeline: bool = False) -> None:
        self.path = path
        self.timeline = timeline
        columns = TIMELINE_COLUMNS if timeline else FINDING_COLUMNS
        self._stream: IO[str] = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.DictWriter(self._stream, fieldnames=columns, lineterminator="\r\n")
        if os.fstat(self._stream.fileno()).st_size == 0:
            self._writer.writeheader()
        self.rows = 0

    def write(self, alert: dict[str, Any]) -> None:
        rows = timeline_rows(alert) if self.timeline else [finding_row(alert)]
        for row in rows:
            self._writer.writerow({key: cell(value) for key, value in row.items()})
        self.rows += len(rows)
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()
