"""Workloads tidewaiter refuses to contain unless told `--force`: the cluster's own components,
the network plugin, and tidewaiter and its sensors. Cutting those off would blind the response
or break the cluster for everyone.

The list is checked twice: against the alert when planning (telemetry, so only ever to refuse
more) and against what the runtime's API reports for the resolved container before acting.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import msgspec

from tidewaiter.identity import image_repository

DEFAULT_NAMESPACES = (
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "calico-system",
    "calico-apiserver",
    "tigera-operator",
    "cilium",
    "kube-flannel",
    "tidewaiter",
    "tetragon",
    "falco",
)
DEFAULT_IMAGES = (
    "*cilium*",
    "*calico*",
    "*flannel*",
    "*weave-net*",
    "*kube-proxy*",
    "*coredns*",
    "*amazon-k8s-cni*",
    "*azure-cns*",
    "*tidewaiter*",
    "*tetragon*",
    "*falco*",
)
# Names are chosen by whoever deploys a workload, so a tenant could call a pod `kube-x`: a bare
# name glob applies only where there are no namespaces (a Docker or Podman host, where names
# are the host's administrator's). In Kubernetes a name is protected only in the namespaces
# its entry names: `NAMESPACE_GLOB/NAME_GLOB` (`monitoring/falco*`).
DEFAULT_NAMES = ("tidewaiter*", "tetragon*", "falco*", "kube-*", "etcd*", "coredns*")


class Protection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Globs, case-insensitive. A file given with --protected replaces the defaults field by
    field: a field it leaves out keeps its defaults."""

    namespaces: tuple[str, ...] = DEFAULT_NAMESPACES
    images: tuple[str, ...] = DEFAULT_IMAGES
    names: tuple[str, ...] = DEFAULT_NAMES

    def why(
        self,
        namespace: str | None = None,
        image: str | None = None,
        names: tuple[str | None, ...] = (),
    ) -> str | None:
        """Why a workload is protected, or None."""
        if namespace and (glob := _match(namespace, self.namespaces)):
            return f"namespace {namespace} is protected ({glob})"
        if image:
            repo = image_repository(image) or image
            for text in (image, repo):
                if glob := _match(text, self.images):
                    return f"image {image} is protected ({glob})"
        for name in names:
            if name and (glob := self._name_match(name, namespace)):
                where = f" in namespace {namespace}" if namespace else ""
                return f"name {name}{where} is protected ({glob})"
        return None

    def _name_match(self, name: str, namespace: str | None) -> str | None:
        for entry in self.names:
            scope, _, glob = entry.rpartition("/")
            if namespace is None and scope:
                continue  # scoped to a namespace, and this workload has none
            if namespace is not None and not (scope and _match(namespace, (scope,))):
                continue  # a bare name, or another namespace's: a tenant can choose names
            if _match(name, (glob,)):
                return entry
        return None


class ProtectionError(Exception):
    """A protected-workloads file that cannot be used; the message names the file."""


def load_protection(path: str | Path | None) -> Protection:
    if path is None:
        return Protection()
    try:
        return msgspec.yaml.decode(Path(path).read_bytes(), type=Protection)
    except OSError as exc:
        raise ProtectionError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProtectionError(f"{path}: {exc}") from exc


def _match(text: str, globs: tuple[str, ...]) -> str | None:
    folded = text.lower()
    return next((g for g in globs if fnmatch.fnmatchcase(folded, g.lower())), None)
