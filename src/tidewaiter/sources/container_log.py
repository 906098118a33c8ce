"""Telemetry inside container log lines: what a node keeps of a sensor that writes to stdout.

Falco (``json_output`` to stdout) and Tetragon's ``export-stdout`` container run as pods, so a
node keeps their records as container log files, each line wrapped by the runtime:

- CRI (containerd, CRI-O; ``/var/log/containers/*.log``, ``/var/log/pods/...``):
  ``TIME STREAM TAG CONTENT``, TAG ``F`` for a full line, ``P`` for a part of a line longer than
  the runtime's buffer (16 KiB by default), the rest following on the next lines;
- Docker's json-file driver (``/var/lib/docker/containers/ID/ID-json.log``, and shippers that
  keep its shape): ``{"log": "CONTENT\\n", "stream": "stdout", "time": ...}``, a longer line split
  over entries whose ``log`` lacks the final newline.

The format inside is sniffed from the unwrapped lines, and each line is unwrapped before that
format's own decoder sees it, so ``detect``, ``watch`` and ``--jobs`` read it the same way and a
record keeps its file and line (a record in parts points at its last part). The envelope's time
is the runtime's, not the record's: the record's own time is used, as everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO, Literal, cast

import msgspec

from tidewaiter.events import Event, RawRef
from tidewaiter.sources.base import (
    Decoder,
    ForeignRecord,
    ReadReport,
    RecordError,
    Source,
    read_lines,
)

Envelope = Literal["cri", "docker"]
TITLES: dict[Envelope, str] = {
    "cri": "container log lines (CRI: containerd, CRI-O)",
    "docker": "Docker json-file log lines",
}
MAX_PARTS_BYTES = 16 << 20  # a record the runtime split is reassembled up to this size
_STREAMS = (b"stdout", b"stderr")


class _DockerLine(msgspec.Struct):
    log: str | None = None
    stream: str | None = None


_DOCKER = msgspec.json.Decoder(_DockerLine)


class NotEnveloped(RecordError):
    """A line that is not in the envelope the file began with."""


def parse(line: bytes, kind: Envelope) -> tuple[bytes, bool, bool]:
    """(content, complete, stderr) of one wrapped line; raises NotEnveloped."""
    if kind == "cri":
        parts = line.rstrip(b"\r\n").split(b" ", 3)
        if len(parts) < 3 or parts[1] not in _STREAMS or not _is_tag(parts[2]):
            raise NotEnveloped("not a CRI container log line (TIME STREAM F|P CONTENT)")
        content = parts[3] if len(parts) == 4 else b""
        return content, parts[2][:1] == b"F", parts[1] == b"stderr"
    try:
        wrapped = _DOCKER.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise NotEnveloped("not a Docker json-file log line") from None
    if wrapped.log is None:
        raise NotEnveloped('a Docker json-file log line without "log"')
    content = wrapped.log.encode("utf-8", "replace")  # a lone surrogate escape becomes "?"
    complete = content.endswith(b"\n")
    return content.rstrip(b"\r\n"), complete, wrapped.stream == "stderr"


def _is_tag(tag: bytes) -> bool:
    # F or P, optionally followed by more colon-separated flags a later CRI version may add
    return tag[:1] in (b"F", b"P") and (len(tag) == 1 or tag[1:2] == b":")


def envelope_of(head: bytes) -> Envelope | None:
    """The envelope the first non-blank line of a head is in, if any."""
    for line in head.splitlines()[:8]:
        if not line.strip():
            continue
        stripped = line.lstrip()
        if stripped.startswith(b'{"log":') or (
            stripped.startswith(b"{") and b'"log"' in stripped and b'"stream"' in stripped
        ):
            kind: Envelope = "docker"
        elif line[:1].isdigit() and (b" stdout " in line[:64] or b" stderr " in line[:64]):
            kind = "cri"
        else:
            return None
        try:
            parse(line, kind)
        except NotEnveloped:
            return None
        return kind
    return None


def unwrap_head(head: bytes, kind: Envelope) -> bytes:
    """The content of a head's wrapped lines, parts joined, to sniff the format inside."""
    out: list[bytes] = []
    held = b""
    for line in head.splitlines():
        try:
            content, complete, _ = parse(line, kind)
        except NotEnveloped:
            continue
        held += content
        if complete:
            out.append(held + b"\n")
            held = b""
    if held:
        out.append(held)  # the first record is longer than the head: sniff what there is
    return b"".join(out)


