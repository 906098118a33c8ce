"""Golden tests for the EVTX source: real files from the corpus, and damaged copies of them."""

from __future__ import annotations

import importlib
import io
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import orjson
import pytest

from tests.helpers import read
from tidewaiter.events import Activity, Event, Kind, RawRef
from tidewaiter.sources import ReadReport, UnknownFormat, all_sources, get

ATOMIC = "evtx/EAS_PanacheSysmon_vs_AtomicRedTeam01.evtx"
CORRUPT = "evtx/omerbenamram_sysmon.evtx"
CERTUTIL = "sigma/certutil_encode_e62a9f0c-ca1e-46b2-85d5-a6da77f86d1a"
HEADER_SIZE, CHUNK_SIZE = 4096, 65536


def _module() -> ModuleType:
    # The registry loads only while empty: importing one source module first would leave every
    # other source unregistered, so load it as the CLI would and only then look inside.
    all_sources()
    return importlib.import_module("tidewaiter.sources.sysmon_evtx")


def events_from_json(document: object, ref: RawRef) -> list[Event]:
    events: list[Event] = _module().events_from_json(document, ref)
    return events


def _where(report: ReadReport) -> list[str]:
    return [problem.where for problem in report.examples]


# --- the corpus ----------------------------------------------------------------------------


@pytest.mark.corpus
def test_atomic_red_team_file_reads_every_record(corpus: Path) -> None:
    events, report = read(corpus / ATOMIC)
    assert report.files == {str(corpus / ATOMIC): "sysmon-evtx"}  # sniffed, not named
    assert report.records == 565
    assert report.skipped_total == 0
    assert report.events + report.ignored == 565  # every Sysmon record maps to at most one event
    assert len(events) == report.events
    kinds = {(e.kind, e.activity) for e in events}
    assert (Kind.PROCESS, Activity.LAUNCH) in kinds
    assert (Kind.NETWORK, Activity.CONNECT) in kinds
    assert (Kind.FILE, Activity.CREATE) in kinds


@pytest.mark.corpus
def test_rar_staging_launch_is_found_with_its_lineage(corpus: Path) -> None:
    events, _ = read(corpus / ATOMIC)
    staging = "rar a -r exfilthis.rar *.docx"
    [rar] = [e for e in events if e.process and staging in (e.process.cmd_line or "")]
    assert (rar.kind, rar.activity) == (Kind.PROCESS, Activity.LAUNCH)
    # EventRecordID from the record's System element (what Event Viewer shows); the record
    # header numbers it 482, in the file's chunk 12.
    assert rar.raw == RawRef("sysmon-evtx", str(corpus / ATOMIC), record_id="4053", chunk=12)
    assert rar.host == "MSEDGEWIN10"
    assert rar.time == datetime(2019, 7, 19, 14, 54, 16, 766000, tzinfo=UTC).timestamp()
    process = rar.process
    assert process is not None
    assert process.pid == 2000
    assert process.cmd_line == '"C:\\Windows\\system32\\cmd.exe" /c "rar a -r exfilthis.rar *.docx"'
    assert process.uid == "747f3d96-d998-5d31-0000-001008b43900"
    assert process.path == "C:\\Windows\\System32\\cmd.exe"
    assert process.cwd == "C:\\AtomicRedTeam\\"
    assert process.user == "MSEDGEWIN10\\IEUser"
    assert process.parent is not None
    assert process.parent.pid == 3912
    assert process.parent.path == "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    assert process.parent.cmd_line == "powershell"


@pytest.mark.corpus
def test_corrupt_chunks_are_reported_and_the_good_ones_read(corpus: Path) -> None:
    events, report = read(corpus / CORRUPT)
    # Chunks 0-8 hold records 1742-2099 (358); chunks 9-16 are overwritten.
    assert report.events + report.ignored == 358
    assert report.events > 0
    assert len(events) == report.events
    assert report.skipped_total == 8
    assert _where(report) == [f"chunk {n}" for n in range(9, 17)]
    assert report.skipped == {"corrupt chunk (Invalid EVTX chunk header magic)": 8}
    assert {e.raw.chunk for e in events} <= set(range(9))
    assert {int(e.raw.record_id or 0) for e in events} <= set(range(1742, 2100))


