"""Syslog (RFC 5424): each alert one message whose MSG is the OCSF JSON.

``udp://host[:514]`` sends datagrams, ``tcp://host[:514]`` frames messages by octet counting
(RFC 6587), ``unix:///dev/log`` writes to the local daemon. Messages go out from the same disk
spool as the webhook's, so a syslog server that is down delays alerts rather than losing them
(over UDP nothing says it is down).

The header: PRI from the facility and the alert's severity, the alert's own time (so a message
sent again after a restart is byte for byte the same), this host's name, APP-NAME "tidewaiter",
MSGID "finding", no PROCID and no structured data (tidewaiter has no enterprise number of its
own); the finding uid is in the JSON.
"""

from __future__ import annotations

import socket
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import orjson

from tidewaiter.printable import printable
from tidewaiter.sinks.spool import DeliveryError

_FACILITY_NAMES = (
    *("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron"),
    *("authpriv", "ftp", "ntp", "audit", "alert", "clock"),
    *(f"local{n}" for n in range(8)),
)
FACILITIES = {name: code for code, name in enumerate(_FACILITY_NAMES)}
# OCSF severity_id → syslog severity: informational 6, low 5 (notice), medium 4 (warning),
# high 3 (err), critical 2 (crit).
SEVERITIES = {1: 6, 2: 5, 3: 4, 4: 3, 5: 2}
MAX_DATAGRAM = 65_000


class SyslogError(Exception):
    """A syslog setting that cannot be used; the message says why."""


def parse_target(url: str) -> tuple[str, str | tuple[str, int]]:
    """("udp" | "tcp", (host, port)) or ("unix", path)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.hostname  # noqa: B018 - raises for `udp://[::1`
    except ValueError:
        raise SyslogError(f"{printable(url)!r} is not a valid URL (its host)") from None
    if parts.scheme == "unix":
        path = parts.path or parts.netloc
        if not path:
            raise SyslogError(f"{url!r}: name the socket, e.g. unix:///dev/log")
        return "unix", path
    if parts.scheme not in ("udp", "tcp") or not parts.hostname:
        raise SyslogError(f"{url!r} is not udp://HOST[:PORT], tcp://HOST[:PORT] or unix://PATH")
    try:
        port = parts.port or 514
    except ValueError:
        raise SyslogError(f"{url!r}: the port is not a number") from None
    return parts.scheme, (parts.hostname, port)


def facility(name: str) -> int:
    try:
        return FACILITIES[name.lower()]
    except KeyError:
        raise SyslogError(f"{name!r} is not a syslog facility ({', '.join(FACILITIES)})") from None


def format_message(alert: dict[str, Any], facility_code: int, hostname: str) -> bytes:
    severity = SEVERITIES.get(alert.get("severity_id", 0), 5)
    stamp = datetime.fromtimestamp(alert["time"] / 1000, UTC).isoformat(timespec="milliseconds")
    header = (
        f"<{facility_code * 8 + severity}>1 {stamp.replace('+00:00', 'Z')} {hostname} "
        "tidewaiter - finding - "
    )
    return header.encode() + orjson.dumps(alert)


def local_hostname() -> str:
    """This host's name as RFC 5424 allows it: printable US-ASCII, no spaces, 255 at most."""
    name = "".join(c for c in socket.gethostname() if 33 <= ord(c) <= 126)[:255]
    return name or "-"


class SyslogTransport:
    def __init__(self, url: str, facility_name: str = "auth", timeout: float = 10.0) -> None:
        self.kind, self.address = parse_target(url)
        self.facility = facility(facility_name)
        self.timeout = timeout
        self.hostname = local_hostname()
        self._sock: socket.socket | None = None

    def send(self, alert: dict[str, Any]) -> None:
        message = format_message(alert, self.facility, self.hostname)
        if self.kind != "tcp" and len(message) > MAX_DATAGRAM:
            raise DeliveryError(
                f"the alert is {len(message)} bytes, more than a datagram holds; use tcp://",
                permanent=True,
            )
        try:
            sock = self._connect()
            if self.kind == "tcp":
                sock.sendall(f"{len(message)} ".encode() + message)
            else:
                sock.send(message)
        except OSError as exc:
            self.close()
            raise DeliveryError(f"syslog {exc.strerror or exc}") from None

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        if isinstance(self.address, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        else:
            family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
            kind = socket.SOCK_STREAM if self.kind == "tcp" else socket.SOCK_DGRAM
            sock = socket.socket(family, kind)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.address)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        return sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
