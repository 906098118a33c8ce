"""Golden tests for the AWS VPC Flow Logs source: the default format under its S3 header, custom
formats read by their header, and headerless CloudWatch Logs lines."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import FALCO, OCSF, TETRAGON, ZEEK, read
from tidewaiter.events import Activity, Container, Endpoint, Event, Kind, RawRef, Traffic
from tidewaiter.sources import all_sources, get

all_sources()
import tidewaiter.sources.vpcflow  # noqa: E402, F401 - registers the source

POD = "10.0.1.57"
REMOTE = "203.0.113.9"
DEFAULT_HEADER = (
    b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
    b"start end action log-status\n"
)


def flow(
    path: Path,
    line: int,
    time: float,
    src: Endpoint,
    dst: Endpoint,
    sent: int | None,
    container: Container | None = None,
) -> Event:
    return Event(
        time=time,
        kind=Kind.NETWORK,
        activity=Activity.TRAFFIC,
        raw=RawRef("vpcflow", str(path), line=line),
        container=container,
        src_endpoint=src,
        dst_endpoint=dst,
        traffic=Traffic(bytes_out=sent),
    )


def test_default_format_under_its_header(fixtures: Path) -> None:
    path = fixtures / "vpcflow" / "default.log"
    events, report = read(path)
    assert report.files == {str(path): "vpcflow"}
    assert events == [
        # Each record is one direction: bytes went from srcaddr to dstaddr.
        flow(path, 2, 1714644120.0, Endpoint(POD, 43210), Endpoint(REMOTE, 443), 52428800),
        flow(path, 3, 1714644120.0, Endpoint(REMOTE, 443), Endpoint(POD, 43210), 480000),
        # ICMP: ports 0. IPv6. An AWS-owned interface (account "unknown"), protocol 50, no ports.
        flow(path, 7, 1714644130.0, Endpoint(POD, 0), Endpoint(REMOTE, 0), 336),
        flow(
            path,
            8,
            1714644140.0,
            Endpoint("2600:1f18:abcd:1200::57", 44000),
            Endpoint("2001:db8::9", 443),
            2048,
        ),
        flow(path, 9, 1714644150.0, Endpoint("10.0.2.15"), Endpoint(POD), 160),
    ]
    # The header is framing, not a record. REJECT, NODATA and SKIPDATA carry nothing to use.
    assert (report.records, report.events, report.ignored) == (13, 5, 3)
    assert [(p.where, p.reason) for p in report.examples] == [
        ("line 10", "9 fields, the header declares 14"),
        ("line 11", "unreadable address '203.0.113.999'"),
        ("line 12", "unreadable bytes '5242880O'"),
        ("line 13", "port out of range"),
        ("line 14", "flow record has no start time"),
    ]


def test_custom_formats_are_read_by_their_header(fixtures: Path) -> None:
    path = fixtures / "vpcflow" / "custom.log"
    events, report = read(path)
    ecs = Container(uid="14c2529eb4498c5d1ffd6915d05bf58a91bdda796af59f41d480d11c099d0479")
    assert events == [
        # pkt-srcaddr is the pod behind the node's interface (srcaddr 10.0.1.20).
        flow(path, 2, 1714644120.0, Endpoint(POD, 43210), Endpoint(REMOTE, 443), 52428800),
        # pkt-* unset: the interface's own addresses.
        flow(path, 3, 1714644121.0, Endpoint("10.0.1.99", 61000), Endpoint(REMOTE, 443), 1200),
        # A second header, in another order, with the ECS container: named on egress only.
        flow(
            path,
            5,
            1714644200.0,
            Endpoint("10.0.3.41", 38000),
            Endpoint("198.51.100.77", 8443),
            7340032,
            ecs,
        ),
        flow(
            path,
            6,
            1714644200.0,
            Endpoint("198.51.100.77", 8443),
            Endpoint("10.0.3.41", 38000),
            9000,
        ),
    ]
    # Headers starting with "version" are framing; the one starting with account-id (line 4)
    # is read as a header but counted as a record with nothing to use.
    assert (report.records, report.events, report.ignored) == (7, 4, 1)
    assert [(p.where, p.reason) for p in report.examples] == [
        ("line 7", "21 fields, the header declares 15"),  # the old layout no longer applies
        ("line 9", "header lacks srcaddr, dstaddr"),
    ]


def test_headerless_cloudwatch_lines_use_the_default_format(fixtures: Path) -> None:
    path = fixtures / "vpcflow" / "cloudwatch.log"
    events, report = read(path)
    assert report.files == {str(path): "vpcflow"}
    assert events == [
        flow(path, 1, 1714644120.0, Endpoint(POD, 43210), Endpoint(REMOTE, 443), 52428800),
        flow(path, 4, 1714644190.0, Endpoint(POD, 55000), Endpoint("192.0.2.10", 443), 4096),
    ]
    assert (report.records, report.events, report.ignored, report.skipped_total) == (3, 2, 1, 0)


def test_a_custom_format_without_its_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "custom.log"
    path.write_bytes(b"3 vpc-0a1b 10.0.1.57 203.0.113.9 443 6 100 1714644120 ACCEPT OK\n")
    events, report = read(path, fmt="vpcflow")
    assert events == []
    assert report.skipped == Counter({"10 fields, the default format has 14": 1})


def test_invalid_utf8_inside_a_record_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "flows.log"
    path.write_bytes(
        DEFAULT_HEADER + b"2 123456789012 eni-0a1b\xff 10.0.1.57 203.0.113.9 43210 443 6 3 120 "
        b"1714644120 1714644180 ACCEPT OK\n"
    )
    events, report = read(path)
    assert report.skipped_total == 0
    assert [e.traffic for e in events] == [Traffic(bytes_out=120)]


@pytest.mark.parametrize("name", ["default.log", "custom.log", "cloudwatch.log"])
def test_sniff_accepts_flow_logs(fixtures: Path, name: str) -> None:
    assert get("vpcflow").sniff((fixtures / "vpcflow" / name).read_bytes())


@pytest.mark.parametrize(
    "head",
    [
        TETRAGON,
        FALCO,
        ZEEK,
        OCSF,
        b"",
        b"version account-id interface-id bytes start end action log-status\n",  # no addresses
        b"2 123456789012 vpc-0a1b 10.0.1.57 203.0.113.9\n",  # no interface where it belongs
        b"hello world srcaddr dstaddr\n",  # words that are not all flow log fields
    ],
    ids=["tetragon", "falco", "zeek", "ocsf", "empty", "no-addresses", "no-eni", "prose"],
)
def test_sniff_rejects_other_formats(head: bytes) -> None:
    assert not get("vpcflow").sniff(head)


@pytest.mark.parametrize(
    "name",
    [
        "docker_events/events.jsonl",
        "hubble/flows.jsonl",
        "falco/alerts.jsonl",
        "zeek/conn.log",
        "zeek/conn.json",
    ],
)
def test_sniff_rejects_other_fixtures(fixtures: Path, name: str) -> None:
    assert not get("vpcflow").sniff((fixtures / name).read_bytes())
