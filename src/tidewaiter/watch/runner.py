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
from tidewaiter.watch.expiry import Expiry
from tidewaiter.watch.inputs import Input
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

    def request_stop(self) -> None:
        self.stop = True
        self._wake.set()

    def request_reload(self) -> None:
        self.reload = True
        self._wake.set()

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
    ) -> None:
        self.engine = make_engine(self._on_finding, self._on_suppressed)
        self.inputs = inputs
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

    # --- the loop ------------------------------------------------------------------------------

    def run(self, control: Control, reloader: Callable[[], EngineFactory] | None = None) -> None:
        self._restore()
        names = ", ".join(i.name for i in self.inputs)
        self.status.say(f"watching {len(self.inputs)} input(s): {names}")
        last_checkpoint = time.monotonic()
        try:
            while not control.stop:
                if control.reload:
                    control.reload = False
                    if reloader is not None:
                        self._reload(reloader)
                        last_checkpoint = 0.0  # the reload is checkpointed at once
                count = self.step()
                now = time.monotonic()
                force = self._maybe_decide_idle(count, now)
                self.delivery.commit()
                due = now - last_checkpoint >= self.timing.checkpoint_interval
                if self._dirty and (force or due):
                    self.checkpoint()
                    last_checkpoint = now
                self.status.update(self.figures())
                if self.inputs and all(i.finished for i in self.inputs):
                    self.engine.flush()  # the end of every input: decide everything, as detect
                    self._dirty = True
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
            try:
                batch = source.poll(self.timing.budget)
            except OSError as exc:
                self._input_failed(source.name, f"{exc.strerror or exc}")
                continue
            self._failing_inputs.pop(source.name, None)
            if batch:
                batches.append(batch)
        count = 0
        for event in merge_by_time(iter(batch) for batch in batches):
            self._process(event)
            count += 1
        if count or self.report.records != self._records:
            self._records = self.report.records
            self._dirty = True  # positions moved: worth a checkpoint
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
        self._dirty = True
        return True

    # --- findings ------------------------------------------------------------------------------

    def _on_finding(self, finding: Finding) -> None:
        alert = to_ocsf(finding, self.engine.catalog)
        self.delivery.alert(alert, _workload(finding))
        self._dirty = True

    def _on_suppressed(self, finding: Finding) -> None:
        alert = to_ocsf(finding, self.engine.catalog)
        self.delivery.suppressed(alert, _workload(finding), finding.suppressed_by)
        self._dirty = True

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
            self.status.say(f"cannot save a checkpoint ({exc}); detection goes on")
            return
        self._dirty = False
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
        self._dirty = True
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

    def _say_new_problems(self) -> None:
        examples = self.report.examples
        while self._examples_said < len(examples):
            self.status.say(f"skipped {examples[self._examples_said]}")
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
