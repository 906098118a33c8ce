"""Bad input never breaks the Docker events, VPC Flow Logs or Hubble sources.

Random bytes, random JSON-ish objects and random flow log lines (hypothesis), and 10,000 seeded
mutations of each source's fixture records (byte flips, truncations, key deletions, type swaps):
every non-blank line is a record, every record gives an event, nothing to use, or a located
problem, and no problem is a parser bug (the reader's catch-all for exceptions other than
RecordError).
"""

from __future__ import annotations

import importlib
import json
import math
import random
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.robustness import MUTATIONS, account, nonblank_lines, read
from tidewaiter.events import Event, RawRef
from tidewaiter.sources import ReadReport, all_sources, base, get

all_sources()
for module in ("docker_events", "hubble", "vpcflow"):  # registers the sources
    importlib.import_module(f"tidewaiter.sources.{module}")

SOURCES = ("docker-events", "vpcflow", "hubble")
JSON_SOURCES = ("docker-events", "hubble")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FIXTURE_FILES = {
    "docker-events": ("docker_events/events.jsonl", "docker_events/malformed.jsonl"),
    "hubble": ("hubble/flows.jsonl", "hubble/malformed.jsonl"),
    "vpcflow": ("vpcflow/default.log", "vpcflow/custom.log", "vpcflow/cloudwatch.log"),
}
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# Keys and values the sources look at, so random objects reach past the first checks.
KEYS = (
    "Type",
    "Action",
    "Actor",
    "ID",
    "Attributes",
    "status",
    "id",
    "from",
    "time",
    "timeNano",
    "name",
    "image",
    "path",
    "imageRef",
    "imageID",
    "io.kubernetes.pod.name",
    "flow",
    "verdict",
    "IP",
    "source",
    "destination",
    "l4",
    "TCP",
    "UDP",
    "SCTP",
    "ICMPv4",
    "source_port",
    "destination_port",
    "flags",
    "SYN",
    "ACK",
    "traffic_direction",
    "is_reply",
    "reply",
    "node_name",
    "uuid",
    "namespace",
    "pod_name",
    "workloads",
    "kind",
    "destination_names",
    "node_status",
    "lost_events",
)
VALUES = (
    "container",
    "image",
    "network",
    "start",
    "die",
    "exec_start:",
    "sh",
    "-c",
    "tar",
    "czf",
    "/t.tgz",
    "/srv",
    "exec_create:",
    "'",
    "archive-path",
    "commit",
    "push",
    "tag",
    "save",
    "FORWARDED",
    "AUDIT",
    "DROPPED",
    "EGRESS",
    "INGRESS",
    "10.0.0.1",
    "::1",
    "203.0.113.9",
    "2024-05-02T10:00:00Z",
    "1714644000",
    "14c2529eb4498c5d1ffd6915d05bf58a91bdda796af59f41d480d11c099d0479",
)
TOKENS = (
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
    "pkt-srcaddr",
    "pkt-dstaddr",
    "flow-direction",
    "ecs-container-id",
    "egress",
    "ingress",
    "2",
    "123456789012",
    "unknown",
    "eni-0a1b",
    "-",
    "10.0.1.57",
    "203.0.113.9",
    "2001:db8::9",
    "0",
    "443",
    "65536",
    "6",
    "1714644120",
    "99999999999999999999",
    "ACCEPT",
    "REJECT",
    "OK",
    "NODATA",
    "SKIPDATA",
    "x",
    "\u00ff",
)
SWAPS: tuple[object, ...] = (None, True, 0, -1, 1e300, 10**30, "", "x", "9" * 400, [], {}, [1])


def read_accounted(name: str, data: bytes) -> tuple[list[Event], ReadReport]:
    """Read data as the named source, every record accounted for (a framing line, a VPC header,
    may itself be a problem, but is never a record), every event whole."""
    events, report = account(get(name), data)
    for event in events:
        assert math.isfinite(event.time)
        msgspec.json.encode(event)  # every field holds the type the model declares
    return events, report


