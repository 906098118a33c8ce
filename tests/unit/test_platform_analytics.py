"""The container-platform channels: kubectl cp, docker cp / export, commit then push, and
host data staged through a container with a sensitive mount."""

from __future__ import annotations

from tests.builders import CID, api_call, container, launch
from tidewaiter.detection.analytics import COMMIT_PUSH, EXPORT, HOST_STAGED, K8S_COPY, Finding
from tidewaiter.events import Activity, Container, Event, Image, Kind, Mount
from tidewaiter.identity import pod_container_id
from tidewaiter.pipeline import Engine


def run(events: list[Event]) -> list[Finding]:
    found: list[Finding] = []
    engine = Engine(found.append)
    for event in sorted(events, key=lambda e: e.time):
        engine.process(event)
    engine.flush()
    return found


def pod(name: str = "api-0") -> Container:
    return Container(
        uid=pod_container_id("payments", name, "api"),
        name="api",
        pod_name=name,
        namespace="payments",
    )


def kubectl(
    command: tuple[str, ...], time: float = 1000.0, source: str = "10.0.0.5", **kw: object
) -> Event:
    return api_call(
        "exec",
        time=time,
        ctr=pod(),
        kind=Kind.ORCHESTRATOR,
        activity=Activity.EXEC,
        resource="pods/exec",
        user="alice@example.com",
        source_ips=(source,),
        command=command,
        response_code=101,
        **kw,
    )


def test_kubectl_cp_from_a_pod_is_data_copied_through_the_api() -> None:
    [finding] = run([kubectl(("tar", "cf", "-", "/var/lib/data"))])
    assert finding.analytic.uid == K8S_COPY
    assert finding.severity_id == 4  # medium, raised: /var/lib is sensitive
    assert "alice@example.com ran a tar create" in finding.reasons[0]
    assert {"T1609", "T1560.001"} <= set(finding.techniques)


def test_kubectl_cp_from_outside_with_a_large_response_is_critical() -> None:
    [finding] = run(
        [
            kubectl(
                ("tar", "cf", "-", "/etc/shadow"), source="198.51.100.40", response_bytes=50 << 20
            )
        ]
    )
    assert finding.severity_id == 5
    assert any("outside the network (198.51.100.40)" in r for r in finding.reasons)


def test_kubectl_exec_ls_and_logs_are_quiet() -> None:
    assert run([kubectl(("ls", "-la", "/"))]) == []
    assert run([kubectl(("tar", "xf", "-", "-C", "/tmp"))]) == []  # kubectl cp INTO a pod


def test_docker_export_and_cp_out_of_a_container() -> None:
    ctr = container()
    [plain] = run([api_call("export", ctr=ctr, activity=Activity.EXPORT)])
    assert (plain.analytic.uid, plain.severity_id) == (EXPORT, 3)
    found = run(
        [
            launch("tar -czf /tmp/loot.tgz /srv", time=900, ctr=ctr),
            api_call("copy", time=1000, ctr=ctr, activity=Activity.COPY, target="/tmp/loot.tgz"),
        ]
    )
    [staged] = [f for f in found if f.analytic.uid == EXPORT]
    assert staged.severity_id == 4
    assert "an archive had been made in the container shortly before" in staged.reasons
    assert [s.kind.value for s in staged.evidence] == ["archive", "copy_out"]


def test_host_docker_cp_out_and_in() -> None:
    [finding] = run([launch("docker cp web:/etc/shadow ./shadow", host="build-1")])
    assert finding.analytic.uid == EXPORT
    assert finding.severity_id == 4
    assert "it copied a sensitive path web:/etc/shadow (/etc)" in finding.reasons
    assert run([launch("docker cp ./config.yaml web:/etc/app/config.yaml")]) == []


