"""The live sensor as an input `tidewaiter watch` can poll (its ``watch.inputs.Input``
protocol, matched by shape): records are queued by the sensor's reader thread and handed out as
events, without a JSON round trip. A live sensor has no position to resume from."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from tidewaiter.events import Event, RawRef
from tidewaiter.sensor.runner import Sensor
from tidewaiter.sensor.schema import ENCODER, SensorRecord
from tidewaiter.sources.sensor import to_event

MAX_QUEUED = 100_000  # records held while detection is busy; the oldest go first beyond it


class SensorInput:
    def __init__(self, *, containers_only: bool = False, label: str = "sensor") -> None:
        self.label = label
        self._lock = threading.Lock()
        self._queue: deque[tuple[SensorRecord, int]] = deque()  # (record, its size as a line)
        self._bytes = 0
        self._line = 0
        self.dropped = 0  # records lost because detection fell behind by MAX_QUEUED
        self.sensor = Sensor(self._put, containers_only=containers_only)
        self._finished = False

    def start(self) -> None:
        """Attach the probes (raises SensorError with the reason when it cannot)."""
        self.sensor.start()

    @property
    def name(self) -> str:
        return self.label

    @property
    def finished(self) -> bool:
        return self._finished

    def poll(self, budget: int) -> list[Event]:
        events: list[Event] = []
        with self._lock:
            while self._queue and budget > 0:
                record, size = self._queue.popleft()
                self._bytes -= size
                self._line += 1
                budget -= size
                events.append(to_event(record, RawRef("sensor", self.label, line=self._line)))
        return events

    def position(self) -> dict[str, Any] | None:
        return None

    def restore(self, position: dict[str, Any]) -> None:
        pass  # nothing to resume: what happened while stopped was not seen

    def behind(self) -> int:
        """Bytes of records queued and not polled yet, as they would be as JSON lines."""
        with self._lock:
            return self._bytes

    def close(self) -> None:
        self.sensor.stop()
        self._finished = True

    def _put(self, record: SensorRecord) -> None:
        size = len(ENCODER.encode(record)) + 1
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                _, lost = self._queue.popleft()
                self._bytes -= lost
                self.dropped += 1
            self._queue.append((record, size))
            self._bytes += size
