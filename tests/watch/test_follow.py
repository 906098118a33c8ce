"""Following a file like `tail -F`: what a watch reads is what detect reads in the finished file,
across partial lines, rotation, truncation and restarts at any byte."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import read
from tests.watch.scenario import stream
from tidewaiter.events import Event
from tidewaiter.sources.base import ReadReport
from tidewaiter.watch.follow import FileFollower

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BIG = 1 << 30


class Follower:
    """A FileFollower with its report and what it said."""

    def __init__(self, path: Path, **options: Any) -> None:
        self.report = ReadReport()
        self.said: list[str] = []
        self.follower = FileFollower(
            str(path), self.report, self.said.append, options.pop("max_record", 1 << 20), **options
        )

    def read(self, budget: int = BIG) -> list[Event]:
        return self.follower.poll(budget)


def test_lines_are_read_as_they_complete_and_numbered_as_detect_numbers_them(
    tmp_path: Path,
) -> None:
    lines = stream(chains=1, noise_per_chain=4)
    path = tmp_path / "falco.jsonl"
    path.write_bytes(lines[0] + b"\n" + lines[1][:30])  # a blank line, then half a record
    follower = Follower(path)
    first = follower.read()
    assert len(first) == 1
    with path.open("ab") as out:
        out.write(lines[1][30:] + b"".join(lines[2:]))
    rest = follower.read()
    expected, report = read(path)
    assert first + rest == expected
    assert [e.raw.line for e in first + rest][:2] == [1, 3]
    assert follower.report.records == report.records


def test_a_rotated_file_is_finished_and_the_new_one_read_from_its_start(tmp_path: Path) -> None:
    lines = stream(chains=2, noise_per_chain=3)
    path = tmp_path / "falco.jsonl"
    path.write_bytes(b"".join(lines[:4]))
    follower = Follower(path)
    events = follower.read()
    with path.open("ab") as out:  # written just before the rotation, its last line unterminated
        out.write(b"".join(lines[4:6]) + lines[6].rstrip(b"\n"))
    os.rename(path, tmp_path / "falco.jsonl.1")
    events += follower.read()  # the name is gone: the old file is still followed
    path.write_bytes(b"".join(lines[7:]))
    events += follower.read()
    old, _ = read(tmp_path / "falco.jsonl.1")
    new, _ = read(path)
    assert [(e.time, e.raw.line) for e in events] == [(e.time, e.raw.line) for e in old + new]


def test_a_truncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    lines = stream(chains=1, noise_per_chain=6)
    path = tmp_path / "falco.jsonl"
    path.write_bytes(b"".join(lines))
    follower = Follower(path)
    assert len(follower.read()) == len(lines)
    with path.open("r+b") as out:  # copytruncate
        out.truncate(0)
    assert follower.read() == []
    path.write_bytes(b"".join(lines[:2]))
    again = follower.read()
    assert [e.raw.line for e in again] == [1, 2]
    assert any("truncated" in message for message in follower.said)


@pytest.mark.parametrize(
    "fixture",
    [
        "tetragon/pretty.json",
        "zeek/conn.log",
        "falco/alerts.jsonl",
        "zeek/broken.log",
        "windows_json/nxlog_mordor.json",
        "windows_json/evtx_dump.json",
    ],
)
def test_a_restart_at_any_byte_reads_each_record_once(fixture: str, tmp_path: Path) -> None:
    """Stop after any number of bytes (in the middle of a multi-line record, after a Zeek
    header), resume from the checkpointed position: the events are detect's, each once."""
    path = tmp_path / Path(fixture).name
    path.write_bytes((FIXTURES / fixture).read_bytes())
    expected, _ = read(path)
    assert expected
    size = path.stat().st_size
    for stop in range(1, size, max(1, size // 40)):
        first = Follower(path)
        events = first.read(stop)
        position = first.follower.position()
        assert position is not None
        first.follower.close()
        second = Follower(path)
        second.follower.restore(position)
        events += second.read()
        assert events == expected, f"stopped after {stop} bytes"


def test_a_file_rotated_while_stopped_is_finished_before_the_new_one(tmp_path: Path) -> None:
    lines = stream(chains=2, noise_per_chain=3)
    path = tmp_path / "falco.jsonl"
    path.write_bytes(b"".join(lines[:5]))
    first = Follower(path)
    events = first.read()
    position = first.follower.position()
    assert position is not None
    first.follower.close()
    with path.open("ab") as out:
        out.write(b"".join(lines[5:8]))
    os.rename(path, tmp_path / "falco.jsonl.1")
    path.write_bytes(b"".join(lines[8:]))
    second = Follower(path)
    second.follower.restore(position)
    events += second.read()
    events += second.read()  # the rotated file ended: on to the new one
    old, _ = read(tmp_path / "falco.jsonl.1")
    new, _ = read(path)
    assert [(e.time, e.raw.line) for e in events] == [(e.time, e.raw.line) for e in old + new]
    assert any("rotated while tidewaiter was stopped" in m for m in second.said)


def test_a_file_replaced_while_stopped_is_reported_and_read_from_its_start(
    tmp_path: Path,
) -> None:
    lines = stream(chains=1, noise_per_chain=4)
    path = tmp_path / "falco.jsonl"
    path.write_bytes(b"".join(lines[:3]))
    first = Follower(path)
    first.read()
    position = first.follower.position()
    assert position is not None
    first.follower.close()
    path.unlink()
    path.write_bytes(b"".join(lines[3:]))
    second = Follower(path)
    second.follower.restore(position)
    assert [e.raw.line for e in second.read()] == list(range(1, len(lines) - 2))
    assert any("replaced while tidewaiter was stopped" in m for m in second.said)


def test_an_oversized_record_is_skipped_with_its_reason_and_never_held_whole(
    tmp_path: Path,
) -> None:
    lines = stream(chains=1, noise_per_chain=2)
    path = tmp_path / "falco.jsonl"
    path.write_bytes(lines[0] + b'{"output_fields": {"x": "' + b"A" * 5000)
    follower = Follower(path, max_record=1000)
    assert len(follower.read(2000)) == 1
    assert len(follower.read(2000)) == 0  # the rest of the long line goes by unkept
    assert follower.follower.position()["offset"] == len(lines[0])  # type: ignore[index]
    with path.open("ab") as out:
        out.write(b'"}}\n' + b"".join(lines[1:]))
    rest = follower.read()
    assert [e.raw.line for e in rest] == list(range(3, len(lines) + 2))
    assert follower.report.skipped == {"record longer than 1000 bytes": 1}
    assert follower.report.examples[0].where == "line 2"


def test_a_missing_file_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "later.jsonl"
    follower = Follower(path)
    assert follower.read() == []
    assert follower.read() == []
    assert follower.said == [f"waiting for {path} to appear"]
    path.write_bytes(b"".join(stream(chains=1, noise_per_chain=0)))
    assert len(follower.read()) == 5


def test_a_head_too_short_to_recognise_is_waited_on_then_recognised(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    header = (FIXTURES / "zeek" / "conn.log").read_bytes()
    path.write_bytes(header[:12])  # "#separator \x09" and no newline yet
    follower = Follower(path)
    assert follower.read() == []
    assert follower.said == []
    path.write_bytes(header)
    expected, _ = read(path)
    assert follower.read() == expected


def test_formats_that_cannot_be_followed_are_refused_with_the_reason(tmp_path: Path) -> None:
    evtx = tmp_path / "sysmon.evtx"
    evtx.write_bytes(b"ElfFile\x00" + bytes(4096))
    follower = Follower(evtx)
    assert follower.read() == []
    [message] = follower.said
    assert "cannot be followed as it grows" in message
    assert "tidewaiter detect" in message
    junk = tmp_path / "junk.log"
    junk.write_bytes(b"".join(b"hello %d\n" % n for n in range(20)))
    follower = Follower(junk)
    assert follower.read() == []
    assert "not in a format tidewaiter reads" in follower.said[0]


def test_from_end_skips_what_is_there_and_keeps_counting_lines(tmp_path: Path) -> None:
    lines = stream(chains=1, noise_per_chain=4)
    path = tmp_path / "falco.jsonl"
    path.write_bytes(b"".join(lines[:5]))
    follower = Follower(path, from_end=True)
    assert follower.read() == []
    with path.open("ab") as out:
        out.write(b"".join(lines[5:]))
    assert [e.raw.line for e in follower.read()] == list(range(6, len(lines) + 1))


def test_what_is_not_read_yet_is_counted_as_behind(tmp_path: Path) -> None:
    """A burst waits in its file, read a bounded amount per round and reported, not dropped."""
    lines = stream(chains=4, noise_per_chain=20)
    path = tmp_path / "falco.jsonl"
    path.write_bytes(b"".join(lines))
    follower = Follower(path)
    total, events = path.stat().st_size, []
    events += follower.read(4096)
    assert follower.follower.behind() == total - 4096
    while batch := follower.read(4096):
        events += batch
    assert follower.follower.behind() == 0
    assert len(events) == len(lines)


def test_an_unreadable_path_is_reported_once_and_read_when_it_can_be(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.write_text("not a folder yet")  # opening logs/falco.jsonl fails: ENOTDIR
    path = folder / "falco.jsonl"
    follower = Follower(path)
    assert follower.read() == follower.read() == []
    assert len(follower.said) == 1
    assert "cannot read" in follower.said[0]
    folder.unlink()
    folder.mkdir()
    path.write_bytes(b"".join(stream(chains=1, noise_per_chain=0)))
    assert len(follower.read()) == 5
