"""The watch loop: read what arrived, detect, deliver, commit, checkpoint; again.

One thread does all of it, so the engine, the checkpoint and the inputs' positions never race:
a checkpoint is taken between two rounds, when every event read so far has been processed and
its alerts committed to the sinks. Sinks that talk to the network deliver from their own threads
out of a disk spool; the HTTP receiver journals in its own threads. Reading is bounded per round
(``budget`` bytes per input), so a burst waits in its file, pipe or journal, counted as "behind",
instead of in memory.

Findings that wait for event time to move on are decided when the input has been quiet for
``idle_flush`` seconds of wall clock (as ``detect`` decides them at the end of its files), and that
is checkpointed at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tidewaiter.alerts import to_ocsf
from tidewaiter.detection.analytics import Finding
from tidewaiter.events import Event
from tidewaiter.identity import workload_key
from tidewaiter.pipeline import Engine, merge_by_time, unanalysable
from tidewaiter.sources.base import MAX_EXAMPLES, ReadReport
from tidewaiter.watch import state
from tidewaiter.watch.checkpoint import Checkpoints
from tidewaiter.watch.delivery import Delivery
from tidewaiter.watch.discovery import Discovery
from tidewaiter.watch.expiry import Expiry
from tidewaiter.watch.inputs import Input
from tidewaiter.watch.metrics import InputSample, Sample, Tally, WatchCollector
from tidewaiter.watch.status import Figures, Status

OnFinding = Callable[[Finding], None]
EngineFactory = Callable[[OnFinding, OnFinding], Engine]


@dataclass(frozen=True)
class Timing:
    checkpoint_interval: float = 5.0
    idle_flush: float = 120.0
    poll: float = 0.05  # seconds to wait when nothing arrived
    budget: int = 1 << 20  # bytes read per input per round


class Control:
    """What signal handlers ask of the loop."""

    def __init__(self) -> None:
        self.stop = False
        self.reload = False
        self._wake = threading.Event()
        self._reloaded = threading.Condition()
        self._asked = 0  # reloads asked for by reload_and_wait
        self._done = 0  # the last of them a finished reload began after

    def request_stop(self) -> None:
        self.stop = True
        self._wake.set()

    def request_reload(self) -> None:
        self.reload = True
        self._wake.set()

    def reload_and_wait(self, timeout: float) -> None:
        """Ask for a reload and return once the loop has done one that began after the ask
        (from another thread: the store socket, after a suppression changed). Raises
        TimeoutError."""
        with self._reloaded:
            self._asked += 1
            wanted = self._asked
            self.request_reload()
            if not self._reloaded.wait_for(lambda: self._done >= wanted, timeout):
                raise TimeoutError

    def begin_reload(self) -> int:
        with self._reloaded:
            self.reload = False
            return self._asked

    def reload_done(self, began: int) -> None:
        with self._reloaded:
            self._done = max(self._done, began)
            self._reloaded.notify_all()

    def wait(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()


class Runner:
    def __init__(
        self,
        make_engine: EngineFactory,
        inputs: list[Input],
        delivery: Delivery,
        checkpoints: Checkpoints,
        status: Status,
        report: ReadReport,
        expiry: Expiry,
        timing: Timing = Timing(),
        notes: Callable[[], list[str]] = list,
        collector: WatchCollector | None = None,
        discovery: Discovery | None = None,
    ) -> None:
        self.engine = make_engine(self._on_finding, self._on_suppressed)
        self.inputs = inputs
        self.discovery = discovery  # files that appear in watched folders and globs
        self.delivery = delivery
        self.checkpoints = checkpoints
        self.status = status
        self.report = report
        self.expiry = expiry
        self.timing = timing
        self._notes = notes
        self._dirty = False  # something happened since the last checkpoint
        self._idle_since = time.monotonic()
        self._decided_idle = True  # nothing waits for an idle flush
        self._examples_said = 0
        self._ahead_said = 0
        self._records = 0  # records read, at the last round
        self._failing_inputs: dict[str, str] = {}
        self.collector = collector  # published to once a round when metrics are served
        self.tally = Tally()
        self._checkpointed: float | None = None  # time.time() of the last saved checkpoint
        self._unsaved_since: float | None = None  # monotonic time of the oldest unsaved change
        self._checkpoint_failing: str | None = None
        self._sinks_failing: dict[str, float] = {}  # sink -> monotonic time it began failing

    # --- the loop ------------------------------------------------------------------------------

    def run(self, control: Control, reloader: Callable[[], EngineFactory] | None = None) -> None:
        self._restore()
        names = ", ".join(i.name for i in self.inputs)
        self.status.say(f"watching {len(self.inputs)} input(s): {names}")
        last_checkpoint = time.monotonic()
        try:
            while not control.stop:
                if control.reload:
                    began = control.begin_reload()
                    if reloader is not None:
                        self._reload(reloader)
                        last_checkpoint = 0.0  # the reload is checkpointed at once
                    control.reload_done(began)
                count = self.step()
                now = time.monotonic()
                if self.discovery is not None:
                    self.inputs.extend(self.discovery.poll(now))
                force = self._maybe_decide_idle(count, now)
                self.delivery.commit()
                due = now - last_checkpoint >= self.timing.checkpoint_interval
                if self._dirty and (force or due):
                    self.checkpoint()
                    last_checkpoint = now
                self.status.update(self.figures())
                self._publish()
                growing = self.discovery is not None and self.discovery.active
                if self.inputs and all(i.finished for i in self.inputs) and not growing:
                    self.engine.flush()  # the end of every input: decide everything, as detect
                    self._mark_dirty()
                    break
                if not count:
                    control.wait(self.timing.poll)
        finally:
            self.delivery.commit()
            if self._dirty:
                self.checkpoint()

    def step(self) -> int:
        """One round: poll every input, process what arrived in time order."""
        batches: list[list[Event]] = []
        for source in self.inputs:
            records = self.report.records
            try:
                batch = source.poll(self.timing.budget)
            except OSError as exc:
                self._input_failed(source.name, f"{exc.strerror or exc}")
                continue
            self._failing_inputs.pop(source.name, None)
            newest = max((e.time for e in batch), default=None)
            self.tally.read(source.name, self.report.records - records, len(batch), newest)
            if batch:
                batches.append(batch)
        count = 0
        for event in merge_by_time(iter(batch) for batch in batches):
            self._process(event)
            count += 1
        if count or self.report.records != self._records:
            self._records = self.report.records
            self._mark_dirty()  # positions moved: worth a checkpoint
        self._say_new_problems()
        return count

    def _process(self, event: Event) -> None:
        try:
            self.engine.process(event)
            self.expiry.observe(event)
            for key in self.expiry.expired(self.engine.correlator.watermark):
                self.engine.forget(key)
        except Exception as exc:
            # A bug met by one record must not stop detection, nor stop it again at every
            # restart by replaying that record: it is skipped like an unreadable one.
            unanalysable(self.report)(event, exc)

    def _maybe_decide_idle(self, count: int, now: float) -> bool:
        if count:
            self._idle_since = now
            self._decided_idle = False
            return False
        if self._decided_idle or now - self._idle_since < self.timing.idle_flush:
            return False
        self._decided_idle = True
        if not self.engine.correlator.open_episodes:
            return False
        self.engine.correlator.flush()
        self._mark_dirty()
        return True

    # --- findings ------------------------------------------------------------------------------

    def _on_finding(self, finding: Finding) -> None:
        alert = to_ocsf(finding, self.engine.catalog)
        self.delivery.alert(alert, _workload(finding))
        self.tally.finding(finding)
        self._mark_dirty()
        self.status.say(
            f"alert {finding.uid[:12]}: {finding.analytic.name} ({finding.severity.lower()}) "
            f"in {finding.entity.key}",
            event="alert",
            uid=finding.uid,
            analytic=finding.analytic.uid,
            severity=finding.severity.lower(),
            entity=finding.entity.key,
            host=finding.entity.host,
        )

    def _on_suppressed(self, finding: Finding) -> None:
        alert = to_ocsf(finding, self.engine.catalog)
        self.delivery.suppressed(alert, _workload(finding), finding.suppressed_by)
        self.tally.held_back(finding)
        self._mark_dirty()

    # --- checkpoints and reloads ---------------------------------------------------------------

    def checkpoint(self) -> None:
        self.delivery.commit()
        positions: dict[str, dict[str, Any]] = {}
        for source in self.inputs:
            position = source.position()
            if position is not None:
                positions[source.name] = position
        try:
            self.checkpoints.save(positions, state.snapshot(self.engine, self.expiry))
        except Exception as exc:  # a full disk must not stop detection; the next one may work
            self._checkpoint_failing = str(exc)
            self.status.say(f"cannot save a checkpoint ({exc}); detection goes on")
            return
        self._dirty = False
        self._checkpoint_failing = None
        self._checkpointed = time.time()
        self._unsaved_since = None
        for source in self.inputs:
            saved = getattr(source, "checkpointed", None)
            if saved is not None:
                saved(positions.get(source.name))

    def _restore(self) -> None:
        saved = self.checkpoints.load()
        if saved is None:
            return
        positions, blob, saved_at = saved
        for source in self.inputs:
            position = positions.get(source.name)
            if position is not None:
                source.restore(position)
        if blob is not None:
            try:
                state.restore(blob, self.engine, self.expiry)
            except ValueError as exc:
                self.status.say(f"the saved detection state is not usable ({exc}); starting anew")
        self.status.say(f"resuming from the checkpoint saved at {saved_at}")

    def _reload(self, reloader: Callable[[], EngineFactory]) -> None:
        try:
            make_engine = reloader()
            engine = make_engine(self._on_finding, self._on_suppressed)
        except Exception as exc:
            self.status.say(f"reload failed, keeping the running configuration: {exc}")
            return
        state.carry_over(self.engine, engine)
        engine.events, engine.signals = self.engine.events, self.engine.signals
        self.engine = engine
        self._mark_dirty()
        self.status.say("configuration reloaded; detection state kept")

    # --- reporting -----------------------------------------------------------------------------

    def figures(self) -> Figures:
        behind = 0
        for source in self.inputs:
            with contextlib.suppress(OSError):
                behind += source.behind()
        return Figures(
            events=self.engine.events,
            containers=len(self.expiry),
            alerts=self.delivery.alerts,
            skipped=self.report.skipped_total,
            behind=behind,
            open_episodes=self.engine.correlator.open_episodes,
            notes=self._notes(),
        )

    def _mark_dirty(self) -> None:
        self._dirty = True
        if self._unsaved_since is None:
            self._unsaved_since = time.monotonic()

    def _publish(self) -> None:
        """The round's figures for /metrics and /readyz (only when they are served)."""
        if self.collector is None:
            return
        now, wall = time.monotonic(), time.time()
        inputs = []
        for source in self.inputs:
            try:
                behind = source.behind()
            except OSError:
                behind = 0
            newest = self.tally.newest.get(source.name)
            inputs.append(
                InputSample(
                    name=source.name,
                    fmt=self.report.files.get(source.name, "unknown"),
                    records=self.tally.records[source.name],
                    events=self.tally.events[source.name],
                    behind_bytes=behind,
                    behind_seconds=max(0.0, wall - newest) if newest is not None else None,
                    failing=self._failing_inputs.get(source.name),
                )
            )
        self.collector.sample = Sample(
            taken=wall,
            inputs=tuple(inputs),
            sinks=self.delivery.samples(now, self._sinks_failing),
            skipped=dict(self.report.skipped),
            findings=dict(self.tally.findings),
            suppressed=dict(self.tally.suppressed),
            containers=len(self.expiry),
            open_episodes=self.engine.correlator.open_episodes,
            checkpoint_age=wall - self._checkpointed if self._checkpointed is not None else None,
            unsaved_for=now - self._unsaved_since if self._unsaved_since is not None else 0.0,
            checkpoint_failing=self._checkpoint_failing,
        )

    def _say_new_problems(self) -> None:
        examples = self.report.examples
        while self._examples_said < len(examples):
            problem = examples[self._examples_said]
            self.status.say(
                f"skipped {problem}",
                event="skipped",
                file=problem.path,
                where=problem.where,
                reason=problem.reason,
            )
            self._examples_said += 1
            if self._examples_said == MAX_EXAMPLES:
                self.status.say("further skipped records are counted on the status line")
        ahead = self.engine.ahead_examples
        self._ahead_said = min(self._ahead_said, len(ahead))  # a reloaded engine starts anew
        while self._ahead_said < len(ahead):
            self.status.say(
                f"record dated in the future, its time clamped: {ahead[self._ahead_said]}"
            )
            self._ahead_said += 1

    def _input_failed(self, name: str, reason: str) -> None:
        if self._failing_inputs.get(name) != reason:
            self._failing_inputs[name] = reason
            self.status.say(f"{name}: cannot read ({reason}); trying again")


def _workload(finding: Finding) -> str | None:
    container = finding.entity.container
    return workload_key(container) if container is not None else None
