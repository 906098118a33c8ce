"""watch follows Windows events written as JSON lines (NXLog, Winlogbeat's file output) or as
pretty-printed objects (evtx_dump): what it reads is what detect reads, across restarts at any
byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import read
from tests.watch.test_follow import FIXTURES, Follower


@pytest.mark.parametrize(
    "fixture",
    [
        "windows_json/nxlog_mordor.json",
        "windows_json/winlogbeat.ndjson",
        "windows_json/evtx_dump.json",
    ],
)
def test_a_restart_at_any_byte_reads_each_record_once(fixture: str, tmp_path: Path) -> None:
    path = tmp_path / Path(fixture).name
    path.write_bytes((FIXTURES / fixture).read_bytes())
    expected, _ = read(path)
    assert len(expected) == 5
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


def test_a_growing_json_lines_file_is_followed(tmp_path: Path) -> None:
    lines = (FIXTURES / "windows_json" / "nxlog_mordor.json").read_bytes().splitlines(True)
    path = tmp_path / "nxlog.json"
    path.write_bytes(lines[0] + lines[1][:40])  # half a record
    follower = Follower(path)
    first = follower.read()
    assert len(first) == 1
    with path.open("ab") as out:
        out.write(lines[1][40:] + b"".join(lines[2:]))
    expected, report = read(path)
    assert first + follower.read() == expected
    assert follower.report.records == report.records
