"""Containment through the Kubernetes API: the quarantine NetworkPolicy, then the pod label that
puts the one affected pod under it (in that order, so the label switches the policy on at once).

The pod is read from the API first. When the alert carries a runtime container id, the pod must
still run that container (a pod of the same name may have replaced it); names that reach the API
passed Kubernetes' own name rules in the planner. With dry_run, every write is sent with
`dryRun=All`: the server validates and admits it and persists nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tidewaiter.respond import manifests
from tidewaiter.respond.outcome import GUIDANCE_ONLY, Outcome, Outcomes, Report, Result
from tidewaiter.respond.planner import Action, Plan
from tidewaiter.respond.protect import Protection

_HEX = re.compile(r"^[0-9a-f]{12,64}$")
_TIMEOUT = 30.0


class ClusterProblem(Exception):
    """The cluster cannot be used for this pod; the message says why in one sentence."""


def client_from_config(kubeconfig: str | None, context: str | None) -> Any:
    """An ApiClient from a kubeconfig (the default one unless named), else in-cluster config."""
    try:
        from kubernetes import client, config
    except ImportError as exc:
        raise ClusterProblem(
            "the kubernetes package is missing: pip install 'tidewaiter[respond]'"
        ) from exc
    try:
        return config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context
        )
    except Exception as first:  # no kubeconfig: perhaps we run in a pod
        if kubeconfig is not None or context is not None:
            raise ClusterProblem(f"cannot load the kubeconfig: {first}") from first
        configuration = client.Configuration()
        try:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except Exception as exc:
            raise ClusterProblem(
                "no Kubernetes configuration: no kubeconfig and not running in a pod"
            ) from exc
        return client.ApiClient(configuration)


class KubernetesExecutor:
    def __init__(
        self,
        client_factory: Callable[[], Any],
        protection: Protection,
        *,
        force: bool = False,
        dry_run: bool = False,
    ) -> None:
        self.client_factory = client_factory
        self.protection = protection
        self.force = force
        self.dry_run = dry_run

    def execute(self, plan: Plan, report: Report) -> list[Outcome]:
        recorded = Outcomes(report)
        emit = recorded.add

        def every(result: Result, message: str) -> list[Outcome]:
            return recorded.every(plan.actions, result, message)

        if plan.problems or not plan.actions:
            return every("refused", "; ".join(plan.problems) or "nothing to do")
        target = plan.target
        namespace, pod = target.namespace or "", target.pod or ""
        try:
            from kubernetes import client

            api_client = self.client_factory()
            core = client.CoreV1Api(api_client)
            networking = client.NetworkingV1Api(api_client)
            live = self._resolve(core, namespace, pod, target.container_id)
        except ClusterProblem as exc:
            return every("failed", str(exc))
        except Exception as exc:  # the client raises many kinds; say which
            return every("failed", _explain(exc, f"pod {namespace}/{pod}"))
        why = self._protected(live)
        if why is not None and not self.force:
            return every("refused", f"{why} (as the API reports it); --force to act anyway")
        policy = next(m for m in plan.manifests if m["kind"] == "NetworkPolicy")
        patch = next(m for m in plan.manifests if m["kind"] == "Pod")
        for action in plan.actions:
            if action.manual:
                emit(Outcome(action.kind, action.target, "manual", GUIDANCE_ONLY))
                continue
            try:
                if action.kind == "apply-network-policy":
                    result, message = self._apply_policy(networking, api_client, policy)
                elif action.kind == "label-pod":
                    result, message = self._label(core, namespace, pod, patch)
                else:
                    result, message = "failed", f"no Kubernetes handler for {action.kind!r}"
            except Exception as exc:  # each action reports its own failure
                result, message = "failed", _explain(exc, action.target)
            emit(_outcome(action, result, message))
        return recorded.recorded

    def _resolve(self, core: Any, namespace: str, pod: str, container_id: str | None) -> Any:
        live = core.read_namespaced_pod(pod, namespace, _request_timeout=_TIMEOUT)
        if container_id and _HEX.match(container_id):
            statuses = [
                *(live.status.container_statuses or []),
                *(live.status.init_container_statuses or []),
                *(live.status.ephemeral_container_statuses or []),
            ]
            ids = [_bare_id(s.container_id) for s in statuses if s.container_id]
            if not any(i.startswith(container_id) for i in ids):
                raise ClusterProblem(
                    f"pod {namespace}/{pod} no longer runs container {container_id[:12]} (it "
                    "was restarted or replaced); refusing to act on a pod the alert may not "
                    "be about"
                )
        return live

    def _protected(self, live: Any) -> str | None:
        images = [c.image for c in (live.spec.containers or []) if c.image]
        namespace = live.metadata.namespace
        for image in images or [None]:
            why = self.protection.why(namespace=namespace, image=image, names=(live.metadata.name,))
            if why is not None:
                return why
        return None

    def _apply_policy(
        self, networking: Any, api_client: Any, policy: dict[str, Any]
    ) -> tuple[Result, str]:
        from kubernetes.client import V1NetworkPolicy

        meta = policy["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        body = V1NetworkPolicy.model_validate(policy)
        dry = {"dry_run": "All"} if self.dry_run else {}
        try:
            current = networking.read_namespaced_network_policy(
                name, namespace, _request_timeout=_TIMEOUT
            )
        except Exception as exc:
            if _status(exc) != 404:
                raise
            networking.create_namespaced_network_policy(
                namespace, body, _request_timeout=_TIMEOUT, **dry
            )
            verb = "would create" if self.dry_run else "created"
            return ("dry-run" if self.dry_run else "changed"), f"{verb} {namespace}/{name}"
        spec = api_client.sanitize_for_serialization(current.spec) or {}
        if manifests.same_policy_spec(spec, policy["spec"]):
            return "unchanged", f"{namespace}/{name} already denies all egress"
        if body.metadata is not None:  # replace must name the version it replaces
            body.metadata.resource_version = current.metadata.resource_version
        networking.replace_namespaced_network_policy(
            name, namespace, body, _request_timeout=_TIMEOUT, **dry
        )
        verb = "would replace" if self.dry_run else "replaced"
        return ("dry-run" if self.dry_run else "changed"), (
            f"{verb} {namespace}/{name}, which had been changed"
        )

    def _label(
        self, core: Any, namespace: str, pod: str, patch: dict[str, Any]
    ) -> tuple[Result, str]:
        key, value = next(iter(patch["metadata"]["labels"].items()))
        live = core.read_namespaced_pod(pod, namespace, _request_timeout=_TIMEOUT)
        if (live.metadata.labels or {}).get(key) == value:
            return "unchanged", f"already labelled {key}={value}"
        body = {"metadata": {"labels": {key: value}}}
        if self.dry_run:
            core.patch_namespaced_pod(
                pod, namespace, body, dry_run="All", _request_timeout=_TIMEOUT
            )
            return "dry-run", f"would label it {key}={value}"
        core.patch_namespaced_pod(pod, namespace, body, _request_timeout=_TIMEOUT)
        after = core.read_namespaced_pod(pod, namespace, _request_timeout=_TIMEOUT)
        if (after.metadata.labels or {}).get(key) != value:
            return "failed", "the API accepted the label but the pod does not carry it"
        return "changed", f"labelled {key}={value}: the quarantine policy now selects it"


def _bare_id(text: str) -> str:
    return text.split("://", 1)[-1].lower()


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def _explain(exc: BaseException, what: str) -> str:
    status = _status(exc)
    reason = str(getattr(exc, "reason", "") or "")
    if status == 404:
        return f"{what} is gone (404 from the API)"
    if status in (401, 403):
        return f"permission denied by the API for {what} ({status} {reason})"
    if status is not None and status > 0:
        return f"the API refused ({status} {reason})"
    text = str(exc)
    if isinstance(exc, OSError) or "Connection" in text or "Max retries" in text:
        return f"cluster unreachable ({text[:200]})"
    return f"Kubernetes error: {text[:300]}"


def _outcome(action: Action, result: Result, message: str) -> Outcome:
    return Outcome(action.kind, action.target, result, message)