@pytest.fixture(autouse=True)
def every_problem_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every problem with its location, not only the first few."""
    monkeypatch.setattr(base, "MAX_EXAMPLES", 10 * MUTATIONS)


# --- hypothesis -----------------------------------------------------------------------------

lines_of_bytes = st.lists(st.binary(max_size=120), max_size=12).map(b"\n".join)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(VALUES)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=12,
)
json_lines = st.lists(
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8) | json_values, max_size=4
).map(lambda objects: b"\n".join(json.dumps(o).encode() for o in objects))
flow_log_lines = st.lists(
    st.lists(st.sampled_from(TOKENS) | st.text(max_size=6), max_size=22).map(" ".join),
    max_size=10,
).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("name", SOURCES)
@SETTINGS
@given(data=lines_of_bytes)
def test_random_bytes(name: str, data: bytes) -> None:
    read_accounted(name, data)


@pytest.mark.parametrize("name", JSON_SOURCES)
@SETTINGS
@given(data=json_lines)
def test_random_json_objects(name: str, data: bytes) -> None:
    read_accounted(name, data)


@SETTINGS
@given(data=flow_log_lines)
def test_random_flow_log_lines(data: bytes) -> None:
    read_accounted("vpcflow", data)


# --- seeded mutations -----------------------------------------------------------------------

Mutation = Callable[[random.Random, bytes], bytes]


def flip_bytes(rng: random.Random, line: bytes) -> bytes:
    data = bytearray(line)
    for _ in range(rng.randint(1, 3)):
        data[rng.randrange(len(data))] = rng.choice([b for b in range(256) if b != 0x0A])
    return bytes(data)


def truncate(rng: random.Random, line: bytes) -> bytes:
    return line[: rng.randrange(len(line))]


def _containers(value: object) -> list[dict[str, object] | list[object]]:
    found: list[dict[str, object] | list[object]] = []
    if isinstance(value, dict):
        found.append(value)
        for child in value.values():
            found += _containers(child)
    elif isinstance(value, list):
        found.append(value)
        for child in value:
            found += _containers(child)
    return found


def _edit_json(rng: random.Random, line: bytes, delete: bool) -> bytes:
    try:
        record = json.loads(line)
    except ValueError:
        return flip_bytes(rng, line)
    targets = [c for c in _containers(record) if c]
    if not targets:
        return truncate(rng, line)
    target = rng.choice(targets)
    if isinstance(target, dict):
        key = rng.choice(list(target))
        if delete:
            del target[key]
        else:
            target[key] = rng.choice(SWAPS)
    else:
        index = rng.randrange(len(target))
        if delete:
            del target[index]
        else:
            target[index] = rng.choice(SWAPS)
    return json.dumps(record).encode()


def delete_key(rng: random.Random, line: bytes) -> bytes:
    return _edit_json(rng, line, delete=True)


def swap_type(rng: random.Random, line: bytes) -> bytes:
    return _edit_json(rng, line, delete=False)


def edit_fields(rng: random.Random, line: bytes) -> bytes:
    """The flow log counterpart of key deletion and type swaps: fields dropped, doubled or
    replaced by another field's kind of value."""
    fields = line.split()
    if not fields:
        return line
    index = rng.randrange(len(fields))
    match rng.randrange(3):
        case 0:
            del fields[index]
        case 1:
            fields.insert(index, fields[index])
        case _:
            fields[index] = rng.choice(TOKENS).encode("utf-8", "surrogateescape")
    return b" ".join(fields)


JSON_MUTATIONS: tuple[Mutation, ...] = (flip_bytes, truncate, delete_key, swap_type)
TEXT_MUTATIONS: tuple[Mutation, ...] = (flip_bytes, truncate, edit_fields)


def fixture_lines(name: str) -> list[bytes]:
    return nonblank_lines(*(FIXTURES / path for path in FIXTURE_FILES[name]))


@pytest.mark.parametrize("name", SOURCES)
def test_seeded_mutations(name: str) -> None:
    rng = random.Random(f"tidewaiter:{name}")
    originals = fixture_lines(name)
    mutations = TEXT_MUTATIONS if name == "vpcflow" else JSON_MUTATIONS
    lines = []
    for _ in range(MUTATIONS):
        lines.append(rng.choice(mutations)(rng, rng.choice(originals)))
    data = b"\n".join(lines) + b"\n"

    _, report = read_accounted(name, data)

    assert report.skipped_total > MUTATIONS // 10  # the mutations do break records
    located = [int(p.where.removeprefix("line ")) for p in report.examples]
    assert len(located) == len(set(located)) == report.skipped_total  # each once, at its line
    assert all(1 <= n <= MUTATIONS for n in located)


def unplaced(event: Event) -> Event:
    """The event without its line, to compare records read in different places."""
    raw = RawRef(event.raw.source, event.raw.path, record_id=event.raw.record_id)
    return msgspec.structs.replace(event, raw=raw)


@pytest.mark.parametrize("name", JSON_SOURCES)
def test_intact_records_among_mutations_read_as_alone(name: str) -> None:
    """A good record after a broken one reads exactly as it does on its own: nothing a bad
    record did leaks into the next (these sources keep no state between lines)."""
    source = get(name)
    good = [line for line in fixture_lines(name) if not read(source, line + b"\n")[1].skipped]
    alone = {line: [unplaced(e) for e in read(source, line + b"\n")[0]] for line in good}
    rng = random.Random(f"tidewaiter:{name}:interleaved")
    lines: list[bytes] = []
    for _ in range(2_000):
        lines.append(rng.choice(JSON_MUTATIONS)(rng, rng.choice(good)))
        lines.append(rng.choice(good))  # even line numbers: intact records

    events, report = read(source, b"\n".join(lines) + b"\n")

    assert all(int(p.where.removeprefix("line ")) % 2 for p in report.examples)
    intact = [unplaced(e) for e in events if e.raw.line is not None and e.raw.line % 2 == 0]
    assert intact == [e for line in lines[1::2] for e in alone[line]]
