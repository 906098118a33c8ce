"""`tidewaiter sensor`: the live Linux sensor, printing one JSON line a record on stdout.

Its output is a line stream the `sensor` source reads, from a file or a pipe:
`tidewaiter sensor > host.jsonl`, `tidewaiter sensor | tidewaiter watch -`. Counts and problems
go to stderr, so stdout carries records only.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import IO, Any

from tidewaiter.cli import exits
from tidewaiter.sensor.prereqs import sensor_missing
from tidewaiter.sensor.runner import Sensor, SensorError
from tidewaiter.sensor.schema import ENCODER, SensorRecord


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "sensor",
        help="capture process, file and network activity per container (Linux, root, bpftrace)",
        description="Capture process executions (full argv), file creations, outbound connects "
        "and bytes sent, each attributed to its container, with bpftrace tracepoints. Prints "
        "JSON lines for `tidewaiter detect` or `tidewaiter watch -`.",
    )
    parser.add_argument(
        "--containers-only", action="store_true", help="leave out processes in no container"
    )
    parser.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    parser.add_argument(
        "--out", "--output", dest="out", type=Path, metavar="FILE", help="append records to FILE"
    )
    parser.add_argument(
        "--check", action="store_true", help="only say whether the sensor can run here"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    missing = sensor_missing()
    if args.check:
        print(missing or "The sensor can run here.", file=sys.stderr)
        return exits.USAGE if missing else exits.OK
    if missing:
        print(f"tidewaiter: {missing}", file=sys.stderr)
        return exits.USAGE
    stream: IO[bytes] = args.out.open("ab") if args.out else sys.stdout.buffer
    stop = threading.Event()
    broken = threading.Event()

    def write(record: SensorRecord) -> None:
        if broken.is_set():
            return
        try:
            stream.write(ENCODER.encode(record) + b"\n")
            stream.flush()
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly
            broken.set()
            stop.set()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        stop.set()

    sensor = Sensor(write, containers_only=args.containers_only)
    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        sensor.start()
    except SensorError as exc:
        print(f"tidewaiter: {exc}", file=sys.stderr)
        return exits.USAGE
    try:
        left_out = f"; left out (not in this kernel): {', '.join(sensor.dropped)}"
        print(
            f"sensor attached{left_out if sensor.dropped else ''}; stop with Ctrl-C",
            file=sys.stderr,
        )
        stop.wait(args.duration)
    finally:
        sensor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if args.out:
            stream.close()
    assembler = sensor.assembler
    if assembler is not None:
        counts = assembler.counters
        print(
            f"sensor stopped: {counts.records} probe records, {counts.lost} lost by bpftrace, "
            f"{counts.unreadable} unreadable, {counts.sends_without_destination} sends on "
            "sockets connected before it started",
            file=sys.stderr,
        )
    for error in sensor.errors[-5:]:
        print(f"bpftrace: {error}", file=sys.stderr)
    return exits.OK
