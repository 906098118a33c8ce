"""The store from the command line: alerts kept, suppressions added, expired ones reported,
and all of it still there after a restart."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from tidewaiter.cli.main import main

DEMO = Path(str(resources.files("tidewaiter.demo")))
LINUX = str(DEMO / "linux-tar-upload.tetragon.jsonl")


def test_alerts_and_suppressions_survive_a_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "tw.duckdb")
    assert main(["detect", "--json", "--db", db, LINUX]) == 0
    capsys.readouterr()
    assert main(["alerts", "--json", "--db", db]) == 0
    assert '"tw-archive-exfil"' in capsys.readouterr().out

    assert (
        main(
            [
                "suppress",
                "add",
                "q3-export",
                "--db",
                db,
                "--image",
                "registry.example.com/payments/*",
                "--reason",
                "quarterly partner export",
                "--author",
                "sec@example.com",
                "--expires",
                "2099-12-31",
            ]
        )
        == 0
    )
    assert main(["suppress", "list", "--db", db]) == 0
    listed = capsys.readouterr().out
    assert "q3-export" in listed
    assert "active" in listed

    db2 = str(tmp_path / "tw2.duckdb")
    assert (
        main(
            [
                "suppress",
                "add",
                "q3-export",
                "--db",
                db2,
                "--image",
                "registry.example.com/payments/*",
                "--reason",
                "quarterly partner export",
                "--author",
                "sec@example.com",
                "--expires",
                "2099-12-31",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["detect", "--json", "--show-suppressed", "--db", db2, LINUX]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "1 suppressed" in captured.err
    assert "suppression q3-export: quarterly partner export (sec@example.com)" in captured.err
    assert main(["alerts", "--suppressed", "--json", "--db", db2]) == 0
    assert "q3-export" in capsys.readouterr().out


def test_expired_suppression_is_reported_and_does_not_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "tw.duckdb")
    assert (
        main(
            [
                "suppress",
                "add",
                "stale",
                "--db",
                db,
                "--analytic",
                "tw-archive-exfil",
                "--reason",
                "old migration",
                "--author",
                "ops",
                "--expires",
                "2020-01-31",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["detect", "--json", "--db", db, LINUX]) == 0
    captured = capsys.readouterr()
    assert '"tw-archive-exfil"' in captured.out
    assert "suppression stale expired on 2020-01-31 and no longer applies" in captured.err
    assert main(["suppress", "list", "--db", db]) == 0
    assert "expired" in capsys.readouterr().out


def test_suppress_needs_a_match_and_a_valid_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "tw.duckdb")
    assert main(["suppress", "add", "x", "--db", db, "--reason", "r", "--author", "a"]) == 2
    with pytest.raises(SystemExit):
        main(["suppress", "add", "bad id!", "--db", db, "--reason", "r", "--author", "a"])
    assert main(["suppress", "remove", "nothing", "--db", db]) == 4  # not found
    assert "Traceback" not in capsys.readouterr().err


def test_baseline_learn_stores_the_findings_it_asks_to_review(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "tw.duckdb")
    assert main(["baseline", "learn", "--db", db, LINUX]) == 0
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("  ") and "Critical" in line)
    uid = line.split()[0]
    assert main(["investigate", uid, "--db", db, "--json"]) == 0
    assert uid in capsys.readouterr().out
