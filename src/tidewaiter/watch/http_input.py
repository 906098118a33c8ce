"""Falco's ``http_output`` (and falcosidekick-style webhooks) as an input.

Falco POSTs one JSON alert per request; forwarders may POST the same object, a JSON array of them,
or JSON lines. Every record is written to the journal (fsynced) before the 200, then read back by
an ordinary file follower with the ``falco`` source, so what was acknowledged survives a crash and
is checkpointed like a file. There are no delivery ids in Falco's protocol: the journal offset is
the position. Refusals say why: 411 without Content-Length, 413 for a body over the limit, 400
for a body that is not JSON, 503 (with Retry-After) while the journal is full because detection
is behind.

Binds to loopback unless told otherwise; there is no authentication, so a wider address belongs
behind something that has it.

Bounds, so that no client can take the machine's memory (see the README's threat model):
* a body is at most ``max(max_record, 1 MiB)`` bytes, refused from its headers with 413;
* bodies held in memory at once, across all connections, at most four times that; a request
  waits for room, then gets 503 with Retry-After;
* a body is split into records without building them as Python objects (each record is a
  slice of the body, read later by the falco source like any file line), one body at a time;
* at most ``MAX_CONNECTIONS`` connections: one more is answered 503 and closed at once;
* each request, from its first byte (or the end of the previous one) to its last, within
  ``REQUEST_TIMEOUT`` seconds, however slowly it trickles in: then the connection is closed.
Every refusal is counted on the status line.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import orjson

from tidewaiter.events import Event
from tidewaiter.sources.base import ReadReport
from tidewaiter.watch.follow import FileFollower
from tidewaiter.watch.journal import Journal

MIN_BODY = 1 << 20  # the body limit is max-record, but never below this
BODIES_HELD = 4  # bodies (of the largest size) in memory at once, across connections
MAX_CONNECTIONS = 64
REQUEST_TIMEOUT = 30.0  # seconds a client may take to send one request, all of it
MAX_REASONS = 20  # skipped records named in a reply; the rest are counted

_RAW = msgspec.json.Decoder(msgspec.Raw)  # validates the JSON, builds nothing
_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


class HttpStats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records = 0  # journaled
        self.refused = 0  # requests answered 503: detection is behind
        self.rejected = 0  # records or requests that could not be used, answered 4xx
        self.too_large = 0  # requests answered 413: the body is over the limit
        self.busy = 0  # connections or requests answered 503: too many at once
        self.failed = 0  # requests answered 500: the journal could not be written

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


class BodyBudget:
    """Bytes of request bodies held in memory at once: a request takes room before it reads
    its body and gives it back when its records are journaled."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._room = threading.Condition()

    def take(self, size: int, timeout: float) -> bool:
        with self._room:
            if not self._room.wait_for(lambda: self.held + size <= self.limit, timeout):
                return False
            self.held += size
            return True

    def give(self, size: int) -> None:
        with self._room:
            self.held -= size
            self._room.notify_all()


