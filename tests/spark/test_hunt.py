"""`hunt --spark` on local[2]: the findings of `detect`, to the evidence's file and line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import assert_same_findings, bench_trace, read
from tidewaiter import evaluate
from tidewaiter.cli.main import main
from tidewaiter.parallel import digest
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files
from tidewaiter.spark.hunt import hunt_spark

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


def _scenario_paths(folder: Path) -> list[str]:
    return [str(folder / t) for t in evaluate.load(folder).telemetry]


def test_each_scenario_gives_detects_findings(spark: Any) -> None:
    """Each scenario with its own configuration (host addresses, suppressions, windows): one
    Spark session, one hunt a scenario."""
    checked = 0
    for folder in evaluate.discover(SCENARIOS):
        config = evaluate.engine_config(evaluate.load(folder))
        paths = _scenario_paths(folder)
        assert_same_findings(detect_files(paths, config, []), hunt_spark(spark, paths, config, []))
        checked += 1
    assert checked >= 60


def test_the_whole_scenario_set_at_once(spark: Any) -> None:
    """Every scenario's files in one hunt: many containers, hosts and flow logs whose owners
    are joined by address across files."""
    paths = [p for folder in evaluate.discover(SCENARIOS) for p in _scenario_paths(folder)]
    flows = sum(digest(read(path)[0], EngineConfig()).flows for path in paths)
    assert flows > 20  # network-only flows (Zeek, flow logs): the join by address is exercised
    one = detect_files(paths, EngineConfig(), [])
    assert len(one.alerts) > 30
    assert_same_findings(one, hunt_spark(spark, paths, EngineConfig(), []))


def test_the_100k_bench_trace_one_file_and_split(spark: Any, tmp_path: Path) -> None:
    """The generated Tetragon trace (big enough that Spark routes its lines to two tasks), and
    the same trace as two nodes' exports merged by time."""
    trace = tmp_path / "tetragon-100k.jsonl"
    bench_trace(trace, 100_000)
    one = detect_files([str(trace)], EngineConfig(), [])
    assert len(one.alerts) >= 10
    assert_same_findings(one, hunt_spark(spark, [str(trace)], EngineConfig(), []))
    lines = trace.read_bytes().splitlines(keepends=True)
    halves = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    halves[0].write_bytes(b"".join(lines[::2]))
    halves[1].write_bytes(b"".join(lines[1::2]))
    split = [str(p) for p in halves]
    assert_same_findings(
        detect_files(split, EngineConfig(), []), hunt_spark(spark, split, EngineConfig(), [])
    )


def test_a_routed_file_with_pretty_printed_records_keeps_its_lines(
    spark: Any, tmp_path: Path
) -> None:
    """Records spread over several lines cannot be routed alone: they are read whole, once, at
    their own line, while the one-line records around them are split over the tasks."""
    trace = tmp_path / "compact.jsonl"
    bench_trace(trace, 4_000)
    mixed = tmp_path / "mixed.json"
    with mixed.open("wb") as out:
        for number, line in enumerate(trace.read_bytes().splitlines()):
            pretty = number % 7 == 3
            out.write((json.dumps(json.loads(line), indent=2).encode() if pretty else line) + b"\n")
    assert mixed.stat().st_size >= 4 << 20  # big enough to be routed
    one = detect_files([str(mixed)], EngineConfig(), [])
    assert one.report.skipped_total == 0
    assert_same_findings(one, hunt_spark(spark, [str(mixed)], EngineConfig(), []))


def test_unreadable_inputs_are_named_as_detect_names_them(spark: Any, tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "README").write_text("not telemetry\n")
    paths = [str(folder), str(tmp_path / "missing.jsonl"), str(tmp_path / "none-*.jsonl")]
    one = detect_files(paths, EngineConfig(), [])
    hunted = hunt_spark(spark, paths, EngineConfig(), [])
    assert hunted.unreadable == one.unreadable
    assert len(hunted.unreadable) == 2
    assert hunted.passed_over == one.passed_over
    assert hunted.alerts == []


