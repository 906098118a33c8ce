"""The HTTP input against a client that has read the source: memory per request and the number
of connections are bounded, whatever the body holds or however slowly it arrives.

A real ``tidewaiter watch --listen`` on loopback; memory is its peak resident set (VmHWM), read
from /proc, not a timing."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversarial.faults import post
from tests.watch.harness import LOOPBACK, Watch, free_port, jsonl_alerts, poll
from tests.watch.scenario import stream
from tidewaiter.sources.base import ReadReport
from tidewaiter.watch import http_input
from tidewaiter.watch.http_input import MAX_CONNECTIONS, HttpInput

MiB = 1 << 20


def empties(size: int) -> bytes:
    """``[{},{},…]`` of about ``size`` bytes: the most Python objects per byte of JSON."""
    count = (size - 2) // 3
    return b"[" + b"{}," * (count - 1) + b"{}]"


def send_oversize(port: int, body: bytes) -> int:
    """Send the headers, then the body for as long as the server reads it; its answer."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    try:
        connection.putrequest("POST", "/")
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        with contextlib.suppress(OSError):  # refused from the headers: the body is not read
            connection.send(body)
        response = connection.getresponse()
        return response.status
    finally:
        connection.close()


def peak_rss(pid: int) -> int:
    """The process's peak resident set, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[tuple[Watch, int]]:
    port = free_port()
    args = ["--listen", f"{LOOPBACK}:{port}", "--db", "tw.duckdb", "--out", "alerts.jsonl"]
    args += ["--status-interval", "0"]
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("watching 1 input(s)")
        poll(lambda: _answers(port), 30, "the receiver to answer")
        yield watch, port


def _answers(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
        connection.request("GET", "/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def test_a_16_mib_body_of_empty_objects_is_refused_from_its_headers_and_counted(
    listening: tuple[Watch, int], tmp_path: Path
) -> None:
    watch, port = listening
    assert watch.proc is not None
    before = peak_rss(watch.proc.pid)
    assert send_oversize(port, empties(16 * MiB)) == 413  # was 200, at 1.26 GB of memory
    assert peak_rss(watch.proc.pid) - before < 32 * MiB  # the body was never read
    for line in stream(chains=1, noise_per_chain=2):  # and Falco still gets through
        assert post(port, line) == 200
    poll(lambda: jsonl_alerts(tmp_path / "alerts.jsonl"), 30, "the chain's alert")
    assert watch.stop() == 0
    assert watch.said("http 1 requests too large (413)")


def test_concurrent_bodies_of_the_largest_size_keep_memory_bounded(
    listening: tuple[Watch, int],
) -> None:
    """Eight clients at once, each with the largest body allowed (max-record, 4 MiB) of the
    costliest shape: before, each took about 300 MB; now bodies wait for room and are split
    one at a time without building their records."""
    watch, port = listening
    assert watch.proc is not None
    before = peak_rss(watch.proc.pid)
    body = empties(4 * MiB)
    statuses: list[int] = []
    clients = [threading.Thread(target=lambda: statuses.append(post(port, body))) for _ in range(8)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=600)
    assert len(statuses) == 8
    assert set(statuses) <= {200, 503}  # taken, or told to come back
    grown = peak_rss(watch.proc.pid) - before
    assert grown < 256 * MiB, f"peak resident set grew by {grown / MiB:.0f} MiB"


def test_connections_beyond_the_cap_are_answered_503_and_the_cap_frees_up(
    listening: tuple[Watch, int],
) -> None:
    watch, port = listening
    idle = [socket.create_connection((LOOPBACK, port), timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        # The idle connections hold every slot (each has a thread waiting for its request).
        assert poll(lambda: _status_of_one_more(port) == 503, 30, "a 503 beyond the cap")
    finally:
        for sock in idle:
            sock.close()
    line = stream(chains=1, noise_per_chain=0)[0]
    poll(lambda: _status_of_one_more(port, line) == 200, 30, "the slots to free up")
    assert watch.stop() == 0
    assert watch.said("requests refused (too many at once)")


def _status_of_one_more(port: int, body: bytes = b"{}") -> int:
    try:
        return post(port, body, timeout=10)
    except OSError:
        return 0


def test_a_request_that_trickles_in_is_cut_off_at_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket timeout bounds only the wait for each piece; a client sending a byte now and
    then would hold its connection (and a slot) for ever."""
    monkeypatch.setattr(http_input, "REQUEST_TIMEOUT", 1.5)
    port = free_port()
    receiver = HttpInput(LOOPBACK, port, tmp_path, ReadReport(), lambda _: None, 4096, 1 << 20)
    receiver.poll(0)
    try:
        sock = socket.create_connection((LOOPBACK, port), timeout=10)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for _ in range(200):  # a header byte every 0.25 s, far under the per-read timeout
            try:
                sock.sendall(b"X")
                time.sleep(0.25)
            except OSError:
                closed = True
                break
            if _closed_by_peer(sock):
                closed = True
                break
        assert closed, "the trickling connection was still open after 50 s"
        sock.close()
    finally:
        receiver.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1 << 16) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def test_records_are_journalled_as_slices_of_the_body_one_line_each(tmp_path: Path) -> None:
    """Records are no longer rebuilt as objects: a pretty-printed array, whose records span
    lines, still gives one journal line per record and the same events as compact JSON."""
    lines = stream(chains=1, noise_per_chain=2)
    records = [json.loads(line) for line in lines]
    port = free_port()
    report = ReadReport()
    receiver = HttpInput(LOOPBACK, port, tmp_path, report, lambda _: None, 1 << 20, 1 << 24)
    receiver.poll(0)
    try:
        assert post(port, json.dumps(records, indent=2).encode()) == 200
        got = []
        poll(lambda: got.extend(receiver.poll(1 << 20)) or len(got) >= len(lines), 30, "events")
    finally:
        receiver.close()
    journal = next(tmp_path.glob("http-*.journal")).read_bytes().splitlines()
    assert [json.loads(line) for line in journal] == records
    assert report.records == len(records)
