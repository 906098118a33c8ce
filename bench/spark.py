"""`hunt --spark` on local[1] against local[2] on the Tetragon bench, checked against `detect`.

    python bench/spark.py --events 100000
    python bench/spark.py                      # the 1M trace of `make bench` (~1.9 GB)

Each run is a fresh interpreter: `detect` (tidewaiter.run.detect_files, one process), then
tidewaiter.spark.hunt.hunt_spark on each master. Wall time is the hunt alone (the session is
started before it; its start-up is given apart); CPU seconds are the whole process tree's
(driver, Spark's JVM, its Python workers), read from /proc before the session stops, and so
is peak memory: the sum of each live process's own peak (VmHWM), an upper bound. Every
run's findings (alerts and suppressed, whole, sorted by uid) and read summary are compared
with detect's: the script fails if any differs. The machine may be shared: wall figures measure
the neighbours too, CPU figures much less so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from generate import generate

OUT = Path(__file__).resolve().parent / "out"


def _tree() -> tuple[float, float]:
    """CPU seconds of this process and every descendant alive or reaped (cutime, cstime), and
    the sum of the live ones' peak memory in MB (each process's own peak: an upper bound)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(f) for f in fields[11:15]) / tick
    total, peak, todo = 0.0, 0.0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
        try:
            with open(f"/proc/{pid}/status") as status:
                peak += next(
                    (int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0
                )
        except OSError:
            continue
    return total, peak / 1024


def _findings(outcome: Any) -> dict[str, Any]:
    def by_uid(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(alerts, key=lambda a: str(a["finding_info"]["uid"]))

    return {
        "alerts": by_uid(outcome.alerts),
        "suppressed": by_uid(outcome.suppressed),
        "hidden_below_min": outcome.hidden_below_min,
        "read": outcome.report.summary(),
    }


def _child(path: str, master: str | None) -> dict[str, Any]:
    from tidewaiter.pipeline import EngineConfig
    from tidewaiter.run import detect_files

    started = time.perf_counter()
    if master is None:
        outcome = detect_files([path], EngineConfig(), [])
        wall, start_s = time.perf_counter() - started, 0.0
    else:
        from tidewaiter.spark import session
        from tidewaiter.spark.hunt import hunt_spark

        spark = session(master, quiet=True, conf={"spark.driver.memory": "8g"})
        start_s = time.perf_counter() - started
        started = time.perf_counter()
        outcome = hunt_spark(spark, [path], EngineConfig(), [])
        wall = time.perf_counter() - started
    cpu, peak = _tree()
    findings = _findings(outcome)
    blob = json.dumps(findings, sort_keys=True).encode()
    (OUT / f"spark-findings-{master or 'detect'}.json").write_bytes(blob)
    if master is not None:
        spark.stop()
    return {
        "run": master or "detect",
        "events": outcome.report.events,
        "alerts": len(outcome.alerts),
        "wall_s": round(wall, 1),
        "session_start_s": round(start_s, 1),
        "cpu_s": round(cpu, 1),
        "peak_mb": round(peak),
        "events_per_wall_s": round(outcome.report.events / wall),
        "findings_sha256": hashlib.sha256(blob).hexdigest(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--masters", nargs="+", default=["local[1]", "local[2]"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--master", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.master)))
        return 0
    # The trace of `make bench` (bench/run.py's defaults), so the figures are of the same input.
    path = OUT / f"tetragon-{args.events // 1000}k.jsonl"
    if args.events >= 1_000_000 and args.events % 1_000_000 == 0:
        path = OUT / f"tetragon-{args.events // 1_000_000}m.jsonl"
    generate(path, args.events, 1000, 7)
    results = []
    for master in [None, *args.masters]:
        command = [sys.executable, __file__, "--child", str(path)]
        done = subprocess.run(
            command + (["--master", master] if master else []),
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["same_as_detect"] = result["findings_sha256"] == (
            results[0]["findings_sha256"] if results else result["findings_sha256"]
        )
        results.append(result)
        print(
            f"  {result['run']:>8}: {result['events']} events, {result['alerts']} alerts,"
            f" {result['wall_s']} s wall ({result['events_per_wall_s']}/s),"
            f" +{result['session_start_s']} s session start, {result['cpu_s']} CPU-s,"
            f" peak {result['peak_mb']} MB (all processes),"
            f" same findings as detect: {result['same_as_detect']}",
            flush=True,
        )
    (OUT / f"spark-{path.stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["same_as_detect"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
