"""Files `watch` used to never read: a first line longer than the 64 KiB sniff window (a
Kubernetes audit record with a large request object, keys in alphabetical order as some
shippers write them, so ``stage`` comes after it), a first line longer than the hard limit, and
a named pipe with no writer, which blocked watch so that SIGTERM and SIGINT no longer stopped it.

Real ``tidewaiter watch`` and ``tidewaiter detect`` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES
from tests.watch.harness import Watch, jsonl_alerts, poll
from tests.watch.scenario import stream
from tidewaiter.sources import SNIFF_BYTES

AUDIT = FIXTURES / "k8s_audit" / "audit.jsonl"


def sorted_audit(pad: int) -> bytes:
    """The audit fixture, keys sorted; the first record carries a ``pad``-byte request object."""
    lines = []
    for number, line in enumerate(AUDIT.read_bytes().splitlines()):
        record = json.loads(line)
        if number == 0:
            record["requestObject"] = {"kind": "ConfigMap", "data": {"blob": "x" * pad}}
        lines.append(json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    return b"".join(lines)


def detect(path: Path, stdin: bool = False) -> tuple[int, list[dict[str, Any]], str]:
    """``tidewaiter detect --json PATH`` (or ``-`` with the file piped in)."""
    with path.open("rb") as data:
        done = subprocess.run(
            [sys.executable, "-m", "tidewaiter", "detect", "--json", "-" if stdin else str(path)],
            stdin=data if stdin else subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
            check=False,
        )
    alerts = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, alerts, done.stderr.decode()


def _keyed(alerts: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return sorted((a["finding_info"]["uid"], a["severity_id"]) for a in alerts)


def test_a_first_line_longer_than_the_sniff_window_is_recognised_by_detect_and_watch(
    tmp_path: Path,
) -> None:
    short, long = tmp_path / "short.jsonl", tmp_path / "audit.jsonl"
    short.write_bytes(sorted_audit(pad=10))
    long.write_bytes(sorted_audit(pad=200_000))
    assert long.read_bytes().index(b'"stage"') > SNIFF_BYTES  # past the window
    code, expected, _ = detect(short)
    assert code == 0
    assert expected  # the fixture's kubectl cp fires
    for stdin in (False, True):  # standard input buffers 8 KiB: the line is read on whole
        code, alerts, said = detect(long, stdin=stdin)
        assert "not in a format" not in said
        assert (code, _keyed(alerts)) == (0, _keyed(expected))

    out = tmp_path / "alerts.jsonl"
    args = [str(long), "--db", "tw.duckdb", "--out", str(out), "--idle-flush", "0.5"]
    with Watch([*args, "--status-interval", "0"], tmp_path).start() as watch:
        poll(lambda: len(jsonl_alerts(out)) >= len(expected), 60, "the audit alerts")
        assert watch.stop() == 0
    assert _keyed(jsonl_alerts(out)) == _keyed(expected)


def test_a_first_line_longer_than_max_record_is_refused_with_a_clear_message(
    tmp_path: Path,
) -> None:
    """Before, watch showed the file "behind" for ever and said nothing."""
    long = tmp_path / "audit.jsonl"
    long.write_bytes(sorted_audit(pad=300_000))
    args = [str(long), "--db", "tw.duckdb", "--max-record", "128k", "--status-interval", "0"]
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("the first line is longer than 131072 bytes (--max-record)", timeout=60)
        assert watch.stop() == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_named_pipe_without_a_writer_does_not_stop_a_signal_stopping_watch(
    tmp_path: Path, signum: int
) -> None:
    fifo = tmp_path / "falco.pipe"
    os.mkfifo(fifo)
    args = [str(fifo), "--db", "tw.duckdb", "--status-interval", "0.2"]
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("watching 1 input(s)")
        watch.wait_for("0 alerts, ", timeout=60)  # the loop goes round: the pipe is open
        watch.signal(signum)
        assert watch.stop(timeout=30) == 0  # before: blocked in open() for ever


def test_a_named_pipe_is_read_as_a_stream_while_writers_come_and_go(tmp_path: Path) -> None:
    fifo = tmp_path / "falco.pipe"
    os.mkfifo(fifo)
    out = tmp_path / "alerts.jsonl"
    lines = stream(chains=2, noise_per_chain=2)
    half = len(lines) // 2
    args = [str(fifo), "--db", "tw.duckdb", "--out", str(out), "--idle-flush", "0.5"]
    with Watch([*args, "--status-interval", "0"], tmp_path).start() as watch:
        watch.wait_for("watching 1 input(s)")
        for part in (lines[:half], lines[half:]):  # one writer, gone, then another
            writer = threading.Thread(target=_write, args=(fifo, b"".join(part)))
            writer.start()
            writer.join(timeout=30)
            assert not writer.is_alive()
        poll(lambda: len(jsonl_alerts(out)) >= 2, 60, "both chains' alerts through the pipe")
        assert watch.stop(timeout=30) == 0


def _write(path: Path, data: bytes) -> None:
    with path.open("wb") as pipe:
        pipe.write(data)
