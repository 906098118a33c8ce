"""Golden tests for the XML source: hand-written records in the formats Windows and Sysmon for
Linux write (tests/fixtures/sysmon), and the malformed and hostile inputs it must survive."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import read
from tidewaiter.events import Activity, Endpoint, Event, File, Kind, Process, RawRef
from tidewaiter.sources import RecordError, UnknownFormat, all_sources, get

PS = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
COMPRESS = (
    "powershell.exe -Command Compress-Archive -Path C:\\SensitiveData\\* "
    "-DestinationPath C:\\Archive\\SensitiveData.zip"
)
GUID = "4f1c2a9e-f0a2-65e6-3c04-000000000f00"  # {4F1C...} in the export: braces off, lower case


@pytest.fixture
def sysmon(fixtures: Path) -> Path:
    return fixtures / "sysmon"


def _module() -> ModuleType:
    # The registry loads only while empty: importing one source module first would leave every
    # other source unregistered, so load it as the CLI would and only then look inside.
    all_sources()
    return importlib.import_module("tidewaiter.sources.sysmon_xml")


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _problems(path: Path) -> list[tuple[str, str]]:
    _, report = read(path, fmt="sysmon-xml")
    return [(p.where, p.reason) for p in report.examples]


# --- Windows: wevtutil qe /f:xml ---------------------------------------------------------------


def test_wevtutil_export_maps_launch_file_and_connections(sysmon: Path) -> None:
    path = sysmon / "wevtutil_sysmon.xml"
    events, report = read(path)
    assert report.files == {str(path): "sysmon-xml"}
    assert (report.records, report.events, report.ignored, report.skipped_total) == (5, 4, 1, 0)
    launch, create, connect, inbound = events  # the DNS query (EID 22) has nothing to use

    assert launch.raw == RawRef("sysmon-xml", str(path), line=1, record_id="10234")
    assert (launch.kind, launch.activity, launch.host) == (
        Kind.PROCESS,
        Activity.LAUNCH,
        "WS-FIN-07.corp.example",
    )
    assert launch.time == _utc("2024-03-05 10:15:30.441")  # UtcTime, not TimeCreated
    assert launch.process == Process(
        pid=6512,
        uid=GUID,
        path=PS,
        cmd_line=COMPRESS,
        cwd="C:\\Users\\jdoe\\",
        user="CORP\\jdoe",
        session="0xcb2a1",
        parent=Process(
            pid=4420,
            uid="4f1c2a9e-e8b9-65e6-9a01-000000000f00",
            path="C:\\Windows\\explorer.exe",
            cmd_line="C:\\Windows\\Explorer.EXE",
            user="CORP\\jdoe",
        ),
        original_name="PowerShell.EXE",  # from the PE header: survives renaming the file
    )

    assert (create.kind, create.activity, create.raw.line) == (Kind.FILE, Activity.CREATE, 2)
    assert create.file == File(path="C:\\Archive\\SensitiveData.zip")
    assert create.process == Process(pid=6512, uid=GUID, path=PS, user="CORP\\jdoe")

    assert (connect.kind, connect.activity) == (Kind.NETWORK, Activity.CONNECT)
    assert connect.dst_endpoint == Endpoint("203.0.113.50", 443, "upload.example.net")
    assert connect.src_endpoint == Endpoint("10.20.30.41", 51544, "WS-FIN-07.corp.example")
    assert connect.process is not None
    assert connect.process.uid == GUID  # joins the launch above
    assert connect.time == _utc("2024-03-05 10:15:33.120")

    # An accepted RDP connection: kept, but not this host connecting out.
    assert (inbound.kind, inbound.activity) == (Kind.NETWORK, Activity.OTHER)
    assert inbound.dst_endpoint == Endpoint("10.20.30.41", 3389, "WS-FIN-07.corp.example")


def test_utf16_export_reads_like_utf8(sysmon: Path, tmp_path: Path) -> None:
    # Windows PowerShell 5.1's Out-File and > write UTF-16 with a byte-order mark.
    utf8 = sysmon / "wevtutil_sysmon.xml"
    utf16 = tmp_path / "export.xml"
    utf16.write_bytes(utf8.read_text(encoding="utf-8").encode("utf-16"))
    expected, _ = read(utf8)
    events, report = read(utf16)
    assert report.files == {str(utf16): "sysmon-xml"}
    assert [e.process for e in events] == [e.process for e in expected]
    assert [e.raw.line for e in events] == [1, 2, 4, 5]


def test_events_run_together_on_one_line_are_each_read(sysmon: Path, tmp_path: Path) -> None:
    lines = (sysmon / "wevtutil_sysmon.xml").read_bytes().splitlines()
    joined = tmp_path / "joined.xml"
    joined.write_bytes(b"<Events>" + b"".join(lines) + b"</Events>\n")
    events, report = read(joined)
    assert (report.records, len(events), report.skipped_total) == (5, 4, 0)
    assert {e.raw.line for e in events} == {1}
    assert [e.raw.record_id for e in events] == ["10234", "10236", "10238", "10239"]


# --- Windows: PowerShell 4104, a pretty-printed <Events> document ------------------------------


def test_script_blocks_are_one_event_per_part(sysmon: Path) -> None:
    path = sysmon / "powershell_4104.xml"
    events, report = read(path)
    # Four Event elements over 108 lines are four records; the 4103 has nothing to use.
    assert (report.records, report.events, report.ignored, report.skipped_total) == (4, 3, 1, 0)
    assert all((e.kind, e.activity) == (Kind.PROCESS, Activity.SCRIPT) for e in events)
    first, second, interactive = events

    # The two parts of one script block stay two events, each at the line its element starts.
    assert [(e.raw.line, e.raw.record_id) for e in (first, second)] == [(3, "88412"), (30, "88413")]
    assert first.process is not None
    assert first.process.cmd_line is not None
    assert "2>$null" in first.process.cmd_line  # XML escapes undone; newlines kept
    assert first.process.cmd_line.count("\n") == 2
    assert second.process == Process(
        pid=6512,
        path="C:\\Users\\jdoe\\Documents\\backup.ps1",
        cmd_line='Compress-Archive -Path "$src\\*" -DestinationPath $dst '
        "-CompressionLevel Optimal -Force",
        user="S-1-5-21-1004336348-1177238915-682003330-1104",
    )
    assert second.time == datetime(2024, 3, 5, 10, 15, 29, 881553, tzinfo=UTC).timestamp()
    assert second.host == "WS-FIN-07.corp.example"

    # Typed at the console: no script path, so the host process stands in.
    assert interactive.process is not None
    assert (interactive.process.pid, interactive.process.path) == (7140, "powershell.exe")
    assert interactive.process.cmd_line == COMPRESS.removeprefix("powershell.exe -Command ")


def test_stream_decoder_frames_lines_as_the_file_reader_does(sysmon: Path) -> None:
    path = sysmon / "powershell_4104.xml"
    expected, _ = read(path)
    decoder = get("sysmon-xml").decoder(str(path))
    events: list[Event] = []
    for lineno, line in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
        events += decoder.feed(line, RawRef("sysmon-xml", str(path), line=lineno))
    assert list(decoder.flush()) == []
    assert events == expected

    decoder.feed(b"<Event><System><EventID>1</EventID>\n", RawRef("sysmon-xml", "-", line=1))
    with pytest.raises(RecordError, match="not closed"):
        list(decoder.flush())


# --- Sysmon for Linux: syslog ----------------------------------------------------------------


def test_linux_syslog_maps_tar_its_exit_and_a_connection(sysmon: Path) -> None:
    path = sysmon / "linux_syslog.log"
    events, report = read(path)
    assert report.files == {str(path): "sysmon-xml"}
    # The systemd line is another program's: read, nothing to use.
    assert (report.records, report.events, report.ignored, report.skipped_total) == (4, 3, 1, 0)
    launch, exit_, connect = events
    assert {e.host for e in events} == {"build-07"}
    assert (launch.activity, launch.raw.line, launch.raw.record_id) == (Activity.LAUNCH, 1, "51234")
    assert launch.time == _utc("2024-11-27 10:00:00.118")
    assert launch.process == Process(
        pid=24011,
        uid="6c7e1a8f-ee50-6746-a5d1-7f1c52560000",
        path="/usr/bin/tar",
        cmd_line="tar -czf /tmp/out.tgz /etc",
        cwd="/root",
        user="root",
        session="0",
        parent=Process(
            pid=23950,
            uid="6c7e1a8f-ec10-6746-35c8-b6f1a3550000",
            path="/usr/bin/bash",
            cmd_line="-bash",
            user="root",
        ),
    )
    assert (exit_.kind, exit_.activity) == (Kind.PROCESS, Activity.EXIT)
    assert exit_.process is not None
    assert launch.process is not None
    assert exit_.process.uid == launch.process.uid
    # An RFC 3339 syslog prefix instead of the BSD one; "-" hostnames are absent, not "-".
    assert (connect.kind, connect.activity, connect.raw.line) == (Kind.NETWORK, Activity.CONNECT, 4)
    assert connect.dst_endpoint == Endpoint(ip="198.51.100.23", port=443)
    assert connect.src_endpoint == Endpoint(ip="10.0.0.12", port=41822)


# --- malformed and hostile input -------------------------------------------------------------


def test_truncated_events_are_counted_at_their_lines(sysmon: Path) -> None:
    events, report = read(sysmon / "truncated.xml")
    assert [e.raw.line for e in events] == [1, 3]
    assert report.records == 5
    assert _problems(sysmon / "truncated.xml") == [
        ("line 2", "truncated event (no closing </Event>)"),  # a new <Event began first
        ("line 4", "malformed XML (mismatched tag)"),
        ("line 5", "event not closed at end of input"),
    ]


def test_entity_declarations_are_refused_before_parsing(sysmon: Path) -> None:
    events, report = read(sysmon / "billion_laughs.xml")
    assert events == []
    problems = _problems(sysmon / "billion_laughs.xml")
    assert problems[0] == ("line 2", "DTD or entity declaration (refused: entity expansion)")
    assert len(problems) == 12  # the DOCTYPE and ten ENTITY lines, then the event using one
    assert problems[-1] == ("line 14", "malformed XML (undefined entity)")
    assert report.skipped_total == 12


def test_parse_event_refuses_a_dtd_on_its_own() -> None:
    hostile = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><Event><System/></Event>'
    with pytest.raises(RecordError, match="DTD"):
        _module().parse_event(hostile, RawRef("sysmon-xml", "-"))


def test_binary_garbage_is_counted_line_by_line(sysmon: Path) -> None:
    with pytest.raises(UnknownFormat):
        read(sysmon / "garbage.bin")
    events, report = read(sysmon / "garbage.bin", fmt="sysmon-xml")
    assert events == []
    assert report.records == 3
    assert _problems(sysmon / "garbage.bin") == [
        ("line 1", "binary data outside any event"),
        ("line 2", "not UTF-8 text outside any event"),
        ("line 3", "not UTF-8 text outside any event"),
    ]


def test_non_utf8_bytes_cannot_hide_an_event(sysmon: Path) -> None:
    # A Latin-1 byte in a command line is attacker-controllable: the event is kept with U+FFFD
    # in its place. Undecodable text outside any event is counted at its line.
    events, report = read(sysmon / "non_utf8.log")
    launch, connect = events
    assert launch.process is not None
    assert launch.process.cmd_line == "tar -czf /tmp/caf\ufffd.tgz /home"
    assert connect.activity == Activity.CONNECT
    assert _problems(sysmon / "non_utf8.log") == [("line 2", "not UTF-8 text outside any event")]
    assert report.records == 3


def test_an_event_without_an_end_cannot_swallow_the_file(
    sysmon: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_module(), "MAX_EVENT", 2000)
    good = (sysmon / "wevtutil_sysmon.xml").read_bytes().splitlines(keepends=True)[0]
    path = tmp_path / "runaway.xml"
    path.write_bytes(b"<Event><System>" + b"A" * 1500 + b"\n" + b"B" * 1500 + b"\n" + good)
    events, report = read(path)
    assert [e.raw.line for e in events] == [3]
    assert [(p.where, p.reason) for p in report.examples] == [("line 1", "event larger than 0 MiB")]


def test_other_formats_are_not_claimed(sysmon: Path) -> None:
    source = get("sysmon-xml")
    assert not source.sniff(b'{"process_exec": {"process": {"binary": "/usr/bin/tar"}}}\n')
    assert not source.sniff(b"<Event><System></System></Event>\n")  # no namespace, no sysmon
    assert not source.sniff(b"ElfFile\x00" + bytes(100))
    for name in ("wevtutil_sysmon.xml", "powershell_4104.xml", "linux_syslog.log"):
        assert source.sniff((sysmon / name).read_bytes())
        assert not get("sysmon-evtx").sniff((sysmon / name).read_bytes())