def test_commit_of_a_container_that_archived_then_push_to_a_new_registry() -> None:
    ctr = container()  # image registry.example.com/payments/api: a familiar registry
    found = run(
        [
            launch("tar -czf /tmp/loot.tgz /srv", time=900, ctr=ctr),
            api_call("commit", time=950, ctr=ctr, activity=Activity.COMMIT, target="sha256:abc"),
            api_call(
                "push",
                time=1000,
                activity=Activity.PUSH,
                target="registry.evil.example:5000/loot:1",
            ),
        ]
    )
    [push] = [f for f in found if f.analytic.uid == COMMIT_PUSH]
    assert push.severity_id == 4
    assert push.title == "Container committed and pushed to an unfamiliar registry"
    assert push.entity.container is not None
    assert push.entity.container.uid == CID
    assert [s.kind.value for s in push.evidence] == ["archive", "commit", "push"]


def test_push_to_a_familiar_registry_is_quiet() -> None:
    ctr = container()
    found = run(
        [
            launch("tar -czf /tmp/build.tgz /src", time=900, ctr=ctr),
            api_call("commit", time=950, ctr=ctr, activity=Activity.COMMIT),
            api_call(
                "push",
                time=1000,
                activity=Activity.PUSH,
                target="registry.example.com/payments/api:2",
            ),
        ]
    )
    assert [f.analytic.uid for f in found if f.analytic.uid == COMMIT_PUSH] == []


def test_push_of_nothing_interesting_to_a_new_registry_is_low() -> None:
    [finding] = run([api_call("push", activity=Activity.PUSH, target="ghcr.io/someone/tool:1")])
    assert (finding.analytic.uid, finding.severity_id) == (COMMIT_PUSH, 2)


def test_host_data_staged_through_a_container_with_a_sensitive_mount() -> None:
    ctr = container()
    [finding] = run(
        [
            api_call("create", time=900, ctr=ctr, mounts=(Mount("/", "/host"),), privileged=True),
            launch("tar -czf /tmp/h.tgz /host/etc", time=1000, ctr=ctr),
        ]
    )
    assert (finding.analytic.uid, finding.severity_id) == (HOST_STAGED, 4)
    assert "host path /:/host mounted (privileged)" in finding.reasons[0]
    assert [s.kind.value for s in finding.evidence] == ["host_mount", "archive"]


def test_a_harmless_mount_is_not_a_signal() -> None:
    ctr = container()
    found = run(
        [
            api_call("create", time=900, ctr=ctr, mounts=(Mount("/srv/app-data", "/data"),)),
            launch("tar -czf /tmp/h.tgz /data", time=1000, ctr=ctr),
        ]
    )
    assert [f.analytic.uid for f in found] == ["tw-archive-created"]


def test_pod_mount_from_the_audit_log_meets_the_runtime_container() -> None:
    real = Container(
        uid=CID, name="api", pod_name="api-0", namespace="payments", image=Image(name="nginx:1")
    )
    found = run(
        [
            api_call(
                "create", time=900, ctr=pod(), kind=Kind.ORCHESTRATOR, mounts=(Mount("/etc", "/h"),)
            ),
            launch("tar -czf /tmp/h.tgz /h", time=1000, ctr=real),
        ]
    )
    [finding] = found
    assert finding.analytic.uid == HOST_STAGED
    assert finding.entity.container is not None
    assert finding.entity.container.uid == CID


def test_kubectl_cp_with_retries_wraps_tar_in_sh() -> None:
    [finding] = run([kubectl(("sh", "-c", "tar cf - /var/lib/data | tail -c+0"))])
    assert finding.analytic.uid == K8S_COPY


def test_a_refused_exec_is_only_a_low_record() -> None:
    event = api_call(
        "exec",
        ctr=pod(),
        kind=Kind.ORCHESTRATOR,
        activity=Activity.EXEC,
        resource="pods/exec",
        user="mallory",
        source_ips=("10.0.0.9",),
        command=("tar", "cf", "-", "/etc"),
        response_code=403,
    )
    [finding] = run([event])
    assert (finding.analytic.uid, finding.severity_id) == (K8S_COPY, 2)
    assert any("refused it (403)" in r for r in finding.reasons)
