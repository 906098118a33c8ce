"""Hostile input for the Zeek source: random bytes, random TSV lines under a random header, and
10,000 seeded mutations of the fixture and corpus logs, TSV and JSON alike.

Lines starting with "#" are the TSV header block: framing the decoder reads, never records (the
source's comment_prefix), though a broken header line is still reported at its line. Every other
non-blank line is one record ending as an event, nothing to use, or a located problem, and no
problem is a parser bug. Header lines are mutated too, and the mutations run through one decoder
in order, so a damaged #separator or #fields line changes how every later row is read.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.robustness import (
    MUTATIONS,
    SETTINGS,
    account,
    assert_located,
    mutated_records,
    nonblank_lines,
)
from tidewaiter.sources import all_sources, base, get

all_sources()
import tidewaiter.sources.zeek  # noqa: E402, F401 - registers the source

SOURCE = get("zeek")
HEADER = (
    "#separator \\x09", "#separator \\x2c", "#separator \\x", "#separator ", "#path\tconn",
    "#path\tdns", "#unset_field\t-", "#empty_field\t(empty)",
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\torig_bytes\tresp_bytes",
    "#fields\tts\tid.orig_h", "#fields", "#types\ttime\tstring", "#close\t2024",
)  # fmt: skip
CELLS = (
    "1714644005.000000", "-", "(empty)", "Cb1", "10.0.0.1", "::1", "443",
    "99999999999999999999", "x", "", "1e400", "nan",
)  # fmt: skip


@pytest.fixture(autouse=True)
def every_problem_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "MAX_EXAMPLES", 10 * MUTATIONS)


def read_accounted(data: bytes) -> None:
    _, report = account(SOURCE, data)
    assert_located(report, data.count(b"\n") + 1)


@SETTINGS
@given(st.lists(st.binary(max_size=120), max_size=12).map(b"\n".join))
def test_random_bytes(data: bytes) -> None:
    read_accounted(data)


rows = st.lists(st.sampled_from(CELLS) | st.text(max_size=6), max_size=10).map("\t".join)


@settings(SETTINGS, max_examples=60)
@given(st.lists(st.sampled_from(HEADER) | rows, max_size=12))
def test_random_tsv_lines_under_random_headers(lines: list[str]) -> None:
    read_accounted("\n".join(lines).encode("utf-8", "surrogatepass"))


def mutated_logs(logs: list[list[bytes]], seed: int, min_events: int) -> None:
    """Copies of the logs, one after another, each line mutated with even odds, until 10,000
    lines have been: a copy's own header (its #separator) resets what an earlier one broke."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    mutations = 0
    while mutations < MUTATIONS:
        for original in rng.choice(logs):
            line = original
            if rng.random() < 0.5 and mutations < MUTATIONS:
                line = mutated_records([original], seed=rng.randrange(2**32), count=1)[0]
                mutations += 1
            lines.append(line)
    data = b"\n".join(lines) + b"\n"
    _, report = account(SOURCE, data)  # records: the non-blank lines not starting with "#"
    assert_located(report, len(lines))
    assert report.events > min_events  # the mutations reach both sides
    assert report.skipped_total > MUTATIONS // 10


def test_ten_thousand_mutated_records(fixtures: Path) -> None:
    folder = fixtures / "zeek"
    paths = ("conn.log", "office-conn.log", "dns.log", "broken.log", "conn.json")
    mutated_logs([nonblank_lines(folder / path) for path in paths], 3001, 500)


def test_mutated_tsv_rows_keep_their_header(fixtures: Path) -> None:
    """Rows mutated under an intact header: the header's fields govern every row."""
    text = (fixtures / "zeek" / "conn.log").read_bytes().splitlines()
    header = [line for line in text if line.startswith(b"#")]
    body = [line for line in text if line.strip() and not line.startswith(b"#")]
    lines = mutated_records(body, seed=3002)
    _, report = account(SOURCE, b"\n".join(header + lines) + b"\n")
    assert report.records == sum(1 for line in lines if line.strip() and line[:1] != b"#")
    assert report.events > MUTATIONS // 10


@pytest.mark.corpus
def test_ten_thousand_mutated_corpus_records(corpus: Path) -> None:
    logs = [nonblank_lines(path) for path in sorted((corpus / "zeek").glob("*.log"))]
    mutated_logs(logs, 3003, 200)  # one row under a ten-line header: fewer rows survive
