"""What the robustness tests of the sources share: reading hostile bytes, checking that every
record is accounted for, and the seeded mutations of a fixture's JSON records.

The invariant: reading never raises, every record ends as events, nothing to use, or a skip located
by its line, and no skip is a parser bug (the reader's catch-all for exceptions other than
RecordError).
"""

from __future__ import annotations

import contextlib
import io
import random
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tidewaiter.events import Event, RawRef
from tidewaiter.sources import base
from tidewaiter.sources.base import ForeignRecord, ReadReport, RecordError, Source

MUTATIONS = 10_000  # seeded mutations of the fixture records, per source
SETTINGS = settings(
    max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
BUGS = ("unreadable record", "unreadable event")  # what a parser bug is reported as


# --- reading and accounting -----------------------------------------------------------------


def read(source: Source, data: bytes, path: str = "fuzz") -> tuple[list[Event], ReadReport]:
    """The events and the report of reading data as one file, with the source's own reader."""
    report = ReadReport()
    events = list(source.read_file(path, io.BytesIO(data), report))
    return events, report


def assert_no_parser_bugs(report: ReadReport) -> None:
    bugs = [reason for reason in report.skipped if reason.startswith(BUGS)]
    assert bugs == [], report.skipped


def assert_accounted(
    events: list[Event], report: ReadReport, records: int, framing_problems: int = 0
) -> None:
    """The report counts the given number of records, each once: as events, nothing to use,
    another format's record, or skipped (a framing line may be a problem too, without being a
    record); none a parser bug."""
    assert report.records == records
    assert report.events == len(events)
    assert report.events + report.ignored + report.foreign.total() + report.skipped_total == (
        report.records + framing_problems
    )
    assert_no_parser_bugs(report)


def account(source: Source, data: bytes) -> tuple[list[Event], ReadReport]:
    """Read data through base.read_lines and check that every non-blank line that is not framing
    (the source's comment_prefix) is one record, each accounted for once."""
    report = ReadReport()
    events = list(base.read_lines(source, "fuzz", io.BytesIO(data), report))
    prefix = source.comment_prefix
    lines = list(io.BytesIO(data))
    framing = {n for n, line in enumerate(lines, 1) if prefix and line.startswith(prefix)}
    records = sum(1 for n, line in enumerate(lines, 1) if line.strip() and n not in framing)
    # A framing line (a VPC header) may itself be a problem, but is never a record. Telling such
    # problems apart by their line needs every problem listed (raise base.MAX_EXAMPLES).
    framing_problems = (
        sum(1 for p in report.examples if int(p.where.split()[1]) in framing) if framing else 0
    )
    assert_accounted(events, report, records, framing_problems)
    return events, report


# --- random JSON in a source's vocabulary ---------------------------------------------------


def scalars(*vocabulary: str) -> st.SearchStrategy[object]:
    """JSON scalars of every type, and the words the source looks for."""
    return (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12)
        | st.sampled_from(vocabulary)
    )


def json_values(
    leaves: st.SearchStrategy[object], keys: Sequence[str]
) -> st.SearchStrategy[object]:
    """Nested JSON built of leaves, its objects keyed mostly by the source's own keys."""
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), inner, max_size=5)
        ),
        max_leaves=12,
    )


# --- seeded mutations of the fixture records ------------------------------------------------

SWAPS: tuple[object, ...] = (None, 0, -1, 2**63, 1.5, "", "x", [], {}, True, ["a", 1], {"path": 3})
Slot = tuple[object, ...]  # the keys and indexes leading to one value


def nonblank_lines(*paths: Path) -> list[bytes]:
    """The records of fixture files: their non-blank lines, without line ends."""
    return [line for path in paths for line in path.read_bytes().splitlines() if line.strip()]


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
    """One JSON record with bytes flipped, cut short, a key or item deleted, or a value swapped
    for one of another type."""
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
    """MUTATIONS mutated copies of a JSON lines fixture's records, taken in turn."""
    records = nonblank_lines(path)
    places = [slots(orjson.loads(record)) for record in records]
    rng = random.Random(seed)  # seeded: the same mutations on every run
    picks = (i % len(records) for i in range(MUTATIONS))
    return [mutate(records[i], places[i], rng) for i in picks]


