"""A T1560 chain (7z with a password, then an upload) delivered in the shapes SIEM pipelines
write alerts through detect exactly as from EVTX; the realworld exports read without --format."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files

WINDOWS = (
    "windows_json/evtx_dump.json",
    "windows_json/xml_to_json.jsonl",
    "windows_json/winlogbeat.ndjson",
    "windows_json/nxlog_mordor.json",
    "windows_json/sentinel_event_table.json",
    "sysmon/splunk_xmlwineventlog.log",
)
REALWORLD = (
    "sysmon_evtxrs_json/proc_creation_win_mal_shai_hulud_malicious_node_bun_execution.json",
    "sysmon_evtxrs_json/file_event_win_hktl_netexec_file_indicators.json",
    "sysmon_evtxrs_json/proc_creation_win_browsers_inline_file_download.json",
    "sysmon_winlogbeat_ecs/beats_sysmon-12-processcreate.evtx.golden.json",
    "sysmon_winlogbeat_ecs/integrations_sysmon_test-image-loaded-failed-signature.json",
    "sysmon_nxlog_mordor/cmd_bitsadmin_download_psh_script_2020-10-2302365189.json",
    "sysmon_sentinel_export/WORKSTATION6_Windows_MicrosoftWindowsSysmonOperational_2022-09-21T21562955.json",
    "sysmon_linux_syslog/integrations_sysmon_linux_sample_sysmon.log",
)


@pytest.mark.parametrize("name", WINDOWS)
def test_encrypted_7z_then_curl_upload_alerts(fixtures: Path, name: str) -> None:
    outcome = detect_files([str(fixtures / name)], EngineConfig(), [])
    assert outcome.report.skipped_total == 0
    [alert] = outcome.alerts
    assert alert["finding_info"]["analytic"]["uid"] == "tw-archive-exfil"
    assert alert["severity_id"] == 5  # encrypted, and curl's command line names the archive
    assert alert["device"]["hostname"] == "WS-FIN-07.corp.example"
    commands = [e.get("process", {}).get("cmd_line", "") for e in alert["evidences"]]
    assert any(" a -pS3cr3t! C:\\Users\\Public\\secret.7z" in c for c in commands)
    assert any(c.startswith("curl.exe -T C:\\Users\\Public\\secret.7z") for c in commands)
    destinations = [e["dst_endpoint"] for e in alert["evidences"] if "dst_endpoint" in e]
    assert {d.get("ip") for d in destinations} - {None} == {"203.0.113.50"}
    assert {d.get("hostname") for d in destinations} - {None} == {"files.example.net"}
    techniques = {a["technique"]["uid"] for a in alert["finding_info"]["attacks"]}
    assert "T1560.001" in techniques


def test_syslog_table_rows_alert_per_host(fixtures: Path) -> None:
    outcome = detect_files(
        [str(fixtures / "azure_syslog" / "syslog_table.json")], EngineConfig(), []
    )
    by_host = {a["device"]["hostname"]: a for a in outcome.alerts}
    assert set(by_host) == {"web-02.internal.cloudapp.net", "db-01.internal.cloudapp.net"}
    for host, archive in (
        ("web-02.internal.cloudapp.net", "/tmp/site.tgz"),
        ("db-01.internal.cloudapp.net", "/tmp/db.tgz"),
    ):
        alert = by_host[host]
        assert alert["finding_info"]["analytic"]["uid"] == "tw-archive-exfil"
        commands = [e.get("process", {}).get("cmd_line", "") for e in alert["evidences"]]
        assert any(c.startswith("tar -czf " + archive) for c in commands), host
        assert any(c.startswith("curl ") and archive in c for c in commands), host


def test_every_realworld_windows_json_file_is_recognised(corpus: Path) -> None:
    paths = [str(corpus / "realworld" / name) for name in REALWORLD]
    outcome = detect_files(paths, EngineConfig(), [])
    assert not outcome.unreadable
    assert outcome.report.skipped_total == 0
    assert set(outcome.report.files) == set(paths)
    assert outcome.report.events == 6 + 7 + 1 + 1 + 0 + 20 + 7 + 22


@pytest.mark.parametrize(
    ("archive", "member"),
    [
        ("sysmon_nxlog_mordor/cmd_bitsadmin_download_psh_script.zip", REALWORLD[5]),
        (
            "sysmon_sentinel_export/WORKSTATION6_Windows_MicrosoftWindowsSysmonOperational.zip",
            REALWORLD[6],
        ),
    ],
)
def test_a_dataset_read_from_its_zip_is_the_dataset_unpacked(
    corpus: Path, archive: str, member: str
) -> None:
    # The OTRF Security-Datasets ship as these zips; the json beside each is its one member.
    unpacked = detect_files([str(corpus / "realworld" / member)], EngineConfig(), [])
    packed = detect_files([str(corpus / "realworld" / archive)], EngineConfig(), [])
    inside = f"{corpus / 'realworld' / archive}!/{Path(member).name}"
    assert set(packed.report.files) == {inside}
    assert packed.report.events == unpacked.report.events > 0
    assert packed.report.records == unpacked.report.records
    assert packed.report.skipped_total == 0
