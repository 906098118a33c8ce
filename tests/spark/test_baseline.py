"""`baseline learn --spark` on local[2]: the same store as `baseline learn` (profiles, findings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.helpers import bench_trace
from tidewaiter import evaluate
from tidewaiter.cli.main import main
from tidewaiter.detection.baseline import Baselines, encode
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files
from tidewaiter.spark.hunt import learn_spark

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


def _stored(db: Path) -> tuple[list[Any], list[Any]]:
    with duckdb.connect(str(db), read_only=True) as con:
        profiles = con.execute("SELECT workload, profile FROM baselines ORDER BY workload")
        baselines = profiles.fetchall()
        alerts = con.execute(
            "SELECT uid, time_ms, analytic, severity_id, container_uid, workload, host,"
            " suppressed_by, alert FROM alerts ORDER BY uid"
        ).fetchall()
    return baselines, alerts


def test_the_scenario_set_learns_the_same_store_on_the_command_line(
    spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [
        str(folder / t)
        for folder in evaluate.discover(SCENARIOS)
        for t in evaluate.load(folder).telemetry
    ]
    one, other = tmp_path / "one.duckdb", tmp_path / "spark.duckdb"
    assert main(["baseline", "learn", "--quiet", "--db", str(one), *paths]) == 0
    said = capsys.readouterr().err
    flags = ["--spark", "--master", "local[2]", "--quiet", "--db", str(other)]
    assert main(["baseline", "learn", *flags, *paths]) == 0
    # The same workloads learned, the same findings to review (in time order, not as decided).
    assert sorted(capsys.readouterr().err.splitlines()) == sorted(said.splitlines())
    baselines, alerts = _stored(one)
    assert len(baselines) > 20
    assert any(row[5] for row in alerts)  # findings stored under their workload
    assert _stored(other) == (baselines, alerts)
    # Learning again from the store's profiles on: the same, both ways.
    assert main(["baseline", "learn", "--quiet", "--db", str(one), *paths]) == 0
    assert main(["baseline", "learn", *flags, *paths]) == 0
    assert _stored(other)[0] == _stored(one)[0]


def test_the_100k_bench_trace_learns_the_same_profiles(spark: Any, tmp_path: Path) -> None:
    trace = tmp_path / "tetragon-100k.jsonl"
    bench_trace(trace, 100_000)
    baselines = Baselines(learn=True, exclude_flagged=False)
    one = detect_files([str(trace)], EngineConfig(), [], baselines=baselines)
    learned = learn_spark(spark, [str(trace)], EngineConfig(), {})
    assert len(baselines.profiles) > 100
    assert {w: encode(p) for w, p in learned.profiles.items()} == {
        w: encode(p) for w, p in baselines.profiles.items()
    }
    assert learned.flagged_windows == baselines.flagged_windows
    assert learned.outcome.alerts == sorted(
        one.alerts, key=lambda a: (a.get("time", 0), a["finding_info"]["uid"])
    )
