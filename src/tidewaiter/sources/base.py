"""What a telemetry source is, and the error accounting every source shares.

A source turns one producer's records into Events and never decides what is suspicious. Line
framed formats implement a Decoder (fed one line at a time, so the same code serves files,
standard input and live streams); whole-file formats (EVTX) override ``read_file``. A decoder
signals a bad record by raising RecordError; the reader counts it with its file and line and goes
on, so no single source needs its own error handling.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar

from tidewaiter.events import Event, RawRef
from tidewaiter.printable import printable

MAX_EXAMPLES = 20  # problems listed with their location; the rest are only counted
MAX_REASONS = 50  # distinct reasons counted apart; hostile input must not grow the summary


class RecordError(Exception):
    """A record this source cannot turn into events; the message is the reason, in one phrase."""


class ForeignRecord(RecordError):
    """A whole, readable record of another kind (a Zeek dns record in a conn.log stream, a
    compute record among GKE's Kubernetes audit): passed over and counted as such, not as bad.
    The message names the kind, e.g. "Zeek dns log"."""


class AbandonedRecord(RecordError):
    """An earlier, unfinished record was given up when this line began a new one: the earlier
    one is the problem (reported at its own line), the new line still yields its events."""

    def __init__(
        self, reason: str, where: RawRef, events: list[Event], then: str | None = None
    ) -> None:
        super().__init__(reason)
        self.where = where
        self.events = events
        self.then = then  # the new line's own problem, when it has one too


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    where: str  # "line 12", "chunk 9", "record 3610"
    reason: str

    def __str__(self) -> str:
        return printable(f"{self.path}: {self.where}: {self.reason}")


@dataclass(slots=True)
class ReadReport:
    """Counts of what was read, and why anything was skipped."""

    records: int = 0
    events: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[Problem] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path -> source name
    ignored: int = 0  # records understood but carrying nothing tidewaiter uses
    foreign: Counter[str] = field(default_factory=Counter)  # records of another format, by title
    notes: list[str] = field(default_factory=list)  # sentences about whole files
    abandoned: int = 0  # unfinished multi-line records given up when a new one began
    problems: int = 0  # every skip and record of another format, as they were counted
    # Per file, to say when a forced format gave nothing at all, and why.
    file_events: Counter[str] = field(default_factory=Counter)
    file_reasons: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def accounted(self) -> int:
        """Records counted as skipped or of another format, earlier ones given up not included:
        a line whose count this moves had a problem of its own. Read once a line, so it is kept
        as a count rather than summed over the reasons."""
        return self.problems - self.abandoned

    def skip(self, path: str, where: str, reason: str, detail: str = "") -> None:
        """Count a skipped record under ``reason``; ``detail`` (specific to this record) goes
        only into its listed example, so hostile text cannot multiply the counted reasons."""
        self.problems += 1
        if reason not in self.skipped and len(self.skipped) >= MAX_REASONS:
            self.skipped["other reasons (see the examples)"] += 1
        else:
            self.skipped[reason] += 1
        self._count_for(path, reason)
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(Problem(path, where, f"{reason} ({detail})" if detail else reason))

    def other_format(self, path: str, title: str) -> None:
        """A whole record of another format met inside this file: not a bad record."""
        if title in self.foreign or len(self.foreign) < MAX_REASONS:
            self.foreign[title] += 1
            self.problems += 1
        self._count_for(path, f"in another format, {title}")

    def _count_for(self, path: str, reason: str) -> None:
        reasons = self.file_reasons.setdefault(path, Counter())
        if reason in reasons or len(reasons) < MAX_REASONS:
            reasons[reason] += 1

    def check_forced(self, fmt: str | None) -> None:
        """With --format forced, a file of which no record gave an event gets a sentence with
        the commonest reason: the format named was most likely the wrong one."""
        if not fmt:
            return
        for path in self.files:
            if self.file_events[path]:
                continue
            reasons = self.file_reasons.get(path)
            if reasons:
                reason, count = reasons.most_common(1)[0]
                why = f"the commonest reason ({count} records): {reason}"
            else:
                why = "every record was read, and none holds anything tidewaiter uses"
            self.notes.append(f"{path}: --format {fmt} gave no event from this file; {why}")

    def summary(self) -> str:
        text = (
            f"read {self.records} records from {len(self.files)} file(s): "
            f"{self.events} events, {self.ignored} records with nothing to use, "
            f"{self.skipped_total} skipped"
        )
        if self.foreign:
            text += ", " + ", ".join(
                f"{n} {title} records passed over" for title, n in self.foreign.most_common()
            )
        if self.skipped:
            reasons = "; ".join(f"{n} {r}" for r, n in self.skipped.most_common())
            text += f" ({reasons})"
        return printable(text)  # reasons can quote the record


class Decoder(ABC):
    """Per-stream state for one line-framed input (a header, a partial multi-record event)."""

    @property
    def assembling(self) -> bool:
        """Whether a multi-line record is open: the next line continues it, not a record."""
        return False

    def starts_record(self, line: bytes) -> bool:
        """Whether this line begins a record (a multi-line format may begin one while another
        is still open, abandoning it)."""
        return not self.assembling

    @abstractmethod
    def feed(self, line: bytes, ref: RawRef) -> Iterable[Event]:
        """Events for one line; raise RecordError for a line that cannot be read."""

    def flush(self) -> Iterable[Event]:
        """Events held back waiting for more lines, at the end of the stream."""
        return ()


class Source(ABC):
    name: ClassVar[str]  # the registry key and --format value
    title: ClassVar[str]  # what a user calls this format
    line_framed: ClassVar[bool] = True
    # Lines starting with this are framing (a Zeek header), fed to the decoder but not counted
    # as records.
    comment_prefix: ClassVar[bytes | None] = None

    @abstractmethod
    def sniff(self, head: bytes) -> bool:
        """Whether the first bytes of a file look like this format (cheap, no full parse)."""

    def near_miss(self, head: bytes) -> str | None:
        """When sniff said no: whether the head is almost this format, as one sentence saying
        why it is not read ("looks like Zeek JSON, but ..."); None when it is not close."""
        return None

    def decoder(self, path: str) -> Decoder:
        raise NotImplementedError(f"{self.name} is not line framed")

    @property
    def routable(self) -> bool:
        """Whether route_hint can route any line of this format."""
        return type(self).route_hint is not Source.route_hint

    def route_hint(self, line: bytes) -> bytes | None:
        """For `detect --jobs`: what a line holding one whole record most likely belongs to (a
        container id, a host), read without decoding it, so the process that decodes the
        record is usually the one that detects on it. None when the line cannot be routed
        alone (part of a multi-line record, or a decoder whose state changes events)."""
        return None

    def read_file(self, path: str, stream: BinaryIO, report: ReadReport) -> Iterator[Event]:
        """Events from a whole file, counting every record and every skipped one in report."""
        yield from read_lines(self, path, stream, report)


def read_lines(source: Source, path: str, stream: BinaryIO, report: ReadReport) -> Iterator[Event]:
    decoder = source.decoder(path)
    feed, name, comment = decoder.feed, source.name, source.comment_prefix
    lineno = 0
    for lineno, line in enumerate(stream, start=1):
        # isspace, not strip: strip copies every line (records run to kilobytes) to test it
        if not line or line.isspace():
            continue
        ref = RawRef(name, path, line=lineno)
        if comment is not None and line.startswith(comment):
            yield from decode_line(feed, line, ref, report, count=False)
            continue
        if decoder.starts_record(line):
            report.records += 1
        accounted = report.problems - report.abandoned  # report.accounted, inlined: every line
        events = decode_line(feed, line, ref, report, count=False)
        if events:
            yield from events
        elif not decoder.assembling and report.problems - report.abandoned == accounted:
            report.ignored += 1  # a whole record read, with nothing tidewaiter uses
    yield from guarded_flush(decoder, path, lineno, report)


Feed = Callable[[bytes, RawRef], Iterable[Event]]


def guarded(
    feed: Feed, line: bytes, ref: RawRef, report: ReadReport, count: bool = True
) -> Iterator[Event]:
    """Run one decoder step, turning any failure into a counted, located problem."""
    return iter(decode_line(feed, line, ref, report, count))


def decode_line(
    feed: Feed, line: bytes, ref: RawRef, report: ReadReport, count: bool = True
) -> list[Event]:
    """``guarded`` as a list: a plain call, where a generator costs a frame per record."""
    try:
        events = list(feed(line, ref))
    except AbandonedRecord as exc:
        report.skip(exc.where.path, location(exc.where), str(exc))
        report.abandoned += 1  # an earlier record's problem, not this line's
        if exc.then is not None:
            report.skip(ref.path, location(ref), exc.then)
            return []
        events = exc.events
    except ForeignRecord as exc:
        report.other_format(ref.path, str(exc))
        return []
    except RecordError as exc:
        other = _other_format(line, ref.source)
        if other is not None:
            report.other_format(ref.path, other)
            return []
        report.skip(ref.path, location(ref), str(exc))
        return []
    except Exception as exc:  # a parser bug must not lose the rest of the run
        report.skip(ref.path, location(ref), f"unreadable record ({type(exc).__name__}: {exc})")
        return []
    if not events:
        if count:
            report.ignored += 1
        return events
    report.events += len(events)
    report.file_events[ref.path] += len(events)
    return events


def _other_format(line: bytes, source: str) -> str | None:
    """The title of the other format a record that this source cannot read is in, if any."""
    from tidewaiter.sources import all_sources

    stripped = line.lstrip()
    if stripped[:1] not in (b"{", b"<", b"#") and b"type=" not in stripped[:64]:
        return None  # only whole records of a JSON, XML, Zeek or auditd format are recognised
    for other in all_sources():
        if other.name != source and other.sniff(stripped):
            return other.title
    return None


def guarded_flush(decoder: Decoder, path: str, lineno: int, report: ReadReport) -> Iterator[Event]:
    try:
        events = list(decoder.flush())
    except RecordError as exc:
        report.skip(path, f"end of file (line {lineno})", str(exc))
        return
    report.events += len(events)
    report.file_events[path] += len(events)
    yield from events


def location(ref: RawRef) -> str:
    if ref.line is not None:
        return f"line {ref.line}"
    if ref.chunk is not None:
        return f"chunk {ref.chunk}"
    return f"record {ref.record_id}"