@pytest.mark.corpus
def test_certutil_evtx_and_its_json_rendering_agree(corpus: Path) -> None:
    # The .json twin is a rendering of the same record (one pretty-printed document, not JSON
    # lines), so it goes through the EVTX source's JSON mapping directly.
    [from_evtx], report = read(corpus / f"{CERTUTIL}.evtx")
    assert (report.records, report.skipped_total) == (1, 0)
    document = orjson.loads((corpus / f"{CERTUTIL}.json").read_bytes())
    [from_json] = events_from_json(document, from_evtx.raw)
    # The one difference: the EVTX keeps the trailing space Windows writes after a quoted parent
    # image, the published JSON has it trimmed. Command lines are evidence: kept verbatim.
    assert from_evtx.process is not None
    assert from_evtx.process.parent is not None
    assert from_evtx.process.parent.cmd_line == '"C:\\Windows\\System32\\cmd.exe" '
    trimmed = '"C:\\Windows\\System32\\cmd.exe"'
    parent = msgspec.structs.replace(from_evtx.process.parent, cmd_line=trimmed)
    assert from_json == msgspec.structs.replace(
        from_evtx, process=msgspec.structs.replace(from_evtx.process, parent=parent)
    )
    assert from_evtx.process.cmd_line == "certutil  -encode file.bat file_.base64"
    assert from_evtx.raw.record_id == "11570013"
    assert from_evtx.host == "ar-win-dc.attackrange.local"


# --- damaged files -------------------------------------------------------------------------


@pytest.mark.corpus
def test_copy_cut_inside_a_chunk_reports_the_lost_chunk(corpus: Path, tmp_path: Path) -> None:
    whole, _ = read(corpus / ATOMIC)
    cut = tmp_path / "cut.evtx"
    cut.write_bytes((corpus / ATOMIC).read_bytes()[: HEADER_SIZE + 3 * CHUNK_SIZE + 20000])
    events, report = read(cut)
    # pyevtx-rs drops a partial chunk without a word; the layout check must say so.
    assert _where(report) == ["chunk 3"]
    assert "truncated chunk (20000 of 65536 bytes)" in report.examples[0].reason
    assert [e.process for e in events] == [e.process for e in whole[: len(events)]]
    assert {e.raw.chunk for e in events} == {0, 1, 2}


