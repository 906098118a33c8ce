"""An on-disk queue of alerts for a sink whose receiver can be down (webhook, syslog).

``SpooledSink.write`` appends the alert to the spool; ``commit`` fsyncs what was appended (the
runner commits before it checkpoints, so an alert the checkpoint covers is on disk); a sender
thread delivers the oldest alert, retrying with backoff while the receiver fails, and only then
moves on, so alerts arrive in the order they fired.

Delivery is at least once. The spool remembers the uids it has taken (across restarts), so an
alert decided again after a crash is not queued twice; but an alert whose delivery succeeded
just before a crash, before the acknowledgement reached the disk, is sent again. At most one
alert is in flight, so that is at most one repeat per crash, and every request carries the
finding uid in ``Idempotency-Key`` for the receiver to drop it.

Files, in the spool's folder: ``queue-<generation>.jsonl`` (the alerts, one per line), ``acked``
("<generation> <offset>": what is delivered) and ``history`` (recent uids of alerts no longer in
the queue). Compaction writes the undelivered tail to the next generation, then moves ``acked``
to it: a crash at any point leaves one consistent pair.
"""

from __future__ import annotations

import contextlib
import enum
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import orjson

from tidewaiter import durable
from tidewaiter.alerts import delivery_key

REMEMBERED = 100_000  # uids remembered for deduplication
COMPACT_BYTES = 1 << 20  # a delivered prefix this large (and half the file) is compacted away


class Put(enum.Enum):
    QUEUED = "queued"
    KNOWN = "known"  # taken before (a restart decided it again)
    FULL = "full"
    FAILED = "failed"  # the disk did not take it (full, an I/O error): nothing of it was kept


