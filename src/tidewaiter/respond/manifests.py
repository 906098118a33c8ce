"""The Kubernetes objects of a quarantine, as plain manifests (pure: no client, no cluster).

A NetworkPolicy that selects pods by a `tidewaiter/quarantine` label and allows no egress, and
the label patch that puts the one affected pod under it. The label value is derived from the
namespace and pod name, so every finding for the same pod names the same policy (idempotent),
and sibling replicas that share the pod's app labels are left alone.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

QUARANTINE_LABEL = "tidewaiter/quarantine"
MANAGED_BY = {"app.kubernetes.io/managed-by": "tidewaiter"}

# Kubernetes' own name rules: only names that pass them ever reach a manifest or the API.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


def valid_namespace(name: str | None) -> bool:
    return bool(name) and _DNS_LABEL.match(name or "") is not None


def valid_pod_name(name: str | None) -> bool:
    return bool(name) and _DNS_SUBDOMAIN.match(name or "") is not None


def valid_container_name(name: str | None) -> bool:
    return valid_namespace(name)


def quarantine_value(namespace: str, pod: str) -> str:
    return hashlib.sha256(f"{namespace}/{pod}".encode()).hexdigest()[:16]


def policy_name(namespace: str, pod: str) -> str:
    return f"tidewaiter-quarantine-{quarantine_value(namespace, pod)}"


def network_policy(namespace: str, pod: str, finding_uid: str) -> dict[str, Any]:
    """Deny every egress from the quarantined pod. Ingress is left as it is, so the analyst can
    still reach the pod (kubectl exec, debug) while nothing leaves it."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(namespace, pod),
            "namespace": namespace,
            "labels": dict(MANAGED_BY),
            "annotations": {"tidewaiter/finding": finding_uid, "tidewaiter/pod": pod},
        },
        "spec": {
            "podSelector": {"matchLabels": {QUARANTINE_LABEL: quarantine_value(namespace, pod)}},
            "policyTypes": ["Egress"],
            "egress": [],
        },
    }


def pod_label_patch(namespace: str, pod: str) -> dict[str, Any]:
    """A strategic-merge patch that adds the quarantine label and touches nothing else."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod,
            "namespace": namespace,
            "labels": {QUARANTINE_LABEL: quarantine_value(namespace, pod)},
        },
    }


def same_policy_spec(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a policy read back from the API already does what the wanted one does (the API
    omits empty lists, so absent and empty are the same here)."""

    def normal(spec: dict[str, Any]) -> tuple[Any, ...]:
        return (
            spec.get("podSelector") or {},
            sorted(spec.get("policyTypes") or []),
            spec.get("egress") or [],
            spec.get("ingress") or [],
        )

    return normal(current) == normal(wanted)
