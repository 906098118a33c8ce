"""When a container's state goes: after it has been idle for a while, or soon after it exits.

A long run sees containers come and go by the thousand; what the engine remembers about each one
(its identity, mount, last archive, addresses) must go with it, or memory grows with every
container ever seen. Time here is event time (the engine's watermark), so expiry happens at the
same point of the stream in every run, before or after a restart.

* idle: no event from the container for ``ttl`` seconds (default 3600, above the correlation
  window, so an archive and its transfer are never separated by expiry);
* exit: a container stop (Docker die, stop, kill, destroy) releases it ``grace`` seconds later,
  leaving time for the records other sources write late (a Zeek connection logged at its end);
  an event from it after the stop cancels that (``docker restart`` keeps the id).

Releasing decides an open episode rather than dropping it.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict

import msgspec

from tidewaiter.events import Activity, Event, Kind
from tidewaiter.identity import MIN_PREFIX, POD_PREFIX


class ExpiryState(msgspec.Struct, array_like=True):
    last: list[tuple[str, float]]
    exits: list[tuple[str, float]]


class Expiry:
    def __init__(self, ttl: float = 3600.0, grace: float = 60.0, capacity: int = 200_000) -> None:
        self.ttl = ttl
        self.grace = grace
        self.capacity = capacity
        self._last: OrderedDict[str, float] = OrderedDict()  # key → last event time, oldest first
        self._exits: dict[str, float] = {}  # key → time of its stop
        self._due: list[tuple[float, str]] = []  # (stop + grace, key), lazily checked

    def __len__(self) -> int:
        return len(self._last)

    def observe(self, event: Event) -> None:
        container = event.container
        if container is None:
            return
        uid = container.uid
        key = uid if uid.startswith(POD_PREFIX) else uid[:MIN_PREFIX]
        time = event.time
        last = self._last.get(key)
        self._last[key] = time if last is None else max(last, time)
        self._last.move_to_end(key)
        if event.kind is Kind.CONTAINER and event.activity is Activity.STOP:
            self._exits[key] = time
            heapq.heappush(self._due, (time + self.grace, key))
        elif key in self._exits and time > self._exits[key]:
            del self._exits[key]  # alive again after its stop

    def expired(self, now: float) -> list[str]:
        """Keys (container ids or their 12-character prefixes) to release at event time now."""
        gone: list[str] = []
        while self._due and self._due[0][0] <= now:
            _, key = heapq.heappop(self._due)
            stopped = self._exits.get(key)
            if stopped is not None and stopped + self.grace <= now:
                del self._exits[key]
                if self._last.pop(key, None) is not None:
                    gone.append(key)
        while self._last:
            key, last = next(iter(self._last.items()))
            if last + self.ttl > now and len(self._last) <= self.capacity:
                break
            del self._last[key]
            self._exits.pop(key, None)
            gone.append(key)
        return gone

    def snapshot(self) -> ExpiryState:
        return ExpiryState(list(self._last.items()), list(self._exits.items()))

    def restore(self, state: ExpiryState) -> None:
        self._last = OrderedDict(state.last)
        self._exits = dict(state.exits)
        self._due = [(time + self.grace, key) for key, time in state.exits]
        heapq.heapify(self._due)
