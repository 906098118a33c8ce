"""Hostile input for the Tetragon source: random bytes, random objects in Tetragon's vocabulary
(one a line or pretty-printed over many), and 10,000 seeded mutations of the fixture and corpus
records, as JSON lines and as pretty-printed objects.

Tetragon objects may span lines, so a record is not a line: it is the line that opens an object
(a lone ``{``) with the lines that continue it, or one JSON line. The reader counts a record at
each non-blank line where no object is being assembled (base.read_lines asks the decoder's
``assembling``); record_starts replays that rule on a decoder of its own. Every record must then
end as events, nothing to use, or a problem located by its line, and no problem be a parser bug.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.robustness import (
    MUTATIONS,
    SETTINGS,
    assert_accounted,
    assert_located,
    edit_lines,
    json_values,
    mutated_records,
    nonblank_lines,
    read,
    record_starts,
    scalars,
)
from tidewaiter.events import Event
from tidewaiter.sources import ReadReport, all_sources, base, get

all_sources()
import tidewaiter.sources.tetragon  # noqa: E402, F401 - registers the source

SOURCE = get("tetragon")
PRETTY = 1_000  # mutated pretty-printed objects (~75 lines each), besides 10,000 JSON lines
KEYS = (
    "process_exec", "process_exit", "process_kprobe", "process_connect", "process_tracepoint",
    "node_name", "time", "process", "parent", "exec_id", "pid", "uid", "cwd", "binary",
    "arguments", "start_time", "docker", "pod", "namespace", "name", "container", "id", "image",
    "workload", "function_name", "args", "sock_arg", "file_arg", "path_arg", "int_arg",
    "size_arg", "saddr", "daddr", "sport", "dport", "path", "source_ip", "destination_ip",
    "source_port", "destination_port",
)  # fmt: skip
SCALARS = scalars(
    "2024-05-02T10:00:20Z", "/usr/bin/curl", "tcp_sendmsg", "security_file_permission", "{", "}"
)
VALUES = json_values(SCALARS, KEYS)
RECORDS = st.fixed_dictionaries(
    {},
    optional={
        "process_exec": VALUES,
        "process_exit": VALUES,
        "process_kprobe": st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5) | VALUES,
        "process_connect": VALUES,
        "node_name": SCALARS,
        "time": SCALARS,
    },
)


@pytest.fixture(autouse=True)
def every_problem_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "MAX_EXAMPLES", 10 * MUTATIONS)


def account(data: bytes) -> tuple[list[Event], ReadReport]:
    events, report = read(SOURCE, data)
    assert_accounted(events, report, record_starts(SOURCE, data))
    assert_located(report, data.count(b"\n") + 1)
    return events, report


def pretty_objects(*paths: Path) -> list[bytes]:
    """The pretty-printed objects of files: from a line ``{`` to the next ``}`` at column 0."""
    objects: list[bytes] = []
    for path in paths:
        current: list[bytes] = []
        for line in path.read_bytes().splitlines(keepends=True):
            if line.rstrip() == b"{":
                current = []
            current.append(line)
            if line.rstrip() == b"}":
                objects.append(b"".join(current).rstrip() + b"\n")
    return objects


# --- hypothesis -----------------------------------------------------------------------------


@SETTINGS
@given(st.lists(st.binary(max_size=120), max_size=12).map(b"\n".join))
def test_random_bytes(data: bytes) -> None:
    account(data)


@settings(SETTINGS, max_examples=50)
@given(st.lists(st.tuples(RECORDS | VALUES, st.sampled_from([None, 1, 2, 4])), max_size=4))
def test_random_objects_in_tetragon_vocabulary(records: list[tuple[object, int | None]]) -> None:
    account(b"".join(json.dumps(r, indent=indent).encode() + b"\n" for r, indent in records))


@settings(SETTINGS, max_examples=50)
@given(st.randoms(use_true_random=False), st.integers(1, 4))
def test_pretty_printed_objects_with_lines_edited(rng: random.Random, count: int) -> None:
    objects = pretty_objects(Path(__file__).parent.parent / "fixtures" / "tetragon" / "pretty.json")
    account(b"".join(edit_lines(rng, rng.choice(objects)) for _ in range(count)))


# --- seeded mutations -----------------------------------------------------------------------


def mutated_json_lines(records: list[bytes], seed: int) -> None:
    lines = mutated_records(records, seed)
    _, report = account(b"\n".join(lines) + b"\n")
    assert report.records >= MUTATIONS * 0.99  # a lone "{" may swallow the line after it
    assert report.events > MUTATIONS // 4  # the mutations reach both sides
    assert report.skipped_total > MUTATIONS // 10


def test_ten_thousand_mutated_json_lines(fixtures: Path) -> None:
    mutated_json_lines(
        nonblank_lines(
            fixtures / "tetragon" / "export.jsonl",
            fixtures / "benign" / "package-installs.tetragon.jsonl",
        ),
        seed=2411,
    )


def test_ten_thousand_mutated_pretty_printed_objects(fixtures: Path) -> None:
    objects = pretty_objects(fixtures / "tetragon" / "pretty.json")
    rng = random.Random(2412)
    data = b"".join(edit_lines(rng, objects[i % len(objects)]) for i in range(PRETTY))
    _, report = account(data)
    assert report.events > PRETTY // 10
    assert report.skipped_total > PRETTY // 10


@pytest.mark.corpus
def test_ten_thousand_mutated_corpus_records(corpus: Path) -> None:
    folder = corpus / "tetragon"
    mutated_json_lines(nonblank_lines(folder / "testdata_events.jsonl"), seed=2413)
    objects = pretty_objects(*sorted(folder.glob("*.json")))
    assert len(objects) == 7
    rng = random.Random(2414)
    data = b"".join(edit_lines(rng, objects[i % len(objects)]) for i in range(PRETTY))
    _, report = account(data)
    assert report.events > PRETTY // 10
    assert report.skipped_total > PRETTY // 10


# --- a bug these tests found, fixed ------------------------------------------------------------


def test_an_object_opened_inside_an_unterminated_one_is_a_record(fixtures: Path) -> None:
    pretty = (fixtures / "tetragon" / "pretty.json").read_bytes().split(b"\n{\n")[1]
    events, report = read(SOURCE, b"{\n{\n" + pretty + b"\n")
    assert (len(events), report.skipped_total) == (1, 1)  # the second object reads
    assert report.records == 2
    assert [str(p) for p in report.examples] == ["fuzz: line 1: unterminated multi-line record"]


def test_a_complete_line_after_an_unterminated_object_is_not_lost(fixtures: Path) -> None:
    line = (fixtures / "tetragon" / "export.jsonl").read_bytes().splitlines(keepends=True)[0]
    events, report = read(SOURCE, b"{\n" + line)
    assert len(events) == 1
    assert (report.records, report.skipped_total) == (2, 1)
    assert report.examples[0].where == "line 1"
