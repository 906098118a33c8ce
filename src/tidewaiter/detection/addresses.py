"""Which destinations are internal: the question every egress and upload signal asks.

Internal means loopback, link-local, the private ranges, and whatever the user adds. The shared
address space (100.64.0.0/10) is a choice (``shared_internal``, `--shared-range`): it is a
carrier's NAT, but also the pod network of some Kubernetes clusters (EKS custom networking) and
the addresses of overlay VPNs such as Tailscale, which an attacker can join. Internal by default;
traffic there stays in the evidence either way (``in_shared_range``).
``external_cidrs`` wins over everything, so a test sink on a private range can stand in for the
internet (the live emulation does this).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_DEFAULT_INTERNAL_DOMAINS = (
    ".local",
    ".internal",
    ".svc",
    ".cluster.local",
    ".lan",
    ".corp",
    ".home.arpa",
)


class AddressPolicy:
    def __init__(
        self,
        internal_cidrs: Iterable[str] = (),
        external_cidrs: Iterable[str] = (),
        internal_domains: Iterable[str] = _DEFAULT_INTERNAL_DOMAINS,
        shared_internal: bool = True,
    ) -> None:
        self.shared_internal = shared_internal
        self.internal_cidrs: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(c, strict=False) for c in internal_cidrs
        )
        self.external_cidrs: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(c, strict=False) for c in external_cidrs
        )
        self.internal_domains = tuple(
            d.lower() if d.startswith(".") else "." + d.lower() for d in internal_domains
        )
        self.ip_internal = lru_cache(maxsize=65_536)(self._ip_internal)

    def _ip_internal(self, text: str) -> bool | None:
        """True or False for an address; None when the text is not an address at all."""
        try:
            address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
        except ValueError:
            legacy = legacy_ipv4(text)
            if legacy is None:
                return None
            address = ipaddress.ip_address(legacy)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in net for net in self.external_cidrs):
            return False
        if any(address in net for net in self.internal_cidrs):
            return True
        # Not ipaddress's is_private: that also covers documentation and benchmarking ranges,
        # which are not anyone's internal network.
        return bool(
            address.is_loopback
            or address.is_link_local
            or address.is_unspecified
            or address.is_multicast
            or any(address in net for net in _INTERNAL)
            or (self.shared_internal and address in SHARED)
        )

    def in_shared_range(self, text: str) -> bool:
        if "100." not in text[:12]:  # cheap: every address in 100.64.0.0/10 begins so
            return False
        try:
            return ipaddress.ip_address(text.strip("[]").split("%", 1)[0]) in SHARED
        except ValueError:
            return False

    def host_internal(self, host: str) -> bool:
        """An IP address or a host name. A name is internal when it has no dot (a service or
        host short name) or ends with an internal domain; any other name is the outside."""
        by_ip = self.ip_internal(host)
        if by_ip is not None:
            return by_ip
        name = host.lower().rstrip(".")
        if name == "localhost" or "." not in name:
            return True
        return name.endswith(self.internal_domains)


def legacy_ipv4(text: str) -> str | None:
    """An IPv4 address in the forms inet_aton accepts, which curl, wget and the C library
    resolve without DNS (`3405803853`, `0xcb00714d`, `0313.0.0161.0115`, `203.7369037`), as
    dotted quad; None for anything else (a name)."""
    if not text or len(text) > 64 or not text[0].isascii() or not text[0].isdigit():
        return None
    parts = text.split(".")
    if len(parts) > 4:
        return None
    values = []
    for part in parts:
        lowered = part.lower()
        try:
            if lowered.startswith("0x"):
                values.append(int(lowered[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            elif part.isascii() and part.isdigit():
                values.append(int(part))
            else:
                return None
        except ValueError:
            return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 1 << (8 * (5 - len(values))):
        return None
    number = last
    for index, value in enumerate(head):
        number += value << (8 * (3 - index))
    return str(ipaddress.IPv4Address(number))


_INTERNAL = tuple(
    ipaddress.ip_network(c)
    for c in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
    )
)

SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 shared address space (CGNAT)

# Every range an address is internal by default, as CIDR text (what exported Sigma rules filter);
# the shared range is internal unless --shared-range external says otherwise.
DEFAULT_INTERNAL_RANGES = (
    *(str(net) for net in _INTERNAL),
    str(SHARED),
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "0.0.0.0/32",
    "::1/128",
    "fe80::/10",
    "ff00::/8",
)
