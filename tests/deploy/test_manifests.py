"""Every manifest in deploy/ is valid against the Kubernetes API models (the client's models
forbid unknown fields, so a misspelt or misplaced key fails), and says what the issue asks of
it: the DaemonSet reads Tetragon's export through a hostPath with its configuration from a
ConfigMap, its header secret from a Secret, and bounded resources; the webhook receiver is a
Deployment behind a Service; RBAC is only what respond uses, and only in its own folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.respond import alerts
from tidewaiter.respond.planner import plan

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MODELS: dict[str, Any] = {
    "Namespace": client.V1Namespace,
    "ServiceAccount": client.V1ServiceAccount,
    "ConfigMap": client.V1ConfigMap,
    "Secret": client.V1Secret,
    "DaemonSet": client.V1DaemonSet,
    "Deployment": client.V1Deployment,
    "Service": client.V1Service,
    "PersistentVolumeClaim": client.V1PersistentVolumeClaim,
    "ClusterRole": client.V1ClusterRole,
    "ClusterRoleBinding": client.V1ClusterRoleBinding,
}


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((str(path.relative_to(DEPLOY)), doc))
    return found


def kind(name: str) -> dict[str, Any]:
    [doc] = [d for _, d in documents() if d["kind"] == name]
    return doc


@pytest.mark.parametrize(
    ("path", "doc"), documents(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_each_manifest_is_valid_against_the_api_models(path: str, doc: dict[str, Any]) -> None:
    model = MODELS[doc["kind"]]
    parsed = model.model_validate(doc)
    assert client.ApiClient().sanitize_for_serialization(parsed) == doc
    if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
        assert doc["metadata"]["namespace"] == "tidewaiter"


def test_the_daemonset_follows_tetragon_with_its_config_secret_and_limits() -> None:
    daemonset = kind("DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    [container] = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert volumes["tetragon-export"]["hostPath"]["path"] == "/var/run/cilium/tetragon"
    assert mounts["tetragon-export"]["readOnly"] is True
    assert "hostPath" in volumes["store"]
    config = yaml.safe_load(kind_named("ConfigMap", "tidewaiter-tetragon")["data"]["watch.yaml"])
    assert config["paths"] == ["/var/run/cilium/tetragon/tetragon.log"]
    assert config["db"].startswith(mounts["store"]["mountPath"] + "/")
    assert volumes["config"]["configMap"]["name"] == "tidewaiter-tetragon"
    assert volumes["webhook-secret"]["secret"]["secretName"] == kind("Secret")["metadata"]["name"]
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_webhook_receiver_is_a_non_root_deployment_behind_a_service() -> None:
    deployment = kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # one writer of the store
    service = kind("Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    config = yaml.safe_load(kind_named("ConfigMap", "tidewaiter-falco")["data"]["watch.yaml"])
    assert config["listen"].endswith(":8765")
    assert {p["port"] for p in service["spec"]["ports"]} == {8765, 9090}


def test_rbac_is_opt_in_and_only_what_respond_uses() -> None:
    with_rbac = {path.split("/")[0] for path, d in documents() if "Role" in d["kind"]}
    assert with_rbac == {"respond-rbac"}
    rules = {
        (group, resource, verb)
        for rule in kind("ClusterRole")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert rules == {
        ("", "pods", "get"),
        ("", "pods", "patch"),
        ("networking.k8s.io", "networkpolicies", "get"),
        ("networking.k8s.io", "networkpolicies", "create"),
        ("networking.k8s.io", "networkpolicies", "update"),
    }
    # and the kinds a quarantine writes are the ones the role covers
    written = {m["kind"] for m in plan(alerts.pod()).manifests}
    assert written == {"NetworkPolicy", "Pod"}


def kind_named(name: str, metadata_name: str) -> dict[str, Any]:
    [doc] = [
        d for _, d in documents() if d["kind"] == name and d["metadata"]["name"] == metadata_name
    ]
    return doc
