"""The watch loop in process: idle decisions, and a record that trips the engine."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from tests.watch.harness import poll
from tests.watch.scenario import stream
from tidewaiter.events import Event
from tidewaiter.pipeline import Engine
from tidewaiter.sources.base import ReadReport
from tidewaiter.store import Store
from tidewaiter.watch.checkpoint import Checkpoints
from tidewaiter.watch.delivery import Delivery
from tidewaiter.watch.expiry import Expiry
from tidewaiter.watch.follow import FileFollower
from tidewaiter.watch.runner import Control, OnFinding, Runner, Timing
from tidewaiter.watch.status import Status


class Counted(Checkpoints):
    saves = 0

    def save(self, positions: dict[str, dict[str, Any]], state: bytes) -> None:
        super().save(positions, state)
        self.saves += 1


class Collect:
    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []

    def write(self, alert: dict[str, Any]) -> None:
        self.alerts.append(alert)

    def close(self) -> None:
        pass


@contextmanager
def running(
    path: Path, store: Store, timing: Timing, engine: type[Engine] = Engine
) -> Iterator[tuple[Runner, Collect]]:
    report, out = ReadReport(), io.StringIO()
    status = Status(Console(file=out, width=200), interval=0)
    sink = Collect()

    def make(on_finding: OnFinding, on_suppressed: OnFinding) -> Engine:
        return engine(on_finding, on_suppressed=on_suppressed)

    follower = FileFollower(str(path), report, status.say, 1 << 20)
    runner = Runner(
        make,
        [follower],
        Delivery([("collect", sink)], None, status.say),
        Counted(store),
        status,
        report,
        Expiry(),
        timing,
    )
    control = Control()
    thread = threading.Thread(target=runner.run, args=(control,), daemon=True)
    thread.start()
    try:
        yield runner, sink
    finally:
        control.request_stop()
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_findings_waiting_on_event_time_are_decided_after_a_quiet_spell(tmp_path: Path) -> None:
    path = tmp_path / "falco.jsonl"
    path.write_bytes(b"".join(stream(chains=1, noise_per_chain=0)[:4]))  # no later event
    timing = Timing(checkpoint_interval=60.0, idle_flush=0.3)
    with Store(tmp_path / "tw.duckdb") as store, running(path, store, timing) as (runner, sink):
        poll(lambda: runner.engine.events == 4, 10, "the chain to be read")
        assert runner.engine.correlator.open_episodes == 1
        poll(lambda: sink.alerts, 10, "the idle decision")
        assert runner.engine.correlator.open_episodes == 0
        checkpoints = runner.checkpoints
        assert isinstance(checkpoints, Counted)
        poll(lambda: checkpoints.saves == 1, 10, "a checkpoint at once, not in 60 s")


class Fragile(Engine):
    """An engine with a bug that one record sets off."""

    def process(self, event: Event) -> None:
        if event.raw.line == 3:
            raise KeyError("boom")
        super().process(event)


def test_a_record_that_trips_the_engine_is_skipped_and_detection_goes_on(
    tmp_path: Path,
) -> None:
    lines = stream(chains=2, noise_per_chain=2)
    path = tmp_path / "falco.jsonl"
    path.write_bytes(b"".join(lines))
    with Store(tmp_path / "tw.duckdb") as store:
        timing = Timing(checkpoint_interval=0.05, idle_flush=60.0)
        with running(path, store, timing, Fragile) as (runner, _):
            poll(lambda: runner.report.skipped_total == 1, 10, "the skip")
            poll(lambda: runner.engine.events == len(lines) - 1, 10, "the rest of the file")
            [problem] = runner.report.examples
            assert (problem.where, problem.reason) == (
                "line 3",
                "could not be analysed: KeyError ('boom')",
            )
