"""What a workload is, from what code running inside it cannot write.

Everything a container's processes do is theirs to choose: argv, file names, executable names.
What the orchestrator and the deployer set is not: the Kubernetes owner (a CronJob's pods are
named `<cronjob>-<scheduled minute>-<5 chars>` by the Job controller), and the image the pod
runs. Only these may vouch that a workload is a backup job (issue 11 class 2, issue 12 class 2).
"""

from __future__ import annotations

import re

import msgspec

from tidewaiter.events import Container
from tidewaiter.identity import image_repository

# A pod a CronJob made: <cronjob>-<minutes since the epoch>-<suffix>. A Deployment's pod carries
# a pod-template hash drawn from an alphabet with letters ("6b9f7d8c4"), a Job's pod only a suffix.
_CRONJOB_POD = re.compile(r"^(?P<name>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)-\d{8,10}-[a-z0-9]{5}$")
_REPLICA_POD = re.compile(
    r"^(?P<name>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)-(?=[bcdfghjklmnpqrstvwxz2456789]*[a-z])"
    r"[bcdfghjklmnpqrstvwxz2456789]{6,10}-[a-z0-9]{5}$"
)
BATCH_KINDS = frozenset({"CronJob", "Job"})


class Identity(msgspec.Struct, frozen=True, omit_defaults=True):
    """The workload as the orchestrator and deployer describe it."""

    kind: str | None = None  # "CronJob", "Job", "Deployment", ... (None when unknown)
    name: str | None = None
    namespace: str | None = None
    image: str | None = None  # the image repository
    inferred: bool = False  # the kind comes from the pod name the controller gave it

    @property
    def batch(self) -> bool:
        return self.kind in BATCH_KINDS

    def describe(self) -> str:
        if self.kind:
            where = f"{self.namespace}/" if self.namespace else ""
            what = f"a {self.kind} ({where}{self.name})"
        else:
            what = "a workload with no orchestrator owner on record"
        return f"{what}, image {self.image}" if self.image else what


def identity(container: Container | None) -> Identity:
    if container is None:
        return Identity()
    image = image_repository(container.image.name if container.image else None)
    if container.owner and "/" in container.owner:
        kind, _, name = container.owner.partition("/")
        return Identity(kind, name, container.namespace, image)
    pod = container.pod_name or ""
    cron = _CRONJOB_POD.match(pod)
    if cron:
        return Identity("CronJob", cron["name"], container.namespace, image, inferred=True)
    replica = _REPLICA_POD.match(pod)
    if replica:
        return Identity("Deployment", replica["name"], container.namespace, image, inferred=True)
    return Identity(name=container.owner or None, namespace=container.namespace, image=image)
