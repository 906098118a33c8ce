"""Stored results and the coverage matrix built from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tidewaiter.cli.main import main
from tidewaiter.emulate import results
from tidewaiter.emulate.coverage import LIVE, build, markdown
from tidewaiter.emulate.results import Results, RunRecord
from tidewaiter.emulate.scenario import load_all


def run(
    scenario: str, mode: str, platform: str, passed: bool, gaps: tuple[str, ...] = ()
) -> RunRecord:
    return RunRecord(scenario, mode, platform, passed, time=1.0, gaps=gaps)


def test_results_keep_the_last_run_of_each_scenario_mode_and_platform(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "results.json"
    results.store(path, [run("ads-linux-tar", "live", "linux", False)])
    results.store(path, [run("ads-linux-tar", "live", "linux", True)])
    results.store(path, [run("ads-linux-tar", "replay:falco", "linux", True)])
    stored = results.load(path)
    assert len(stored.runs) == 2
    last = stored.last("ads-linux-tar", "live", "linux")
    assert last is not None
    assert last.passed
    assert results.load(tmp_path / "absent.json").runs == {}


def test_a_damaged_results_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not an emulation results file"):
        results.load(path)


def test_cells_say_which_analytic_covers_and_how_the_last_runs_went() -> None:
    stored = Results()
    for record in (
        run("ads-linux-tar", LIVE, "linux", True),
        run("upload-tcp-nc-pipe", LIVE, "linux", False),
        run("ads-linux-tar", "replay:falco", "linux", True, gaps=("a gap",)),
    ):
        stored.runs[record.key] = record
    matrix = build(load_all(), stored)
    linux = next(t for t in matrix.tables if t.platform == "linux")
    assert linux.sources[0] == LIVE
    assert "tetragon" in linux.sources
    live_t1048 = linux.rows["T1048"][LIVE]
    assert live_t1048.analytics == {"tw-archive-exfil"}
    assert live_t1048.failed == 1
    assert live_t1048.passed == 1
    assert live_t1048.text().startswith("tw-archive-exfil ✗ 1/")
    falco_t1048 = linux.rows["T1048"]["falco"]
    assert falco_t1048.text().endswith("1 gap")  # the run recorded one
    never = linux.rows["T1560.002"]["tetragon"]
    assert never.run == 0
    assert "· 0/" in never.text()
    windows = next(t for t in matrix.tables if t.platform == "windows")
    assert LIVE not in windows.sources
    assert "powershell-4104" in windows.sources
    assert windows.rows["T1560"]["powershell-4104"].analytics == {"tw-archive-created"}
    # The script block log cannot show the container's egress that the ADS emulation needs.
    assert windows.rows["T1610"].get("powershell-4104") is None


def test_benign_scenarios_and_known_gaps_are_listed_not_counted_as_coverage() -> None:
    stored = Results()
    record = run("benign-backup", LIVE, "linux", True)
    stored.runs[record.key] = record
    matrix = build(load_all(), stored)
    benign = dict(matrix.benign)
    assert benign["benign-backup"].startswith("✓")
    assert benign["benign-extraction"] == "· not run"
    assert matrix.gaps == []  # every gap the scenarios found is closed
    text = markdown(matrix)
    assert "| technique | live |" in text
    assert "| T1560.001 Archive Collected Data: Archive via Utility |" in text
    assert "**known detection gaps**" not in text


def test_coverage_command_prints_and_writes_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = tmp_path / "results.json"
    assert (
        main(["emulate", "run", "ads-linux-tar", "--write", "all", "--results", str(stored)]) == 0
    )
    capsys.readouterr()
    out_file = tmp_path / "coverage.md"
    assert main(["coverage", "--results", str(stored), "--markdown", str(out_file)]) == 0
    printed = capsys.readouterr().out
    assert "coverage: linux" in printed
    assert "coverage: windows" in printed
    text = out_file.read_text()
    # ads-linux-tar passed in every format; the other scenarios of its techniques never ran.
    assert "tw-archive-exfil · 1/" in text
    assert not [row for row in text.splitlines() if row.startswith("| T") and "✗" in row]
    data = json.loads(stored.read_text())
    assert {r["mode"] for r in data["runs"].values()} >= {"replay:tetragon", "replay:eslogger"}


def test_coverage_refuses_a_damaged_results_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert main(["coverage", "--results", str(bad)]) == 2
    assert "not an emulation results file" in capsys.readouterr().err
