"""Every alert to every sink, one sink's failure never stopping detection or the other sinks.

``commit`` asks each sink to make what it was given durable (fsync a file, fsync a spool); the
runner commits before each checkpoint. A sink that fails is reported (the first time and then
once a minute, with a count) and keeps being tried with the next alert.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from tidewaiter.printable import printable
from tidewaiter.sinks import Sink
from tidewaiter.sinks.spool import SpooledSink
from tidewaiter.sinks.store import StoreSink
from tidewaiter.watch.metrics import SinkSample
from tidewaiter.watch.status import Say

QUIET = 60.0  # seconds between reports of the same sink failing


class Delivery:
    def __init__(self, sinks: list[tuple[str, Sink]], store: StoreSink | None, say: Say) -> None:
        self.sinks = sinks
        self.store = store
        self._say = say
        self.alerts = 0
        self.failures: dict[str, int] = {}
        self.written: Counter[str] = Counter()  # alerts each sink's write accepted
        self._failing: set[str] = set()  # sinks whose last write or commit failed
        self._said: dict[str, float] = {}
        self._dirty = False

    def alert(self, alert: dict[str, Any], workload: str | None) -> None:
        self.alerts += 1
        self._dirty = True
        if self.store is not None:
            self._guard("store", self.store.write, alert, workload)
        for name, sink in self.sinks:
            self._guard(name, sink.write, alert)

    def suppressed(self, alert: dict[str, Any], workload: str | None, by: str | None) -> None:
        """A suppressed finding is kept in the store with its reason, never delivered."""
        if self.store is not None:
            self._guard("store", self.store.write, alert, workload, by)

    def commit(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        for name, sink in self.sinks:
            commit = getattr(sink, "commit", None)
            if commit is not None:
                self._guard(name, commit)

    def close(self) -> None:
        self.commit()
        for name, sink in self.sinks:
            self._guard(name, sink.close)

    def samples(self, now: float, failing_since: dict[str, float]) -> tuple[SinkSample, ...]:
        """Each sink's figures for /metrics; ``failing_since`` (sink -> monotonic time it began
        failing) is kept by the caller from one round to the next."""
        samples = []
        for name, sink in [("store", None), *self.sinks]:
            if name == "store" and self.store is None:
                continue
            failed = self.failures.get(name, 0)
            delivered, depth, failing = self.written[name], None, name in self._failing
            if isinstance(sink, SpooledSink):
                # a spooled sink has accepted an alert when its receiver has, not when queued
                delivered, depth = sink.delivered, sink.spool.pending
                failed += sink.refused + sink.lost
                failing = failing or sink.failing is not None
            if failing:
                failing_since.setdefault(name, now)
            else:
                failing_since.pop(name, None)
            since = failing_since.get(name)
            samples.append(
                SinkSample(name, delivered, failed, depth, now - since if since is not None else 0)
            )
        return tuple(samples)

    def _guard(self, name: str, action: Callable[..., object], *args: Any) -> None:
        try:
            action(*args)
            self._failing.discard(name)
            if action.__name__ == "write":
                self.written[name] += 1
        except Exception as exc:
            self._failing.add(name)
            count = self.failures[name] = self.failures.get(name, 0) + 1
            now = time.monotonic()
            if now - self._said.get(name, -QUIET) >= QUIET:
                self._said[name] = now
                self._say(
                    printable(f"the {name} sink failed ({exc}); {count} failure(s) so far"),
                    event="sink_failed",
                    sink=name,
                    reason=printable(str(exc)),
                    failures=count,
                )
