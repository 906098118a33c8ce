"""Small real HTTP receivers on loopback that check what Splunk HEC and Elasticsearch's _bulk
API require of a request, answer as they do, and can be told to fail."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    token: str
    url: str = ""
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # format errors the receiver saw
    fail_next: list[int] = field(default_factory=list)  # statuses to answer the next requests
    # HEC
    events: list[dict[str, Any]] = field(default_factory=list)
    ack_enabled: bool = False
    channels: set[str] = field(default_factory=set)
    acks: dict[int, int] = field(default_factory=dict)  # ackId -> polls still answered false
    next_ack: int = 0
    refuse_uid: str | None = None  # the event of this finding is refused as invalid
    # Elastic
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    item_failures: dict[str, list[int]] = field(default_factory=dict)  # _id -> statuses to give
    lock: threading.Lock = field(default_factory=threading.Lock)


def _decode_concatenated(body: str) -> list[Any]:
    """HEC's batch framing: JSON objects one after another (whitespace between allowed)."""
    decoder = json.JSONDecoder()
    values, at = [], 0
    while at < len(body):
        while at < len(body) and body[at] in " \t\r\n":
            at += 1
        if at == len(body):
            break
        value, at = decoder.raw_decode(body, at)
        values.append(value)
    return values


def _handler(receiver: Receiver, kind: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                receiver.requests.append((self.path, headers, body))
                if receiver.fail_next:
                    status = receiver.fail_next.pop(0)
                    self._answer(status, {"text": "Server is busy", "code": 9})
                    return
                if kind == "hec":
                    self._hec(headers, body)
                else:
                    self._bulk(headers, body)

        # --- Splunk HEC ---------------------------------------------------------------------

        def _hec(self, headers: dict[str, str], body: bytes) -> None:
            if headers.get("authorization") != f"Splunk {receiver.token}":
                self._answer(403, {"text": "Invalid token", "code": 4})
                return
            channel = headers.get("x-splunk-request-channel")
            if self.path.split("?")[0] == "/services/collector/ack":
                self._ack(channel, body)
                return
            if self.path != "/services/collector/event":
                self._answer(404, {"text": "The requested URL was not found", "code": 404})
                return
            if receiver.ack_enabled and not channel:
                self._answer(400, {"text": "Data channel is missing", "code": 10})
                return
            try:
                events = _decode_concatenated(body.decode())
            except (UnicodeDecodeError, json.JSONDecodeError):
                self._answer(400, {"text": "Invalid data format", "code": 6})
                return
            for number, event in enumerate(events):
                well_formed = (
                    isinstance(event, dict)
                    and isinstance(event.get("time"), int | float)
                    and isinstance(event.get("event"), dict)
                    and event["event"].get("class_uid") == 2004
                    and all(isinstance(event.get(k), str) for k in ("host", "source", "sourcetype"))
                )
                if not well_formed:
                    receiver.problems.append(f"event {number} is not a HEC event: {event!r:.200}")
                if not well_formed or event["event"]["finding_info"]["uid"] == receiver.refuse_uid:
                    # HEC indexes the events before the bad one and names it
                    self._answer(
                        400,
                        {"text": "Invalid data format", "code": 6, "invalid-event-number": number},
                    )
                    return
                receiver.events.append(event)
            reply: dict[str, Any] = {"text": "Success", "code": 0}
            if receiver.ack_enabled:
                assert channel is not None
                receiver.channels.add(channel)
                reply["ackId"] = receiver.next_ack
                receiver.acks[receiver.next_ack] = 1  # the first poll says not yet
                receiver.next_ack += 1
            self._answer(200, reply)

        def _ack(self, channel: str | None, body: bytes) -> None:
            if not receiver.ack_enabled:
                self._answer(400, {"text": "ACK is disabled", "code": 14})
                return
            if channel not in receiver.channels:
                self._answer(400, {"text": "Invalid data channel", "code": 11})
                return
            wanted = json.loads(body)["acks"]
            status = {}
            for ack_id in wanted:
                waiting = receiver.acks.get(ack_id, 0)
                status[str(ack_id)] = waiting == 0 and ack_id in receiver.acks
                if waiting:
                    receiver.acks[ack_id] = waiting - 1
            self._answer(200, {"acks": status})

        # --- Elasticsearch _bulk -----------------------------------------------------------

        def _bulk(self, headers: dict[str, str], body: bytes) -> None:
            if headers.get("authorization") != f"ApiKey {receiver.token}":
                self._answer(401, {"error": {"type": "security_exception"}, "status": 401})
                return
            if self.path != "/_bulk":
                self._answer(404, {"error": "no handler", "status": 404})
                return
            if not headers.get("content-type", "").startswith("application/x-ndjson"):
                receiver.problems.append(f"content type {headers.get('content-type')}")
            if not body.endswith(b"\n"):
                self._answer(
                    400,
                    {
                        "error": {
                            "type": "illegal_argument_exception",
                            "reason": "The bulk request must be terminated by a newline [\\n]",
                        }
                    },
                )
                return
            lines = body.decode().split("\n")[:-1]
            if len(lines) % 2:
                receiver.problems.append("an action without its document")
            items, errors = [], False
            for action_line, doc_line in zip(lines[::2], lines[1::2], strict=True):
                action = json.loads(action_line)
                doc = json.loads(doc_line)
                [(op, meta)] = action.items()
                doc_id = meta.get("_id")
                if op not in ("create", "index") or not meta.get("_index") or not doc_id:
                    receiver.problems.append(f"bad action {action_line}")
                if doc.get("event", {}).get("id") != doc_id:
                    receiver.problems.append(f"_id {doc_id} is not the finding uid")
                planned = receiver.item_failures.get(doc_id)
                if planned:
                    status = planned.pop(0)
                    error = {
                        "type": "es_rejected_execution_exception"
                        if status == 429
                        else "mapper_parsing_exception",
                        "reason": "planned",
                    }
                    items.append({op: {"_id": doc_id, "status": status, "error": error}})
                    errors = True
                elif op == "create" and doc_id in receiver.docs:
                    items.append(
                        {
                            op: {
                                "_id": doc_id,
                                "status": 409,
                                "error": {
                                    "type": "version_conflict_engine_exception",
                                    "reason": "document already exists",
                                },
                            }
                        }
                    )
                    errors = True
                else:
                    created = doc_id not in receiver.docs
                    receiver.docs[doc_id] = doc
                    items.append(
                        {
                            op: {
                                "_index": meta["_index"],
                                "_id": doc_id,
                                "status": 201 if created else 200,
                                "result": "created" if created else "updated",
                            }
                        }
                    )
            self._answer(200, {"took": 1, "errors": errors, "items": items})

    return Handler


@contextmanager
def receiver(kind: str, token: str) -> Iterator[Receiver]:
    state = Receiver(token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state, kind))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
