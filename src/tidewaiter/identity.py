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


class Identities:
    """Bounded memory of full container ids and of what each container is, keyed by id prefix.

    Later records are enriched with what earlier ones said (a Falco record with a 12-character
    id gets the image and pod that a Tetragon record gave the full id)."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._capacity = capacity
        self._known: OrderedDict[str, Container] = OrderedDict()  # full id -> merged metadata
        self._by_prefix: dict[str, str] = {}  # 12-char prefix -> full id

    def resolve(self, container: Container) -> Container:
        """The container with its full id and the richest metadata seen for it."""
        uid = container.uid
        full = uid if len(uid) >= FULL_ID else self._by_prefix.get(uid[:MIN_PREFIX])
        if full is not None and len(uid) < FULL_ID and not full.startswith(uid):
            full = None  # same 12-char prefix, different container
        if full is None:
            if len(uid) >= FULL_ID:
                full = uid
            else:
                return self._merge_known(uid, container)
        return self._merge_known(full, container)

    def _merge_known(self, key: str, container: Container) -> Container:
        known = self._known.get(key)
        merged = _merge(known, container, key)
        if merged != known:
            self._known[key] = merged
            if len(key) >= FULL_ID:
                self._by_prefix[key[:MIN_PREFIX]] = key
        self._known.move_to_end(key)
        if len(self._known) > self._capacity:
            old, _ = self._known.popitem(last=False)
            if self._by_prefix.get(old[:MIN_PREFIX]) == old:
                del self._by_prefix[old[:MIN_PREFIX]]
        return merged

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
