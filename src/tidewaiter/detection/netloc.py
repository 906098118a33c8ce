"""Hosts and ports out of attacker-written text (URLs, `host:port`, `[v6]:port`), never raising.

urllib refuses `http://[oops` and `http://]x[/` with ValueError, and int() accepts `²` and
thousands of digits (then refuses them with ValueError too); one such argument must not stop
detection, so the destination parsers of every transfer tool go through these two functions.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_PORT = 65_535


def port(text: str | None) -> int | None:
    """A TCP/UDP port written in ASCII digits, in range; None for anything else."""
    if not text or len(text) > 5 or not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if number <= MAX_PORT else None


def url_host_port(url: str) -> tuple[str | None, int | None]:
    """The host and port of a URL (a bare `host[:port]/path` reads as http). A malformed
    authority (`http://[oops`) still yields its text as the host: the upload happened."""
    text = url if "://" in url else f"http://{url}"
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        return _authority(text.split("://", 1)[1]), None
    try:
        number = parts.port
    except ValueError:  # out of range, `²`, or not a number
        number = None
    return host, number


def _authority(rest: str) -> str | None:
    """The host text of a URL urllib refuses: up to the first `/`, `?` or `#`, without userinfo
    and brackets."""
    for stop in "/?#":
        rest = rest.split(stop, 1)[0]
    host = rest.rsplit("@", 1)[-1].strip("[]")
    return host[:255] or None