def account_mutations(
    source: Source, lines: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> tuple[ReadReport, list[int]]:
    """The report of reading lines as one file, and the numbers of the lines the decoder rejects.

    First each line fed to one decoder: RecordError is the only exception it may raise. Then the
    same lines as one file: every record accounted for, every rejected line counted and located
    by its line."""
    decoder = source.decoder("mutated")
    bad: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            list(decoder.feed(line, RawRef(source.name, "mutated", line=number)))
        except ForeignRecord:
            continue  # a whole record of another kind: passed over, not bad
        except RecordError:
            if base._other_format(line, source.name) is None:
                bad.append(number)
    monkeypatch.setattr(base, "MAX_EXAMPLES", len(lines))
    _, report = account(source, b"\n".join(lines) + b"\n")
    assert report.skipped_total == len(bad)
    assert [p.where for p in report.examples] == [f"line {n}" for n in bad]
    return report, bad


# --- mutations of records of any format, and framing that spans lines ----------------------


def mutate_text(record: bytes, rng: random.Random) -> bytes:
    """One record of any text format with bytes flipped (never into a line break), cut short, or
    a field (tab, comma or space separated) dropped or doubled."""
    if not record:
        return b"\x00"
    operation = rng.randrange(4)
    if operation == 0:
        data = bytearray(record)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            data[at] = (data[at] ^ rng.randint(1, 255)) or 1
            if data[at] == 0x0A:
                data[at] = 0x0B
        return bytes(data)
    if operation == 1:
        return record[: rng.randrange(len(record))]
    separator = next((s for s in (b"\t", b",", b" ") if s in record), b" ")
    fields = record.split(separator)
    at = rng.randrange(len(fields))
    if operation == 2:
        del fields[at]
    else:
        fields.insert(at, fields[at])
    return separator.join(fields)


def mutate_any(record: bytes, rng: random.Random) -> bytes:
    """A JSON record mutated as mutate does (keys deleted, types swapped), any other as
    mutate_text does."""
    try:
        places = slots(orjson.loads(record))
    except orjson.JSONDecodeError:
        places = []
    if places:
        return mutate(record, places, rng)
    return mutate_text(record, rng)


def mutated_records(records: Sequence[bytes], seed: int, count: int = MUTATIONS) -> list[bytes]:
    """count seeded mutations of the records, taken in turn."""
    rng = random.Random(seed)  # seeded: the same mutations on every run
    return [mutate_any(records[i % len(records)], rng) for i in range(count)]


def record_starts(source: Source, data: bytes) -> int:
    """How many records base.read_lines should count in data: the non-blank lines that are not
    framing and do not continue a multi-line record a decoder of its own is assembling (the
    line that opens a pretty-printed object is its record; the lines after it are not)."""
    decoder = source.decoder("shadow")
    prefix = source.comment_prefix
    starts = 0
    for number, line in enumerate(io.BytesIO(data), start=1):
        if not line.strip():
            continue
        if not (prefix and line.startswith(prefix)) and decoder.starts_record(line):
            starts += 1
        with contextlib.suppress(RecordError):
            list(decoder.feed(line, RawRef(source.name, "shadow", line=number)))
    return starts


def assert_located(report: ReadReport, lines: int) -> None:
    """Every listed problem names a line of the input (or the end of the file after it)."""
    for problem in report.examples:
        where = problem.where.removeprefix("end of file (").removesuffix(")")
        kind, _, number = where.partition(" ")
        assert kind == "line", problem
        assert 1 <= int(number) <= max(lines, 1), problem


def edit_lines(rng: random.Random, text: bytes) -> bytes:
    """A pretty-printed object with lines flipped, deleted, doubled, or the object cut short."""
    lines = text.splitlines(keepends=True)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(lines))
        match rng.randrange(4):
            case 0:
                line = bytearray(lines[at])
                spot = rng.randrange(len(line))
                line[spot] = (line[spot] ^ rng.randint(1, 255)) or 1
                lines[at] = bytes(line).replace(b"\n", b"\x0b") + b"\n"
            case 1:
                del lines[at]
            case 2:
                lines.insert(at, lines[at])
            case _:
                lines = lines[:at]
        if not lines:
            return b"{\n"
    return b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
