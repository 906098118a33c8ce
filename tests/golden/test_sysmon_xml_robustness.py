"""Hostile input for the Sysmon XML source: random bytes, random XML made of Windows event
pieces, and 10,000 seeded mutations of the fixture events (wevtutil, PowerShell script blocks,
Sysmon for Linux syslog lines).

The source reads whole files with its own framer (read_file), not base.read_lines: an <Event>
element is one record wherever its lines break, counted at the line where it opens; a line
outside any element is a record unless it is XML scaffolding (<?xml?>, <Events>); a line
declaring a DTD is one refused record. So records are not lines. What must hold: no exception
escapes, each record ends as events, nothing to use, or a problem at a line of the input, no
problem is a parser bug, and no more records are counted than openings plus lines.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.robustness import (
    MUTATIONS,
    SETTINGS,
    assert_accounted,
    assert_located,
    assert_no_parser_bugs,
    mutated_records,
    read,
)
from tidewaiter.events import RawRef
from tidewaiter.sources import ReadReport, all_sources, base, get
from tidewaiter.sources.base import read_lines

all_sources()
import tidewaiter.sources.sysmon_xml  # noqa: E402, F401 - registers the source

SOURCE = get("sysmon-xml")
NS = "http://schemas.microsoft.com/win/2004/08/events/event"
PIECES = (
    f"<Event xmlns='{NS}'>", "<Event>", "</Event>", "<Events>", "</Events>", "<System>",
    "</System>", "<EventID>1</EventID>", "<EventID>3</EventID>", "<EventID>11</EventID>",
    "<EventID>4104</EventID>", "<Provider Name='Microsoft-Windows-Sysmon'/>",
    "<TimeCreated SystemTime='2024-05-02T10:00:00.000Z'/>", "<Computer>ws1</Computer>",
    "<EventData>", "</EventData>", "<Data Name='Image'>C:\\x.exe</Data>",
    "<Data Name='ProcessId'>x</Data>", "<Data Name='TargetFilename'>", "</Data>",
    "<Data Name='DestinationIp'>10.0.0.1</Data>", "<?xml version='1.0'?>", "<!ENTITY a 'b'>",
    "&amp;", "&x;", "<![CDATA[", "]]>", "host sysmon: ", "\n", "\x00",
)  # fmt: skip


@pytest.fixture(autouse=True)
def every_problem_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "MAX_EXAMPLES", 10 * MUTATIONS)


def account(data: bytes) -> ReadReport:
    events, report = read(SOURCE, data)
    lines = data.count(b"\n") + 1
    assert_accounted(events, report, report.records)  # each record once, none a parser bug
    assert report.records <= len(re.findall(rb"<Event[\s>]", data)) + lines
    assert_located(report, lines)
    # The stream decoder (standard input, live pipes) frames the same way: it must not leak
    # exceptions either (its records are counted by lines, so only the bugs are checked).
    stream = ReadReport()
    list(read_lines(SOURCE, "fuzz", io.BytesIO(data), stream))
    assert_no_parser_bugs(stream)
    return report


@SETTINGS
@given(st.lists(st.binary(max_size=120), max_size=12).map(b"\n".join))
def test_random_bytes(data: bytes) -> None:
    account(data)


@settings(SETTINGS, max_examples=60)
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=5), max_size=40), st.booleans())
def test_random_event_pieces(pieces: list[str], framed: bool) -> None:
    text = "".join(pieces)
    if framed:  # inside an element, so that the pieces reach the XML parser
        text = f"<Event xmlns='{NS}'><System><EventID>1</EventID></System>{text}</Event>"
    account(text.encode("utf-8", "surrogatepass"))


def fixture_records(folder: Path) -> list[bytes]:
    """Each Event element of the XML fixtures (as many lines as it spans), and each syslog line."""
    records: list[bytes] = []
    for name in ("wevtutil_sysmon.xml", "powershell_4104.xml", "truncated.xml"):
        records += re.findall(rb"<Event[\s>].*?</Event>", (folder / name).read_bytes(), re.S)
    for name in ("linux_syslog.log", "non_utf8.log"):
        records += [line for line in (folder / name).read_bytes().splitlines() if line.strip()]
    return records


def test_ten_thousand_mutated_records(fixtures: Path) -> None:
    lines = mutated_records(fixture_records(fixtures / "sysmon"), seed=4001)
    data = b"<Events>\n" + b"\n".join(lines) + b"\n</Events>\n"
    report = account(data)
    assert report.records > MUTATIONS * 0.9
    assert report.events > MUTATIONS // 10  # the mutations reach both sides
    assert report.skipped_total > MUTATIONS // 10


def test_the_stream_decoder_survives_the_same_mutations(fixtures: Path) -> None:
    decoder = SOURCE.decoder("mutated")
    for number, line in enumerate(
        mutated_records(fixture_records(fixtures / "sysmon"), 4002)[:2000]
    ):
        for part in line.splitlines(keepends=True):
            with contextlib.suppress(base.RecordError):
                list(decoder.feed(part, RawRef(SOURCE.name, "mutated", line=number)))
