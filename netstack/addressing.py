"""Address helpers shared by the drivers: parsing what users pass, formatting what they get.

Internally an IPv4 address is its 4 packed bytes (cheap to hash, compare and pack); users
see the strings and tuples asyncio's own sockets use.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

__all__ = [
    "InterfaceAddress",
    "InterfaceAddress6",
    "Route",
    "format_ip",
    "format_ipv4",
    "ntoa",
    "parse_ip",
    "parse_ip_interface",
    "parse_ip_network",
    "parse_ipv4",
    "parse_ipv4_interface",
    "parse_port",
    "sockaddr",
    "split_zone",
]

ANY4 = b"\x00\x00\x00\x00"
ANY6 = bytes(16)


def parse_ipv4(host: object, *, what: str = "address") -> bytes:
    """A dotted-quad IPv4 literal as 4 bytes.

    Raises:
        ValueError: not a string holding an IPv4 address in dotted-quad form.
    """
    if not isinstance(host, str):
        raise ValueError(f"{what} must be a string, got {type(host).__name__}")
    try:
        return socket.inet_pton(socket.AF_INET, host)
    except OSError:
        raise ValueError(f"{what} {host!r} is not an IPv4 address") from None


#: IPv4 address texts by packed address, for the receive path: ``socket.inet_ntoa`` formats
#: with snprintf (~1 700 instructions a call), a look-up here costs a tenth of that. Bounded:
#: emptied when full.
NTOA_CACHE: dict[bytes, str] = {}
NTOA_CACHE_MAX = 4096


def ntoa(ip: bytes) -> str:
    """The dotted-quad text of a packed IPv4 address, as ``socket.inet_ntoa`` (cached in
    :data:`NTOA_CACHE`; a caller on a hot path may look there first)."""
    text = NTOA_CACHE.get(ip) if ip.__class__ is bytes else None
    if text is None:
        text = socket.inet_ntoa(ip)
        if ip.__class__ is bytes:
            if len(NTOA_CACHE) >= NTOA_CACHE_MAX:
                NTOA_CACHE.clear()
            NTOA_CACHE[ip] = text
    return text


def format_ipv4(ip: bytes) -> str:
    return ntoa(ip)


def split_zone(host: str) -> tuple[str, str | None]:
    """``"fe80::1%eth1"`` -> ``("fe80::1", "eth1")``: an IPv6 literal and its zone (RFC 4007
    11), which names the interface of a link-local address; None without one."""
    if ":" in host and "%" in host:
        literal, zone = host.split("%", 1)
        return literal, zone
    return host, None


def parse_ip(host: object, *, what: str = "address") -> bytes:
    """An IPv4 (4 bytes) or IPv6 (16 bytes) literal. A zone (``fe80::1%eth0``) is accepted
    and not returned (:func:`split_zone` reads it).

    Raises:
        ValueError: not a string holding an IP address.
    """
    if not isinstance(host, str):
        raise ValueError(f"{what} must be a string, got {type(host).__name__}")
    if ":" in host:
        literal = host.split("%", 1)[0]
        if literal.startswith("[") and literal.endswith("]"):
            literal = literal[1:-1]
        try:
            return socket.inet_pton(socket.AF_INET6, literal)
        except OSError:
            raise ValueError(f"{what} {host!r} is not an IPv6 address") from None
    try:
        return socket.inet_pton(socket.AF_INET, host)
    except OSError:
        raise ValueError(f"{what} {host!r} is not an IP address") from None


def format_ip(ip: bytes) -> str:
    return ntoa(ip) if len(ip) == 4 else socket.inet_ntop(socket.AF_INET6, ip)


def sockaddr(
    ip: bytes, port: int, scope_id: int = 0
) -> tuple[str, int] | tuple[str, int, int, int]:
    """The address tuple asyncio's sockets give: ``(host, port)`` for IPv4,
    ``(host, port, flowinfo, scope_id)`` for IPv6; the scope (the index of the interface)
    only for a link-local address, as Linux gives it."""
    if len(ip) == 4:
        return (ntoa(ip), port)
    link_local = ip[0] == 0xFE and ip[1] & 0xC0 == 0x80
    return (socket.inet_ntop(socket.AF_INET6, ip), port, 0, scope_id if link_local else 0)


def parse_port(port: object, *, allow_zero: bool = True) -> int:
    """A port number, checked.

    Raises:
        ValueError: not an integer in 0..65535 (1..65535 unless ``allow_zero``).
    """
    if isinstance(port, bool) or not isinstance(port, int):
        raise ValueError(f"port must be an int, got {port!r}")
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise ValueError(f"port must be in {low}..65535, got {port}")
    return port


def parse_ipv4_interface(text: object) -> ipaddress.IPv4Interface:
    """``"a.b.c.d/len"`` (a bare address means /32).

    Raises:
        ValueError: anything else, or a network address rather than a host's.
    """
    if not isinstance(text, str):
        raise ValueError(f"an IPv4 address must be a string like '198.18.0.1/24', got {text!r}")
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an IPv4 address with prefix length: {exc}") from None
    ip = iface.ip
    if ip.is_multicast or ip.is_unspecified or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError(f"{ip} cannot be a host's address")
    if iface.network.prefixlen < 31 and ip in (
        iface.network.network_address,
        iface.network.broadcast_address,
    ):
        raise ValueError(f"{ip} is the network or broadcast address of {iface.network}")
    return iface


def parse_ip_network(text: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``"198.18.9.0/24"`` or ``"fd00:9::/64"`` (host bits must be zero).

    Raises:
        ValueError: anything else.
    """
    if not isinstance(text, str):
        raise ValueError(f"a network must be a string like '198.18.9.0/24', got {text!r}")
    try:
        return ipaddress.ip_network(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a network: {exc}") from None


def parse_ip_interface(text: object) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """``"a.b.c.d/len"`` or ``"fd00::2/64"`` (a bare IPv6 address means /128).

    Raises:
        ValueError: anything else, or an address a host cannot have.
    """
    if isinstance(text, str) and ":" in text:
        try:
            iface6 = ipaddress.IPv6Interface(text)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not an IPv6 address with prefix length: {exc}") from None
        ip6 = iface6.ip
        if ip6.is_multicast or ip6.is_unspecified or ip6.is_loopback:
            raise ValueError(f"{ip6} cannot be a host's address")
        return iface6
    return parse_ipv4_interface(text)


class InterfaceAddress6(ipaddress.IPv6Interface):
    """One of the stack's IPv6 addresses: an :class:`ipaddress.IPv6Interface` that also
    says its ``state`` ("tentative", "preferred", "deprecated" or "duplicate") and
    ``origin`` ("link-local", "slaac" or "static")."""

    state: str
    origin: str
    #: The name of the stack's interface the address is on.
    interface: str | None

    def __init__(
        self,
        address: Any,
        state: str = "preferred",
        origin: str = "static",
        interface: str | None = None,
    ) -> None:
        super().__init__(address)
        self.state = state
        self.origin = origin
        self.interface = interface

    def __repr__(self) -> str:
        return f"InterfaceAddress6('{self}', state='{self.state}', origin='{self.origin}')"


class InterfaceAddress(ipaddress.IPv4Interface):
    """One of the stack's addresses: an :class:`ipaddress.IPv4Interface` (it compares equal
    to one) that also says its ``state`` ("preferred" for IPv4; IPv6 addresses also pass
    through "tentative" and "deprecated")."""

    state: str
    #: The name of the stack's interface the address is on.
    interface: str | None

    def __init__(
        self, address: Any, state: str = "preferred", interface: str | None = None
    ) -> None:
        super().__init__(address)
        self.state = state
        self.interface = interface

    def __repr__(self) -> str:
        return f"InterfaceAddress('{self}', state='{self.state}')"


class Route(tuple):  # type: ignore[type-arg]
    """One route of the stack: ``(network, gateway, source)`` as before there were several
    interfaces (a 3-tuple still: code that unpacks three names keeps working), with the
    ``interface`` it leaves by (its name; None where the stack finds it when sending) and
    its ``metric`` as attributes. ``gateway`` is None for an on-link route; ``source`` is the
    address a connected route belongs to."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    source: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    interface: str | None
    metric: int

    def __new__(
        cls,
        network: ipaddress.IPv4Network | ipaddress.IPv6Network,
        gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
        source: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None,
        interface: str | None = None,
        metric: int = 0,
    ) -> Route:
        self = super().__new__(cls, (network, gateway, source))
        self.network, self.gateway, self.source = network, gateway, source
        self.interface = interface
        self.metric = metric
        return self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Route):
            return tuple.__eq__(self, other) and (self.interface, self.metric) == (
                other.interface,
                other.metric,
            )
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((tuple(self), self.interface, self.metric))

    def __repr__(self) -> str:
        return (
            f"Route(network={self.network!r}, gateway={self.gateway!r}, "
            f"source={self.source!r}, interface={self.interface!r}, metric={self.metric})"
        )
