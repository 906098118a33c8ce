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
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from tidewaiter.events import Event
from tidewaiter.sources.base import ReadReport
from tidewaiter.watch.follow import FileFollower
from tidewaiter.watch.journal import Journal

MAX_BODY = 16 << 20
REQUEST_TIMEOUT = 30.0  # seconds a client may take to send its request


class HttpStats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records = 0  # journaled
        self.refused = 0  # requests answered 503: detection is behind
        self.rejected = 0  # records or requests that could not be used, answered 4xx


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
        server = _Server6 if ":" in host else ThreadingHTTPServer
        self._server = server((host, port), _handler(self, max_record))
        self._server.daemon_threads = True
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
            records = parse_body(body)
        except ValueError as exc:
            with self.stats.lock:
                self.stats.rejected += 1
            return 400, {"error": str(exc)}
        lines: list[bytes] = []
        skipped: list[str] = []
        for index, record in enumerate(records):
            line = orjson.dumps(record)
            if not isinstance(record, dict):
                skipped.append(f"record {index}: not a JSON object")
            elif len(line) > max_record:
                skipped.append(f"record {index}: longer than {max_record} bytes")
            else:
                lines.append(line + b"\n")
        try:
            stored = self.journal.append(lines) if lines else True
        except OSError as exc:
            self._say(f"{self.address}: cannot write the journal ({exc.strerror or exc})")
            return 500, {"error": "cannot store the records"}
        with self.stats.lock:
            self.stats.rejected += len(skipped)
            if not stored:
                self.stats.refused += 1
                return 503, {"error": "detection is behind; retry later"}
            self.stats.records += len(lines)
        reply: dict[str, Any] = {"accepted": len(lines)}
        if skipped:
            reply["skipped"] = skipped[:20]
        return 200, reply


def parse_body(body: bytes) -> list[Any]:
    """One JSON value, a JSON array of records, or JSON lines."""
    text = body.strip()
    if not text:
        return []
    if text[:1] not in (b"{", b"["):
        raise ValueError("the body is not JSON")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        if text[:1] != b"{":
            raise ValueError("the body is not valid JSON") from None
        try:
            return [orjson.loads(line) for line in text.split(b"\n") if line.strip()]
        except orjson.JSONDecodeError:
            raise ValueError("the body is neither JSON nor JSON lines") from None
    return value if isinstance(value, list) else [value]


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
            if length < 0 or length > MAX_BODY:
                self.close_connection = True  # the body is not read: the connection is done
                self._reply(413, {"error": f"the body is over {MAX_BODY} bytes"})
                return
            body = self.rfile.read(length)
            if len(body) < length:
                self.close_connection = True
                return
            status, reply = owner.accept(body, max_record)
            if status == 503:
                self._reply(status, reply, {"Retry-After": "5"})
            else:
                self._reply(status, reply)

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


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host
