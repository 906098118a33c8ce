"""Run bpftrace with program.bt and turn its output into SensorRecords, live.

The Sensor owns one bpftrace process, started with an argument list (never a shell) and stopped
by its pid: SIGINT first, so bpftrace detaches its probes cleanly, SIGKILL if it does not exit. A
reader thread parses its output as it comes; records go to a callback under a lock.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from importlib import resources
from types import TracebackType

from tidewaiter.sensor.cgroups import CgroupResolver
from tidewaiter.sensor.prereqs import sensor_missing, tracepoint_exists
from tidewaiter.sensor.records import Assembler
from tidewaiter.sensor.schema import SensorRecord

STRLEN = 200  # bytes read of each argument and path (bpftrace 0.17 allows at most 200)
ATTACH_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0
TICK = 0.05  # how often held-back records are looked at when no output comes
_REQUIRES = re.compile(r"^// requires: (.+)$", re.MULTILINE)
_HARMLESS = ("RLIMIT_MEMLOCK",)  # printed on hosts where root lacks CAP_SYS_RESOURCE


class SensorError(Exception):
    """The sensor could not start; the message says why in one sentence."""


def program(exists: Callable[[str], bool] = tracepoint_exists) -> tuple[str, list[str]]:
    """program.bt without the blocks whose tracepoints this kernel lacks, and what was left out."""
    text = resources.files("tidewaiter.sensor").joinpath("program.bt").read_text()
    starts = [m.start() for m in _REQUIRES.finditer(text)]
    kept = [text[: starts[0]]] if starts else [text]
    dropped: list[str] = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        block = text[start:end]
        match = _REQUIRES.match(block)
        needed = match.group(1).split() if match else []
        absent = [name for name in needed if not exists(name)]
        if absent:
            dropped.extend(absent)
        else:
            kept.append(block)
    return "".join(kept), dropped


class Sensor:
    def __init__(
        self,
        on_record: Callable[[SensorRecord], None],
        *,
        containers_only: bool = False,
        host: str | None = None,
        resolver: CgroupResolver | None = None,
    ) -> None:
        self._on_record = on_record
        self._containers_only = containers_only
        self._host = host or socket.gethostname()
        self.resolver = resolver or CgroupResolver()
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._stderr: threading.Thread | None = None
        self._lock = threading.Lock()
        self._attached = threading.Event()
        self._markers: dict[str, threading.Event] = {}
        self.errors: list[str] = []
        self.dropped: list[str] = []  # tracepoints this kernel lacks
        self.assembler: Assembler | None = None

    @property
    def host(self) -> str:
        return self._host

    def register_cgroup(self, path: str) -> None:
        """Learn a cgroup the caller just created, before its first record arrives."""
        with self._lock:
            self.resolver.register(path)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = ATTACH_TIMEOUT) -> None:
        missing = sensor_missing()
        if missing:
            raise SensorError(missing)
        text, self.dropped = program()
        env = {**os.environ, "BPFTRACE_STRLEN": str(STRLEN)}
        self._process = subprocess.Popen(
            ["bpftrace", "-f", "json", "-e", text],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        ignore = frozenset({os.getpid(), self._process.pid})
        self.assembler = Assembler(
            self._deliver,
            self.resolver,
            self._host,
            containers_only=self._containers_only,
            ignore_pids=ignore,
            strlen=STRLEN,
        )
        self._reader = threading.Thread(target=self._read, name="sensor-reader", daemon=True)
        self._stderr = threading.Thread(target=self._read_errors, name="sensor-stderr", daemon=True)
        self._reader.start()
        self._stderr.start()
        deadline = time.monotonic() + timeout
        while not self._attached.wait(0.1):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                why = "; ".join(self.errors[-3:]) or "no error printed"
                raise SensorError(f"bpftrace did not attach its probes ({why})")

    def stop(self) -> None:
        """Stop bpftrace by its pid and emit everything still held back."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for thread in (self._reader, self._stderr):
            if thread is not None:
                thread.join(STOP_TIMEOUT)
        with self._lock:
            if self.assembler is not None:
                self.assembler.flush()
        self._process = None

    def expect(self, marker: str) -> threading.Event:
        """An event set once an exec whose argv holds ``marker`` has been emitted."""
        event = threading.Event()
        with self._lock:
            self._markers[marker] = event
        return event

    def flush(self) -> None:
        """Emit what is held back (folded sends, execs waiting for arguments) now."""
        with self._lock:
            if self.assembler is not None:
                self.assembler.flush()

    def __enter__(self) -> Sensor:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- threads ----------------------------------------------------------------------------

    def _deliver(self, record: SensorRecord) -> None:  # called with the lock held
        if record.event == "exec" and self._markers and record.argv:
            for marker in [m for m in self._markers if any(m in a for a in record.argv or ())]:
                self._markers.pop(marker).set()  # each marker is awaited once
        self._on_record(record)

    def _read(self) -> None:
        process = self._process
        assembler = self.assembler
        if process is None or process.stdout is None or assembler is None:
            return
        stream = process.stdout
        fd = stream.fileno()
        os.set_blocking(fd, False)
        buffer = b""
        while True:
            chunk = _read_some(fd, TICK)
            with self._lock:
                if chunk is None:  # nothing within TICK: let held-back records go
                    assembler.tick()
                    continue
                if not chunk:  # end of output: bpftrace exited
                    if buffer:
                        assembler.feed(buffer)
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line:
                        assembler.feed(line)
                if assembler.attached:
                    self._attached.set()

    def _read_errors(self) -> None:
        process = self._process
        if process is None or process.stderr is None:
            return
        for raw in process.stderr:
            line = raw.decode("utf-8", "replace").strip()
            if line and not any(h in line for h in _HARMLESS):
                self.errors.append(line)


def _read_some(fd: int, timeout: float) -> bytes | None:
    """Bytes available on fd within timeout; b"" at end of file; None when nothing came."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return None
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return None
