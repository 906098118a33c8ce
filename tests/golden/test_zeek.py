"""Golden tests for the Zeek source: conn.log as TSV under its header, and as JSON lines."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import OCSF, TETRAGON, read
from tidewaiter.events import Activity, Endpoint, Event, Kind, RawRef, Traffic
from tidewaiter.sources import get

SYSMON_XML = (
    b'<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
    b'<Provider Name="Microsoft-Windows-Sysmon"/><EventID>3</EventID></System></Event>\n'
)
# Zeek's dns.log shares the id.* keys with conn.log.
DNS_JSON = (
    b'{"ts":1714644003.5,"uid":"CUM0KZ3MLUfNB0cl11","id.orig_h":"10.244.1.17","id.orig_p":45000,'
    b'"id.resp_h":"10.96.0.10","id.resp_p":53,"proto":"udp","query":"exfil.example.com"}\n'
)


def flow(
    path: Path,
    line: int,
    *,
    uid: str,
    time: float,
    src: Endpoint,
    dst: Endpoint,
    traffic: Traffic,
) -> Event:
    return Event(
        time=time,
        kind=Kind.NETWORK,
        activity=Activity.TRAFFIC,
        raw=RawRef("zeek", str(path), line=line, record_id=uid),
        src_endpoint=src,
        dst_endpoint=dst,
        traffic=traffic,
    )


POD = "10.244.1.17"
REMOTE = Endpoint(ip="203.0.113.10", port=443)


def test_tsv(fixtures: Path) -> None:
    path = fixtures / "zeek" / "conn.log"
    events, report = read(path)
    assert report.files == {str(path): "zeek"}
    assert events == [
        flow(
            path,
            9,
            uid="CHhAvVGS1DHFjwGM9",
            time=1714644001.123456,
            src=Endpoint(ip=POD, port=51234),
            dst=REMOTE,
            traffic=Traffic(bytes_out=52428800, bytes_in=4096),
        ),
        # An attempt with no reply: byte counts unset ("-").
        flow(
            path,
            10,
            uid="C4J4Th3PJpwUYZZ6gc",
            time=1714644002.000001,
            src=Endpoint(ip=POD, port=51240),
            dst=REMOTE,
            traffic=Traffic(),
        ),
        flow(
            path,
            11,
            uid="CUM0KZ3MLUfNB0cl11",
            time=1714644003.5,
            src=Endpoint(ip=POD, port=45000),
            dst=Endpoint(ip="10.96.0.10", port=53),
            traffic=Traffic(bytes_out=40, bytes_in=120),
        ),
        # After #close, a second header block with one more column and unset_field NULL:
        # the 22-field row only reads if the new header replaced the old one.
        flow(
            path,
            22,
            uid="CxT1aQ2bYd3Ee4Ff5g",
            time=1714647601.25,
            src=Endpoint(ip="fd00::17", port=40000),
            dst=Endpoint(ip="2001:db8::1", port=443),
            traffic=Traffic(bytes_out=2048),
        ),
    ]
    # header lines are framing, not records: only the five data lines count
    assert (report.records, report.events, report.ignored) == (5, 4, 0)
    assert report.skipped == Counter({"TSV line has 3 fields, header declares 21": 1})
    assert [(p.where, p.reason) for p in report.examples] == [
        ("line 12", "TSV line has 3 fields, header declares 21")
    ]


def test_json(fixtures: Path) -> None:
    path = fixtures / "zeek" / "conn.json"
    events, report = read(path)
    assert report.files == {str(path): "zeek"}
    assert events == [
        flow(
            path,
            1,
            uid="CHhAvVGS1DHFjwGM9",
            time=1714644001.123456,
            src=Endpoint(ip=POD, port=51234),
            dst=REMOTE,
            traffic=Traffic(bytes_out=52428800, bytes_in=4096),
        ),
        # ISO 8601 ts (JSON::TS_ISO8601), and byte counts Zeek left out as unset.
        flow(
            path,
            2,
            uid="C4J4Th3PJpwUYZZ6gc",
            time=1714644002.000001,
            src=Endpoint(ip=POD, port=51240),
            dst=REMOTE,
            traffic=Traffic(),
        ),
    ]
    assert report.records == 6
    # A dns record among conn records is another log's record, not a bad one.
    assert report.foreign == Counter({"Zeek dns log": 1})
    assert [(p.where, p.reason) for p in report.examples] == [
        ("line 4", "malformed JSON"),
        ("line 5", "JSON is not an object"),
        ("line 6", "conn record has no addresses"),
    ]


def test_other_zeek_logs_are_recognised_and_passed_over(fixtures: Path) -> None:
    path = fixtures / "zeek" / "dns.log"
    events, report = read(path)
    assert report.files == {str(path): "zeek"}
    assert events == []
    assert report.skipped_total == 0
    assert report.foreign == Counter({"Zeek dns log": 2})
    assert "2 Zeek dns log records passed over" in report.summary()


def test_broken_headers_and_a_declared_separator(fixtures: Path) -> None:
    path = fixtures / "zeek" / "broken.log"
    events, report = read(path)
    assert [(p.where, p.reason) for p in report.examples] == [
        ("line 3", "record before the #fields header"),
        ("line 5", "#fields lacks id.resp_h"),
        ("line 8", "record before the #fields header"),  # a new block drops the old #fields
    ]
    # The last block declares "\x2c": a comma-separated header and row.
    assert events == [
        flow(
            path,
            10,
            uid="Cq1",
            time=1714644009.0,
            src=Endpoint(ip=POD, port=33000),
            dst=Endpoint(ip="198.51.100.7", port=22),
            traffic=Traffic(bytes_out=1000),
        )
    ]


@pytest.mark.corpus
def test_real_conn_log(corpus: Path) -> None:
    path = corpus / "zeek" / "conn_tsv_from_zeek_commit_0849332.log"
    events, report = read(path)
    assert report.files == {str(path): "zeek"}
    assert report.skipped_total == 0
    assert (report.records, report.events, report.ignored) == (1, 1, 0)
    assert events[0] == flow(
        path,
        9,
        uid="CvVbVi3kNVC4LPU90f",
        time=1632928690.500620,
        src=Endpoint(ip="192.168.1.99", port=62978),
        dst=Endpoint(ip="192.168.1.1", port=53),
        traffic=Traffic(bytes_out=55, bytes_in=134),
    )


@pytest.mark.parametrize("name", ["conn.log", "conn.json", "broken.log"])
def test_sniff_accepts_conn_logs(fixtures: Path, name: str) -> None:
    assert get("zeek").sniff((fixtures / "zeek" / name).read_bytes())


@pytest.mark.parametrize(
    "head",
    [TETRAGON, OCSF, SYSMON_XML, DNS_JSON, b"", b"#fields\tts\tuid\n"],
    ids=["tetragon", "ocsf", "sysmon-xml", "dns-json", "empty", "no-separator-line"],
)
def test_sniff_rejects_other_formats(head: bytes) -> None:
    assert not get("zeek").sniff(head)


@pytest.mark.parametrize("path", ["falco/alerts.jsonl", "falco/malformed.jsonl"])
def test_sniff_rejects_other_fixtures(fixtures: Path, path: str) -> None:
    assert not get("zeek").sniff((fixtures / path).read_bytes())


@pytest.mark.corpus
def test_sniff_rejects_real_tetragon_exports(corpus: Path) -> None:
    files = sorted((corpus / "tetragon").glob("*.json*"))
    assert files
    for path in files:
        assert not get("zeek").sniff(path.read_bytes()[:65536]), path.name
