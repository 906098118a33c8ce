"""`detect --jobs`: 1 process against N on the Tetragon bench, one file and split per node.

    python bench/jobs.py --events 100000 --jobs 2

Each run is a fresh interpreter calling tidewaiter.run.detect_files. CPU seconds include the
worker processes (RUSAGE_CHILDREN), so a speed-up in wall time that costs more CPU shows. The
machine may be shared: wall figures measure the neighbours too, CPU figures much less so.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from generate import generate

OUT = Path(__file__).resolve().parent / "out"


def _child(paths: list[str], jobs: int) -> dict[str, Any]:
    from tidewaiter.pipeline import EngineConfig
    from tidewaiter.run import detect_files

    started = time.perf_counter()
    outcome = detect_files(paths, EngineConfig(), [], jobs=jobs)
    wall = time.perf_counter() - started
    own, kids = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    parent = own.ru_utime + own.ru_stime
    return {
        "jobs": jobs,
        "files": len(paths),
        "events": outcome.report.events,
        "alerts": len(outcome.alerts),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),  # includes interpreter start and the catalog, as a user sees it
        # What a free machine's wall time would be: the parent's serial work, then the slowest
        # worker (the load of a shared machine left out).
        "critical_cpu_s": round(parent + max(outcome.worker_cpu_s, default=0.0), 2),
        "events_per_wall_s": round(outcome.report.events / wall),
        "parent_peak_mb": round(peak),
        "worker_peak_mb": round(kids.ru_maxrss / 1024),
    }


def _split(path: Path, parts: int) -> list[str]:
    """The trace as `parts` exports, records dealt round-robin (each still in time order)."""
    outs = [path.with_name(f"{path.stem}.part{n}.jsonl") for n in range(parts)]
    files = [out.open("wb") for out in outs]
    with path.open("rb") as source:
        for number, line in enumerate(source):
            files[number % parts].write(line)
    for file in files:
        file.close()
    return [str(out) for out in outs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.jobs)))
        return 0
    path = OUT / f"tetragon-{args.events // 1000}k.jsonl"
    generate(path, args.events, max(100, args.events // 1000), 7)
    inputs = {"one file": [str(path)], f"{args.jobs} files": _split(path, args.jobs)}
    results = []
    for name, paths in inputs.items():
        for jobs in (1, args.jobs):
            done = subprocess.run(
                [sys.executable, __file__, "--jobs", str(jobs), "--child", *paths],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1]) | {"input": name}
            results.append(result)
            print(
                f"  {name:>8}, --jobs {jobs}: {result['events']} events, {result['alerts']} alerts,"
                f" {result['wall_s']} s wall ({result['events_per_wall_s']}/s),"
                f" {result['cpu_s']} CPU-s (critical path {result['critical_cpu_s']}),"
                f" peak {result['parent_peak_mb']} MB parent /"
                f" {result['worker_peak_mb']} MB worker",
                flush=True,
            )
    (OUT / "jobs.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
