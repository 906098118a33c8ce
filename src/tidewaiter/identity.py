"""Who an event belongs to: container ids made comparable across sources, and workload keys.

Sources disagree on container ids: Kubernetes writes ``containerd://<64 hex>``, Docker events the
full 64-character id, Falco the first 12 characters, Tetragon's ``docker`` field a truncated
prefix. ``normalise_container_id`` removes runtime prefixes; ``Identities`` then resolves any
prefix to the full id once some source has reported it, so correlation keys one container once.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import msgspec

from tidewaiter.events import Container, Event

_RUNTIME_PREFIX = re.compile(r"^(?:containerd|docker|cri-o|crio|podman|libpod)://", re.IGNORECASE)
_CGROUP_ID = re.compile(r"(?:libpod-|docker-|cri-containerd-|crio-|/)([0-9a-f]{64})(?:\.scope)?$")
MIN_PREFIX = 12  # shorter ids are too ambiguous to match against full ones
FULL_ID = 64
# Kubernetes audit and Hubble name a pod, not a container id: their events carry the synthetic
# id "pod:<namespace>/<pod>/<container>", resolved here once a runtime record names that pod.
POD_PREFIX = "pod:"
MAX_REGISTRIES = 1024


def normalise_container_id(raw: str | None) -> str | None:
    """Lower-case id without a runtime prefix; None for empty or host placeholders."""
    if not raw:
        return None
    text = _RUNTIME_PREFIX.sub("", raw.strip()).lower()
    if not text or text in ("host", "<host>", "0", "none"):
        return None
    return text


def container_id_from_cgroup(path: str) -> str | None:
    """The 64-hex container id at the end of a cgroup path (docker, containerd, cri-o, podman)."""
    match = _CGROUP_ID.search(path.strip())
    return match.group(1) if match else None


def image_repository(image: str | None) -> str | None:
    """``registry/repo`` from ``registry/repo:tag`` or ``registry/repo@sha256:...``."""
    if not image:
        return None
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:  # a colon after the last slash is a tag, not a registry port
        name = name[:colon]
    return name


def pod_container_id(namespace: str, pod: str, container: str = "") -> str:
    """The synthetic id of a container known only by its pod (Kubernetes audit, Hubble)."""
    return f"{POD_PREFIX}{namespace}/{pod}/{container}"


def registry_of(reference: str) -> str:
    """The registry host of an image reference (`docker.io` when the reference names none)."""
    first, slash, _ = reference.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return "docker.io"


def image_digest(image_uid: str | None) -> str | None:
    if image_uid and "@sha256:" in image_uid:
        return image_uid.split("@", 1)[1]
    if image_uid and image_uid.startswith("sha256:"):
        return image_uid
    return None


def workload_key(container: Container) -> str:
    """The stable identity of what a container runs, for baselines: containers come and go,
    Kubernetes owners and image repositories stay."""
    parts: list[str] = []
    if container.namespace:
        owner = container.owner or container.pod_name or ""
        parts.append(f"k8s:{container.namespace}/{owner}")
    image = container.image
    repo = image_repository(image.name if image else None)
    if repo:
        digest = image_digest(image.uid if image else None)
        parts.append(f"image:{repo}@{digest}" if digest else f"image:{repo}")
    if not parts:
        parts.append(f"container:{container.uid}")
    return " ".join(parts)


class _IdentityState(msgspec.Struct, array_like=True):
    known: list[tuple[str, Container]]
    pods: list[tuple[tuple[str, str, str], str]]
    registries: list[str]
    named_pods: list[tuple[str, str]]


class Identities:
    """Bounded memory of full container ids and of what each container is, keyed by id prefix.

    Later records are enriched with what earlier ones said (a Falco record with a 12-character
    id gets the image and pod that a Tetragon record gave the full id)."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._capacity = capacity
        self._known: OrderedDict[str, Container] = OrderedDict()  # full id -> merged metadata
        self._by_prefix: dict[str, str] = {}  # 12-char prefix -> full id
        self._by_pod: OrderedDict[tuple[str, str, str], str] = OrderedDict()  # (ns, pod, name)
        self._registries: dict[str, None] = {}  # registries of images seen, oldest first
        self.named_pods: list[tuple[str, str]] = []  # (synthetic pod id, full id) learned lately

    def registries(self) -> frozenset[str]:
        return frozenset(self._registries)

    def note_registry(self, registry: str) -> None:
        """A registry another process saw first (`detect --jobs`): judged as if seen here."""
        self._registries.setdefault(registry, None)
        if len(self._registries) > MAX_REGISTRIES:
            del self._registries[next(iter(self._registries))]

    def resolve(self, container: Container) -> Container:
        """The container with its full id and the richest metadata seen for it."""
        uid = container.uid
        if uid.startswith(POD_PREFIX):
            real = self._pod_container(uid)
            if real is None:
                return container
            container = _merge(None, container, real)
            uid = real
        full = uid if len(uid) >= FULL_ID else self._by_prefix.get(uid[:MIN_PREFIX])
        if full is not None and len(uid) < FULL_ID and not full.startswith(uid):
            full = None  # same 12-char prefix, different container
        if full is None:
            if len(uid) >= FULL_ID:
                full = uid
            else:
                return self._merge_known(uid, container)
        return self._merge_known(full, container)

    def _pod_container(self, synthetic: str) -> str | None:
        namespace, _, rest = synthetic[len(POD_PREFIX) :].partition("/")
        pod, _, name = rest.partition("/")
        if name:
            return self._by_pod.get((namespace, pod, name))
        # Hubble names the pod only: any container of that pod stands for it.
        return next(
            (uid for (ns, p, _), uid in self._by_pod.items() if (ns, p) == (namespace, pod)), None
        )

    def _learn(self, key: str, merged: Container) -> None:
        if len(key) >= FULL_ID:
            self._by_prefix[key[:MIN_PREFIX]] = key
        if merged.namespace and merged.pod_name and merged.name:
            pod = (merged.namespace, merged.pod_name, merged.name)
            if pod not in self._by_pod:
                self.named_pods.append((pod_container_id(*pod), key))
            self._by_pod[pod] = key
            if len(self._by_pod) > self._capacity:
                self._by_pod.popitem(last=False)
        if merged.image is not None and merged.image.name:
            self._registries[registry_of(merged.image.name)] = None
            if len(self._registries) > MAX_REGISTRIES:
                del self._registries[next(iter(self._registries))]

    def _merge_known(self, key: str, container: Container) -> Container:
        known = self._known.get(key)
        if known is not None and (container is known or container == known):
            self._known.move_to_end(key)  # the common case: the same record again
            return known
        merged = _merge(known, container, key)
        if merged != known:
            self._known[key] = merged
            self._learn(key, merged)
        self._known.move_to_end(key)
        if len(self._known) > self._capacity:
            old, _ = self._known.popitem(last=False)
            if self._by_prefix.get(old[:MIN_PREFIX]) == old:
                del self._by_prefix[old[:MIN_PREFIX]]
        return merged

    def forget(self, uid: str) -> None:
        """Drop a container that has exited or gone idle (any prefix of its id will do)."""
        full = self.canonical_id(uid)
        known = self._known.pop(full, None)
        if self._by_prefix.get(full[:MIN_PREFIX]) == full:
            del self._by_prefix[full[:MIN_PREFIX]]
        if known is not None and known.namespace and known.pod_name and known.name:
            pod = (known.namespace, known.pod_name, known.name)
            if self._by_pod.get(pod) == full:
                del self._by_pod[pod]

    def snapshot(self) -> bytes:
        """What is known, for a checkpoint: a restart must enrich later records as before."""
        state = _IdentityState(
            list(self._known.items()),
            list(self._by_pod.items()),
            list(self._registries),
            list(self.named_pods),
        )
        return msgspec.msgpack.encode(state)

    def restore(self, data: bytes) -> None:
        state = msgspec.msgpack.decode(data, type=_IdentityState)
        self._known = OrderedDict(state.known)
        self._by_prefix = {k[:MIN_PREFIX]: k for k in self._known if len(k) >= FULL_ID}
        self._by_pod = OrderedDict(state.pods)
        self._registries = dict.fromkeys(state.registries)
        self.named_pods = list(state.named_pods)

    def canonical_id(self, uid: str) -> str:
        """The full id for a prefix when one is known, else the prefix itself."""
        full = self._by_prefix.get(uid[:MIN_PREFIX])
        return full if full is not None and full.startswith(uid) else uid

    def enrich(self, event: Event) -> Event:
        if event.container is None:
            return event
        resolved = self.resolve(event.container)
        if resolved == event.container:
            return event
        return msgspec.structs.replace(event, container=resolved)


def _merge(known: Container | None, new: Container, uid: str) -> Container:
    if known is None:
        return msgspec.structs.replace(new, uid=uid) if new.uid != uid else new
    return Container(
        uid=uid,
        name=new.name or known.name,
        image=new.image or known.image,
        runtime=new.runtime or known.runtime,
        pod_name=new.pod_name or known.pod_name,
        namespace=new.namespace or known.namespace,
        owner=new.owner or known.owner,
    )
