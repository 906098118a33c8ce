"""Falco http_output as an input: what is acknowledged is on disk, and read as the falco source."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import read
from tests.watch.harness import LOOPBACK, free_port, poll
from tests.watch.scenario import stream
from tidewaiter.events import Event
from tidewaiter.sources.base import ReadReport
from tidewaiter.watch.http_input import HttpInput


class Receiver:
    def __init__(
        self,
        folder: Path,
        port: int,
        max_journal: int = 1 << 20,
        position: dict[str, Any] | None = None,
    ) -> None:
        self.report = ReadReport()
        self.said: list[str] = []
        self.input = HttpInput(
            LOOPBACK, port, folder, self.report, self.said.append, 4096, max_journal
        )
        self.port = port
        if position is not None:
            self.input.restore(position)
        self.input.poll(0)  # as the runner does: restore, poll, and the receiver answers

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=5)
        try:
            connection.request("POST", "/", body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def announce(self, length: int) -> int:
        """Send only the headers of a request claiming a body of ``length`` bytes."""
        connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=5)
        try:
            connection.putrequest("POST", "/")
            connection.putheader("Content-Length", str(length))
            connection.endheaders()
            return connection.getresponse().status
        finally:
            connection.close()

    def events(self, count: int) -> list[Event]:
        got: list[Event] = []

        def enough() -> bool:
            got.extend(self.input.poll(1 << 20))
            return len(got) >= count

        poll(enough, 10, f"{count} events")
        return got


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    made = Receiver(tmp_path, free_port())
    try:
        yield made
    finally:
        made.input.close()


def test_a_falco_alert_per_request_an_array_or_json_lines(
    receiver: Receiver, tmp_path: Path
) -> None:
    lines = stream(chains=1, noise_per_chain=1)  # six Falco alerts
    assert receiver.post(lines[0], {"Content-Type": "application/json"}) == (200, {"accepted": 1})
    array = b"[" + b",".join(line.strip() for line in lines[1:3]) + b"]"
    assert receiver.post(array)[0] == 200
    assert receiver.post(b"".join(lines[3:]))[0] == 200
    got = receiver.events(len(lines))
    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(b"".join(lines))
    expected, _ = read(reference)
    assert [(e.time, e.kind, e.process) for e in got] == [
        (e.time, e.kind, e.process) for e in expected
    ]
    assert {e.raw.path for e in got} == {f"http://{LOOPBACK}:{receiver.port}"}


def test_bad_requests_are_refused_with_the_reason(receiver: Receiver) -> None:
    status, reply = receiver.post(b"<xml/>")
    assert (status, reply["error"]) == (400, "the body is not JSON")
    status, reply = receiver.post(b'{"rule": "x", "output_fields": {"a": "' + b"A" * 5000 + b'"}}')
    assert status == 200
    assert reply == {"accepted": 0, "skipped": ["record 0: longer than 4096 bytes"]}
    status, reply = receiver.post(b"[1, 2]")
    assert reply["skipped"] == ["record 0: not a JSON object", "record 1: not a JSON object"]
    assert receiver.announce(17 << 20) == 413  # refused from its headers, body never read
    assert receiver.input.stats.rejected == 4


def test_records_acknowledged_before_a_crash_are_read_after_it(tmp_path: Path) -> None:
    port = free_port()
    lines = stream(chains=1, noise_per_chain=3)
    first = Receiver(tmp_path, port)
    for line in lines[:3]:
        assert first.post(line)[0] == 200
    got = first.events(3)
    position = first.input.position()
    for line in lines[3:]:
        assert first.post(line)[0] == 200  # 200: on disk, though never read in this run
    first.input.close()
    second = Receiver(tmp_path, port, position=position)
    try:
        got += second.events(len(lines) - 3)
    finally:
        second.input.close()
    assert len(got) == len(lines)
    assert len({(e.time, e.process) for e in got}) == len(lines)  # each once


def test_a_full_journal_refuses_with_503_until_the_reader_catches_up(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path, free_port(), max_journal=3000)
    try:
        lines = stream(chains=2, noise_per_chain=10)
        statuses = [receiver.post(line)[0] for line in lines[:12]]
        assert 503 in statuses
        accepted = statuses.index(503)
        assert set(statuses[accepted:]) == {503}  # refused, not dropped: Falco is told
        assert receiver.input.stats.refused == len(statuses) - accepted
        receiver.events(accepted)
        receiver.input.checkpointed(receiver.input.position())  # the journal is rotated away
        assert receiver.post(lines[12])[0] == 200
    finally:
        receiver.input.close()
