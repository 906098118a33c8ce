"""Real processes and a real receiver for the watch tests, every wait bounded by a deadline.

``Watch`` runs ``tidewaiter watch`` as a subprocess and collects its standard error; ``Receiver``
is a webhook endpoint on loopback that records every POST and can go down and come back on the
same port; ``poll`` waits for a condition instead of sleeping.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from tidewaiter.cli.main import build_parser
from tidewaiter.cli.options import engine_config
from tidewaiter.run import detect_files

T = TypeVar("T")
LOOPBACK = "127.0.0.1"


def poll(check: Callable[[], T], timeout: float, what: str, every: float = 0.02) -> T:
    """The first truthy result of ``check``; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class Watch:
    """``tidewaiter watch ARGS`` in a subprocess; always stopped by the ``with`` block."""

    def __init__(self, args: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self, stdin: int | None = subprocess.DEVNULL) -> Watch:
        self.lines = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tidewaiter", "watch", *self.args],
            cwd=self.cwd,
            env=self.env,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        def seen() -> bool:
            if self.said(text):
                return True
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"watch exited before saying {text!r}: {self.lines}")
            return False

        poll(seen, timeout, f"watch to say {text!r}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no last checkpoint."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._join()

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._join()
        return code

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


class Receiver:
    """A webhook endpoint that records each POST: (Idempotency-Key, alert)."""

    def __init__(self, port: int, status: int = 200) -> None:
        self.port = port
        self.status = status
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.active = 0  # requests being handled

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/alerts"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with owner._lock:
                    owner.active += 1
                try:
                    body = self.rfile.read(int(self.headers["Content-Length"]))
                    with owner._lock:
                        if owner.status == 200:
                            key = self.headers["Idempotency-Key"]
                            owner.posts.append((key, json.loads(body)))
                            owner.headers.append(dict(self.headers))
                    self.send_response(owner.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                finally:
                    with owner._lock:
                        owner.active -= 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: nothing more is accepted, and what was being handled is finished."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            poll(lambda: self.active == 0, 10, "the receiver's requests to finish")

    def uids(self) -> list[str]:
        with self._lock:
            return [alert["finding_info"]["uid"] for _, alert in self.posts]

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def detect_alerts(path: Path) -> list[dict[str, Any]]:
    """What ``tidewaiter detect PATH`` reports for a finished file, with default settings."""
    args = build_parser().parse_args(["detect", str(path)])
    return detect_files([str(path)], engine_config(args), []).alerts


def jsonl_alerts(path: Path) -> list[dict[str, Any]]:
    """The alerts on the file's finished lines. A line still being written (no newline yet)
    is left for the next read, as a tailing SIEM agent does: a reader in another process can
    see a write of several pages half done."""
    if not path.exists():
        return []
    finished = path.read_bytes().rpartition(b"\n")[0]
    return [json.loads(line) for line in finished.splitlines() if line.strip()]


def by_uid(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {alert["finding_info"]["uid"]: alert for alert in alerts}


class Appender:
    """Appends lines to a file from a thread, in chunks that sometimes end mid-line."""

    def __init__(self, path: Path, lines: list[bytes], seed: int, pause: float = 0.01) -> None:
        self.path = path
        self.data = b"".join(lines)
        self.rng = random.Random(seed)
        self.pause = pause
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        at = 0
        with self.path.open("ab") as out:
            while at < len(self.data):
                size = self.rng.randrange(200, 4000)
                out.write(self.data[at : at + size])
                out.flush()
                at += size
                time.sleep(self.rng.uniform(0, self.pause))

    def start(self) -> Appender:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the writer did not finish"
