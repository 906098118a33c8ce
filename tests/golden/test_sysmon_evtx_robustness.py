"""Hostile input for the EVTX source: the real Atomic Red Team log with bytes flipped in its
records, in its chunk headers and in its file header, cut short at random offsets, and random
bytes behind the "ElfFile" signature. Each mutated file is written to disk and read through
open_events as tidewaiter reads any file.

EVTX is not line framed: pyevtx-rs yields records and errors, each a record of the report, and
the layout check before it may report problems (a damaged header, a cut chunk) that are not
records (nor is a file header pyevtx-rs refuses). So: no exception escapes, every record
ends as an event, nothing to use, or a skip, those problems are the only skips beyond that, no
skip is a parser bug, and every problem names where it is (the file header, a chunk, a record,
or the record it followed). Parsing a 1 MiB log costs ~30 ms, so this is a bounded set of 30
seeded files, not 10,000.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

import pytest

from tests.robustness import assert_accounted
from tidewaiter.sources import ReadReport, all_sources, base, open_events
from tidewaiter.sources.sysmon_evtx import CHUNK_SIZE, HEADER_SIZE, MAGIC, scan_layout

all_sources()

ATOMIC = "EAS_PanacheSysmon_vs_AtomicRedTeam01.evtx"
CHUNK_HEADER = 512  # a chunk's header and tables; its records follow
WHERE = re.compile(
    r"file header|chunk \d+|record \d+( \(chunk \d+\))?|records \d+\.\.\d+"
    r"|after record \d+|before the first record"
)


@pytest.fixture(autouse=True)
def every_problem_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "MAX_EXAMPLES", 100_000)


def flip(rng: random.Random, data: bytearray, start: int, end: int, count: int) -> None:
    for _ in range(count):
        at = rng.randrange(start, end)
        data[at] ^= rng.randint(1, 255)


def mutations(original: bytes) -> list[tuple[str, bytes]]:
    """30 seeded mutated copies of the log, each named by what was done to it."""
    rng = random.Random(5001)
    chunks = (len(original) - HEADER_SIZE) // CHUNK_SIZE
    found: list[tuple[str, bytes]] = []
    for n in range(14):  # bytes flipped in the records of one chunk, a few or a burst
        data = bytearray(original)
        chunk = HEADER_SIZE + rng.randrange(chunks) * CHUNK_SIZE
        count = rng.choice([1, 4, 64, 1024])
        flip(rng, data, chunk + CHUNK_HEADER, chunk + CHUNK_SIZE, count)
        found.append((f"record area {n}: {count} bytes", bytes(data)))
    for n in range(5):  # a chunk header: magic, record ids, offsets, checksums
        data = bytearray(original)
        chunk = HEADER_SIZE + rng.randrange(chunks) * CHUNK_SIZE
        flip(rng, data, chunk, chunk + CHUNK_HEADER, rng.choice([1, 8]))
        found.append((f"chunk header {n}", bytes(data)))
    data = bytearray(original)
    flip(rng, data, len(MAGIC), 128, 2)
    found.append(("file header", bytes(data)))
    for n in range(6):  # cut anywhere, in the header, on and off chunk boundaries
        cut = rng.choice([rng.randrange(len(MAGIC), len(original)), HEADER_SIZE + CHUNK_SIZE])
        found.append((f"cut {n} at {cut}", original[:cut]))
    for size in (0, 100, HEADER_SIZE + 900, 3 * CHUNK_SIZE):
        noise = bytes(rng.randrange(256) for _ in range(size))
        found.append((f"{size} random bytes behind the signature", MAGIC + noise))
    return found


def read_mutated(path: Path, data: bytes) -> ReadReport:
    path.write_bytes(data)
    report = ReadReport()
    events = list(open_events(str(path), report))  # sniffed as EVTX by its signature
    assert report.files == {str(path): "sysmon-evtx"}
    layout = scan_layout(io.BytesIO(data))
    # A header pyevtx-rs refuses outright is one problem of the file, no record.
    refused = sum(p.reason.startswith("unreadable EVTX file") for p in report.examples)
    assert_accounted(events, report, report.records, len(layout.problems) + refused)
    for problem in report.examples:
        assert WHERE.fullmatch(problem.where), problem
    assert len(report.examples) == report.skipped_total
    return report


@pytest.mark.corpus
def test_thirty_mutated_logs(corpus: Path, tmp_path: Path) -> None:
    original = (corpus / "evtx" / ATOMIC).read_bytes()
    reports = {}
    for name, data in mutations(original):
        reports[name] = read_mutated(tmp_path / "mutated.evtx", data)
    assert len(reports) == 30
    # Records outside a damaged chunk still read: flips in one chunk's records lose at most it.
    for name, report in reports.items():
        if name.startswith("record area"):
            assert report.events > 300, (name, report.summary())
    assert sum(r.skipped_total for r in reports.values()) > 30  # the mutations are noticed