@pytest.mark.corpus
def test_copy_cut_on_a_chunk_boundary_is_reported(corpus: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.evtx"
    cut.write_bytes((corpus / ATOMIC).read_bytes()[: HEADER_SIZE + 2 * CHUNK_SIZE])
    events, report = read(cut)
    assert events
    assert [str(p.where) for p in report.examples] == ["chunk 2"]
    assert report.examples[0].reason == "file truncated: header lists 15 chunks, 2 present"


@pytest.mark.parametrize("size", [100, HEADER_SIZE, HEADER_SIZE + 900, 5 * CHUNK_SIZE + 77])
def test_garbage_behind_the_magic_is_reported_without_events(tmp_path: Path, size: int) -> None:
    garbage = tmp_path / "garbage.evtx"
    garbage.write_bytes(b"ElfFile\x00" + bytes((i * 197 + size) % 251 for i in range(size)))
    events, report = read(garbage)
    assert report.files == {str(garbage): "sysmon-evtx"}
    assert events == []
    assert report.skipped_total >= 1
    assert all(p.where == "file header" or p.where.startswith("chunk ") for p in report.examples)


def test_a_file_named_evtx_that_is_not_is_reported(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(b"not an event log\n" * 500)
    events, report = read(text, fmt="sysmon-evtx")
    assert events == []
    assert [(p.where, p.reason) for p in report.examples] == [
        ("file header", "not an EVTX file (no ElfFile signature)")
    ]
    with pytest.raises(UnknownFormat):  # and the sniffer does not claim it
        read(text)


class _NoSeek(io.RawIOBase):
    """Standard input: readable once, front to back."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.corpus
def test_unseekable_input_reads_like_the_file(corpus: Path) -> None:
    report = ReadReport()
    stream = io.BufferedReader(_NoSeek((corpus / ATOMIC).read_bytes()))
    events = list(get("sysmon-evtx").read_file("-", stream, report))
    assert (report.records, len(events), report.skipped_total) == (565, 520, 0)


class _StuckParser:
    """A parser that yields one error object, one record, then raises the same error forever."""

    def __init__(self, stream: object) -> None:
        self._calls = 0

    def records_json(self) -> _StuckParser:
        return self

    def __iter__(self) -> _StuckParser:
        return self

    def __next__(self) -> object:
        self._calls += 1
        if self._calls == 1:
            return RuntimeError("Failed to parse record number 7: bad token")
        if self._calls == 2:
            return {"event_record_id": 8, "data": orjson.dumps({"Event": {"System": {}}}).decode()}
        raise RuntimeError("Failed to parse chunk number 0: stuck")


def test_a_parser_that_stops_advancing_is_cut_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_module().evtx, "PyEvtxParser", _StuckParser)
    path = tmp_path / "stuck.evtx"
    path.write_bytes(b"ElfFile\x00".ljust(HEADER_SIZE, b"\x00"))
    events, report = read(path)
    assert events == []
    assert report.skipped["corrupt record (bad token)"] == 1  # an error yielded, not raised
    assert report.skipped["corrupt chunk (stuck)"] == _module().MAX_REPEATS
    assert report.skipped["parser stopped advancing; rest of file not read"] == 1
    assert report.ignored == 1  # the record between: read, nothing to use
    assert "record 7" in _where(report)


# --- the shared mapping, through pyevtx-rs's JSON shape --------------------------------------


def _record(system: dict[str, object], data: dict[str, object]) -> list[Event]:
    base: dict[str, object] = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
        "TimeCreated": {"#attributes": {"SystemTime": "2024-03-05T10:15:31.5Z"}},
        "Computer": "WS-1",
    }
    document = {"Event": {"System": base | system, "EventData": data}}
    return events_from_json(document, RawRef("sysmon-evtx", "x.evtx", record_id="1"))


def test_event_id_with_attributes_and_string_numbers_are_read() -> None:
    [event] = _record(
        {"EventID": {"#text": 1, "#attributes": {"Qualifiers": ""}}, "EventRecordID": "77"},
        {"ProcessId": "6512", "ParentProcessId": "4420", "Image": "C:\\a.exe", "CommandLine": "a"},
    )
    assert (event.kind, event.activity) == (Kind.PROCESS, Activity.LAUNCH)
    assert event.process is not None
    assert event.process.pid == 6512
    assert event.process.parent is not None
    assert event.process.parent.pid == 4420
    assert event.raw.record_id == "77"
    assert event.time == datetime(2024, 3, 5, 10, 15, 31, 500000, tzinfo=UTC).timestamp()


def test_zero_parent_guid_is_unknown_not_a_shared_key() -> None:
    [event] = _record(
        {"EventID": 1},
        {"ProcessGuid": "{AB-CD}", "ParentProcessGuid": "{00000000-0000-0000-0000-000000000000}"},
    )
    assert event.process is not None
    assert event.process.uid == "ab-cd"
    assert event.process.parent is None


@pytest.mark.parametrize(
    ("initiated", "activity"),
    [
        (True, Activity.CONNECT),
        ("true", Activity.CONNECT),
        (False, Activity.OTHER),
        ("false", Activity.OTHER),
    ],
)
def test_only_initiated_connections_are_connects(initiated: object, activity: Activity) -> None:
    [event] = _record(
        {"EventID": 3},
        {"Initiated": initiated, "DestinationIp": "203.0.113.50", "DestinationPort": 443},
    )
    assert (event.kind, event.activity) == (Kind.NETWORK, activity)
    assert event.dst_endpoint is not None
    assert event.dst_endpoint.port == 443
    assert event.src_endpoint is None


@pytest.mark.parametrize(
    ("event_id", "kind", "activity"),
    [
        (5, Kind.PROCESS, Activity.EXIT),
        (23, Kind.FILE, Activity.DELETE),
        (26, Kind.FILE, Activity.DELETE),
    ],
)
def test_exit_and_delete_events(event_id: int, kind: Kind, activity: Activity) -> None:
    [event] = _record({"EventID": event_id}, {"ProcessId": 9, "TargetFilename": "C:\\x.zip"})
    assert (event.kind, event.activity) == (kind, activity)
    assert event.process is not None
    assert event.process.pid == 9


@pytest.mark.parametrize(
    "system",
    [
        {"EventID": 13},  # registry value set: nothing tidewaiter uses
        {
            "EventID": 1,
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
        },
    ],
)
def test_records_with_nothing_to_use_map_to_nothing(system: dict[str, object]) -> None:
    assert _record(system, {"CommandLine": "tar -czf x.tgz /etc"}) == []


def test_powershell_7_script_blocks_are_read() -> None:
    [event] = _record(
        {
            "EventID": 4104,
            "Provider": {"#attributes": {"Name": "PowerShellCore"}},
            "Execution": {"#attributes": {"ProcessID": 4242}},
        },
        {"ScriptBlockText": "Compress-Archive -Path C:\\d -DestinationPath C:\\d.zip", "Path": ""},
    )
    assert (event.kind, event.activity) == (Kind.PROCESS, Activity.SCRIPT)
    assert event.process is not None
    assert (event.process.pid, event.process.path) == (4242, "pwsh.exe")
