"""watch follows Windows events written as JSON lines (NXLog, Winlogbeat's file output) as they
grow; restarts at any byte are in test_follow's parametrized test."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import read
from tests.watch.test_follow import FIXTURES, Follower


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
