"""Container ids made comparable across sources, and workload keys for baselines."""

from __future__ import annotations

from tidewaiter.events import Container, Image
from tidewaiter.identity import (
    Identities,
    container_id_from_cgroup,
    image_repository,
    normalise_container_id,
    workload_key,
)

FULL = "bae66fa9f18079f78500ad37e88eb8a88b3181b2d0767f26dc532f75e4024d27"


def test_runtime_prefixes_are_removed() -> None:
    assert normalise_container_id(f"containerd://{FULL}") == FULL
    assert normalise_container_id(f"docker://{FULL.upper()}") == FULL
    assert normalise_container_id("cri-o://abc123def456") == "abc123def456"
    assert normalise_container_id("host") is None
    assert normalise_container_id("") is None


def test_cgroup_paths() -> None:
    assert container_id_from_cgroup(f"/kubepods/besteffort/pod1/{FULL}") == FULL
    assert container_id_from_cgroup(f"/system.slice/docker-{FULL}.scope") == FULL
    assert container_id_from_cgroup(f"/libpod_parent/libpod-{FULL}") == FULL
    assert container_id_from_cgroup("/user.slice/user-1000.slice") is None


def test_short_ids_resolve_to_the_full_id_and_gain_metadata() -> None:
    identities = Identities()
    image = Image(name="quay.io/x/es:latest")
    identities.resolve(Container(uid=FULL, name="elasticsearch", image=image, namespace="jobs"))
    falco = identities.resolve(Container(uid=FULL[:12]))  # Falco's 12 characters
    tetragon = identities.resolve(Container(uid=FULL[:31]))  # Tetragon's truncated docker field
    for seen in (falco, tetragon):
        assert seen.uid == FULL
        assert seen.name == "elasticsearch"
        assert seen.image == image
    other = identities.resolve(Container(uid=FULL[:12] + "ffff"))  # same 12, different id
    assert other.uid == FULL[:12] + "ffff"


def test_identities_are_bounded() -> None:
    identities = Identities(capacity=100)
    for n in range(1000):
        identities.resolve(Container(uid=f"{n:064x}"))
    assert len(identities._known) == 100


def test_image_repository_keeps_registry_ports() -> None:
    assert image_repository("registry:5000/team/app:1.2") == "registry:5000/team/app"
    assert image_repository("quay.io/x/es@sha256:ff3a") == "quay.io/x/es"
    assert image_repository("alpine") == "alpine"


def test_workload_key_prefers_kubernetes_owner_and_image_digest() -> None:
    pod = Container(
        uid=FULL,
        image=Image(name="quay.io/x/es:latest", uid="quay.io/x/es@sha256:ff3a"),
        namespace="tenant-jobs",
        owner="Deployment/elasticsearch",
        pod_name="elasticsearch-56f8fc6988-sh8rm",
    )
    assert (
        workload_key(pod)
        == "k8s:tenant-jobs/Deployment/elasticsearch image:quay.io/x/es@sha256:ff3a"
    )
    assert workload_key(Container(uid=FULL, image=Image(name="nginx:1.25"))) == "image:nginx"
    assert workload_key(Container(uid=FULL)) == f"container:{FULL}"
