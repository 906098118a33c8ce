"""`hunt` without --spark: `detect` over the same paths (tests/spark runs it on Spark)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tidewaiter.cli.main import main

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_hunt_without_spark_reports_what_detect_reports(
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = [str(p) for p in sorted(SCENARIOS.rglob("*.jsonl"))]
    outputs = []
    for command in (["detect", "--json"], ["hunt", "--json"], ["hunt", "--json", "--jobs", "2"]):
        assert main([*command, *paths]) == 0
        lines = capsys.readouterr().out.splitlines()
        outputs.append(sorted(json.dumps(json.loads(line), sort_keys=True) for line in lines))
    assert outputs[0]
    assert outputs[1] == outputs[0]
    assert outputs[2] == outputs[0]


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--master", "local[2]"], "--master needs --spark"),
        (["--parquet", "findings"], "--parquet needs --spark"),
    ],
)
def test_spark_flags_without_spark_are_refused(
    flags: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hunt", *flags, str(SCENARIOS)]) == 2
    assert said in capsys.readouterr().err


def test_baseline_learn_refuses_a_master_without_spark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "tw.duckdb")
    assert main(["baseline", "learn", "--master", "local[2]", "--db", db, str(SCENARIOS)]) == 2
    assert "--master needs --spark" in capsys.readouterr().err
