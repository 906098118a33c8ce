"""Small helpers the tests share: read a file through tidewaiter's own reader, and one line of
each common format, for sniff tests that must reject formats other than their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tidewaiter import fleet
from tidewaiter.events import Event
from tidewaiter.sources import ReadReport, open_events


def read(path: Path | str, fmt: str | None = None) -> tuple[list[Event], ReadReport]:
    report = ReadReport()
    events = list(open_events(str(path), report, fmt))
    return events, report


# One record of other producers' formats, as sniff tests feed them.
TETRAGON = b'{"process_exec":{"process":{"binary":"/bin/ls"}},"time":"2024-01-01T00:00:00Z"}\n'
FALCO = (
    b'{"output":"x","priority":"Notice","rule":"r","time":"2024-01-01T00:00:00Z",'
    b'"output_fields":{"proc.name":"tar"}}\n'
)
ZEEK = b'{"ts":1.0,"uid":"C1","id.orig_h":"10.0.0.1","id.resp_h":"1.2.3.4","conn_state":"SF"}\n'
OCSF = b'{"class_uid":1007,"time":1700000000000}\n'


def tetragon_pod(
    namespace: str, workload: str, kind: str, image: str, pod: str, ip: str = "10.2.9.9"
) -> tuple[fleet.Day, fleet.Tetragon, fleet.Pod]:
    """One pod's Tetragon records, written with the budget's writer: the day that collects
    them, the writer, and the pod."""
    day = fleet.Day()
    return (
        day,
        fleet.Tetragon(day),
        fleet.Pod.make(namespace, workload, kind, image, "node-1", ip, pod),
    )


def bench_trace(path: Path, events: int) -> None:
    """A generated Tetragon trace, as bench/generate.py makes it (200 containers, 10 attacks,
    10 nightly backups), for the tests that need volume."""
    import importlib.util
    import sys

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_generate", root / "bench" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    module.generate(path, events, containers=200, seed=11, attacks=10, backups=10)


def assert_same_findings(one: Any, other: Any) -> None:
    """Two runs' outcomes (tidewaiter.run.Outcome) report the same: every alert and suppressed
    finding whole (uids, severities, evidence with its file and line), the counts, the read."""

    def by_uid(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(alerts, key=lambda a: str(a["finding_info"]["uid"]))

    assert by_uid(other.alerts) == by_uid(one.alerts)
    assert by_uid(other.suppressed) == by_uid(one.suppressed)
    assert other.hidden_below_min == one.hidden_below_min
    assert other.report.summary() == one.report.summary()