class Spool:
    def __init__(
        self,
        folder: Path,
        max_bytes: int,
        remember: int = REMEMBERED,
        compact_bytes: int = COMPACT_BYTES,
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._remember = remember
        self._compact_bytes = compact_bytes
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        self._seen: dict[str, None] = dict.fromkeys(_read_lines(folder / "history"))
        self._generation, self._acked = self._read_acked()
        self._fd = self._open_queue(self._generation)
        self._committed: deque[tuple[int, int]] = deque()  # (start, end) of undelivered lines
        self._uncommitted: list[tuple[int, int]] = []
        self._end = 0
        self.problem: str | None = None  # why the last put failed
        self._load()

    # --- loading -------------------------------------------------------------------------------

    def _read_acked(self) -> tuple[int, int]:
        try:
            generation, offset = (self.folder / "acked").read_text().split()
            return int(generation), int(offset)
        except (FileNotFoundError, ValueError):
            return 0, 0

    def _queue_path(self, generation: int) -> Path:
        return self.folder / f"queue-{generation}.jsonl"

    def _open_queue(self, generation: int) -> int:
        for stale in self.folder.glob("queue-*.jsonl"):  # left by an interrupted compaction
            if stale != self._queue_path(generation):
                stale.unlink()
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        return os.open(self._queue_path(generation), flags, 0o600)

    def _load(self) -> None:
        start = 0
        carry = b""
        while chunk := os.pread(self._fd, 1 << 20, start + len(carry)):
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()
            for line in lines:
                end = start + len(line) + 1
                uid = _uid(line)
                if uid is not None:
                    self._remember_uid(uid)
                if start >= self._acked:
                    self._committed.append((start, end))
                start = end
        if carry:  # a line torn by a crash: never committed, so never acknowledged
            os.ftruncate(self._fd, start)
        self._acked = min(self._acked, start)
        self._end = start

    def _remember_uid(self, uid: str) -> None:
        self._seen[uid] = None
        if len(self._seen) > self._remember:
            del self._seen[next(iter(self._seen))]

    # --- the writer's side (the runner) --------------------------------------------------------

    def put(self, alert: dict[str, Any]) -> Put:
        uid = delivery_key(alert)
        line = orjson.dumps(alert) + b"\n"
        with self._lock:
            if uid in self._seen:
                return Put.KNOWN
            if self._end - self._acked + len(line) > self.max_bytes:
                return Put.FULL
            try:
                durable.append(self._fd, line, self._end)
            except OSError as exc:
                self.problem = exc.strerror or str(exc)
                return Put.FAILED
            self._uncommitted.append((self._end, self._end + len(line)))
            self._end += len(line)
            self._remember_uid(uid)
        return Put.QUEUED

    def commit(self) -> None:
        with self._lock:
            if self._uncommitted:
                os.fsync(self._fd)
                self._committed.extend(self._uncommitted)
                self._uncommitted.clear()

    # --- the sender's side ---------------------------------------------------------------------

    def peek(self) -> tuple[dict[str, Any] | None, int] | None:
        """The oldest undelivered alert (None if its line is unreadable) and the offset that
        acknowledges it; None when nothing is waiting."""
        with self._lock:
            if not self._committed:
                return None
            start, end = self._committed[0]
            line = os.pread(self._fd, end - start, start)
        try:
            alert = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None, end
        return (alert if isinstance(alert, dict) else None), end

    def ack(self, end: int) -> None:
        """The alert ending at ``end`` is delivered (or refused for good): never send it again."""
        with self._lock:
            while self._committed and self._committed[0][1] <= end:
                self._committed.popleft()
            self._acked = max(self._acked, end)
            try:
                _replace(self.folder / "acked", f"{self._generation} {self._acked}\n".encode())
                if self._acked >= self._compact_bytes and self._acked * 2 >= self._end:
                    self._compact()
            except OSError:
                # A full disk: delivery goes on, acknowledged in memory; after a restart the
                # alerts since the last recorded acknowledgement are sent again (at least once).
                return

    def _compact(self) -> None:
        """Move the undelivered tail to a new generation (called with the lock held)."""
        _replace(self.folder / "history", "\n".join(self._seen).encode())
        tail = os.pread(self._fd, self._end - self._acked, self._acked)
        new = self._generation + 1
        path = self._queue_path(new)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            durable.write_all(fd, tail)
            os.fsync(fd)
            _replace(self.folder / "acked", f"{new} 0\n".encode())
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        os.close(self._fd)
        self._queue_path(self._generation).unlink()
        shift = self._acked
        self._fd, self._generation, self._acked, self._end = fd, new, 0, self._end - shift
        self._committed = deque((s - shift, e - shift) for s, e in self._committed)
        self._uncommitted = [(s - shift, e - shift) for s, e in self._uncommitted]

    # --- figures -------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._committed) + len(self._uncommitted)

    @property
    def pending_bytes(self) -> int:
        with self._lock:
            return self._end - self._acked

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


class DeliveryError(Exception):
    """A receiver did not take an alert. ``permanent``: it never will (a 400), so the alert is
    passed over rather than blocking every later one; otherwise it is retried."""

    def __init__(
        self, reason: str, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.permanent = permanent
        self.retry_after = retry_after


class Transport(Protocol):
    def send(self, alert: dict[str, Any]) -> None:
        """Deliver one alert or raise DeliveryError."""
        ...

    def close(self) -> None: ...


class SpooledSink:
    """A sink that queues on disk and delivers from a thread, so a slow or dead receiver never
    holds detection up."""

    def __init__(
        self,
        label: str,
        spool: Spool,
        transport: Transport,
        say: Callable[[str], None],
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self.label = label
        self.spool = spool
        self.transport = transport
        self._say = say
        self._backoff = backoff
        self.delivered = 0
        self.refused = 0  # alerts the receiver rejected for good
        self.lost = 0  # alerts not queued because the spool was full
        self.failing: str | None = None  # the last error while the receiver is failing
        self._said: dict[str, float] = {}  # when each complaint was last made
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sink {label}", daemon=True)
        self._thread.start()

    def write(self, alert: dict[str, Any]) -> None:
        put = self.spool.put(alert)
        if put is Put.FULL:
            why = f"the spool is full ({self.spool.max_bytes} bytes undelivered)"
        elif put is Put.FAILED:
            why = f"the spool cannot be written ({self.spool.problem})"
        else:
            return
        self.lost += 1
        self._complain(
            put.value,
            f"{self.label}: {why}; alert {alert['finding_info']['uid']} is NOT queued for "
            f"{self.label} ({self.lost} lost so far); it is in the other sinks",
            every=1.0,
        )

    def commit(self) -> None:
        self.spool.commit()
        self._wake.set()

    def close(self, drain: float = 2.0) -> None:
        """Stop the sender, after giving it ``drain`` seconds to empty the spool."""
        deadline = time.monotonic() + drain
        while self.spool.pending and self.failing is None and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=drain + 30.0)
        self.transport.close()
        self.spool.close()

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            try:
                item = self.spool.peek()
            except OSError as exc:  # the spool cannot be read now: try again, never give up
                self._complain("read", f"{self.label}: cannot read the spool ({exc})", every=60.0)
                self._stop.wait(delay)
                continue
            if item is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            alert, end = item
            if alert is None:
                self._say(f"{self.label}: an unreadable alert in the spool is passed over")
                self.spool.ack(end)
                continue
            try:
                self.transport.send(alert)
            except DeliveryError as exc:
                if exc.permanent:
                    self.refused += 1
                    uid = alert["finding_info"]["uid"]
                    self._say(f"{self.label} refused alert {uid} ({exc}); it is not sent again")
                    self.spool.ack(end)
                    continue
                if self.failing is None:
                    self._say(f"{self.label} is failing ({exc}); alerts wait in the spool")
                self.failing = str(exc)
                self._stop.wait(min(exc.retry_after or delay, self._backoff[1]))
                delay = min(delay * 2, self._backoff[1])
                continue
            except Exception as exc:  # this alert cannot be sent at all: never the ones after it
                self.refused += 1
                uid = alert["finding_info"]["uid"]
                self._say(f"{self.label} cannot send alert {uid} ({type(exc).__name__}: {exc})")
                self.spool.ack(end)
                continue
            self.spool.ack(end)
            self.delivered += 1
            delay = self._backoff[0]
            if self.failing is not None:
                self.failing = None
                self._say(f"{self.label} is delivering again ({self.spool.pending} waiting)")

    def _complain(self, key: str, message: str, every: float) -> None:
        now = time.monotonic()
        if now - self._said.get(key, -every) >= every:
            self._said[key] = now
            self._say(message)


def _uid(line: bytes) -> str | None:
    try:
        alert = orjson.loads(line)
        uid = alert["finding_info"]["uid"]
        return delivery_key(alert) if isinstance(uid, str) else None
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


def _read_lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line]
    except FileNotFoundError:
        return []


def _replace(path: Path, data: bytes) -> None:
    """Write a small file atomically: a crash leaves the old content or the new, whole."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        durable.write_all(fd, data)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)
