"""The `tidewaiter detect` command as a user runs it: output, exit status, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from tidewaiter.cli.main import main

DEMO = Path(str(resources.files("tidewaiter.demo")))
LINUX = DEMO / "linux-tar-upload.tetragon.jsonl"
BACKUP = DEMO / "benign-nightly-backup.falco.jsonl"


def alerts_from(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_json_alerts_follow_the_ocsf_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--json", str(LINUX)]) == 0
    captured = capsys.readouterr()
    [alert] = alerts_from(captured.out)
    assert (alert["class_uid"], alert["category_uid"], alert["activity_id"], alert["type_uid"]) == (
        2004,
        2,
        1,
        200401,
    )
    assert alert["severity_id"] == 5
    assert alert["severity"] == "Critical"
    assert 0 <= alert["risk_score"] <= 100  # type: ignore[operator]
    info = alert["finding_info"]
    assert isinstance(info, dict)
    assert info["analytic"] == {
        "uid": "tw-archive-exfil",
        "name": "Archive staged and exfiltrated",
        "type_id": 1,
        "type": "Rule",
    }
    techniques = {a["technique"]["uid"]: a["tactic"]["name"] for a in info["attacks"]}
    assert techniques["T1560.001"] == "Collection"
    assert techniques["T1048"] == "Exfiltration"
    assert alert["device"]["container"]["uid"].startswith("4f1c2b9e7d6a")  # type: ignore[index]
    assert len(alert["device"]["container"]["uid"]) == 64  # type: ignore[index]
    assert (
        alert["device"]["container"]["image"]["name"] == "registry.example.com/payments/api:1.42.0"
    )  # type: ignore[index]
    assert alert["device"]["hostname"] == "ip-10-0-3-17.ec2.internal"
    assert alert["metadata"]["profiles"] == ["container", "host"]  # type: ignore[index]
    assert alert["metadata"]["product"]["name"] == "tidewaiter"  # type: ignore[index]
    evidences = alert["evidences"]
    assert isinstance(evidences, list)
    times = [e["data"]["time"] for e in evidences]
    assert times == sorted(times)
    tar, curl, egress = evidences
    assert tar["process"]["cmd_line"].startswith("/bin/sh -c")
    assert tar["file"] == {"path": "/tmp/archive.tar.gz", "name": "archive.tar.gz", "type_id": 1}
    assert tar["data"]["raw_ref"]["line"] == 1
    assert curl["dst_endpoint"] == {"ip": "203.0.113.77"}
    assert egress["dst_endpoint"] == {"ip": "203.0.113.77", "port": 443}
    assert (
        egress["data"]["traffic"]["bytes_out"] == 4194304 + 4194304 + 3801112
    )  # three sends, summed
    assert egress["data"]["records"] == 4  # the connect and three sends of one flow
    last_send = 1795772618540  # 2026-11-27T09:43:38.540Z, the last evidence
    assert alert["time"] == egress["data"]["last_time"] == last_send
    assert "1 alert(s)" in captured.err


def test_console_view_names_processes_and_destination(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(LINUX)]) == 0
    out = capsys.readouterr().out
    assert "Archive staged and exfiltrated from a container" in out
    assert "tar created an archive /tmp/archive.tar.gz" in out
    assert "203.0.113.77" in out


def test_fail_on_alert_and_min_severity(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--json", "--fail-on-alert", str(LINUX)]) == 1
    assert main(["detect", "--json", "--fail-on-alert", str(BACKUP)]) == 1  # a low finding
    assert (
        main(["detect", "--json", "--fail-on-alert", "--min-severity", "medium", str(BACKUP)]) == 0
    )
    assert "below --min-severity" in capsys.readouterr().err


def test_out_file_gets_the_same_alerts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "alerts.jsonl"
    assert main(["detect", "--json", "--out", str(out), str(LINUX)]) == 0
    assert alerts_from(out.read_text()) == alerts_from(capsys.readouterr().out)


def test_bad_lines_are_counted_with_location_and_strict_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed = tmp_path / "mixed.jsonl"
    good = LINUX.read_bytes().splitlines(keepends=True)
    mixed.write_bytes(b"".join([good[0], b"{not json\n", b"\x00\xff\xfe garbage\n", *good[1:]]))
    assert main(["detect", "--json", str(mixed)]) == 0
    captured = capsys.readouterr()
    assert len(alerts_from(captured.out)) == 1  # nothing already detected is lost
    assert f"{mixed}: line 2:" in captured.err
    assert f"{mixed}: line 3:" in captured.err
    assert "2 skipped" in captured.err
    assert main(["detect", "--json", "--strict", str(mixed)]) == 2


def test_unknown_format_empty_and_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not telemetry\n")
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert main(["detect", str(text), str(empty), str(tmp_path / "absent.jsonl"), str(LINUX)]) == 2
    err = capsys.readouterr().err
    assert f"{text}: not in a format tidewaiter reads (tried: " in err
    assert "Tetragon" in err
    assert "Zeek" in err
    assert f"{empty}: the file is empty" in err
    assert "absent.jsonl: cannot read" in err
    assert "Traceback" not in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["detect"],
        ["detect", "--window", "-5", "x"],
        ["detect", "--min-severity", "huge", "x"],
        ["detect", "--internal", "not-a-cidr", "x"],
        ["nonsense"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_unknown_format_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:  # refused as the arguments are parsed
        main(["detect", "--format", "splunk", str(LINUX)])
    assert exit_info.value.code == 2
    assert "'splunk' is not a format (one of" in capsys.readouterr().err


def test_standard_input() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tidewaiter", "detect", "--json", "-"],
        input=LINUX.read_bytes(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    [alert] = alerts_from(result.stdout.decode())
    assert alert["finding_info"]["analytic"]["uid"] == "tw-archive-exfil"  # type: ignore[index]


def test_demo_runs_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.count("pass") == 3
    assert "FAIL" not in out


def test_a_damaged_first_line_does_not_hide_the_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(b'{"process_exec": {"process": \n' + LINUX.read_bytes())
    assert main(["detect", "--json", str(damaged)]) == 0
    captured = capsys.readouterr()
    assert len(alerts_from(captured.out)) == 1
    assert f"{damaged}: line 1:" in captured.err
