"""A network that never leaves the machine: two namespaces joined by a veth pair.

The container's namespace and the sink's each get one end. The pair is created inside the
container's namespace with its peer placed straight into the sink's, so the root namespace never
holds either end, and only addresses in 10.213.0.0/30 are used. Deleting the two namespaces
removes the pair with them.
"""

from __future__ import annotations

import subprocess
from contextlib import ExitStack
from dataclasses import dataclass

SUBNET = "10.213.0.0/30"
CONTAINER_IP = "10.213.0.1"
SINK_IP = "10.213.0.2"
PREFIX = 30
NETNS_DIR = "/run/netns"


class NetworkError(Exception):
    pass


@dataclass(frozen=True)
class Network:
    container_ns: str
    sink_ns: str
    container_ip: str = CONTAINER_IP
    sink_ip: str = SINK_IP

    @property
    def container_ns_path(self) -> str:
        return f"{NETNS_DIR}/{self.container_ns}"


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _delete(name: str) -> None:
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False, timeout=30)


def namespaces() -> set[str]:
    result = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False, timeout=30
    )
    return {line.split()[0] for line in result.stdout.splitlines() if line.strip()}


def create(run_id: str, stack: ExitStack) -> Network:
    """The two namespaces and the pair; their removal is registered on ``stack`` first, so a
    failure half-way still removes whatever was made."""
    short = run_id[:8]
    network = Network(container_ns=f"tw-{short}-c", sink_ns=f"tw-{short}-s")
    container_end, sink_end = f"tw{short}c", f"tw{short}s"  # interface names: 15 bytes at most
    for name in (network.container_ns, network.sink_ns):
        stack.callback(_delete, name)
        _ip("netns", "add", name)
    c, s = network.container_ns, network.sink_ns
    _ip("-n", c, "link", "add", container_end, "type", "veth", "peer", "name", sink_end, "netns", s)
    _ip("-n", c, "addr", "add", f"{network.container_ip}/{PREFIX}", "dev", container_end)
    _ip("-n", s, "addr", "add", f"{network.sink_ip}/{PREFIX}", "dev", sink_end)
    for namespace, device in ((c, container_end), (s, sink_end), (c, "lo"), (s, "lo")):
        _ip("-n", namespace, "link", "set", device, "up")
    return network
