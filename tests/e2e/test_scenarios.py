"""The shipped labelled scenario set: every attack found, nothing benign above low."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tidewaiter import evaluate
from tidewaiter.cli.main import main

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
FOLDERS = evaluate.discover(SCENARIOS)


def test_the_set_is_large_enough_and_varied() -> None:
    scenarios = [evaluate.load(folder) for folder in FOLDERS]
    kinds = [s.kind for s in scenarios]
    assert kinds.count("attack") >= 30
    assert kinds.count("benign") >= 30
    assert len({s.source for s in scenarios}) >= 6
    assert len({s.id for s in scenarios}) == len(scenarios)


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_scenario(folder: Path) -> None:
    scenario = evaluate.load(folder)
    result = evaluate.run(folder, scenario)
    assert result.skipped_records == 0, "the telemetry must read cleanly"
    assert result.false_negatives == [], "an expected analytic did not fire"
    unexpected = [(a["finding_info"]["title"], a["severity"]) for a in result.false_positives]
    assert unexpected == [], "a finding above low that no expectation accounts for"


def test_evaluate_command_scores_and_exits_by_the_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = tmp_path / "set"
    chosen.mkdir()
    for name in ("atomic-t1560-001-linux-zip", "apk-add-debug-tools"):
        [source] = [f for f in FOLDERS if f.name == name]
        shutil.copytree(source, chosen / name)
    table = tmp_path / "table.md"
    assert main(["evaluate", str(chosen), "--markdown", str(table)]) == 0
    assert "| tw-archive-exfil | 1 | 0 | 0 | 100% | 100% |" in table.read_text()
    assert "1 attack scenarios, 1 benign scenarios, 2 passed" in table.read_text()

    demo = SCENARIOS.parent / "src" / "tidewaiter" / "demo" / "linux-tar-upload.tetragon.jsonl"
    mislabelled = tmp_path / "mislabelled" / "attack-called-benign"
    mislabelled.mkdir(parents=True)
    (mislabelled / "scenario.yaml").write_text(
        f"id: attack-called-benign\nname: x\nkind: benign\ntelemetry: [{demo}]\n"
    )
    capsys.readouterr()
    assert main(["evaluate", str(mislabelled.parent)]) == 1  # its alert is a false positive
    assert "FAIL" in capsys.readouterr().out
