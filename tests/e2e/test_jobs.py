"""`detect --jobs N`: sharded by entity over processes, with exactly the findings of one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.builders import CID, connect, container, flow, launch
from tests.helpers import assert_same_findings, bench_trace
from tidewaiter import evaluate
from tidewaiter.cli.main import main
from tidewaiter.events import Container, Event
from tidewaiter.parallel import Part, digest, plan
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


@pytest.mark.parametrize("folder", evaluate.discover(SCENARIOS), ids=lambda f: f.name)
def test_each_scenario_gives_the_same_findings_on_two_processes(folder: Path) -> None:
    scenario = evaluate.load(folder)
    config = evaluate.engine_config(scenario)
    paths = [str(folder / t) for t in scenario.telemetry]
    assert_same_findings(detect_files(paths, config, []), detect_files(paths, config, [], jobs=2))


def test_the_whole_scenario_set_at_once_shards_and_matches() -> None:
    """Every scenario's files in one run: many containers and hosts, spread over 3 workers."""
    paths = [
        str(folder / t)
        for folder in evaluate.discover(SCENARIOS)
        for t in evaluate.load(folder).telemetry
    ]
    one = detect_files(paths, EngineConfig(), [])
    assert len(one.alerts) > 30
    assert_same_findings(one, detect_files(paths, EngineConfig(), [], jobs=3))


def test_the_100k_bench_gives_the_same_findings_on_two_processes(tmp_path: Path) -> None:
    trace = tmp_path / "tetragon-100k.jsonl"
    bench_trace(trace, 100_000)
    lines = trace.read_bytes().splitlines(keepends=True)
    halves = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]  # two nodes' exports, decoded apart
    halves[0].write_bytes(b"".join(lines[::2]))
    halves[1].write_bytes(b"".join(lines[1::2]))
    one = detect_files([str(trace)], EngineConfig(), [])
    assert len(one.alerts) >= 10
    assert_same_findings(one, detect_files([str(trace)], EngineConfig(), [], jobs=2))
    split = [str(p) for p in halves]
    assert_same_findings(
        detect_files(split, EngineConfig(), []), detect_files(split, EngineConfig(), [], jobs=2)
    )


def _shards(events: list[Event]) -> list[int]:
    """Which of two workers each event goes to, the input read as one part."""
    config = EngineConfig()
    return plan([Part(0, 0, "-", None, 0)], [digest(events, config)], config, jobs=2).shards[0]


def test_a_flow_goes_to_the_container_that_held_its_address() -> None:
    other = container("9" * 64, "web")
    events = [
        connect("198.51.100.7", time=1.0, ctr=container(), src="10.0.3.45"),
        connect("198.51.100.8", time=2.0, ctr=other, src="10.0.3.99"),
        flow("10.0.3.45", "203.0.113.5", 443, 3.0, 10_000_000),
        flow("10.0.3.99", "203.0.113.5", 443, 4.0, 10_000_000),
    ]
    shards = _shards(events)
    assert shards[2] == shards[0]
    assert shards[3] == shards[1]
    assert shards[0] != shards[1]


def test_a_pod_named_by_the_audit_log_stays_with_its_runtime_container() -> None:
    synthetic = Container(uid="pod:shop/api-0/api")
    runtime = Container(uid=CID, name="api", pod_name="api-0", namespace="shop")
    events = [
        launch("sh", time=1.0, ctr=synthetic),
        launch("sh", time=1.5, ctr=container("8" * 64, "db")),
        launch("tar czf /tmp/a.tgz /data", time=2.0, ctr=runtime),
    ]
    shards = _shards(events)
    assert shards[0] == shards[2]
    assert shards[1] != shards[0]


def test_jobs_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(p) for p in sorted(SCENARIOS.rglob("*.jsonl"))]
    outputs = []
    for jobs in ("1", "2"):
        main(["detect", "--json", "--jobs", jobs, *paths])
        lines = capsys.readouterr().out.splitlines()
        outputs.append(sorted(json.dumps(json.loads(line), sort_keys=True) for line in lines))
    assert outputs[0] == outputs[1]
    assert outputs[0]
    with pytest.raises(SystemExit):
        main(["detect", "--jobs", "0", *paths])
    assert "--jobs must be at least 1" in capsys.readouterr().err


def test_a_routed_file_with_pretty_printed_records_reads_the_same(
    tmp_path: Path,
) -> None:
    """Lines of a big Tetragon file are routed to workers before decoding; a pretty-printed
    object (several lines) cannot be, and must still be read whole, once, at its line."""
    trace = tmp_path / "compact.jsonl"
    bench_trace(trace, 4_000)
    lines = trace.read_bytes().splitlines()
    mixed = tmp_path / "mixed.json"
    with mixed.open("wb") as out:
        for number, line in enumerate(lines):
            if number % 7 == 3:
                out.write(json.dumps(json.loads(line), indent=2).encode() + b"\n")
            else:
                out.write(line + b"\n")
    assert mixed.stat().st_size >= 4 << 20  # big enough to be routed
    one = detect_files([str(mixed)], EngineConfig(), [])
    assert one.report.records == len(lines)
    assert one.report.skipped_total == 0
    assert_same_findings(one, detect_files([str(mixed)], EngineConfig(), [], jobs=2))
