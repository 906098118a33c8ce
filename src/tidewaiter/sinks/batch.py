"""What the SIEM sinks share: secrets from the environment or a file, one JSON/NDJSON POST with
the HTTP outcome sorted into delivered / retried / refused, and the batch sink of ``detect``.

A transport takes a list of alerts and returns the ones it could not deliver, each with a
DeliveryError (``permanent``: refused for good; otherwise worth another try). A whole request that
fails raises DeliveryError. ``watch`` hands the same transports to the durable spool one alert at
a time (``send``); ``detect`` batches everything and flushes at close.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson

from tidewaiter import __version__
from tidewaiter.printable import printable
from tidewaiter.sinks.spool import DeliveryError

Failures = list[tuple[dict[str, Any], DeliveryError]]
RETRIED_STATUS = frozenset({408, 425, 429})
MAX_BATCH = 500  # alerts per request
MAX_BATCH_BYTES = 4 << 20  # and at most about this much body


class OutputError(Exception):
    """An output setting that cannot be used; the message says why."""


def secret(what: str, env: str | None, path: str | None) -> str:
    """A token read from the named environment variable or file, never from a flag."""
    if env and path:
        raise OutputError(f"{what}: give the environment variable or the file, not both")
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise OutputError(f"{what}: the environment variable {env} is not set")
    elif path:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise OutputError(f"{what}: cannot read {path} ({exc.strerror or exc})") from None
        if not value:
            raise OutputError(f"{what}: {path} is empty")
    else:
        raise OutputError(f"{what}: name the environment variable or the file that holds it")
    if "\n" in value or "\r" in value or not value.isprintable():
        raise OutputError(f"{what}: the value holds control characters")
    return value


def check_base_url(what: str, url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutputError(f"{what}: {url!r} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise OutputError(f"{what}: the URL holds credentials; give them from a file or variable")
    return parts


class Transport(Protocol):
    label: str

    def send_batch(self, alerts: list[dict[str, Any]]) -> Failures: ...

    def send(self, alert: dict[str, Any]) -> None: ...

    def size(self, alert: dict[str, Any]) -> int:
        """Bytes the alert adds to a request body."""
        ...

    def close(self) -> None: ...


def send_one(transport: Transport, alert: dict[str, Any]) -> None:
    """The spool's one-alert interface over a batch transport."""
    for _, error in transport.send_batch([alert]):
        raise error


class Http:
    """POSTs without redirects (a token must not follow a 3xx elsewhere)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """(status, body) of a 2xx or 4xx answer; DeliveryError for what is worth retrying."""
        request = urllib.request.Request(  # noqa: S310 - scheme checked in check_base_url
            url,
            data=body,
            headers={"User-Agent": f"tidewaiter/{__version__}", **headers},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, response.read(16 << 20)
        except urllib.error.HTTPError as exc:
            status = exc.code
            answer = exc.read(64 << 10) if exc.fp is not None else b""
            if status in RETRIED_STATUS or status >= 500:
                raise DeliveryError(
                    f"HTTP {status} {printable(exc.reason)}", retry_after=_retry_after(exc)
                ) from None
            return status, answer
        except (urllib.error.URLError, OSError) as exc:
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise DeliveryError(printable(str(cause))) from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def json_object(answer: bytes) -> dict[str, Any]:
    """A receiver's JSON answer, {} when it is not a JSON object."""
    try:
        value = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers is not None else None
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def batches(
    alerts: list[dict[str, Any]], size: Callable[[dict[str, Any]], int]
) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    total = 0
    for alert in alerts:
        weight = size(alert)
        if batch and (len(batch) >= MAX_BATCH or total + weight > MAX_BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(alert)
        total += weight
    if batch:
        yield batch


class BatchSink:
    """``detect``'s sink: alerts collected, sent in batches at close, transient failures retried a
    few times; every alert not delivered is counted and named in ``problems``."""

    def __init__(
        self,
        transport: Transport,
        size: Callable[[dict[str, Any]], int],
        attempts: int = 4,
        backoff: float = 0.5,
    ) -> None:
        self.transport = transport
        self._size = size
        self._attempts = attempts
        self._backoff = backoff
        self._alerts: list[dict[str, Any]] = []
        self.delivered = 0
        self.refused = 0  # the receiver said no for good
        self.undelivered = 0  # still failing after the last attempt
        self.problems: list[str] = []

    def write(self, alert: dict[str, Any]) -> None:
        self._alerts.append(alert)

    def close(self) -> None:
        try:
            for batch in batches(self._alerts, self._size):
                self._deliver(batch)
        finally:
            self._alerts = []
            self.transport.close()

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        pending = batch
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                failures = self.transport.send_batch(pending)
            except DeliveryError as exc:  # the whole request failed
                failures = [(alert, exc) for alert in pending]
            self.delivered += len(pending) - len(failures)
            pending = []
            for alert, error in failures:
                if error.permanent:
                    self._refuse(alert, error)
                else:
                    pending.append(alert)
            if not pending:
                return
            if attempt < self._attempts:
                wait = failures[-1][1].retry_after
                time.sleep(min(wait if wait is not None else delay, 30.0))
                delay *= 2
        for alert, error in failures:
            if not error.permanent:
                self.undelivered += 1
                self._note(alert, f"not delivered after {self._attempts} attempts ({error})")

    def _refuse(self, alert: dict[str, Any], error: DeliveryError) -> None:
        self.refused += 1
        self._note(alert, f"refused ({error})")

    def _note(self, alert: dict[str, Any], what: str) -> None:
        if len(self.problems) < 20:
            uid = alert.get("finding_info", {}).get("uid", "?")
            self.problems.append(f"{self.transport.label}: alert {printable(uid)} {what}")

    def summary(self) -> str:
        label = self.transport.label
        line = f"{label}: {self.delivered} alert(s) delivered"
        if self.refused:
            line += f", {self.refused} refused"
        if self.undelivered:
            line += f", {self.undelivered} NOT delivered"
        return line
