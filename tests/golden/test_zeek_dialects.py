"""Zeek JSON in the spellings pipelines deliver it, each read without --format: underscore names
with ``@stream`` (the OTRF datasets' shipper), json-streaming-logs (``_path``, ``_write_ts``,
every log in one stream), Corelight (``_system_name``, ISO 8601 times), gzip; and the real
files in ../shared/corpus/realworld. Records of other Zeek logs are recognised and passed over,
never counted as bad."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import read
from tidewaiter.events import Endpoint, Traffic
from tidewaiter.sources import ReadReport, UnknownFormat, open_events


def flows(
    path: Path,
) -> tuple[list[tuple[str, int | None, str, int | None, Traffic | None]], ReadReport]:
    events, report = read(path)
    assert report.files == {str(path): "zeek"}, "recognised without --format"
    assert report.skipped_total == 0
    out = []
    for e in events:
        assert e.src_endpoint is not None
        assert e.dst_endpoint is not None
        assert e.src_endpoint.ip is not None
        assert e.dst_endpoint.ip is not None
        out.append(
            (
                e.src_endpoint.ip,
                e.src_endpoint.port,
                e.dst_endpoint.ip,
                e.dst_endpoint.port,
                e.traffic,
            )
        )
    return out, report


def test_underscore_names_and_stream(fixtures: Path) -> None:
    got, report = flows(fixtures / "zeek" / "underscore_stream.json")
    assert got == [
        ("10.244.1.17", 51234, "203.0.113.50", 443, Traffic(bytes_out=52428800, bytes_in=4096))
    ]
    assert report.foreign == Counter({"Zeek dns log": 1})


def test_json_streaming_logs(fixtures: Path) -> None:
    path = fixtures / "zeek" / "json_streaming_logs.json"
    got, report = flows(path)
    assert got == [
        ("10.244.1.17", 51300, "198.51.100.7", 22, Traffic(bytes_out=734003200, bytes_in=8120))
    ]
    assert report.foreign == Counter({"Zeek ssh log": 1})


def test_corelight(fixtures: Path) -> None:
    path = fixtures / "zeek" / "corelight.json"
    (event,), _ = read(path)
    assert event.time == 1714644240.25
    assert event.raw.record_id == "CCl1"
    assert event.dst_endpoint == Endpoint(ip="192.0.2.200", port=443)


def test_a_zeek_log_that_names_itself_nowhere_says_what_it_came_close_to(tmp_path: Path) -> None:
    path = tmp_path / "dns.json"
    path.write_bytes(
        b'{"ts":1.0,"uid":"C1","id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2",'
        b'"id.resp_p":53,"query":"example.com"}\n'
    )
    with pytest.raises(UnknownFormat) as caught:
        open_events(str(path), ReadReport())
    assert str(caught.value) == (
        f"{path}: looks like a Zeek log in JSON, but not conn.log (it names no log with _path "
        "or @stream and has no conn_state); tidewaiter reads conn.log"
    )


# --- the real files --------------------------------------------------------------------------


@pytest.mark.corpus
def test_real_otrf_underscore_conn(corpus: Path) -> None:
    path = corpus / "realworld" / "zeek_json" / "otrf_apt29_day2_UTICA-C_conn.log"
    got, report = flows(path)
    assert (report.records, len(got)) == (31, 31)
    assert {src for src, *_ in got} == {"10.0.1.5"}
    assert got[0] == ("10.0.1.5", 61400, "192.168.0.4", 443, Traffic(bytes_out=656, bytes_in=268))
    assert Counter(dport for *_, dport, _t in got)[445] == 1  # the SMB/Kerberos session


@pytest.mark.corpus
def test_real_filebeat_dotted_conn(corpus: Path) -> None:
    path = corpus / "realworld" / "zeek_json" / "beats_filebeat_zeek_connection-json.log"
    got, report = flows(path)
    assert report.records == 5
    assert len(got) == 5
    assert ("192.168.86.167", 38340, "8.8.8.8", 53, Traffic(bytes_out=75, bytes_in=178)) in got


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "log", "count"),
    [
        ("zeek_json/brimdata_wrccdc2018_ssh.json.gz", "ssh", 22),
        ("zeek_json/brimdata_wrccdc2018_smb_files.json.gz", "smb_files", 13),
        ("zeek_tsv_gz/brimdata_wrccdc2018_ssh.log.gz", "ssh", 22),
    ],
)
def test_real_other_logs_gzipped_are_recognised_and_passed_over(
    corpus: Path, name: str, log: str, count: int
) -> None:
    path = corpus / "realworld" / name
    events, report = read(path)
    assert report.files == {str(path): "zeek"}
    assert events == []
    assert report.records == count
    assert report.foreign == Counter({f"Zeek {log} log": count})
    assert report.skipped_total == 0
    assert f"{count} Zeek {log} log records passed over" in report.summary()
