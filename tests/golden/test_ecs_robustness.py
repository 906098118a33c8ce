"""Hostile input for the ECS source: random bytes, random documents in ECS's vocabulary (one a
line, pretty-printed, in arrays), and 10,000 seeded mutations of the fixture and real documents,
as JSON lines and pretty-printed.

Files are read with json_stream's framer, so a record is a JSON document (or a framing problem),
not a line. Every record must end as events, nothing to use, another format's record, or a
problem located at a line of the input; no problem may be a parser bug, and the line decoder
``watch`` uses must survive the same input.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.robustness import (
    MUTATIONS,
    SETTINGS,
    assert_accounted,
    assert_located,
    assert_no_parser_bugs,
    edit_lines,
    json_values,
    mutated_records,
    read,
    scalars,
)
from tidewaiter.events import Event
from tidewaiter.sources import ReadReport, all_sources, base, get
from tidewaiter.sources.base import read_lines

all_sources()
SOURCE = get("ecs")
PRETTY = 1_000
KEYS = (
    "@timestamp", "ecs", "event", "module", "dataset", "action", "category", "type", "id",
    "original", "created", "host", "hostname", "name", "process", "pid", "ppid", "parent",
    "args", "command_line", "executable", "working_directory", "entity_id", "user", "file",
    "path", "size", "Ext", "header_bytes", "source", "destination", "ip", "port", "bytes",
    "network", "direction", "container", "image", "tag", "runtime", "orchestrator", "namespace",
    "resource", "kubernetes", "pod", "auditd", "messages", "zeek", "session_id", "_source",
    "winlog", "process.pid", "event.action",
)  # fmt: skip
SCALARS = scalars(
    "2024-05-02T10:00:20Z", "executed", "exec", "creation", "connection_attempted", "zeek",
    "zeek.connection", "auditd", "process", "file", "network", "start", "end", "egress",
    "inbound", "203.0.113.5", "/bin/tar", "type=EXECVE msg=audit(1.0:1): argc=1 a0=\"x\"", "{",
)  # fmt: skip
VALUES = json_values(SCALARS, KEYS)
DOCUMENTS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8).map(
    lambda d: {"@timestamp": "2024-05-02T10:00:00Z", **d}
)


@pytest.fixture(autouse=True)
def every_problem_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "MAX_EXAMPLES", 10 * MUTATIONS)


def account(data: bytes) -> tuple[list[Event], ReadReport]:
    events, report = read(SOURCE, data)
    assert_accounted(events, report, report.records)
    assert_located(report, data.count(b"\n") + 1)
    stream = ReadReport()  # the line decoder watch uses must not leak exceptions either
    list(read_lines(SOURCE, "fuzz", io.BytesIO(data), stream))
    assert_no_parser_bugs(stream)
    return events, report


def documents(*folders: Path) -> list[bytes]:
    """Every document of the ECS files in folders, one compact JSON line each."""
    found: list[bytes] = []
    for folder in folders:
        for path in sorted(folder.glob("*.*json")):
            _, report = read(SOURCE, path.read_bytes())
            assert report.skipped_total == 0, path
            text = path.read_text()
            decoder = json.JSONDecoder()
            at = 0
            while at < len(text):
                while at < len(text) and text[at].isspace():
                    at += 1
                if at == len(text):
                    break
                value, at = decoder.raw_decode(text, at)
                found.append(orjson.dumps(value))
    return found


@SETTINGS
@given(st.lists(st.binary(max_size=120), max_size=12).map(b"\n".join))
def test_random_bytes(data: bytes) -> None:
    account(data)


@settings(SETTINGS, max_examples=60)
@given(st.lists(DOCUMENTS, min_size=1, max_size=4), st.sampled_from(["lines", "pretty", "array"]))
def test_random_documents_in_ecs_vocabulary(found: list[dict[str, object]], layout: str) -> None:
    if layout == "lines":
        data = b"".join(json.dumps(d).encode() + b"\n" for d in found)
    elif layout == "pretty":
        data = b"".join(json.dumps(d, indent=2).encode() + b"\n" for d in found)
    else:
        data = json.dumps(found).encode() + b"\n"
    account(data)


def pretty(document: bytes) -> bytes:
    return json.dumps(json.loads(document), indent=2).encode() + b"\n"


def mutated(records: list[bytes], seed: int) -> None:
    lines = mutated_records(records, seed)
    _, report = account(b"\n".join(lines) + b"\n")
    assert report.records >= MUTATIONS * 0.9  # an unbalanced line may swallow the one after it
    assert report.events > MUTATIONS // 4
    assert report.skipped_total > MUTATIONS // 20
    rng = random.Random(seed)
    data = b"".join(edit_lines(rng, pretty(records[i % len(records)])) for i in range(PRETTY))
    _, report = account(data)
    assert report.events > PRETTY // 20  # an edit anywhere in a long document can break it
    assert report.skipped_total > PRETTY // 10


def test_ten_thousand_mutated_fixture_documents(fixtures: Path) -> None:
    mutated(documents(fixtures / "ecs"), seed=2601)


@pytest.mark.corpus
def test_ten_thousand_mutated_real_documents(corpus: Path) -> None:
    real = corpus / "realworld"
    records = documents(
        real / "ecs_auditbeat_linux", real / "ecs_elastic_defend", real / "zeek_filebeat_ecs"
    )
    assert len(records) == 7
    mutated(records, seed=2602)
