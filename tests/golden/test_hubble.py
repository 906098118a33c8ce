"""Golden tests for the Cilium Hubble source: hand-written ``hubble observe -o json`` lines (the
GetFlowsResponse), one legacy bare flow, and the relay's notices."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import FALCO, OCSF, TETRAGON, ZEEK, read
from tidewaiter.events import Activity, Container, Endpoint, Event, Kind, RawRef
from tidewaiter.sources import all_sources, get

all_sources()
import tidewaiter.sources.hubble  # noqa: E402, F401 - registers the source

API = Container(
    uid="pod:payments/api-7d9f8b6c5-x2k4q/",
    pod_name="api-7d9f8b6c5-x2k4q",
    namespace="payments",
    owner="Deployment/api",
)
POD_IP = "10.244.1.17"
REMOTE = "203.0.113.9"


@pytest.fixture(scope="module")
def path(fixtures: Path) -> Path:
    return fixtures / "hubble" / "flows.jsonl"


@pytest.fixture(scope="module")
def by_line(path: Path) -> dict[int, Event]:
    events, _ = read(path)
    return {e.raw.line: e for e in events if e.raw.line is not None}


def flow(
    path: Path,
    line: int,
    uuid: str,
    time: float,
    activity: Activity,
    src: Endpoint,
    dst: Endpoint,
    container: Container | None = API,
) -> Event:
    return Event(
        time=time,
        kind=Kind.NETWORK,
        activity=activity,
        raw=RawRef("hubble", str(path), line=line, record_id=uuid),
        host="kind-worker",
        container=container,
        src_endpoint=src,
        dst_endpoint=dst,
    )


def test_sniffed_and_counted(path: Path, by_line: dict[int, Event]) -> None:
    _, report = read(path)
    assert report.files == {str(path): "hubble"}
    assert (report.records, report.events, report.ignored, report.skipped_total) == (14, 8, 6, 0)
    # A reply, a drop, an ingress flow, a node status, lost events, a proxy redirect: not used.
    assert sorted(by_line) == [1, 2, 6, 7, 8, 9, 11, 12]


def test_syn_is_a_connect_and_later_segments_are_sends(
    path: Path, by_line: dict[int, Event]
) -> None:
    assert by_line[1] == flow(
        path,
        1,
        "0b6b5a5e-3f2c-4c55-9a51-772245731889",
        1714644100.123456,  # nanosecond RFC 3339, to the microsecond
        Activity.CONNECT,
        Endpoint(ip=POD_IP, port=43210),
        Endpoint(ip=REMOTE, port=443, hostname="exfil.example.net"),  # from destination_names
    )
    assert by_line[2] == flow(
        path,
        2,
        "0b6b5a5e-3f2c-4c55-9a51-758270506298",
        1714644100.13,
        Activity.SEND,  # ACK and PSH: Hubble counts no bytes, so no traffic
        Endpoint(ip=POD_IP, port=43210),
        Endpoint(ip=REMOTE, port=443),
    )


def test_udp_and_icmp_are_sends(path: Path, by_line: dict[int, Event]) -> None:
    assert by_line[6] == flow(
        path,
        6,
        "0b6b5a5e-3f2c-4c55-9a51-527307351579",
        1714644103.5,
        Activity.SEND,
        Endpoint(ip=POD_IP, port=35353),
        Endpoint(ip="10.96.0.10", port=53),
    )
    assert by_line[12] == flow(
        path,
        12,
        "0b6b5a5e-3f2c-4c55-9a51-562130154313",
        1714644108.0,
        Activity.SEND,
        Endpoint(ip=POD_IP),
        Endpoint(ip=REMOTE),
    )


def test_legacy_bare_flow_audit_verdict_and_ipv6(path: Path, by_line: dict[int, Event]) -> None:
    assert by_line[7] == flow(
        path,
        7,
        "0b6b5a5e-3f2c-4c55-9a51-960663298595",
        1714644104.0,
        Activity.CONNECT,
        Endpoint(ip=POD_IP, port=43212),
        Endpoint(ip=REMOTE, port=443),
    )
    # AUDIT: a policy in audit mode would have dropped it; the packet still left.
    assert by_line[8] == flow(
        path,
        8,
        "0b6b5a5e-3f2c-4c55-9a51-046942567586",
        1714644105.0,
        Activity.CONNECT,
        Endpoint(ip=POD_IP, port=43400),
        Endpoint(ip="192.0.2.44", port=8443),
    )
    assert by_line[11] == flow(
        path,
        11,
        "0b6b5a5e-3f2c-4c55-9a51-520949419252",
        1714644107.0,
        Activity.CONNECT,
        Endpoint(ip="fd00:10:244:1::17", port=43500),
        Endpoint(ip="2001:db8::9", port=443),
    )


def test_host_traffic_has_no_container(path: Path, by_line: dict[int, Event]) -> None:
    assert by_line[9] == flow(
        path,
        9,
        "0b6b5a5e-3f2c-4c55-9a51-593014182547",
        1714644106.0,
        Activity.CONNECT,
        Endpoint(ip="172.18.0.3", port=60122),
        Endpoint(ip="203.0.113.50", port=443),
        container=None,
    )


def test_malformed_records_are_counted_with_their_line(fixtures: Path) -> None:
    path = fixtures / "hubble" / "malformed.jsonl"
    events, report = read(path, fmt="hubble")
    assert events == []
    assert [(p.where, p.reason) for p in report.examples] == [
        ("line 1", "malformed JSON"),
        ("line 2", "JSON is not an object"),
        ("line 3", "flow is not an object"),
        ("line 4", "flow has no verdict"),
        ("line 5", "unreadable IP address '203.0.113.999'"),
        ("line 6", "port out of range"),
        ("line 7", "record has no time"),
        ("line 8", "flow has no IP address"),
        ("line 9", "l4 is not an object"),
        ("line 10", "record has no flow"),
        ("line 11", "malformed JSON"),
    ]
    assert report.records == 11
    assert report.skipped["malformed JSON"] == 2
    assert report.skipped_total == 11


def test_invalid_utf8_inside_a_good_record_is_kept(tmp_path: Path, fixtures: Path) -> None:
    line = (fixtures / "hubble" / "flows.jsonl").read_bytes().splitlines()[0]
    path = tmp_path / "flows.jsonl"
    path.write_bytes(line.replace(b"kind-worker", b"kind-\xffworker") + b"\n")
    events, report = read(path)
    assert report.skipped == Counter()
    assert [e.host for e in events] == ["kind-\ufffdworker"]


def test_sniff_accepts_wrapped_and_legacy_flows(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    assert get("hubble").sniff(lines[0])
    assert get("hubble").sniff(lines[6])  # the bare flow of the legacy JSON output


@pytest.mark.parametrize(
    "head",
    [TETRAGON, FALCO, ZEEK, OCSF, b"", b'{"verdict":"FORWARDED"}\n', b"[]\n"],
    ids=["tetragon", "falco", "zeek", "ocsf", "empty", "verdict-only", "array"],
)
def test_sniff_rejects_other_formats(head: bytes) -> None:
    assert not get("hubble").sniff(head)


@pytest.mark.parametrize(
    "name",
    [
        "docker_events/events.jsonl",
        "vpcflow/default.log",
        "vpcflow/custom.log",
        "falco/alerts.jsonl",
        "zeek/conn.json",
    ],
)
def test_sniff_rejects_other_fixtures(fixtures: Path, name: str) -> None:
    assert not get("hubble").sniff((fixtures / name).read_bytes())
