"""Containment planning: a finding in, an ordered list of actions out, each with its reason.
Pure: nothing is executed, nothing is contacted, the same finding always gives the same plan.

Telemetry is attacker-controlled. Only values that pass a strict shape check reach the plan as
handles: a hexadecimal container id, Kubernetes names that obey Kubernetes' own rules, integer
pids, parsed IP addresses. Container names and images are kept for display only, and guidance
meant for a person to type is built from checked values alone.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

import msgspec

from tidewaiter.alerts import alert_container, evidence_ref
from tidewaiter.detection.catalog import load
from tidewaiter.identity import POD_PREFIX, normalise_container_id
from tidewaiter.respond import manifests
from tidewaiter.respond.protect import Protection

Platform = Literal["docker", "kubernetes", "host"]
HostOs = Literal["linux", "windows", "macos"]

_CONTAINER_ID = re.compile(r"^[0-9a-f]{12,64}$")
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:\\|\\")
_TRANSFER_SIGNALS = frozenset({"upload", "egress", "split", "push", "copy_out", "api_copy"})


class Action(msgspec.Struct, frozen=True, omit_defaults=True):
    kind: str
    target: str
    reason: str
    manual: bool = False  # guidance for a person: tidewaiter never executes it
    guidance: str | None = None  # what that person would run, built from checked values only


class Target(msgspec.Struct, frozen=True, omit_defaults=True):
    platform: Platform
    container_id: str | None = None  # the only handle a runtime is asked about
    container_name: str | None = None  # display only
    image: str | None = None  # display only
    namespace: str | None = None
    pod: str | None = None
    container: str | None = None  # the container's name in its pod
    host: str | None = None

    def label(self) -> str:
        if self.platform == "kubernetes":
            return f"pod {self.namespace or '?'}/{self.pod or '?'}"
        if self.platform == "docker":
            short = (self.container_id or "?")[:12]
            name = f" ({self.container_name})" if self.container_name else ""
            return f"container {short}{name}"
        return f"host {self.host or '?'}"


class Plan(msgspec.Struct, omit_defaults=True):
    finding_uid: str
    target: Target
    actions: list[Action]
    manifests: list[dict[str, Any]] = msgspec.field(default_factory=list)
    protected: str | None = None  # why the workload is protected: refused without --force
    problems: list[str] = msgspec.field(default_factory=list)  # why nothing can be acted on
    response: str | None = None  # the analytic's response guidance (the ADS)


class PlanOptions(msgspec.Struct, frozen=True):
    platform: Platform | None = None  # None: decided from the alert
    evidence_dir: str | None = None  # export the filesystem and inspect output here
    stop: bool = False  # also stop the container (after evidence)


def target_of(alert: dict[str, Any], platform: Platform | None = None) -> Target:
    container = alert_container(alert)
    k8s = (alert.get("unmapped") or {}).get("k8s") or {}
    raw_uid = normalise_container_id(container.get("uid"))
    namespace, pod, name = k8s.get("namespace"), k8s.get("pod"), container.get("name")
    container_id = None
    if raw_uid and raw_uid.startswith(POD_PREFIX):
        namespace, _, rest = raw_uid[len(POD_PREFIX) :].partition("/")
        pod, _, name = rest.partition("/")
    elif raw_uid:
        container_id = raw_uid
    if platform is None:
        if namespace and pod:
            platform = "kubernetes"
        elif raw_uid:
            platform = "docker"
        else:
            platform = "host"
    return Target(
        platform=platform,
        container_id=container_id,
        container_name=container.get("name"),
        image=(container.get("image") or {}).get("name"),
        namespace=namespace or None,
        pod=pod or None,
        container=name or None,
        host=(alert.get("device") or {}).get("hostname"),
    )


def plan(
    alert: dict[str, Any],
    options: PlanOptions | None = None,
    protection: Protection | None = None,
) -> Plan:
    options = options or PlanOptions()
    protection = protection or Protection()
    info = alert["finding_info"]
    target = target_of(alert, options.platform)
    analytic = load().analytics.get(info["analytic"]["uid"])
    if target.platform == "kubernetes":
        result = _kubernetes(info["uid"], target)
    elif target.platform == "docker":
        result = _docker(info["uid"], target, options)
    else:
        result = _host(info["uid"], target, alert)
    result.protected = protection.why(
        namespace=target.namespace,
        image=target.image,
        names=(target.container_name, target.pod),
    )
    result.response = analytic.response if analytic is not None else None
    return result


def _docker(uid: str, target: Target, options: PlanOptions) -> Plan:
    problems = []
    cid = target.container_id
    if not cid or not _CONTAINER_ID.match(cid):
        problems.append(
            "the alert carries no container id a runtime can resolve (12 to 64 hex digits); "
            "nothing can be acted on"
        )
        cid = None
    where = f"container {cid or '?'}"
    actions = [
        Action(
            "disconnect",
            where,
            "detach it from every network it is attached to, so nothing more leaves; "
            "its processes keep running for the investigation",
        ),
        Action(
            "pause",
            where,
            "freeze every process in it: memory, open files and sockets stay as they are "
            "for forensics, and nothing runs",
        ),
    ]
    if options.evidence_dir:
        actions += [
            Action(
                "export",
                where,
                f"its filesystem as a tar into {options.evidence_dir}, taken while it is frozen",
            ),
            Action(
                "inspect",
                where,
                f"the runtime's inspect output (image, mounts, networks, config) into "
                f"{options.evidence_dir}",
            ),
        ]
    stop_reason = (
        "end its processes once memory evidence is taken; a paused container is killed, "
        "as it cannot handle a stop signal while frozen"
    )
    if options.stop:
        actions.append(Action("stop", where, stop_reason))
    else:
        actions.append(
            Action(
                "stop",
                where,
                stop_reason + " (tidewaiter does this with --stop)",
                manual=True,
                guidance=f"docker kill {cid}" if cid else None,
            )
        )
    return Plan(uid, target, actions, problems=problems)


def _kubernetes(uid: str, target: Target) -> Plan:
    problems = []
    namespace, pod = target.namespace, target.pod
    if not manifests.valid_namespace(namespace):
        problems.append("the alert's namespace is not a valid Kubernetes name; refusing to use it")
    if not manifests.valid_pod_name(pod):
        problems.append("the alert's pod name is not a valid Kubernetes name; refusing to use it")
    if problems or namespace is None or pod is None:
        return Plan(uid, target, [], problems=problems)
    policy = manifests.network_policy(namespace, pod, uid)
    patch = manifests.pod_label_patch(namespace, pod)
    label = f"{manifests.QUARANTINE_LABEL}={manifests.quarantine_value(namespace, pod)}"
    debug = f"kubectl debug -n {namespace} {pod} -it --image=busybox"
    if manifests.valid_container_name(target.container):
        debug += f" --target={target.container}"
    actions = [
        Action(
            "apply-network-policy",
            f"networkpolicy {namespace}/{policy['metadata']['name']}",
            f"deny all egress from pods labelled {label}, so nothing more leaves; ingress is "
            "untouched so the pod can still be examined",
        ),
        Action(
            "label-pod",
            f"pod {namespace}/{pod}",
            f"add {label} so the policy selects this pod alone, not the replicas that share "
            "its app labels",
        ),
        Action(
            "debug",
            f"pod {namespace}/{pod}",
            "collect evidence without restarting the pod: an ephemeral container sharing its "
            "process namespace sees its processes, and its filesystem under /proc/1/root",
            manual=True,
            guidance=debug + " -- sh",
        ),
    ]
    return Plan(uid, target, actions, manifests=[policy, patch])


def _host(uid: str, target: Target, alert: dict[str, Any]) -> Plan:
    """A host without a container: guidance only, for the person at the keyboard."""
    os = _host_os(alert)
    host = target.host or "the host"
    actions: list[Action] = []
    pids: dict[int, str] = {}
    destinations: dict[tuple[str, int | None], None] = {}
    for evidence in alert.get("evidences", []):
        data = evidence.get("data") or {}
        process = evidence.get("process") or {}
        pid = process.get("pid")
        if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
            pids.setdefault(pid, str(data.get("tool") or "?"))
        dst = evidence.get("dst_endpoint") or {}
        ip = _address(dst.get("ip"))
        port = dst.get("port")
        port = port if isinstance(port, int) and 0 < port < 65536 else None
        if ip is not None and data.get("signal") in _TRANSFER_SIGNALS:
            destinations.setdefault((ip, port), None)
    for pid, tool in pids.items():
        actions.append(
            Action(
                "stop-process",
                f"pid {pid} ({tool}) on {host}",
                "stop the process that staged or sent the data, frozen first where the system "
                "allows so its memory can be captured (the pid may have been reused since the "
                "alert: check it first)",
                manual=True,
                guidance=_stop_guidance(os, pid),
            )
        )
    for ip, port in destinations:
        where = f"{ip}:{port}" if port else ip
        actions.append(
            Action(
                "block-connection",
                f"{where} from {host}",
                "block outbound traffic to the destination the data went to",
                manual=True,
                guidance=_block_guidance(os, ip, port),
            )
        )
    problems = [] if actions else ["the alert names no process or destination to act on"]
    return Plan(uid, target, actions, problems=problems)


def _host_os(alert: dict[str, Any]) -> HostOs:
    """Windows by its paths (Sysmon for Linux shares Sysmon's format), macOS by its sensor."""
    evidences = alert.get("evidences", [])
    paths = [((e.get("process") or {}).get("file") or {}).get("path") or "" for e in evidences]
    if any(_WINDOWS_PATH.search(p) for p in paths):
        return "windows"
    if any(evidence_ref(e).get("source") == "eslogger" for e in evidences):
        return "macos"
    return "linux"


def _address(text: object) -> str | None:
    if not isinstance(text, str):
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _stop_guidance(os: HostOs, pid: int) -> str:
    if os == "windows":
        return f"Stop-Process -Id {pid} -Force"
    return f"kill -STOP {pid}  (then, once its memory is captured: kill -KILL {pid})"


def _block_guidance(os: HostOs, ip: str, port: int | None) -> str:
    v6 = ":" in ip
    if os == "windows":
        rule = "New-NetFirewallRule -DisplayName tidewaiter-block -Direction Outbound"
        rule += f" -RemoteAddress {ip}" + (f" -Protocol TCP -RemotePort {port}" if port else "")
        return rule + " -Action Block"
    if os == "macos":
        rule = f"block drop out quick to {ip}" + (f" port {port}" if port else "")
        return f"echo '{rule}' | pfctl -a tidewaiter -f -"
    family = "ip6" if v6 else "ip"
    match = f"{family} daddr {ip}" + (f" tcp dport {port}" if port else "")
    return (
        "nft add table inet tidewaiter; "
        "nft add chain inet tidewaiter out '{ type filter hook output priority 0; }'; "
        f"nft add rule inet tidewaiter out {match} drop"
    )
