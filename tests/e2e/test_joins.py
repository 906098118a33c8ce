"""Alerts whose evidence spans sources: a Mac's eslogger joined with the office's Zeek conn.log,
and the container channels of the sources issue, each from `detect` with the format sniffed."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from tidewaiter.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def alerts(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    assert main(["detect", "--json", *argv]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_eslogger_ditto_then_curl_joined_with_zeek(capsys: pytest.CaptureFixture[str]) -> None:
    files = [
        str(FIXTURES / "eslogger" / "mac-ditto-curl.jsonl"),
        str(FIXTURES / "zeek" / "office-conn.log"),
    ]
    joined = alerts(
        capsys, *files, "--assume-host", "jdoe-mbp", "--host-address", "jdoe-mbp=192.168.1.34"
    )
    [alert] = joined
    assert alert["finding_info"]["analytic"]["uid"] == "tw-archive-exfil"  # type: ignore[index]
    assert alert["device"] == {"type_id": 0, "hostname": "jdoe-mbp"}
    evidences = alert["evidences"]
    assert isinstance(evidences, list)
    sources = [e["data"]["raw_ref"]["source"] for e in evidences]
    assert sources == ["eslogger", "eslogger", "zeek"]
    assert evidences[0]["process"]["cmd_line"].startswith("ditto -c -k")
    assert evidences[2]["data"]["traffic"] == {"bytes_out": 48231877}
    assert evidences[2]["data"]["raw_ref"]["record_id"] == "C7Hs0yQk2PfN3mX8a1"
    # Without the address, the flows belong to no one: the Mac's alert has no Zeek evidence,
    # and the other office machine's flow joins nothing.
    [alone] = alerts(capsys, *files, "--assume-host", "jdoe-mbp")
    assert [e["data"]["raw_ref"]["source"] for e in alone["evidences"]] == ["eslogger", "eslogger"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("scenario", "analytic"),
    [
        ("kubectl-cp-from-pod-database-files", "tw-k8s-exec-copy"),
        ("docker-commit-push-unfamiliar-registry", "tw-commit-push"),
        ("atomic-t1560-001-linux-tar-auditd", "tw-archive-exfil"),
        ("docker-export-vault-container", "tw-container-export"),
    ],
)
def test_container_channels_from_detect(
    capsys: pytest.CaptureFixture[str], scenario: str, analytic: str
) -> None:
    folder = ROOT / "scenarios" / "attack" / scenario
    files = sorted(str(p) for p in folder.iterdir() if p.name != "scenario.yaml")
    found = alerts(capsys, *files)
    fired = [a for a in found if a["finding_info"]["analytic"]["uid"] == analytic]  # type: ignore[index]
    assert fired, [a["finding_info"]["title"] for a in found]  # type: ignore[index]
    assert all(a["severity_id"] >= 3 for a in fired)  # type: ignore[operator]


@pytest.mark.parametrize(
    "scenario",
    [
        "kubectl-exec-ls-and-cat",
        "kubectl-logs",
        "kubectl-cp-into-pod",
        "docker-cp-into-container-and-reload",
        "docker-build-push-familiar-registry",
    ],
)
def test_benign_platform_activity_stays_quiet(
    capsys: pytest.CaptureFixture[str], scenario: str
) -> None:
    folder = ROOT / "scenarios" / "benign" / scenario
    files = sorted(str(p) for p in folder.iterdir() if p.name != "scenario.yaml")
    assert [a for a in alerts(capsys, *files) if a["severity_id"] > 2] == []  # type: ignore[operator]


@pytest.mark.parametrize(
    "launcher",
    [
        ["nice", "-n", "19"],
        ["timeout", "-s", "KILL", "600"],
        ["env", "LC_ALL=C"],
        ["sudo", "-u", "postgres"],
    ],
)
def test_a_launcher_in_an_audited_exec_command_does_not_hide_the_copy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, launcher: list[str]
) -> None:
    # Only the audit log: `kubectl exec ledger-db-0 -- nice -n 19 tar cf - /var/lib/...`.
    source = ROOT / "scenarios" / "attack" / "kubectl-cp-from-pod-database-files" / "audit.jsonl"
    prefix = "".join(f"command={quote(word, safe='')}&" for word in launcher)
    audit = tmp_path / "audit.jsonl"
    audit.write_text(source.read_text().replace("/exec?command=", f"/exec?{prefix}command="))
    assert "command=tar" in audit.read_text()
    [alert] = alerts(capsys, str(audit))
    assert alert["finding_info"]["analytic"]["uid"] == "tw-k8s-exec-copy"  # type: ignore[index]
    assert alert["severity_id"] >= 4  # type: ignore[operator]