class EnvelopeDecoder(Decoder):
    def __init__(self, inner: Decoder, kind: Envelope) -> None:
        self.inner = inner
        self.kind = kind
        self._held = bytearray()
        self._too_long = False  # inside a record already longer than MAX_PARTS_BYTES
        self._parsed: tuple[bytes, tuple[bytes, bool, bool]] | None = None

    @property
    def assembling(self) -> bool:
        return bool(self._held) or self._too_long or self.inner.assembling

    def _parse(self, line: bytes) -> tuple[bytes, bool, bool]:
        if self._parsed is not None and self._parsed[0] is line:
            return self._parsed[1]
        parsed = parse(line, self.kind)
        self._parsed = (line, parsed)
        return parsed

    def starts_record(self, line: bytes) -> bool:
        if self._held or self._too_long:
            return False
        try:
            content, _, _ = self._parse(line)
        except NotEnveloped:
            return True  # counted as a record, and reported as unreadable by feed
        return self.inner.starts_record(content + b"\n")

    def feed(self, line: bytes, ref: RawRef) -> Iterable[Event]:
        content, complete, stderr = self._parse(line)
        self._parsed = None
        if self._too_long:
            self._too_long = not complete
            return ()
        if not complete:
            self._held += content
            if len(self._held) > MAX_PARTS_BYTES:
                self._held.clear()
                self._too_long = True
                raise RecordError(
                    f"a record split by the container runtime is longer than "
                    f"{MAX_PARTS_BYTES} bytes; passed over"
                )
            return ()
        if self._held:
            content = bytes(self._held) + content
            self._held.clear()
        try:
            return list(self.inner.feed(content + b"\n", ref))
        except RecordError as exc:
            if stderr and not isinstance(exc, ForeignRecord):
                # A sensor's own messages go to stderr: not its records, and not bad ones.
                raise ForeignRecord("container log line on stderr") from None
            raise

    def flush(self) -> Iterable[Event]:
        events = list(self.inner.flush())
        if self._held and not events:
            held, self._held = len(self._held), bytearray()
            raise RecordError(
                f"the file ends inside a record the container runtime split ({held} bytes of "
                "it, without its last part)"
            )
        return events


class Enveloped(Source):
    """A line-framed source read from inside container log lines; it answers to the inner
    source's name, so evidence and reports name the format the records are in."""

    def __init__(self, inner: Source, kind: Envelope) -> None:
        self.inner = inner
        self.kind = kind

    def sniff(self, head: bytes) -> bool:
        kind = envelope_of(head)
        return kind == self.kind and self.inner.sniff(unwrap_head(head, kind))

    def decoder(self, path: str) -> Decoder:
        return EnvelopeDecoder(self.inner.decoder(path), self.kind)

    @property
    def routable(self) -> bool:
        return self.inner.routable

    def route_hint(self, line: bytes) -> bytes | None:
        try:
            content, complete, _ = parse(line, self.kind)
        except NotEnveloped:
            return None
        return self.inner.route_hint(content + b"\n") if complete else None

    def read_file(self, path: str, stream: BinaryIO, report: ReadReport) -> Iterator[Event]:
        return read_lines(self, path, stream, report)


def wrap(inner: Source, kind: Envelope) -> Source:
    """The inner source, read from inside the envelope."""
    cls = _classes.get((type(inner), kind))
    if cls is None:
        attributes = {"name": inner.name, "title": f"{inner.title}, in {TITLES[kind]}"}
        name = f"{type(inner).__name__}In{kind.title()}"
        cls = cast(type[Enveloped], type(name, (Enveloped,), attributes))
        _classes[(type(inner), kind)] = cls
    return cls(inner, kind)


_classes: dict[tuple[type[Source], Envelope], type[Enveloped]] = {}
