"""Hostile input for the eslogger source: random bytes, random JSON in eslogger's vocabulary, and
10,000 seeded mutations of the fixture records. No input may escape as an exception, and every
record must be accounted for as events, nothing to use, or a skip located by its line."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidewaiter.events import RawRef
from tidewaiter.sources import all_sources, base, get
from tidewaiter.sources.base import ReadReport, RecordError, read_lines

all_sources()
import tidewaiter.sources.eslogger  # noqa: E402, F401 - registers the source

SOURCE = get("eslogger")
MUTATIONS = 10_000
SETTINGS = settings(
    max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
KEYS = (
    "event_type", "time", "process", "event", "audit_token", "pid", "euid", "ppid", "executable",
    "path", "exec", "target", "args", "cwd", "create", "destination_type", "destination",
    "existing_file", "new_path", "dir", "filename", "rename", "source", "close", "modified",
    "exit", "fork", "unlink", "write",
)  # fmt: skip
EVENTS = ("exec", "fork", "close", "create", "exit", "rename", "unlink", "write", "open")
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["2024-03-01T10:00:00.123456789Z", "/bin/zsh", "true"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)
MESSAGES = st.fixed_dictionaries(
    {},
    optional={
        "event_type": st.sampled_from([9, 10, 11, 12, 13, 14, 15, 25, 32, 33, "9"]) | SCALARS,
        "time": VALUES,
        "process": VALUES,
        "event": st.dictionaries(st.sampled_from(EVENTS), VALUES, max_size=2) | VALUES,
    },
)


def account(data: bytes) -> ReadReport:
    """Read data and check that every non-blank line is one record, each accounted for once."""
    report = ReadReport()
    events = list(read_lines(SOURCE, "fuzz", io.BytesIO(data), report))
    lines = [line for line in io.BytesIO(data) if line.strip()]
    assert report.records == len(lines)
    assert report.events == len(events)
    assert report.events + report.ignored + report.skipped_total == report.records
    # The reader turns parser bugs into skips too: none of those may appear.
    assert not [r for r in report.skipped if r.startswith("unreadable record")]
    return report


@SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    account(data)


@SETTINGS
@given(st.lists(st.text(max_size=60), max_size=8))
def test_random_text_lines(lines: list[str]) -> None:
    account("\n".join(lines).encode("utf-8", "surrogatepass"))


@settings(SETTINGS, max_examples=50)
@given(st.lists(MESSAGES, min_size=1, max_size=4))
def test_random_messages_in_eslogger_vocabulary(messages: list[dict[str, object]]) -> None:
    account(b"".join(json.dumps(message).encode() + b"\n" for message in messages))


# --- seeded mutations of the fixture records -------------------------------------------------

SWAPS: tuple[object, ...] = (None, 0, -1, 2**63, 1.5, "", "x", [], {}, True, ["a", 1], {"path": 3})
Slot = tuple[object, ...]  # the keys and indexes leading to one value


def slots(tree: object, prefix: Slot = ()) -> list[Slot]:
    """Every place in a JSON tree, at any depth."""
    if isinstance(tree, dict):
        items: list[tuple[object, object]] = list(tree.items())
    elif isinstance(tree, list):
        items = list(enumerate(tree))
    else:
        return []
    found: list[Slot] = []
    for key, value in items:
        found.append((*prefix, key))
        found.extend(slots(value, (*prefix, key)))
    return found


def mutate(record: bytes, places: list[Slot], rng: random.Random) -> bytes:
    operation = rng.randrange(4)
    if operation == 0:  # flip bytes, never into a line break
        data = bytearray(record)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            data[at] = (data[at] ^ rng.randint(1, 255)) or 1
            if data[at] == 0x0A:
                data[at] = 0x0B
        return bytes(data)
    if operation == 1:  # truncate
        return record[: rng.randrange(len(record))]
    tree = orjson.loads(record)
    *path, key = rng.choice(places)
    parent = tree
    for step in path:
        parent = parent[step]
    if operation == 2:  # delete a key or an item
        del parent[key]
    else:  # swap a value for one of another type
        parent[key] = rng.choice(SWAPS)
    return orjson.dumps(tree)


def mutated_lines(path: Path, seed: int) -> list[bytes]:
    records = [line for line in path.read_bytes().splitlines() if line.strip()]
    places = [slots(orjson.loads(record)) for record in records]
    rng = random.Random(seed)  # seeded: the same mutations on every run
    picks = (i % len(records) for i in range(MUTATIONS))
    return [mutate(records[i], places[i], rng) for i in picks]


def test_ten_thousand_mutated_records(fixtures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = mutated_lines(fixtures / "eslogger" / "events.jsonl", seed=1560)
    # First each line on its own: RecordError is the only exception a decoder may raise.
    decoder = SOURCE.decoder("mutated")
    bad: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            decoder.feed(line, RawRef("eslogger", "mutated", line=number))
        except RecordError:
            bad.append(number)
    # Then the same lines as one file: every bad one counted, and located by its line.
    monkeypatch.setattr(base, "MAX_EXAMPLES", MUTATIONS)
    report = account(b"\n".join(lines) + b"\n")
    assert report.skipped_total == len(bad)
    assert [p.where for p in report.examples] == [f"line {n}" for n in bad]
    # The mutations reach both sides: many records still read, many rejected.
    assert report.events > 2_000
    assert len(bad) > 2_000
