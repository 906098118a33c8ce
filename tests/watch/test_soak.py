"""Memory stays flat while 10,000 short-lived containers come and go."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.watch.harness import Watch, poll
from tests.watch.scenario import churn

CONTAINERS = 10_000
EVENTS = 4 * CONTAINERS  # four records a container (the hundredth packs and uploads, also four)
EARLY = 4_000  # events: the first 1,000 containers
# Measured: +2 MiB from 1,000 to 10,000 containers with expiry, +15 MiB without (~1.5 KiB each).
GROWTH_KIB = 8 * 1024
_STATUS = re.compile(r"([\d,]+) containers tracked, .* open, ([\d,]+) events")


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc for memory")
def test_memory_stays_flat_while_10000_containers_come_and_go(tmp_path: Path) -> None:
    watched = tmp_path / "falco.jsonl"
    with watched.open("wb") as out:
        out.writelines(churn(CONTAINERS))
    args = [
        str(watched),
        "--db",
        "tw.duckdb",
        "--container-ttl",
        "120",
        "--status-interval",
        "0.05",
    ]
    samples: list[tuple[int, int]] = []  # (events processed, RSS in KiB)

    def progress() -> tuple[int, int]:
        for line in reversed(list(watch.lines)):
            match = _STATUS.search(line)
            if match:
                return int(match.group(2).replace(",", "")), int(match.group(1).replace(",", ""))
        return 0, 0

    with Watch(args, tmp_path).start() as watch:
        assert watch.proc is not None
        pid = watch.proc.pid

        def sampled_to_the_end() -> bool:
            events, _ = progress()
            samples.append((events, rss_kib(pid)))
            return events >= EVENTS

        poll(sampled_to_the_end, 120, "every event to be processed", every=0.02)
        _, tracked = progress()
        assert watch.stop() == 0
    early = next(rss for events, rss in samples if events >= EARLY)
    peak = max(rss for events, rss in samples if events >= EARLY)
    print(f"RSS {early} KiB after 1,000 containers, peak {peak} KiB over 10,000")
    assert peak - early < GROWTH_KIB
    assert tracked <= 100  # containers still held: those of the last ttl, not all 10,000
