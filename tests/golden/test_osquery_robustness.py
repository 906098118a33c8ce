"""The osquery source under drifting types, odd shapes and arbitrary bytes.

Every row is one record and ends as exactly one of: events, nothing to use, or skipped with a
reason; reading never raises.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.robustness import assert_accounted, read
from tidewaiter.events import Event, Kind
from tidewaiter.sources import ReadReport, osquery

ADDRESSES = ["203.0.113.7", "::ffff:10.0.0.1", "::", "0.0.0.0", "not-an-ip", "[::1]"]  # noqa: S104
SETTINGS = settings(max_examples=100, deadline=None)
SOURCE = osquery.OsquerySource()
COLUMNS = [
    "pid", "path", "cmdline", "cwd", "parent", "time", "uid", "cid", "syscall", "json_cmdline",
    "action", "family", "remote_address", "remote_port", "local_address", "local_port",
    "target_path", "operation", "dest_path", "executable", "ppid", "size", "id", "image",
    "image_id", "state", "name", "command", "cgroup_path", "container_id", "event_type",
]  # fmt: skip
NAMES = [
    "pack_ir_process_events", "pack_bpf_bpf_socket_events", "pack_fim_file_events",
    "pack_c_docker_containers", "pack_c_docker_processes", "processes", "custom", None,
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["", "connect", "execve", "fork", "CREATED", "rename", "running", "2", "10"]),
    st.sampled_from(ADDRESSES),
    st.sampled_from(['"/srv"', "2F746D70", '["a","b"]', "[1, 2]", "[", "1714644000"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
columns = st.dictionaries(st.sampled_from(COLUMNS), json_values, max_size=10)
rows = st.one_of(columns, json_values)


@st.composite
def results(draw: st.DrawFn) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, values in (
        ("name", st.sampled_from(NAMES)),
        ("hostIdentifier", st.one_of(st.text(max_size=10), st.integers(), st.none())),
        ("unixTime", st.one_of(st.integers(-5, 2**40), st.text(max_size=12), st.none())),
        ("calendarTime", st.one_of(st.text(max_size=30), st.none())),
        ("action", st.sampled_from(["added", "removed", "snapshot", None, 7])),
    ):
        if draw(st.booleans()):
            result[key] = draw(values)
    shape = draw(st.sampled_from(["event", "batch", "snapshot", "none", "junk"]))
    if shape == "event":
        result["columns"] = draw(rows)
    elif shape == "batch":
        result["diffResults"] = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {}, optional={"added": st.lists(rows, max_size=3), "removed": st.lists(rows)}
                ),
                json_values,
            )
        )
    elif shape == "snapshot":
        result["snapshot"] = draw(st.one_of(st.lists(rows, max_size=3), json_values))
    elif shape == "junk":
        result["columns"] = draw(json_values)
    return result


def read_bytes(data: bytes) -> tuple[list[Event], ReadReport]:
    return read(SOURCE, data, "mem.jsonl")


def expected_records(lines: list[bytes]) -> int:
    """A line is one record when it is not an object with rows, else one record a row."""
    total = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            total += 1
            continue
        if not isinstance(value, dict):
            total += 1
            continue
        count, broken = _rows(value)
        total += 1 if broken or count == 0 else count
    return total


def _rows(value: dict[str, Any]) -> tuple[int, bool]:
    count = 1 if value.get("columns") is not None else 0
    diff = value.get("diffResults")
    if diff is not None:
        if not isinstance(diff, dict):
            return 0, True
        for part in ("added", "removed"):
            listed = diff.get(part)
            if listed is not None and not isinstance(listed, list):
                return 0, True
            count += len(listed or [])
    snapshot = value.get("snapshot")
    if snapshot is not None:
        if not isinstance(snapshot, list):
            return 0, True
        count += len(snapshot)
    return count, False


@SETTINGS
@given(st.lists(results(), max_size=6))
def test_every_row_is_counted_once(lines: list[dict[str, Any]]) -> None:
    encoded = [json.dumps(line).encode() for line in lines]
    events, report = read_bytes(b"\n".join(encoded) + b"\n")
    # one event at most a row: events + nothing to use + skipped account for every record
    assert_accounted(events, report, records=expected_records(encoded))
    for event in events:
        assert isinstance(event.time, float)
        if event.kind is Kind.NETWORK and event.dst_endpoint and event.dst_endpoint.port:
            assert event.dst_endpoint.port > 0


@SETTINGS
@given(st.lists(st.binary(max_size=60), max_size=10))
def test_arbitrary_bytes_never_raise(chunks: list[bytes]) -> None:
    data = b"\n".join(chunks)
    events, report = read_bytes(data)
    assert report.events == len(events)
    assert report.events + report.ignored + report.skipped_total == report.records


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"/srv/data"', "/srv/data"),  # audit's quotes kept by process_events
        ("2F746D702F6120622063", "/tmp/a b c"),  # audit's hex, for a cwd with a space
        ("/srv", "/srv"),
        ('""', None),
        ("", None),
        (None, None),
        ("ABC", "ABC"),  # odd length: not hex
    ],
)
def test_cwd_forms(value: str | None, expected: str | None) -> None:
    assert osquery._cwd(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('["tar","-cf","a b.tar"]', ("tar", "-cf", "a b.tar")),
        (["zip", "-r"], ("zip", "-r")),  # numerics or a re-serialising forwarder: a real list
        ("[1, 2]", ("1", "2")),
        ("[", None),
        ("[]", None),
        ("tar -cf x", None),
        (None, None),
    ],
)
def test_json_cmdline_forms(value: object, expected: tuple[str, ...] | None) -> None:
    assert osquery._json_args(value) == expected
