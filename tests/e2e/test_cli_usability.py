"""The command line as an analyst meets it: 80-column terminals, checked arguments, one clear
sentence per failed precondition, exit codes that tell cases apart, JSON for every listing, and
shell completion."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from tests.helpers import TETRAGON
from tidewaiter.cli import exits
from tidewaiter.cli.main import build_parser, main
from tidewaiter.cli.options import seconds

ROOT = Path(__file__).resolve().parents[2]
DEMO = Path(str(resources.files("tidewaiter.demo")))
LINUX = DEMO / "linux-tar-upload.tetragon.jsonl"
BACKUP = DEMO / "benign-nightly-backup.falco.jsonl"
SCENARIOS = ROOT / "scenarios"


def cli(*args: str | Path, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-m", "tidewaiter", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_subcommand_and_action_has_a_description() -> None:
    missing = []
    for name, sub in _subparsers(build_parser()).items():
        if not sub.description:
            missing.append(name)
        missing += [f"{name} {a}" for a, p in _subparsers(sub).items() if not p.description]
    assert missing == []


def test_durations_take_units_and_refuse_what_is_not_one() -> None:
    assert [seconds(t) for t in ("900", "90s", "15m", "2h", "1.5h", "1d")] == [
        900.0,
        90.0,
        900.0,
        7200.0,
        5400.0,
        86400.0,
    ]
    for bad in ("nan", "inf", "0", "-5m", "15x", "m", "", "400d"):
        with pytest.raises(argparse.ArgumentTypeError):
            seconds(bad)


def test_an_unknown_format_is_refused_when_the_arguments_are_parsed(tmp_path: Path) -> None:
    missing = tmp_path / "never-read.jsonl"
    done = cli("detect", "--format", "tetragn", missing)
    assert done.returncode == exits.USAGE
    assert "'tetragn' is not a format (one of" in done.stderr
    assert "tetragon" in done.stderr
    assert "never-read" not in done.stderr  # refused before any file was opened


def test_no_alerts_is_said_only_when_something_was_read(tmp_path: Path) -> None:
    calm = tmp_path / "calm.jsonl"
    calm.write_bytes(TETRAGON)  # one exec of ls: read, and nothing to say
    quiet = cli("detect", calm)
    assert quiet.returncode == 0
    assert "No alerts." in quiet.stdout
    assert "read 1 records" in quiet.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    nothing = cli("detect", "--format", "tetragon", empty)
    assert "No alerts." not in nothing.stdout
    assert "read 0 records" in nothing.stderr


def test_quiet_keeps_the_results_and_drops_the_summary() -> None:
    done = cli("detect", "--quiet", "--window", "15m", LINUX)
    assert done.returncode == 0
    assert "Archive staged and exfiltrated" in done.stdout
    assert "read 9 records" not in done.stderr


def _tokens_whole(out: str, tokens: list[str]) -> list[str]:
    """The tokens that do not stand whole on one line of the output."""
    lines = out.splitlines()
    return [t for t in tokens if not any(t in line for line in lines)]


def test_the_demo_at_80_columns_cuts_no_id_host_image_or_destination() -> None:
    done = cli("demo")
    assert done.returncode == 0, done.stderr
    detected = cli("detect", "--json", LINUX, DEMO / "windows-compress-archive.sysmon.xml")
    alerts = [json.loads(line) for line in detected.stdout.splitlines()]
    tokens = []
    for alert in alerts:
        tokens.append(alert["finding_info"]["uid"])
        tokens.append(alert["device"]["hostname"])
        container = alert["device"].get("container")
        if container:
            tokens += [container["uid"][:12], container["image"]["name"]]
        for evidence in alert["evidences"]:
            dst = evidence.get("dst_endpoint") or {}
            if dst.get("ip"):
                tokens.append(dst["ip"])
            if evidence.get("file"):
                tokens.append(evidence["file"]["path"])
    assert len(tokens) >= 10
    assert _tokens_whole(done.stdout, tokens) == []
    assert max(len(line) for line in done.stdout.splitlines() if "─" in line) <= 80


def test_evaluate_at_80_columns_cuts_no_scenario_name_and_lists_as_json(tmp_path: Path) -> None:
    chosen = tmp_path / "set"
    names = ["atomic-t1560-001-linux-zip", "kubectl-cp-from-pod-database-files"]
    for name in names:
        [source] = [f for f in SCENARIOS.rglob(name) if (f / "scenario.yaml").exists()]
        shutil.copytree(source, chosen / name)
    done = cli("evaluate", chosen, "--out", tmp_path / "table.md")
    assert done.returncode == 0, done.stderr
    assert _tokens_whole(done.stdout, [*names, "tw-archive-exfil"]) == []
    assert "| atomic-t1560-001-linux-zip |" in (tmp_path / "table.md").read_text()
    as_json = json.loads(cli("evaluate", chosen, "--json").stdout)
    assert {s["scenario"] for s in as_json["scenarios"]} == set(names)
    assert all(s["result"] == "pass" for s in as_json["scenarios"])


def test_baseline_show_at_80_columns_cuts_no_workload_key(tmp_path: Path) -> None:
    db = tmp_path / "tw.duckdb"
    assert cli("baseline", "learn", "--quiet", "--db", db, LINUX, BACKUP).returncode == 0
    listed = json.loads(cli("baseline", "show", "--json", "--db", db).stdout)
    keys = [w["workload"] for w in listed]
    assert len(keys) == 2
    done = cli("baseline", "show", "--db", db)
    assert _tokens_whole(done.stdout, keys) == []
    one = json.loads(cli("baseline", "show", keys[0], "--json", "--db", db).stdout)
    assert one["workload"] == keys[0]
    assert "tar" in one["executables"]


def test_listings_take_json(tmp_path: Path) -> None:
    db = tmp_path / "tw.duckdb"
    assert main(["detect", "--quiet", "--db", str(db), str(LINUX)]) == 0
    added = cli(
        "suppress", "add", "nightly", "--db", db, "--reason", "r", "--author", "a",
        "--analytic", "tw-archive-exfil", "--destination", "10.0.0.0/8",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    [rule] = [
        json.loads(line)
        for line in cli("suppress", "list", "--json", "--db", db).stdout.splitlines()
    ]
    assert (rule["id"], rule["match"]["analytic"], rule["expired"]) == (
        "nightly",
        "tw-archive-exfil",
        False,
    )
    [alert] = [json.loads(line) for line in cli("alerts", "--json", "--db", db).stdout.splitlines()]
    assert alert["class_uid"] == 2004
    scenarios = [json.loads(line) for line in cli("emulate", "list", "--json").stdout.splitlines()]
    assert any(s["id"] == "ads-linux-tar" for s in scenarios)
    matrix = json.loads(cli("coverage", "--json", "--results", tmp_path / "none.json").stdout)
    assert {t["platform"] for t in matrix["tables"]} >= {"linux", "windows", "macos"}


def test_read_only_commands_never_create_a_store(tmp_path: Path) -> None:
    db = tmp_path / "absent.duckdb"
    for args in (
        ["alerts"],
        ["suppress", "list"],
        ["suppress", "remove", "x"],
        ["baseline", "show"],
        ["investigate", "0123abcd"],
        ["respond", "0123abcd"],
    ):
        done = cli(*args, "--db", db)
        assert done.returncode == exits.NOT_FOUND, (args, done.stderr)
        assert f"there is no store at {db}" in done.stderr
        assert not db.exists(), args
        assert not list(tmp_path.iterdir()), args


def test_not_found_and_usage_errors_have_different_exit_codes(tmp_path: Path) -> None:
    db = tmp_path / "tw.duckdb"
    assert main(["detect", "--quiet", "--db", str(db), str(LINUX)]) == 0
    assert cli("investigate", "ffffffff", "--db", db).returncode == exits.NOT_FOUND
    assert cli("suppress", "remove", "nothing-here", "--db", db).returncode == exits.NOT_FOUND
    assert cli("baseline", "show", "no-such-workload", "--db", db).returncode == exits.NOT_FOUND
    assert cli("emulate", "run", "no-such-scenario", "--write", "tetragon").returncode == (
        exits.NOT_FOUND
    )
    assert cli("evaluate", tmp_path / "no-such-folder").returncode == exits.NOT_FOUND
    assert cli("detect", "--window", "nan", LINUX).returncode == exits.USAGE
    assert cli("detect", "--no-such-flag", LINUX).returncode == exits.USAGE


def test_suppressions_with_unknown_analytics_or_bad_cidrs_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "tw.duckdb"
    base = ["suppress", "add", "x", "--db", db, "--reason", "r", "--author", "a"]
    typo = cli(*base, "--analytic", "tw-archive-exfill")
    assert typo.returncode == exits.USAGE
    assert "no analytic 'tw-archive-exfill'" in typo.stderr
    bad = cli(*base, "--destination", "10.0.0.0/33")
    assert bad.returncode == exits.USAGE
    assert "'10.0.0.0/33' is not a valid CIDR range" in bad.stderr
    assert cli(*base, "--destination", "*.backup.internal").returncode == exits.OK

    rules = tmp_path / "suppressions.yaml"
    rules.write_text(
        "suppressions:\n  - id: typo\n    match: {analytic: tw-archive-exfill}\n"
        "    reason: r\n    author: a\n"
    )
    from_file = cli("detect", "--suppressions", rules, LINUX)
    assert from_file.returncode == exits.USAGE
    assert "suppression typo: no analytic 'tw-archive-exfill'" in from_file.stderr


def test_respond_names_the_install_command_when_the_client_is_missing(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.jsonl"
    assert main(["detect", "--quiet", "--json", "--out", str(alerts), str(LINUX)]) == 0
    uid = json.loads(alerts.read_text().splitlines()[0])["finding_info"]["uid"]
    code = (
        "import sys; sys.modules['kubernetes'] = None; sys.modules['docker'] = None\n"
        "from tidewaiter.cli.main import main\n"
        f"sys.exit(main(['respond', {uid!r}, '--alerts', {str(alerts)!r}, '--execute', '--yes']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == exits.USAGE
    assert "pip install 'tidewaiter[respond]'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_completes_commands_actions_and_options() -> None:
    script = cli("completion", "bash").stdout
    probe = (
        script
        + 'COMP_WORDS=(tidewaiter base); COMP_CWORD=1; _tidewaiter; echo "${COMPREPLY[*]}"\n'
        + "COMP_WORDS=(tidewaiter baseline s); COMP_CWORD=2; _tidewaiter; "
        + 'echo "${COMPREPLY[*]}"\n'
        + "COMP_WORDS=(tidewaiter detect --fail); COMP_CWORD=2; _tidewaiter; "
        + 'echo "${COMPREPLY[*]}"\n'
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["baseline", "show", "--fail-on-alert"]
    fish = cli("completion", "fish").stdout
    assert "__fish_seen_subcommand_from detect' -l fail-on-alert" in fish
