"""Splunk HTTP Event Collector: alerts as JSON events, several per POST, to
``/services/collector/event``, the token in ``Authorization: Splunk <token>``.

Each event carries ``time`` (epoch seconds of the finding), ``host`` (the finding's host, else
this machine's name), ``source``, ``sourcetype`` and, when given, ``index``; ``event`` is the OCSF
alert unchanged. An update of a finding already sent is simply another event.

HEC answers ``{"text": "Success", "code": 0}``. A 400 naming ``invalid-event-number`` N means the
events before N were taken, N is refused for good and the rest are sent again; 503 (busy), other
5xx and network errors are retried; a token error (401/403) is retried too, the alerts being sound
(a reload or a restart with the right token delivers them). With ``ack``, requests carry an
``X-Splunk-Request-Channel`` and a batch counts as delivered only once
``/services/collector/ack`` reports its ``ackId`` indexed; an ack that does not come in time is a
retry (at least once: the receiver may then see the batch twice).
"""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any

import orjson

from tidewaiter.printable import printable
from tidewaiter.sinks.batch import Failures, Http, check_base_url, json_object, send_one
from tidewaiter.sinks.spool import DeliveryError

EVENT_PATH = "/services/collector/event"
ACK_PATH = "/services/collector/ack"
SOURCE = "tidewaiter"
SOURCETYPE = "ocsf:detection_finding"


class HecTransport:
    label = "splunk-hec"

    def __init__(
        self,
        url: str,
        token: str,
        index: str | None = None,
        sourcetype: str = SOURCETYPE,
        ack: bool = False,
        ack_timeout: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        parts = check_base_url("--splunk-hec", url)
        path = parts.path.rstrip("/")
        for suffix in (EVENT_PATH, "/services/collector"):
            if path.endswith(suffix):
                path = path[: -len(suffix)]
                break
        base = f"{parts.scheme}://{parts.netloc}{path}"
        self.event_url, self.ack_url = base + EVENT_PATH, base + ACK_PATH
        self.token = token  # replaced whole on reload
        self.index = index
        self.sourcetype = sourcetype
        self.ack = ack
        self.ack_timeout = ack_timeout
        self.channel = str(uuid.uuid4())
        self.poll = 0.5
        self._http = Http(timeout)
        self._host = socket.gethostname()

    def event(self, alert: dict[str, Any]) -> bytes:
        device = alert.get("device") or {}
        time_ms = alert.get("time")
        event: dict[str, Any] = {
            "time": time_ms / 1000 if isinstance(time_ms, int) else time.time(),
            "host": device.get("hostname") or self._host,
            "source": SOURCE,
            "sourcetype": self.sourcetype,
            "event": alert,
        }
        if self.index:
            event["index"] = self.index
        return orjson.dumps(event)

    def size(self, alert: dict[str, Any]) -> int:
        return len(self.event(alert)) + 1

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Splunk {self.token}", "Content-Type": "application/json"}
        if self.ack:
            headers["X-Splunk-Request-Channel"] = self.channel
        return headers

    def send_batch(self, alerts: list[dict[str, Any]]) -> Failures:
        body = b"\n".join(self.event(alert) for alert in alerts) + b"\n"
        status, answer = self._http.post(self.event_url, body, self._headers())
        reply = json_object(answer)
        code = reply.get("code")
        text = printable(reply.get("text", ""))
        if status == 200 and code == 0:
            ack_id = reply.get("ackId")
            if self.ack:
                if not isinstance(ack_id, int):
                    raise DeliveryError("HEC gave no ackId: is indexer acknowledgement on?")
                self._await_ack(ack_id)
            return []
        reason = f"HTTP {status}, HEC code {code}: {text}"
        if status in (401, 403):
            raise DeliveryError(reason)  # the token: worth retrying once it is put right
        bad = reply.get("invalid-event-number")
        if status == 400 and isinstance(bad, int) and 0 <= bad < len(alerts):
            failures: Failures = [(alerts[bad], DeliveryError(reason, permanent=True))]
            later = DeliveryError(f"sent again after the refused event {bad}")
            return failures + [(alert, later) for alert in alerts[bad + 1 :]]
        raise DeliveryError(reason, permanent=True)

    def _await_ack(self, ack_id: int) -> None:
        deadline = time.monotonic() + self.ack_timeout
        body = orjson.dumps({"acks": [ack_id]})
        while True:
            status, answer = self._http.post(self.ack_url, body, self._headers())
            acks = json_object(answer).get("acks")
            if status != 200 or not isinstance(acks, dict):
                raise DeliveryError(f"HEC ack query answered HTTP {status}")
            if acks.get(str(ack_id)) is True:
                return
            if time.monotonic() >= deadline:
                raise DeliveryError(f"HEC did not acknowledge ackId {ack_id} in time")
            time.sleep(self.poll)

    def send(self, alert: dict[str, Any]) -> None:
        send_one(self, alert)

    def close(self) -> None:
        pass
