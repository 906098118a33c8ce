"""Real faults for the adversarial tests: a tiny filesystem that fills up (tmpfs, mounted by the
test as root), and a client for the HTTP input. (The file size limit that makes the kernel cut a
write short, RLIMIT_FSIZE, is set by the child processes themselves.)"""

from __future__ import annotations

import http.client
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.watch.harness import LOOPBACK


@contextmanager
def tiny_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` for the block; skipped without root (with the
    reason), and required when CI is set."""
    reason = None
    if os.geteuid() != 0:
        reason = "mounting a tiny filesystem needs root"
    path.mkdir(parents=True, exist_ok=True)
    if reason is None:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            reason = f"cannot mount a tmpfs here: {done.stderr.strip()}"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def whole_lines(path: Path) -> list[bytes]:
    """The file's lines; fails when its last line is torn (no newline)."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path} ends in a torn line: {data[-80:]!r}"
    return data.splitlines()


def post(port: int, body: bytes, timeout: float = 120.0) -> int:
    """POST a body to the HTTP input on loopback; the status."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        connection.request("POST", "/", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()
