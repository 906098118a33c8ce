"""Which destinations are internal: the question every egress and upload signal asks.

Internal means loopback, link-local, the private and shared ranges, and whatever the user adds.
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
    ) -> None:
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
            return None
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
        )

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


_INTERNAL = tuple(
    ipaddress.ip_network(c)
    for c in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # carrier-grade NAT: inside a provider's network
        "fc00::/7",
    )
)

# Every range an address is internal by default, as CIDR text (what exported Sigma rules filter).
DEFAULT_INTERNAL_RANGES = (
    *(str(net) for net in _INTERNAL),
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "0.0.0.0/32",
    "::1/128",
    "fe80::/10",
    "ff00::/8",
)
