"""Webhook: each alert POSTed as OCSF JSON, from an on-disk spool (see ``spool``).

Headers carry tokens, so their values come from the environment or from files (a mounted
secret), read at start and again on reload, and are never printed. The finding uid goes in
``Idempotency-Key``: delivery is at least once, and a receiver that honours the key sees each
alert once. 2xx is delivered; 408, 429 and 5xx, a timeout or a refused connection are retried
with backoff (``Retry-After`` honoured); any other status is a refusal of that one alert, reported
and passed over so that one bad alert cannot hold back the rest.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from email.message import Message
from pathlib import Path
from typing import Any

import orjson

from tidewaiter import __version__
from tidewaiter.alerts import delivery_key
from tidewaiter.printable import printable
from tidewaiter.sinks.spool import DeliveryError

RETRIED = frozenset({408, 425, 429})


class WebhookError(Exception):
    """A webhook setting that cannot be used; the message says why."""


def check_url(url: str) -> str:
    shown = masked(url)
    try:
        parts = urllib.parse.urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError:  # `http://[::1`, a port out of range or not a number
        raise WebhookError(f"{shown!r} is not a valid URL (its host or port)") from None
    if parts.scheme not in ("http", "https") or not host:
        raise WebhookError(f"{shown!r} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise WebhookError(
            "the webhook URL holds credentials; give them as a header from the environment "
            "or a file (--webhook-header-env, --webhook-header-file)"
        )
    return url


def masked(url: str) -> str:
    """The URL as it may be shown: a query string or fragment can carry a token (`?token=`),
    so only its presence is."""
    for mark in "?#":
        if mark in url:
            url = url.split(mark, 1)[0] + mark + "***"
    return printable(url)


def header_values(from_env: Mapping[str, str], from_file: Mapping[str, str]) -> dict[str, str]:
    """Header name → value, each value read from the named variable or file."""
    headers: dict[str, str] = {}
    for name, variable in from_env.items():
        value = os.environ.get(variable)
        if not value:
            raise WebhookError(f"header {name}: the environment variable {variable} is not set")
        headers[name] = value
    for name, path in from_file.items():
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            reason = exc.strerror or exc
            raise WebhookError(f"header {name}: cannot read {path} ({reason})") from exc
        if not value:
            raise WebhookError(f"header {name}: {path} is empty")
        headers[name] = value
    for name, value in headers.items():
        if not name.isascii() or any(c in name for c in ":\r\n ") or "\n" in value or "\r" in value:
            raise WebhookError(f"header {name!r}: not a valid header name or value")
    return headers


class WebhookTransport:
    def __init__(self, url: str, headers: Mapping[str, str], timeout: float = 10.0) -> None:
        self.url = check_url(url)
        self.headers = dict(headers)  # replaced whole on reload: the sender reads one or other
        self.timeout = timeout
        # No redirects: a POST must not be replayed somewhere else with the token.
        self._opener = urllib.request.build_opener(_NoRedirect)

    def send(self, alert: dict[str, Any]) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"tidewaiter/{__version__}",
            "Idempotency-Key": delivery_key(alert),
            **self.headers,
        }
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in check_url
            self.url, data=orjson.dumps(alert), headers=headers, method="POST"
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(64 << 10)
        except urllib.error.HTTPError as exc:
            status = exc.code
            reason = f"HTTP {status} {printable(exc.reason)}"
            if status in RETRIED or status >= 500:
                raise DeliveryError(reason, retry_after=_retry_after(exc.headers)) from None
            raise DeliveryError(reason, permanent=True) from None
        except (urllib.error.URLError, OSError) as exc:
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise DeliveryError(printable(str(cause))) from None

    def close(self) -> None:
        pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is then raised as an HTTPError: a refusal, reported


def _retry_after(headers: Message | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the normal backoff will do
