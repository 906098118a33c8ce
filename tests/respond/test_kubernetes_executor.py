"""The Kubernetes executor through the real `kubernetes` client against a loopback stub of the
API server: policy then label, idempotent, server-side dry run, and refusals."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from tests.respond import alerts
from tests.respond.kube_stub import Cluster, pod, serve
from tidewaiter.respond.kubernetes_executor import KubernetesExecutor
from tidewaiter.respond.outcome import Outcome
from tidewaiter.respond.planner import Plan, plan
from tidewaiter.respond.protect import Protection

NAMESPACE, POD = "payments", "api-7d9f8b6c5-x2kqz"
IMAGE = "registry.example.com/payments/api:1.42.0"
KEY = (NAMESPACE, POD)


def _cluster(container_id: str = alerts.CONTAINER, image: str = IMAGE) -> Cluster:
    cluster = Cluster()
    cluster.pods[KEY] = pod(NAMESPACE, POD, container_id, image)
    return cluster


def _execute(
    cluster: Cluster, planned: Plan | None = None, **options: Any
) -> tuple[list[Outcome], list[Outcome]]:
    planned = planned or plan(alerts.pod())
    reported: list[Outcome] = []
    with serve(cluster) as url:
        executor = KubernetesExecutor(
            lambda: client.ApiClient(client.Configuration(host=url)), Protection(), **options
        )
        outcomes = executor.execute(planned, reported.append)
    return outcomes, reported


def _results(outcomes: list[Outcome]) -> list[tuple[str, str]]:
    return [(o.kind, o.result) for o in outcomes]


def test_the_policy_is_applied_then_the_pod_labelled_and_a_second_run_changes_nothing() -> None:
    cluster = _cluster()
    planned = plan(alerts.pod())
    policy_name = planned.manifests[0]["metadata"]["name"]

    outcomes, reported = _execute(cluster, planned)

    assert _results(outcomes) == [
        ("apply-network-policy", "changed"),
        ("label-pod", "changed"),
        ("debug", "manual"),
    ]
    assert reported == outcomes  # each outcome reported as it happened, for the audit log
    stored = cluster.policies[(NAMESPACE, policy_name)]
    labels = cluster.pods[KEY]["metadata"]["labels"]
    assert stored["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert stored["spec"]["policyTypes"] == ["Egress"]
    assert labels["app"] == "api"  # the patch added a label and kept the others
    writes = cluster.writes()
    assert [w.method for w in writes] == ["POST", "PATCH"]  # policy first: the label arms it
    assert writes[1].content_type in (
        "application/strategic-merge-patch+json",
        "application/merge-patch+json",
    )

    before = len(cluster.writes())
    again, _ = _execute(cluster, planned)

    assert _results(again) == [
        ("apply-network-policy", "unchanged"),
        ("label-pod", "unchanged"),
        ("debug", "manual"),
    ]
    assert len(cluster.writes()) == before


def test_a_server_side_dry_run_sends_every_write_with_dry_run_and_persists_nothing() -> None:
    cluster = _cluster()

    outcomes, _ = _execute(cluster, dry_run=True)

    assert _results(outcomes)[:2] == [("apply-network-policy", "dry-run"), ("label-pod", "dry-run")]
    assert cluster.writes()
    assert all(w.dry_run for w in cluster.writes())
    assert cluster.policies == {}
    assert "tidewaiter/quarantine" not in cluster.pods[KEY]["metadata"]["labels"]


def test_a_policy_someone_loosened_is_put_back() -> None:
    cluster = _cluster()
    planned = plan(alerts.pod())
    _execute(cluster, planned)
    name = planned.manifests[0]["metadata"]["name"]
    cluster.policies[(NAMESPACE, name)]["spec"]["egress"] = [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}
    ]

    outcomes, _ = _execute(cluster, planned)

    assert _results(outcomes)[0] == ("apply-network-policy", "changed")
    assert "egress" not in cluster.policies[(NAMESPACE, name)]["spec"]


def test_a_pod_that_no_longer_runs_the_alerts_container_is_not_touched() -> None:
    cluster = _cluster(container_id="9" * 64)

    outcomes, _ = _execute(cluster)

    assert [o.result for o in outcomes] == ["failed", "failed", "manual"]
    assert "no longer runs container" in outcomes[0].message
    assert cluster.writes() == []


def test_a_workload_the_api_reports_as_protected_is_refused_unless_forced() -> None:
    cluster = _cluster(image="quay.io/cilium/cilium:v1.15.1")  # the alert said another image

    refused, _ = _execute(cluster)

    assert [o.result for o in refused] == ["refused", "refused", "manual"]
    assert "cilium" in refused[0].message
    assert cluster.writes() == []

    forced, _ = _execute(cluster, force=True)

    assert [o.result for o in forced] == ["changed", "changed", "manual"]


def test_permission_denied_is_reported_for_each_action() -> None:
    cluster = _cluster()
    cluster.forbidden = True

    outcomes, _ = _execute(cluster)

    assert [o.result for o in outcomes] == ["failed", "failed", "manual"]
    assert all("permission denied" in o.message for o in outcomes[:2])


def test_a_pod_that_is_gone_is_reported_for_each_action() -> None:
    outcomes, _ = _execute(Cluster())

    assert [o.result for o in outcomes] == ["failed", "failed", "manual"]
    assert all("gone" in o.message for o in outcomes[:2])


def test_an_unreachable_cluster_is_reported_for_each_action() -> None:
    planned = plan(alerts.pod())
    executor = KubernetesExecutor(
        lambda: client.ApiClient(client.Configuration(host="http://127.0.0.1:9")), Protection()
    )

    outcomes = executor.execute(planned, lambda _: None)

    assert [o.result for o in outcomes] == ["failed", "failed", "manual"]
    assert "unreachable" in outcomes[0].message
