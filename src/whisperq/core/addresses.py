"""Which network addresses a URL a client gave may lead to: only global unicast ones, judged after the
IPv4 address some IPv6 forms carry inside them is taken out (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible
::a.b.c.d, 6to4 2002::/16, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, Teredo 2001::/32): a private IPv4
address wrapped in IPv6 is still private, whatever Python's `is_global` says of the wrapper."""

from __future__ import annotations

import ipaddress

LOCAL_NAMES = ("localhost", "localhost.localdomain")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (and would reach), if it is of a form that carries one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    packed = address.packed
    if packed[:12] == bytes(12) and int(address) > 1:  # IPv4-compatible ::a.b.c.d (not :: or ::1)
        return ipaddress.IPv4Address(packed[12:])
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(packed[12:])
    if address in _TEREDO and address.teredo is not None:
        return address.teredo[1]  # the client's address
    return None


def is_public(address: IPAddress) -> bool:
    """A global unicast address, and (IPv6) whatever IPv4 address it carries global too."""
    if address.is_multicast or address.is_unspecified or address.is_reserved or not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
    return True


def is_private_host(host: str) -> bool:
    """Whether a literal address or a well-known local name is off-limits for a URL a client gave
    (a name is judged when it is resolved: see transcriber/egress.py)."""
    name = host.lower().strip("[]")
    if name in LOCAL_NAMES or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return False
    return not is_public(address)