class HttpInput:
    def __init__(
        self,
        host: str,
        port: int,
        journal_dir: Path,
        report: ReadReport,
        say: Callable[[str], None],
        max_record: int,
        max_journal: int,
    ) -> None:
        self.stats = HttpStats()
        safe_host = re.sub(r"[^A-Za-z0-9.-]", "_", host)
        self.journal = Journal(journal_dir / f"http-{safe_host}-{port}.journal", max_journal)
        self.max_body = max(max_record, MIN_BODY)
        self.budget = BodyBudget(BODIES_HELD * self.max_body)
        self._parsing = threading.Lock()  # one body split at a time: it is CPU, under the GIL
        server = _Server6 if ":" in host else _Server
        self._server = server((host, port), _handler(self, max_record))
        self._server.daemon_threads = True
        self._server.stats = self.stats
        bound_host, bound_port = self._server.server_address[:2]
        self.address = f"http://{_host_text(str(bound_host))}:{bound_port}"
        self._follower = FileFollower(
            str(self.journal.path),
            report,
            say,
            max_record=max_record + 1,  # a journal line is a record plus its newline
            fmt="falco",
            label=self.address,
            name=f"http://{_host_text(host)}:{port}",
        )
        self._say = say
        self._failure = ("", 0.0)  # the last journal failure said, and when
        if self.journal.torn:
            say(
                f"{self.address}: cut {self.journal.torn} bytes of a journal line torn by a crash "
                "(never acknowledged)"
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    @property
    def name(self) -> str:
        return self._follower.name

    @property
    def finished(self) -> bool:
        return False

    def poll(self, budget: int) -> list[Event]:
        events = self._follower.poll(budget)
        if not self._thread.is_alive() and self._follower.position() is not None:
            # Answer only once the reader holds the journal open (after any restore): a
            # journal rotated before that would never be read. Until then, clients wait in
            # the listen backlog.
            self._thread.start()
        return events

    def position(self) -> dict[str, Any] | None:
        return self._follower.position()

    def restore(self, position: dict[str, Any]) -> None:
        self._follower.restore(position)

    def checkpointed(self, position: dict[str, Any] | None) -> None:
        """A checkpoint with this position is saved: a journal segment behind it may go."""
        self.journal.retire((position["dev"], position["ino"]) if position else None)

    def behind(self) -> int:
        return self._follower.behind()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._follower.close()
        self.journal.close()

    def accept(self, body: bytes, max_record: int) -> tuple[int, dict[str, Any]]:
        """Journal a request body; the HTTP status and a JSON reply saying what happened."""
        try:
            with self._parsing:
                lines, accepted, skipped = journal_lines(body, max_record)
        except ValueError as exc:
            self.stats.count("rejected")
            return 400, {"error": str(exc)}
        try:
            stored = self.journal.append(lines) if accepted else True
        except OSError as exc:
            self.stats.count("failed")
            self._say_failure(exc.strerror or str(exc))
            return 500, {"error": "cannot store the records; nothing was kept"}
        with self.stats.lock:
            self.stats.rejected += len(skipped)
            if not stored:
                self.stats.refused += 1
                return 503, {"error": "detection is behind; retry later"}
            self.stats.records += accepted
        reply: dict[str, Any] = {"accepted": accepted}
        if skipped:
            reply["skipped"] = skipped[:MAX_REASONS]
            if len(skipped) > MAX_REASONS:
                reply["skipped_count"] = len(skipped)
        return 200, reply

    def _say_failure(self, reason: str) -> None:
        """Once, then once a minute while the journal keeps failing (a full disk would
        otherwise print a line per request)."""
        now = time.monotonic()
        with self.stats.lock:
            last_reason, last_time = self._failure
            if reason == last_reason and now - last_time < 60.0:
                return
            self._failure = (reason, now)
            failed = self.stats.failed
        self._say(
            f"{self.address}: cannot write the journal ({reason}); {failed} request(s) "
            "answered 500 so far, none of their records kept"
        )


def journal_lines(body: bytes, max_record: int) -> tuple[bytearray, int, list[str]]:
    """The records of a body as journal lines, the number of them, and why others were
    skipped. Each record is the body's own bytes (its newlines, which JSON allows only between
    tokens, made spaces), so memory stays a small multiple of the body whatever it holds."""
    out = bytearray()
    accepted = 0
    skipped: list[str] = []
    for index, record in enumerate(parse_body(body)):
        data = bytes(record)
        if data[:1] != b"{":
            skipped.append(f"record {index}: not a JSON object")
        elif len(data) > max_record:
            skipped.append(f"record {index}: longer than {max_record} bytes")
        else:
            out += data.replace(b"\n", b" ")
            out += b"\n"
            accepted += 1
    return out, accepted, skipped


def parse_body(body: bytes) -> Iterator[msgspec.Raw | bytes]:
    """One JSON value, a JSON array of records, or JSON lines; ValueError before any record
    when the body is none of them."""
    text = body.strip()
    if not text:
        return iter(())
    if text[:1] not in (b"{", b"["):
        raise ValueError("the body is not JSON")
    try:
        if text[:1] == b"[":
            return iter(_RAW_ARRAY.decode(text))
        return iter((_RAW.decode(text),))
    except (msgspec.DecodeError, RecursionError):
        if text[:1] != b"{":
            raise ValueError("the body is not valid JSON") from None
    lines = [line for line in text.split(b"\n") if line.strip()]
    try:
        for line in lines:
            _RAW.decode(line)
    except (msgspec.DecodeError, RecursionError):
        raise ValueError("the body is neither JSON nor JSON lines") from None
    return iter(lines)


def _handler(owner: HttpInput, max_record: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Falco's libcurl expects
        server_version = "tidewaiter"
        sys_version = ""
        timeout = REQUEST_TIMEOUT

        def do_POST(self) -> None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                self._reply(411, {"error": "send a Content-Length, not a chunked body"})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._reply(411, {"error": "Content-Length is required"})
                return
            if length < 0 or length > owner.max_body:
                owner.stats.count("too_large")
                self.close_connection = True  # the body is not read: the connection is done
                self._reply(413, {"error": f"the body is over {owner.max_body} bytes"})
                return
            if not owner.budget.take(length, REQUEST_TIMEOUT):
                owner.stats.count("busy")
                self.close_connection = True
                self._reply(503, {"error": "too many requests at once; retry later"}, _RETRY)
                return
            try:
                body = self.rfile.read(length)
                self.server.request_done(self.connection)  # type: ignore[attr-defined]
                if len(body) < length:
                    self.close_connection = True
                    return
                status, reply = owner.accept(body, max_record)
                del body
            finally:
                owner.budget.give(length)
            self._reply(status, reply, _RETRY if status == 503 else None)

        def handle_one_request(self) -> None:
            self.server.request_begins(self.connection)  # type: ignore[attr-defined]
            super().handle_one_request()

        def do_GET(self) -> None:
            self._reply(200, {"status": "ok", "records": owner.stats.records})

        def _reply(
            self, status: int, reply: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = orjson.dumps(reply)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per Falco alert would drown the status line

        def log_error(self, format: str, *args: Any) -> None:
            with owner.stats.lock:  # a malformed or timed-out request: counted, not printed
                owner.stats.rejected += 1

    return Handler


_RETRY = {"Retry-After": "5"}
_BUSY_BODY = b'{"error":"too many connections; retry later"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class _Server(ThreadingHTTPServer):
    """At most MAX_CONNECTIONS connections, each request within REQUEST_TIMEOUT."""

    stats: HttpStats

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._deadlines: dict[socket.socket, float | None] = {}
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            full = len(self._deadlines) >= MAX_CONNECTIONS
            if not full:
                self._deadlines[request] = time.monotonic() + REQUEST_TIMEOUT
        if full:
            self.stats.count("busy")
            try:
                request.setblocking(False)  # the reply fits the socket buffer; never wait
                request.send(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def request_begins(self, request: socket.socket) -> None:
        with self._open_lock:
            self._deadlines[request] = time.monotonic() + REQUEST_TIMEOUT

    def request_done(self, request: socket.socket) -> None:
        """The request is read: what is left is ours to do, not the client's to delay."""
        with self._open_lock:
            self._deadlines[request] = None

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._deadlines.pop(request, None)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        """Between two accepts: close connections whose request is overdue, however slowly
        they trickle (a socket timeout only bounds the wait for each piece)."""
        now = time.monotonic()
        with self._open_lock:
            late = [s for s, due in self._deadlines.items() if due is not None and due < now]
        for sock in late:
            with contextlib.suppress(OSError):  # already closed by its handler
                sock.shutdown(socket.SHUT_RDWR)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host
