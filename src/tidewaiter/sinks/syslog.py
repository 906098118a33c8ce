"""Syslog (RFC 5424): each alert one message whose MSG is the OCSF JSON.

``udp://host[:514]`` sends datagrams, ``tcp://host[:514]`` frames messages by octet counting
(RFC 6587), ``unix:///dev/log`` writes to the local daemon. Messages go out from the same disk
spool as the webhook's, so a syslog server that is down delays alerts rather than losing them
(over UDP nothing says it is down).

The header: PRI from the facility and the alert's severity, the alert's own time (so a message
sent again after a restart is byte for byte the same), this host's name, APP-NAME "tidewaiter",
MSGID "finding", no PROCID and no structured data (tidewaiter has no enterprise number of its
own); the finding uid is in the JSON.

A datagram (UDP, unix socket) holds at most ``MAX_DATAGRAM`` bytes. An alert that does not fit
(a tar of 6,000 files has a long command line) is cut to fit rather than dropped: the longest
strings are shortened and the longest lists lose their last items, each cut string ending in
``CUT_MARK`` and every cut named in ``unmapped.cut``; the finding's identity, severity and
times are never cut. If the kernel still refuses the datagram, it is cut again to
``SMALL_DATAGRAM``.
"""

from __future__ import annotations

import copy
import errno
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
SMALL_DATAGRAM = 8_192  # rsyslog's default maximum message size
CUT_MARK = "…[cut]"
_KEEP = 64  # a string this short, or a list this short, is never cut
_NAMED, _NAMED_LEN = 20, 160  # cuts named in full, and the characters of each


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


def fit(alert: dict[str, Any], limit: int) -> dict[str, Any]:
    """A copy of the alert whose JSON is at most ``limit`` bytes, cut where it is longest."""
    alert = copy.deepcopy(alert)
    cuts: list[str] = []
    unmapped = alert.setdefault("unmapped", {})
    while True:
        unmapped["cut"] = _named(cuts)
        size = len(orjson.dumps(alert))
        if size <= limit:
            return alert
        found = _longest(alert, "", protect=True)
        if found is None:  # every string and list is short: the evidence goes but who it was
            evidences = alert.get("evidences") or []
            if not evidences or set(evidences[0]) <= _IDENTITY:
                return alert
            alert["evidences"] = [{k: v for k, v in evidences[0].items() if k in _IDENTITY}]
            cuts.append("evidences: only the first one's time and container kept")
            continue
        _, container, key, path = found
        value = container[key]
        excess = size - limit + len(CUT_MARK.encode()) + len(path) + 64
        if isinstance(value, str):
            data = value.encode()
            keep = max(_KEEP, len(data) - excess)
            container[key] = data[:keep].decode("utf-8", "ignore") + CUT_MARK
            cuts.append(f"{path}: {keep} of {len(data)} bytes kept")
        else:
            kept, dropped = list(value), 0
            while len(kept) > 1 and dropped < excess:
                dropped += len(orjson.dumps(kept.pop())) + 1
            container[key] = kept
            cuts.append(f"{path}: {len(kept)} of {len(value)} items kept")


def _named(cuts: list[str]) -> list[str]:
    """The cuts, the list itself bounded (a deep alert has long paths and many cuts)."""
    named = [cut if len(cut) <= _NAMED_LEN else "…" + cut[-_NAMED_LEN:] for cut in cuts]
    if len(named) > _NAMED:
        named[_NAMED:] = [f"and {len(named) - _NAMED} more cuts"]
    return named


_IDENTITY = {"time", "container"}  # what is left of the evidence when all else must go
_PROTECTED = {"unmapped"}  # the list of cuts itself (identity fields are too short to be cut)


def _longest(value: Any, path: str, protect: bool = False) -> tuple[int, Any, Any, str] | None:
    """(size, container, key, path) of the longest string or list in ``value`` that can still
    be cut; protect: at the top level, leave the list of cuts alone."""
    best: tuple[int, Any, Any, str] | None = None
    items: Any
    if isinstance(value, dict):
        items = [(k, v) for k, v in value.items() if not (protect and k in _PROTECTED)]
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return None
    for key, item in items:
        where = f"{path}[{key}]" if isinstance(value, list) else f"{path}.{key}".lstrip(".")
        size = 0
        if isinstance(item, str) and not item.endswith(CUT_MARK) and len(item) > _KEEP:
            size = len(item.encode())
        elif isinstance(item, list) and len(item) > 1:
            size = len(orjson.dumps(item))
        if size and (best is None or size > best[0]):
            best = (size, value, key, where)
        inner = _longest(item, where)
        if inner is not None and (best is None or inner[0] > best[0]):
            best = inner
    return best


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
        if self.kind == "tcp":
            message = format_message(alert, self.facility, self.hostname)
        else:
            message = self._fitted(alert, MAX_DATAGRAM)
        try:
            sock = self._connect()
            if self.kind == "tcp":
                sock.sendall(f"{len(message)} ".encode() + message)
            else:
                try:
                    sock.send(message)
                except OSError as exc:
                    if exc.errno != errno.EMSGSIZE:
                        raise
                    sock.send(self._fitted(alert, SMALL_DATAGRAM))  # a smaller socket buffer
        except OSError as exc:
            self.close()
            raise DeliveryError(f"syslog {exc.strerror or exc}") from None

    def _fitted(self, alert: dict[str, Any], limit: int) -> bytes:
        message = format_message(alert, self.facility, self.hostname)
        if len(message) <= limit:
            return message
        header = len(message) - len(orjson.dumps(alert))
        return format_message(fit(alert, limit - header), self.facility, self.hostname)

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