def test_hunt_on_the_command_line_writes_detects_alerts_and_parquet(
    spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [str(p) for p in sorted(SCENARIOS.rglob("*.jsonl"))]
    assert main(["detect", "--json", *paths]) == 0
    expected = sorted(capsys.readouterr().out.splitlines())
    assert expected
    out, parquet = tmp_path / "alerts.jsonl", tmp_path / "alerts.parquet"
    flags = ["--spark", "--master", "local[2]", "--out", str(out), "--parquet", str(parquet)]
    assert main(["hunt", *flags, "--quiet", *paths]) == 0
    assert sorted(out.read_text().splitlines()) == expected
    table = spark.read.parquet(str(parquet)).orderBy("uid").collect()
    by_uid = {json.loads(line)["finding_info"]["uid"]: json.loads(line) for line in expected}
    assert [row.uid for row in table] == sorted(by_uid)
    assert [json.loads(row.ocsf) for row in table] == [by_uid[row.uid] for row in table]
    assert main(["hunt", "--parquet", str(parquet), *paths]) == 2
    assert "--parquet needs --spark" in capsys.readouterr().err
    assert spark.sparkContext._jsc is not None  # the command left the session it joined running


def test_uris_are_listed_and_read_through_hadoop_as_detect_reads_the_paths(
    spark: Any, tmp_path: Path
) -> None:
    """A folder, a glob and missing files named by URI (file:// here; s3a://, abfss:// on a
    cluster), read through Spark's Hadoop file systems: detect's findings, the events naming
    their file by its URI."""
    folder = tmp_path / "fleet"
    for scenario in evaluate.discover(SCENARIOS)[:20]:
        for name in evaluate.load(scenario).telemetry:
            target = folder / scenario.name / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((scenario / name).read_bytes())
    (folder / "_SUCCESS").write_text("")  # a Hadoop job's marker: not telemetry, not listed
    one = detect_files([str(folder)], EngineConfig(), [])
    assert len(one.alerts) > 5
    uris = [f"file://{folder}", f"file://{tmp_path}/none-*.jsonl", f"file://{tmp_path}/gone"]
    hunted = hunt_spark(spark, uris, EngineConfig(), [])

    def local(alerts: list[dict[str, Any]]) -> str:
        ordered = sorted(alerts, key=lambda a: str(a["finding_info"]["uid"]))
        return json.dumps(ordered, sort_keys=True).replace(f"file:{folder}", str(folder))

    assert local(hunted.alerts) == local(one.alerts)
    assert f"file:{folder}/" in json.dumps(hunted.alerts)
    assert hunted.report.summary() == one.report.summary()
    assert hunted.unreadable == [
        f"file://{tmp_path}/none-*.jsonl: no file matches this pattern",
        f"file://{tmp_path}/gone: cannot read (No such file)",
    ]


def test_telemetry_kept_as_parquet_reads_as_its_files(spark: Any, tmp_path: Path) -> None:
    """Each JSON-lines telemetry file of 25 scenarios copied into a Parquet table, one record a
    row (as a lake keeps a topic's `value`): the findings of detect over the files, each event
    naming its Parquet file and row."""
    sources = [
        Path(os.path.abspath(folder / name))
        for folder in evaluate.discover(SCENARIOS)[:25]
        for name in evaluate.load(folder).telemetry
        if str(name).endswith(".jsonl")
    ]
    renamed: dict[str, str] = {}
    for number, source in enumerate(sources):
        rows = [(line.decode(),) for line in source.read_bytes().splitlines()]
        table = tmp_path / "lake" / f"t{number:03d}.parquet"
        spark.createDataFrame(rows, "value string").coalesce(1).write.parquet(str(table))
        (written,) = table.glob("part-*.parquet")
        renamed[str(written)] = str(source)
    no_records = spark.createDataFrame([(1, 2)], "a int, b int").coalesce(1)
    no_records.write.parquet(str(tmp_path / "other.parquet"))
    one = detect_files([str(p) for p in sources], EngineConfig(), [])
    assert len(one.alerts) > 5
    hunted = hunt_spark(
        spark, [str(tmp_path / "lake"), str(tmp_path / "other.parquet")], EngineConfig(), []
    )

    def named(alerts: list[dict[str, Any]], names: dict[str, str]) -> str:
        text = json.dumps(sorted(alerts, key=lambda a: str(a["finding_info"]["uid"])))
        for parquet, original in names.items():
            text = text.replace(json.dumps(parquet), json.dumps(original))
        return text

    assert named(hunted.alerts, renamed) == named(one.alerts, {})
    assert any(parquet in json.dumps(hunted.alerts) for parquet in renamed)
    assert hunted.report.summary() == one.report.summary()
    assert len(hunted.unreadable) == 1
    assert "no column of records (a string or binary one) in a, b" in hunted.unreadable[0]


def test_a_hunt_in_its_own_process_prints_only_tidewaiters_lines(spark: Any) -> None:
    """A command line run starts its own Spark (and stops it): its stderr is tidewaiter's
    summary, not Spark's start-up notes and warnings, and its stdout the alerts."""
    demo = ROOT / "src" / "tidewaiter" / "demo" / "linux-tar-upload.tetragon.jsonl"
    command = ["hunt", "--spark", "--master", "local[1]", "--json", str(demo)]
    done = subprocess.run(
        [sys.executable, "-m", "tidewaiter", *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["severity"] for line in done.stdout.splitlines()] == ["Critical"]
    assert done.stderr.splitlines() == [
        "read 9 records from 1 file(s): 9 events, 0 records with nothing to use, 0 skipped;"
        " 1 alert(s)"
    ]


def test_a_node_container_log_gives_detects_findings(spark: Any, tmp_path: Path) -> None:
    """Tetragon's export-stdout as the node keeps it (CRI lines, a long record in parts)."""
    plain = ROOT / "src" / "tidewaiter" / "demo" / "linux-tar-upload.tetragon.jsonl"
    wrapped = tmp_path / "tetragon_export-stdout.log"
    stamp = b"2026-12-07T05:00:00.123456789Z stdout "
    lines: list[bytes] = []
    for line in plain.read_bytes().splitlines():
        lines += [stamp + b"P " + line[:200] + b"\n", stamp + b"F " + line[200:] + b"\n"]
    wrapped.write_bytes(b"".join(lines))
    one = detect_files([str(wrapped)], EngineConfig(), [])
    assert len(one.alerts) == 1
    assert_same_findings(one, hunt_spark(spark, [str(wrapped)], EngineConfig(), []))
