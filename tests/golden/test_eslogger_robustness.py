"""Hostile input for the eslogger source: random bytes, random JSON in eslogger's vocabulary, and
10,000 seeded mutations of the fixture records. No input may escape as an exception, and every
record must be accounted for as events, nothing to use, or a skip located by its line."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import robustness
from tests.robustness import SETTINGS, account_mutations, json_values, mutated_lines, scalars
from tidewaiter.sources import all_sources, get

all_sources()
import tidewaiter.sources.eslogger  # noqa: E402, F401 - registers the source

SOURCE = get("eslogger")
account = partial(robustness.account, SOURCE)  # test bodies as before: same derandomized examples
KEYS = (
    "event_type", "time", "process", "event", "audit_token", "pid", "euid", "ppid", "executable",
    "path", "exec", "target", "args", "cwd", "create", "destination_type", "destination",
    "existing_file", "new_path", "dir", "filename", "rename", "source", "close", "modified",
    "exit", "fork", "unlink", "write",
)  # fmt: skip
EVENTS = ("exec", "fork", "close", "create", "exit", "rename", "unlink", "write", "open")
SCALARS = scalars("2024-03-01T10:00:00.123456789Z", "/bin/zsh", "true")
VALUES = json_values(SCALARS, KEYS)
MESSAGES = st.fixed_dictionaries(
    {},
    optional={
        "event_type": st.sampled_from([9, 10, 11, 12, 13, 14, 15, 25, 32, 33, "9"]) | SCALARS,
        "time": VALUES,
        "process": VALUES,
        "event": st.dictionaries(st.sampled_from(EVENTS), VALUES, max_size=2) | VALUES,
    },
)


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


def test_ten_thousand_mutated_records(fixtures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = mutated_lines(fixtures / "eslogger" / "events.jsonl", seed=1560)
    report, bad = account_mutations(SOURCE, lines, monkeypatch)
    # The mutations reach both sides: many records still read, many rejected.
    assert report.events > 2_000
    assert len(bad) > 2_000
