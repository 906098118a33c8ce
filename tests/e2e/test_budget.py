"""The false-positive budget, small: a generated week of a cluster and desktops, with attack
chains planted in Tetragon and Sysmon records, detected with no configuration and after learning
baselines day by day with `detect --db --learn`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tidewaiter import fleet
from tidewaiter.cli.main import main


def test_after_learning_the_week_is_within_budget_and_every_chain_is_found(
    tmp_path: Path,
) -> None:
    week = fleet.generate(seed=7, scale=0.1, attacks=12)
    assert {c.form for c in week.chains} == {"tetragon", "sysmon-xml", "eslogger"}
    plain, learned = fleet.measure(week, tmp_path)
    # Every planted chain is found at high or above, with or without baselines.
    assert (plain.found, learned.found) == (plain.chains, learned.chains)
    assert learned.chains > 0
    # The routine uploads to undeclared buckets and partners alert without configuration ...
    assert plain.container_alerts > 0
    # ... and are recognised as routine once learned: within 1 per 1,000 container-days and
    # 1 per 100 host-days (the Windows desktops' Teams, OneDrive and share copies never alert).
    assert learned.per_1000_container_days <= 1, learned.noisy
    assert learned.per_100_host_days <= 1, learned.noisy
    assert plain.host_alerts == 0, plain.noisy


def test_evaluate_budget_prints_both_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "budget.md"
    argv = ["evaluate", "--budget", "--scale", "0.05", "--markdown", str(table), str(tmp_path)]
    assert main(argv) == 0
    assert "false-positive budget" in capsys.readouterr().out
    text = table.read_text()
    assert "| per 1,000 container-days |" in text
    assert "| no configuration |" in text
    assert "| after learning 4 days with detect --db --learn |" in text
    assert main(["evaluate", "--budget", "--scale", "0"]) == 2


def test_evaluate_budget_as_json_is_one_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--budget", "--scale", "0.05", "--json", str(tmp_path)]) == 0
    runs = json.loads(capsys.readouterr().out)  # nothing else on stdout
    assert [r["run"] for r in runs] == [
        "no configuration",
        "after learning 4 days with detect --db --learn",
    ]
    assert all(isinstance(r["alerts"], list) and r["missed"] == [] for r in runs)
