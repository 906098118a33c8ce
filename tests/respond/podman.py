"""A real Podman behind its Docker-compatible API, for the response tests.

Everything lives in places this harness creates and removes: a temporary directory (storage,
run root, CNI configuration, IPAM state, the API socket) and a network namespace. The API
service runs inside that namespace (entered with nsenter, which switches the network namespace
only and keeps the host's cgroup mounts), so the bridge, the veth pairs and any firewall rules
CNI makes exist only there and vanish with it. The root namespace is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

IMAGE = "localhost/tw-respond-box:1"
ULIMITS = (("nofile", 20000), ("nproc", 32768))
SUBNET = "10.213.7.0/24"
_TOOLS = ("podman", "runc", "nsenter", "ip")
BUSYBOX = Path("/bin/busybox")


def missing_requirements() -> str | None:
    """Why the live Podman tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "the Podman response tests need root (network namespaces, rootful podman)"
    absent = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if not BUSYBOX.is_file():
        absent.append("busybox-static (/bin/busybox)")
    if absent:
        return f"missing {', '.join(absent)}: run .ci/deps/podman.sh"
    return None


@dataclass
class Podman:
    base: list[str]  # the podman command line with this harness's storage and network config
    url: str  # the Docker-compatible API, unix://...
    network: str
    netns: str
    tmp: Path

    @property
    def env(self) -> dict[str, str]:
        # CNI, whichever backend the distribution's podman would pick: the harness writes a
        # CNI network; CONTAINERS_CONF replaces the system containers.conf for these runs only.
        return {**os.environ, "CONTAINERS_CONF": str(self.tmp / "containers.conf")}

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.env,
        )

    def client(self) -> Any:
        import docker

        return docker.APIClient(base_url=self.url, version="1.41", timeout=30)

    def start_container(self, name: str, network: str | None = None) -> str:
        """A running container attached to the test network; its full id."""
        import docker

        api = self.client()
        config = api.create_container(
            IMAGE,
            ["sleep", "3600"],
            name=name,
            host_config=api.create_host_config(
                network_mode=network or self.network,
                ulimits=[docker.types.Ulimit(name=n, soft=v, hard=v) for n, v in ULIMITS],
            ),
        )
        api.start(config["Id"])
        return str(config["Id"])


@contextmanager
def podman_service() -> Iterator[Podman]:
    tmp = Path(tempfile.mkdtemp(prefix="twr-", dir="/tmp"))
    suffix = f"{os.getpid() % 100000}"
    netns = f"tw-respond-{suffix}"
    network = f"tw-respond-{suffix}"
    base = [
        "nsenter",
        f"--net=/run/netns/{netns}",
        "podman",
        "--root", str(tmp / "root"),
        "--runroot", str(tmp / "run"),
        "--tmpdir", str(tmp / "libpod"),
        "--storage-driver", "overlay",
        "--runtime", "runc",
        "--cgroup-manager", "cgroupfs",
        "--events-backend", "file",
        "--network-config-dir", str(tmp / "net"),
    ]  # fmt: skip
    podman = Podman(base, f"unix://{tmp / 'api.sock'}", network, netns, tmp)
    service: subprocess.Popen[bytes] | None = None
    try:
        _run(["ip", "netns", "add", netns])
        _run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"])
        (tmp / "containers.conf").write_text('[network]\nnetwork_backend = "cni"\n')
        _write_network(tmp, network, f"twr{suffix}")
        _import_image(podman, tmp)
        log = (tmp / "service.log").open("wb")
        service = subprocess.Popen(
            [*base, "system", "service", "--time=0", podman.url],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=podman.env,
        )
        _wait_for_api(podman, service, deadline=time.monotonic() + 30)
        yield podman
    finally:
        with suppress(Exception):
            podman.cli("rm", "--all", "--force", "--time", "0", timeout=60)
        if service is not None:
            _stop(service)
        with suppress(Exception):
            _run(["ip", "netns", "delete", netns])
        for cached in Path("/var/lib/cni/results").glob(f"{network}-*"):
            cached.unlink(missing_ok=True)
        _unmount_under(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def _write_network(tmp: Path, network: str, bridge: str) -> None:
    """A bridge with no gateway, no masquerade and no firewall plugin: a network a container
    can be attached to and disconnected from, that leads nowhere. IPAM state stays in tmp."""
    config = {
        "cniVersion": "0.4.0",
        "name": network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": False,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(tmp / "ipam"),
                    "ranges": [[{"subnet": SUBNET}]],
                },
            }
        ],
    }
    (tmp / "net").mkdir()
    (tmp / "net" / f"{network}.conflist").write_bytes(orjson.dumps(config))


def _import_image(podman: Podman, tmp: Path) -> None:
    """A busybox root filesystem: the static binary and one relative symlink per applet."""
    rootfs = tmp / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    for name in ("tmp", "etc", "proc", "sys", "dev"):
        (rootfs / name).mkdir()
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True, timeout=10
    ).stdout.split()
    for applet in applets:
        if applet != "busybox" and "/" not in applet:
            (rootfs / "bin" / applet).symlink_to("busybox")
    archive = tmp / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".")
    result = podman.cli("import", str(archive), IMAGE, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"podman import failed: {result.stderr.strip()}")


def _wait_for_api(podman: Podman, service: subprocess.Popen[bytes], deadline: float) -> None:
    socket_path = podman.tmp / "api.sock"
    while time.monotonic() < deadline:
        if service.poll() is not None:
            log = (podman.tmp / "service.log").read_text(errors="replace")
            raise RuntimeError(f"podman system service exited: {log[-2000:]}")
        if socket_path.exists():
            with suppress(Exception):
                podman.client().ping()
                return
        time.sleep(0.05)
    raise RuntimeError("podman system service did not answer within 30 s")


def _stop(service: subprocess.Popen[bytes]) -> None:
    if service.poll() is None:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)  # its own session, started above
            service.wait(timeout=10)


def _unmount_under(tmp: Path) -> None:
    """The overlay driver bind-mounts its own directory and leaves it mounted when podman exits;
    unmount what lies under tmp (deepest first) so the directory can be removed."""
    prefix = f"{tmp}/"
    targets = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target.startswith(prefix):
            targets.append(target)
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", target], capture_output=True, timeout=30, check=False)


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)
