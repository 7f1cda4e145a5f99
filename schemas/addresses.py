"""Which addresses may receive a webhook: global unicast only, the one policy for submit and connect time.

The gateway checks a ``webhook_url``'s addresses when a story is submitted; the delivery checks the
address it is about to connect to again, since DNS can answer differently by then. Both ask
:func:`refusal`, which names the range an address falls in, so a 422 or a dead letter says why.

Python's ``is_global`` alone is not enough: before 3.13 it calls multicast addresses global, and it
knows nothing of NAT64, 6to4 or Teredo, which reach an IPv4 address of the translator's choosing.
The tables below follow the IANA special-purpose registries; anything they miss is still refused
when ``is_global`` is false (IPv4) or when it lies outside the global unicast block 2000::/3 (IPv6).
Addresses that embed an IPv4 address (IPv4-mapped, IPv4-compatible, well-known NAT64) are judged by
the address they embed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_REFUSED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "limited broadcast"),
    ("240.0.0.0/4", "reserved"),
)
_V6_REFUSED: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use NAT64"),  # its translator and embedding are a local network's choice
    ("100::/64", "discard-only"),
    ("2001::/32", "Teredo"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6)"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")

# Names that never lead outside: loopback by RFC 6761, mDNS, home networks, private use, never delegated.
_REFUSED_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("localhost", "loopback name"),
    ("local", "multicast DNS name"),
    ("home.arpa", "home network name"),
    ("internal", "private-use name"),
    ("invalid", "reserved name"),
    ("test", "reserved name"),
    ("example", "reserved name"),
)


def _networks(
    table: tuple[tuple[str, str], ...],
) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    return tuple((ipaddress.ip_network(cidr), name) for cidr, name in table)


_V4_NETWORKS = _networks(_V4_REFUSED)
_V6_NETWORKS = _networks(_V6_REFUSED)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an address may not receive webhooks: the range it falls in, and that range's name."""

    address: str
    network: str
    name: str
    embedded: str | None = None  # the IPv4 address judged, when ``address`` embeds one

    def __str__(self) -> str:
        where = f"in {self.network} ({self.name})"
        if self.embedded is not None:
            return f"{self.address} embeds {self.embedded}, {where}"
        return f"{self.address} is {where}"


def parse_address(text: str) -> IPAddress:
    """An IP address from ``text``, an IPv6 scope id (``%eth0``) dropped; ``ValueError`` if it is none."""
    return ipaddress.ip_address(text.split("%", 1)[0])


def refusal(address: IPAddress | str) -> Refusal | None:
    """Why ``address`` may not receive webhooks, or ``None`` when it is a global unicast address."""
    if isinstance(address, str):
        address = parse_address(address)
    if isinstance(address, ipaddress.IPv4Address):
        return _v4_refusal(address, shown=str(address), embedded=None)
    embedded = _embedded_v4(address)
    if embedded is not None:
        return _v4_refusal(embedded, shown=str(address), embedded=str(embedded))
    for network, name in _V6_NETWORKS:
        if address in network:
            return Refusal(str(address), str(network), name)
    if address not in _GLOBAL_UNICAST_V6:
        return Refusal(str(address), "outside 2000::/3", "not global unicast")
    if not address.is_global:
        return Refusal(str(address), "not globally reachable", "special-purpose")
    return None


def is_allowed(address: IPAddress | str) -> bool:
    """Whether ``address`` is a global unicast address a webhook may be sent to."""
    return refusal(address) is None


def host_refusal(host: str) -> str | None:
    """Why a host *name* can never be a public target (``localhost``, ``*.internal``, one label), or ``None``.

    Only names are judged here; an IP literal passes (ask :func:`refusal`), and a name that passes
    must still resolve to addresses :func:`refusal` allows.
    """
    name = host.rstrip(".").lower()
    try:
        parse_address(name)
    except ValueError:
        pass
    else:
        return None
    for suffix, why in _REFUSED_SUFFIXES:
        if name == suffix or name.endswith("." + suffix):
            return f"{host} is a {why} (.{suffix})"
    if "." not in name:
        # A single label is completed from the resolver's search list: a name inside our network.
        return f"{host} is a single-label name, resolved inside the local network"
    return None


def _v4_refusal(address: ipaddress.IPv4Address, *, shown: str, embedded: str | None) -> Refusal | None:
    for network, name in _V4_NETWORKS:
        if address in network:
            return Refusal(shown, str(network), name, embedded)
    if not address.is_global:
        return Refusal(shown, "not globally reachable", "special-purpose", embedded)
    return None


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, IPv4-compatible or well-known NAT64 address reaches."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_WELL_KNOWN or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None
