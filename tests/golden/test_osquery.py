"""Golden tests for the osquery source: scheduled query results in event, batch and snapshot form.

``results.jsonl`` holds rows as osquery 5 writes them (columns as text unless ``numerics``),
from the tables that show process launches, connects, files and containers, plus rows that carry
nothing: a fork, a bind, a removed row, an exited container, a status log line, another table.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import OCSF, TETRAGON, read
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
)
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files
from tidewaiter.sources import RecordError, all_sources, get, osquery

STAGER = "9f1c2e4a7b3d5e6f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f"
PODMAN = "c0ffee00aa11bb22cc33dd44ee55ff66778899aabbccddeeff00112233445566"
FALCO = (
    b'{"output":"x","priority":"Notice","rule":"r","time":"2024-01-01T00:00:00Z",'
    b'"output_fields":{}}\n'
)
AUDIT = b"type=EOE msg=audit(1714644000.1:7): \n"
STATUS = (
    b'{"hostIdentifier":"h","calendarTime":"Thu May  2 10:00:10 2024 UTC","unixTime":"1714644010",'
    b'"severity":"0","filename":"scheduler.cpp","line":"84","message":"Executing query"}\n'
)


@pytest.fixture(scope="module")
def results(fixtures: Path) -> Path:
    return fixtures / "osquery" / "results.jsonl"


@pytest.fixture(scope="module")
def events(results: Path) -> list[Event]:
    return read(results)[0]


def ref(path: Path, line: int, where: str | None = None) -> RawRef:
    return RawRef("osquery", str(path), line=line, record_id=where)


def test_registered_sniffed_and_counted_by_row(results: Path) -> None:
    assert get("osquery") in all_sources()
    events, report = read(results)
    assert report.files == {str(results): "osquery"}
    # 15 lines, 18 rows (a batch of three, a snapshot of two): 12 events; nothing to use in a
    # fork row, a bind, a removed row, an exited container, a status log line, a users row.
    assert (report.records, report.events, report.ignored, report.skipped_total) == (18, 12, 6, 0)
    assert len(events) == 12


def test_audit_process_events(results: Path, events: list[Event]) -> None:
    # cwd keeps the quotes of audit's CWD record in this table; the row's own time is used.
    assert events[0] == Event(
        time=1714644000.0,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(results, 1),
        host="node-a",
        process=Process(
            pid=4242,
            path="/usr/bin/tar",
            cmd_line="tar -czf /tmp/data.tar.gz /srv/data",  # argv joined: not split again
            cwd="/srv",
            user="0",
            parent=Process(pid=4100),
        ),
    )


def test_bpf_process_events_keep_argv_and_no_container(results: Path, events: list[Event]) -> None:
    # numerics on; json_cmdline gives argv; cid (a cgroup id) is no container id; no time
    # column, so unixTime.
    assert events[1] == Event(
        time=1714644001.0,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(results, 3),
        host="node-a",
        process=Process(
            pid=5300,
            path="/usr/bin/zip",
            cmd_line="zip -r /tmp/q1 report.zip '/home/ana/Q1 reports'",
            args=("zip", "-r", "/tmp/q1 report.zip", "/home/ana/Q1 reports"),
            cwd="/home/ana",
            user="1000",
            parent=Process(pid=5299),
        ),
    )


def test_socket_events_connect(results: Path, events: list[Event]) -> None:
    assert events[2] == Event(
        time=1714644002.0,
        kind=Kind.NETWORK,
        activity=Activity.CONNECT,
        raw=ref(results, 4),
        host="node-a",
        process=Process(pid=4250, path="/usr/bin/curl"),
        dst_endpoint=Endpoint(ip="203.0.113.10", port=443),
    )


def test_bpf_socket_events_connect_in_progress_with_mapped_addresses(
    results: Path, events: list[Event]
) -> None:
    assert events[3] == Event(
        time=1714644003.0,
        kind=Kind.NETWORK,
        activity=Activity.CONNECT,
        raw=ref(results, 6),
        host="node-a",
        process=Process(pid=5120, path="/usr/bin/ssh", user="0", parent=Process(pid=5100)),
        src_endpoint=Endpoint(ip="172.17.0.3", port=51234),
        dst_endpoint=Endpoint(ip="198.51.100.20", port=22),  # ::ffff:198.51.100.20
    )


def test_file_events_created(results: Path, events: list[Event]) -> None:
    assert events[4] == Event(
        time=1714644004.0,
        kind=Kind.FILE,
        activity=Activity.CREATE,
        raw=ref(results, 7),
        host="node-a",
        file=File(path="/srv/exports/dump.tar.gz", size=1048576),
    )


def test_process_file_events_rename_and_write(results: Path, events: list[Event]) -> None:
    assert events[5] == Event(
        time=1714644005.0,
        kind=Kind.FILE,
        activity=Activity.RENAME,
        raw=ref(results, 8),
        host="node-a",
        process=Process(
            pid=5500, path="/usr/bin/mv", cwd="/tmp", user="0", parent=Process(pid=5499)
        ),
        file=File(path="/tmp/stage.7z"),
    )
    written = events[6]
    assert (written.kind, written.activity, written.file) == (
        Kind.FILE,
        Activity.WRITE,
        File(path="/tmp/data.tar.gz.enc"),
    )
    assert written.process is not None
    assert written.process.cwd == "/tmp/a b c"  # audit's hex CWD, copied as written


def test_docker_processes_batch_rows_are_in_their_container(
    results: Path, events: list[Event]
) -> None:
    # diffResults: two added rows, one removed (nothing). docker_processes' "time" is CPU time,
    # so the batch's unixTime is the time.
    assert events[7] == Event(
        time=1714644007.0,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(results, 10, "added[0]"),
        host="node-a",
        container=Container(uid=STAGER),
        process=Process(
            pid=7101,
            path="tar",  # docker_processes names the process, it has no path
            cmd_line="tar -czf /tmp/db.tgz /var/lib/db",
            user="0",
            parent=Process(pid=7000),
        ),
    )
    assert events[8].raw == ref(results, 10, "added[1]")
    assert events[8].container == Container(uid=STAGER)


def test_running_docker_container_in_a_snapshot(results: Path, events: list[Event]) -> None:
    assert events[9] == Event(
        time=1714644008.0,
        kind=Kind.CONTAINER,
        activity=Activity.START,
        raw=ref(results, 11, "snapshot[0]"),
        host="node-a",
        container=Container(
            uid=STAGER,
            name="stager",
            image=Image(
                name="registry.example.com/shop/stager:1.2",
                uid="sha256:5d0da3dc976460b72c77d94c8a1ad043720b0416bfc16c52c45d4847e53fadb6",
            ),
        ),
        process=Process(pid=7000, cmd_line="/bin/sh -c 'sleep infinity'"),
    )


def test_processes_row_with_a_podman_cgroup(results: Path, events: list[Event]) -> None:
    assert events[10] == Event(
        time=1714644009.0,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(results, 12),
        host="node-a",
        container=Container(uid=PODMAN),
        process=Process(
            pid=8100,
            path="/usr/bin/rclone",
            cmd_line="rclone copy /data remote:bucket",
            cwd="/data",
            user="1000",
            parent=Process(pid=8000),
        ),
    )


def test_socket_row_without_an_action_column(results: Path, events: list[Event]) -> None:
    # "SELECT pid, path, remote_address, remote_port FROM socket_events WHERE action='connect'"
    assert events[11] == Event(
        time=1714644011.0,
        kind=Kind.NETWORK,
        activity=Activity.CONNECT,
        raw=ref(results, 14),
        host="node-a",
        process=Process(pid=4260, path="/usr/bin/wget"),
        dst_endpoint=Endpoint(ip="192.0.2.44", port=80),
    )


def test_rows_with_nothing_to_use_give_nothing(events: list[Event]) -> None:
    # Line 2 a fork, 5 a bind, 10's removed row, 11's exited container, 13 a status log line,
    # 15 a users row.
    assert [(e.raw.line, e.raw.record_id) for e in events] == [
        (1, None),
        (3, None),
        (4, None),
        (6, None),
        (7, None),
        (8, None),
        (9, None),
        (10, "added[0]"),
        (10, "added[1]"),
        (11, "snapshot[0]"),
        (12, None),
        (14, None),
    ]


def test_malformed_lines_and_rows_are_counted_and_located(fixtures: Path) -> None:
    path = fixtures / "osquery" / "malformed.jsonl"
    events, report = read(path, fmt="osquery")
    assert report.records == 10  # the batch on line 4 is three rows; blank line 8 is nothing
    assert report.skipped == Counter(
        {
            "malformed JSON": 1,
            "JSON is not an object": 1,
            "columns is not an object": 1,
            "row is not an object": 1,
            "record has no time": 1,
            "diffResults is not an object": 1,
            "snapshot is not a list": 1,
            "unreadable time 'yesterday'": 1,
        }
    )
    assert [p.where for p in report.examples] == [
        "line 1",
        "line 2",
        "line 3",
        "line 4 (added[1])",
        "line 4 (added[2])",
        "line 5",
        "line 6",
        "line 7",
    ]
    # The good row of the batch survives its neighbours; a non-UTF-8 byte keeps its row.
    assert [(e.raw.line, e.raw.record_id) for e in events] == [(4, "added[0]"), (9, None)]
    assert events[1].process is not None
    assert events[1].process.cmd_line == "zip /tmp/caf\ufffd.zip /srv"


def test_stream_decoder_gives_a_lines_good_rows(fixtures: Path) -> None:
    decoder = osquery.OsquerySource().decoder("stream")
    lines = (fixtures / "osquery" / "malformed.jsonl").read_bytes().splitlines()
    base = RawRef("osquery", "stream", line=4)
    [event] = decoder.feed(lines[3], base)
    assert event.raw.record_id == "added[0]"
    with pytest.raises(RecordError, match="diffResults is not an object"):
        decoder.feed(lines[4], base)


def test_calendar_time_when_there_is_no_unix_time(tmp_path: Path) -> None:
    path = tmp_path / "calendar.jsonl"
    path.write_text(
        '{"name":"pack_x_socket_events","hostIdentifier":"h",'
        '"calendarTime":"Thu May  2 10:00:05 2024 UTC","columns":{"action":"connect",'
        '"pid":"9","path":"/usr/bin/nc","family":"2","remote_address":"203.0.113.9",'
        '"remote_port":"443"},"action":"added"}\n'
    )
    [event] = read(path)[0]
    assert event.time == 1714644005.0


def test_unix_sockets_and_fork_rows_are_nothing(tmp_path: Path) -> None:
    path = tmp_path / "local.jsonl"
    path.write_text(
        '{"name":"pack_x_socket_events","hostIdentifier":"h","unixTime":1714644000,'
        '"columns":{"action":"connect","pid":"9","path":"/usr/bin/curl","family":"1",'
        '"remote_address":"","remote_port":"0","socket":"/run/nscd/socket"},"action":"added"}\n'
        '{"name":"pack_x_es_process_events","hostIdentifier":"mac","unixTime":1714644000,'
        '"columns":{"pid":"9","path":"/bin/zsh","cmdline":"zsh","event_type":"fork"},'
        '"action":"added"}\n'
    )
    events, report = read(path)
    assert events == []
    assert (report.records, report.ignored) == (2, 2)


def test_detection_reads_osquery(results: Path) -> None:
    outcome = detect_files([str(results)], EngineConfig(), [])
    assert outcome.report.skipped_total == 0
    assert outcome.alerts  # tar, zip and rclone rows all show archiving


# --- sniffing --------------------------------------------------------------------------------


def test_sniff_accepts_every_result_shape(fixtures: Path) -> None:
    lines = (fixtures / "osquery" / "results.jsonl").read_bytes().splitlines(keepends=True)
    for line in (lines[0], lines[9], lines[10]):  # event, batch, snapshot
        assert get("osquery").sniff(line), line[:60]


@pytest.mark.parametrize(
    "head",
    [TETRAGON, OCSF, FALCO, AUDIT, STATUS, b"", b"\x00\x01binary", b"[1, 2]\n"],
    ids=["tetragon", "ocsf", "falco", "auditd", "status-log", "empty", "binary", "array"],
)
def test_sniff_rejects_other_formats(head: bytes) -> None:
    assert not get("osquery").sniff(head)


def test_sniff_rejects_other_fixtures(fixtures: Path) -> None:
    others = [*fixtures.glob("falco/*"), *fixtures.glob("zeek/*"), *fixtures.glob("auditd/*")]
    for path in [*others, *fixtures.glob("benign/*")]:
        assert not get("osquery").sniff(path.read_bytes()[:65536]), path.name


def test_no_other_source_claims_osquery_results(results: Path) -> None:
    head = results.read_bytes()[:65536]
    assert [s.name for s in all_sources() if s.sniff(head)] == ["osquery"]
