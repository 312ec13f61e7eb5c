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
    "format_ip",
    "format_ipv4",
    "parse_ip",
    "parse_ip_interface",
    "parse_ipv4",
    "parse_ipv4_interface",
    "parse_port",
    "sockaddr",
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


def format_ipv4(ip: bytes) -> str:
    return socket.inet_ntoa(ip)


def parse_ip(host: object, *, what: str = "address") -> bytes:
    """An IPv4 (4 bytes) or IPv6 (16 bytes) literal. A zone (``fe80::1%eth0``) is accepted
    and ignored: a stack has one link.

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
    return socket.inet_ntoa(ip) if len(ip) == 4 else socket.inet_ntop(socket.AF_INET6, ip)


def sockaddr(ip: bytes, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
    """The address tuple asyncio's sockets give: ``(host, port)`` for IPv4,
    ``(host, port, flowinfo, scope_id)`` for IPv6."""
    if len(ip) == 4:
        return (socket.inet_ntoa(ip), port)
    return (socket.inet_ntop(socket.AF_INET6, ip), port, 0, 0)


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

    def __init__(self, address: Any, state: str = "preferred", origin: str = "static") -> None:
        super().__init__(address)
        self.state = state
        self.origin = origin

    def __repr__(self) -> str:
        return f"InterfaceAddress6('{self}', state='{self.state}', origin='{self.origin}')"


class InterfaceAddress(ipaddress.IPv4Interface):
    """One of the stack's addresses: an :class:`ipaddress.IPv4Interface` (it compares equal
    to one) that also says its ``state`` ("preferred" for IPv4; IPv6 addresses also pass
    through "tentative" and "deprecated")."""

    state: str

    def __init__(self, address: Any, state: str = "preferred") -> None:
        super().__init__(address)
        self.state = state

    def __repr__(self) -> str:
        return f"InterfaceAddress('{self}', state='{self.state}')"
