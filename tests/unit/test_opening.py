"""Opening inputs as they are handed over: every compression by its magic bytes (never its name),
pipes that cannot seek, folders in a stable order, globs, and what is said when nothing fits."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from tests.helpers import read
from tidewaiter.sources import ReadReport, UnknownFormat, open_all, open_events
from tidewaiter.sources.opening import CannotDecompress, compression, expand, open_input

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CONN = FIXTURES / "zeek" / "conn.log"
COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_each_compression_is_read_by_its_magic_whatever_the_name(tmp_path: Path, kind: str) -> None:
    plain_events, _ = read(CONN)
    assert plain_events
    packed = tmp_path / "conn.log"  # no telling suffix: a rotated log is often just .1
    packed.write_bytes(COMPRESSORS[kind](CONN.read_bytes()))
    assert compression(packed.read_bytes()[:6]) == kind
    events, report = read(packed)
    assert report.files == {str(packed): "zeek"}
    assert [e.traffic for e in events] == [e.traffic for e in plain_events]
    assert [e.raw.line for e in events] == [e.raw.line for e in plain_events]


def test_concatenated_gzip_members_are_one_stream(tmp_path: Path) -> None:
    lines = CONN.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    packed = tmp_path / "conn.log.gz"  # `cat a.gz b.gz`, as log shippers append
    packed.write_bytes(
        gzip.compress(b"".join(lines[:half])) + gzip.compress(b"".join(lines[half:]))
    )
    assert len(read(packed)[0]) == len(read(CONN)[0])


def test_a_truncated_archive_keeps_what_came_before_and_says_why(tmp_path: Path) -> None:
    data = gzip.compress(CONN.read_bytes() * 200)
    packed = tmp_path / "conn.log.gz"
    packed.write_bytes(data[: len(data) // 2])
    events, report = read(packed)
    assert len(events) > 100  # of 800: what came before the cut
    cut = [r for r in report.skipped if r.startswith("the rest cannot be read")]
    assert len(cut) == 1
    assert report.skipped[cut[0]] == 1


def test_corrupt_compressed_head_is_an_error_saying_so(tmp_path: Path) -> None:
    bad = tmp_path / "x.gz"
    bad.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(CannotDecompress, match="gzip-compressed, but the data is corrupt"):
        open_input(str(bad))


def test_compressed_content_in_no_format_says_both(tmp_path: Path) -> None:
    packed = tmp_path / "notes.gz"
    packed.write_bytes(gzip.compress(b"hello, this is not telemetry\n"))
    with pytest.raises(UnknownFormat, match=r"notes\.gz: gzip-compressed, and its content is not"):
        open_events(str(packed), ReadReport())


def test_a_pipe_is_read_without_seeking() -> None:
    """Process substitution hands over /dev/fd/N, a pipe: sniffing must not seek back."""
    reader, writer = os.pipe()
    feeder = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
        stdin=subprocess.PIPE,
        stdout=writer,
    )
    os.close(writer)
    assert feeder.stdin is not None
    feeder.stdin.write(gzip.compress(CONN.read_bytes()))
    feeder.stdin.close()
    try:
        events, report = read(f"/dev/fd/{reader}")
    finally:
        os.close(reader)
        feeder.wait(timeout=30)
    assert report.files == {f"/dev/fd/{reader}": "zeek"}
    assert len(events) == len(read(CONN)[0])


def test_folders_are_read_recursively_in_a_stable_order_and_paths_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "logs" / "b").mkdir(parents=True)
    (tmp_path / "logs" / "a").mkdir()
    for name in ("logs/b/2.log", "logs/a/1.log", "logs/0.log", "logs/.hidden", "logs/README"):
        (tmp_path / name).write_text("x\n")
    monkeypatch.chdir(tmp_path)
    found = expand(["logs"])
    assert found.files == [
        str(tmp_path / "logs" / "0.log"),
        str(tmp_path / "logs" / "README"),
        str(tmp_path / "logs" / "a" / "1.log"),
        str(tmp_path / "logs" / "b" / "2.log"),
    ]
    assert found.listed == set(found.files)
    assert expand(["logs/**/*.log"]).files == [
        str(tmp_path / "logs" / "0.log"),
        str(tmp_path / "logs" / "a" / "1.log"),
        str(tmp_path / "logs" / "b" / "2.log"),
    ]
    assert expand(["nothing-*.log"]).problems == ["nothing-*.log: no file matches this pattern"]
    assert expand(["-", "logs/0.log"]).files == ["-", str(tmp_path / "logs" / "0.log")]


def test_a_file_in_no_format_inside_a_folder_is_passed_over_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "conn.log.gz").write_bytes(gzip.compress(CONN.read_bytes()))
    (tmp_path / "LICENSE").write_text("Permission is hereby granted\n")
    report, unreadable, passed = ReadReport(), [], []
    streams = open_all([str(tmp_path)], report, None, unreadable, passed)
    assert len(streams) == 1
    assert unreadable == []
    assert len(passed) == 1
    assert passed[0].startswith(f"{tmp_path / 'LICENSE'}: not in a format")
    # Named on the command line, the same file is an error.
    open_all([str(tmp_path / "LICENSE")], ReadReport(), None, unreadable)
    assert len(unreadable) == 1
