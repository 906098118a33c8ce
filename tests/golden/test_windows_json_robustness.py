"""Hostile input for the Windows JSON and Syslog-table sources: random bytes, random JSON in
their vocabulary, and 10,000 seeded mutations of the fixture records, as JSON lines and inside
one array.

Both read whole files with json_stream's framer, so a record is a JSON document (or a framing
problem), not a line. What must hold: no exception escapes, each record ends as events, nothing
to use, or a problem located at a line of the input (audit rows, like auditd's lines, may share
one event), no problem is a parser bug, and the line decoder ``watch`` uses survives the same
input.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.robustness import (
    MUTATIONS,
    SETTINGS,
    assert_accounted,
    assert_located,
    assert_no_parser_bugs,
    json_values,
    mutated_records,
    read,
    scalars,
)
from tidewaiter.events import RawRef
from tidewaiter.sources import ReadReport, base, get
from tidewaiter.sources.base import RecordError, read_lines
from tidewaiter.sources.json_stream import documents

KEYS = (
    "Event", "System", "EventData", "Data", "@Name", "#text", "#attributes", "Provider", "Name",
    "EventID", "TimeCreated", "SystemTime", "Computer", "EventRecordID", "Execution", "ProcessID",
    "Image", "CommandLine", "ProcessId", "TargetFilename", "DestinationIp", "DestinationPort",
    "Initiated", "UtcTime", "ScriptBlockText", "winlog", "event_data", "event_id", "provider_name",
    "process", "executable", "command_line", "pid", "parent", "file", "path", "destination", "ip",
    "network", "direction", "event", "original", "@timestamp", "_source", "SourceName",
    "Hostname", "EventData", "events", "records", "SyslogMessage", "TimeGenerated",
)  # fmt: skip
WORDS = (
    "Microsoft-Windows-Sysmon", "Microsoft-Windows-PowerShell", "Linux-Sysmon", 1, 3, 11, 4104,
    "2024-05-02T10:00:00Z", "2024-05-02 10:00:00.100", "egress", "true", "<Event><System/>",
    "<EventData><Data Name='Image'>x</Data></EventData>", "type=EOE msg=audit(1.0:1): ",
)  # fmt: skip


@pytest.fixture(autouse=True)
def every_problem_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "MAX_EXAMPLES", 10 * MUTATIONS)


def account(name: str, data: bytes) -> ReadReport:
    source = get(name)
    events, report = read(source, data)
    if name == "azure-syslog":  # audit rows joined into one event are all "used" (see auditd)
        assert_no_parser_bugs(report)
        assert report.events == len(events)
        used = report.records - report.ignored - report.skipped_total
        assert used >= 0
        assert used > 0 or not events
    else:
        assert_accounted(events, report, report.records)
    assert_located(report, data.count(b"\n") + 1)
    if source.line_framed:  # the line decoder watch uses must not leak exceptions either
        stream = ReadReport()
        list(read_lines(source, "fuzz", io.BytesIO(data), stream))
        assert_no_parser_bugs(stream)
    return report


def fixture_records(fixtures: Path) -> list[bytes]:
    """Every fixture record (array elements and evtx_dump's objects alike) as one compact JSON
    line; the golden tests check that these files frame as intended."""
    paths = [
        *sorted((fixtures / "windows_json").iterdir()),
        fixtures / "azure_syslog" / "syslog_table.json",
    ]
    return [
        orjson.dumps(orjson.loads(document.data))
        for path in paths
        for document in documents(io.BytesIO(path.read_bytes()))
    ]


@pytest.mark.parametrize("name", ["windows-json", "azure-syslog"])
@SETTINGS
@given(data=st.lists(st.binary(max_size=120), max_size=12).map(b"\n".join))
def test_random_bytes(name: str, data: bytes) -> None:
    account(name, data)


@pytest.mark.parametrize("name", ["windows-json", "azure-syslog"])
@SETTINGS
@given(
    values=st.lists(json_values(scalars(*WORDS[:8]) | st.sampled_from(WORDS), KEYS), max_size=6),
    as_array=st.booleans(),
)
def test_random_json_in_the_vocabulary(name: str, values: list[object], as_array: bool) -> None:
    lines = [json.dumps(v).encode() for v in values]
    data = b"[" + b",\n".join(lines) + b"]" if as_array else b"\n".join(lines)
    account(name, data)


def test_fixture_records_cover_every_shape(fixtures: Path) -> None:
    records = fixture_records(fixtures)
    assert len(records) == 5 + 5 + 6 + 4 + 5 + 15  # evtx_dump, winlogbeat, NXLog, Event table...
    _, report = read(get("windows-json"), b"\n".join(records[:-15]))
    assert (report.skipped_total, report.events) == (0, 5 + 5 + 5 + 4 + 5)


@pytest.mark.parametrize(("name", "seed"), [("windows-json", 5101), ("azure-syslog", 5102)])
def test_ten_thousand_mutated_records(fixtures: Path, name: str, seed: int) -> None:
    records = fixture_records(fixtures)
    lines = mutated_records(records, seed=seed)
    report = account(name, b"\n".join(lines) + b"\n")
    assert report.records >= MUTATIONS * 0.9
    assert report.skipped_total > MUTATIONS // 20  # the mutations reach both sides
    if name == "windows-json":
        assert report.events > MUTATIONS // 10
    array = account(name, b"[" + b",\n".join(lines[:3000]) + b"]\n")  # one array, broken inside
    assert array.records >= 2000


def test_the_stream_decoder_survives_the_same_mutations(fixtures: Path) -> None:
    decoder = get("windows-json").decoder("mutated")
    for number, line in enumerate(mutated_records(fixture_records(fixtures), 5103)[:3000], 1):
        with contextlib.suppress(RecordError):
            list(decoder.feed(line + b"\n", RawRef("windows-json", "mutated", line=number)))
    with contextlib.suppress(RecordError):
        list(decoder.flush())
