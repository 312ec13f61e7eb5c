"""One face for IPv4 and IPv6 (MirageOS's ``IPV4V6``): what TCP, UDP and ping use instead of
four layers and a test of the address length at every turn.

An address is 4 bytes (IPv4) or 16 (IPv6); the facade picks the family in one place. It
routes (:meth:`DualIP.route`: the route it returns carries its interface, and through it the
family's ``output`` and headroom, so a transport sends along a route without asking the family
again: the per-packet path has no extra call), answers what a transport asks of the network
(its local addresses, the wildcard of a family, the largest segment a route carries), sends
"port unreachable" in the family of the datagram, and hands ICMP and ICMPv6 errors to the
transports in one shape: ``handler(src, dst, quoted, error, room, now)``, where ``src`` and
``dst`` are the addresses of the packet the error quotes, ``quoted`` its transport header
onwards, ``error`` the :class:`OSError` a socket reports for it (Linux's table,
:mod:`..icmp.oserror`; None where Linux reports none), and ``room`` is set only by a message
about the path MTU (IPv4's "fragmentation needed", RFC 1191; IPv6's Packet Too Big, RFC 8201):
the bytes a packet may now carry above the IP header.
"""

from __future__ import annotations

from collections.abc import Callable

from ..icmp.layer import IcmpLayer
from ..icmp.oserror import to_oserror, to_oserror6
from ..icmp.wire import IcmpType, UnreachableCode
from ..icmpv6.layer import Icmp6Layer, Quoted6
from ..icmpv6.wire import Icmp6Type, UnreachableCode6
from ..ipv4.layer import IPv4Iface, IPv4Layer
from ..ipv4.wire import IPV4_HEADER_LEN, IPv4Header
from ..ipv6.layer import IPv6Iface, IPv6Layer
from ..ipv6.wire import IPV6_HEADER_LEN, IPv6Header
from .route import OutRoute

__all__ = ["ANY4", "ANY6", "WILDCARD", "DualIP", "ErrorHandler", "Route"]

ANY4 = b"\x00\x00\x00\x00"
ANY6 = bytes(16)
#: The "any address" of a family, by the length of its addresses (a table, not a call, for
#: the per-datagram paths).
WILDCARD = {4: ANY4, 16: ANY6}

#: A route of either family.
Route = OutRoute[IPv4Iface] | OutRoute[IPv6Iface]

#: handler(quoted source, quoted destination, quoted transport header on, error, room, now)
ErrorHandler = Callable[[bytes, bytes, memoryview, OSError | None, int | None, float], None]

#: RFC 9293 3.7.1 and RFC 8200 5: the smallest datagram every path carries.
_MIN_MTU4 = 576
_MIN_MTU6 = 1280


class DualIP:
    """IPv4 and IPv6 (with their ICMPs) behind one face."""

    def __init__(self, v4: IPv4Layer, icmp: IcmpLayer, v6: IPv6Layer, icmp6: Icmp6Layer) -> None:
        self.v4 = v4
        self.icmp = icmp
        self.v6 = v6
        self.icmp6 = icmp6
        #: The transports' error handlers by protocol number (TCP 6, UDP 17, and ICMP 1 and
        #: ICMPv6 58 for ping), and those for datagrams lost to a failed neighbour resolution,
        #: where a transport treats that apart (else its error handler hears of it).
        self.error_handlers: dict[int, ErrorHandler] = {}
        self.unresolved_handlers: dict[int, ErrorHandler] = {}
        #: Set by the driver while it hands up one frame whose link vouched for the
        #: transport checksum (offload metadata: verified, or partial and never on a wire);
        #: TCP and UDP then skip verifying it. False for every other frame.
        self.csum_trusted = False

    # -- addresses and routes --------------------------------------------------------------
    def route(self, dst: bytes, src: bytes | None = None, scope: int = 0) -> Route:
        """The route to ``dst`` (from ``src``; ``scope``: the interface of a link-local IPv6
        destination).

        Raises:
            NoRouteError: no route, or no source address for it.
        """
        if len(dst) == 4:
            return self.v4.route(dst, src)
        return self.v6.route(dst, src, scope)

    def is_local(self, ip: bytes) -> bool:
        """Whether ``ip`` is one of this host's addresses (loopback included)."""
        return self.v4.is_local(ip) if len(ip) == 4 else self.v6.is_local(ip)

    @staticmethod
    def wildcard(ip: bytes) -> bytes:
        """The "any address" of ``ip``'s family."""
        return WILDCARD[len(ip)]

    def room(self, route: Route, now: float | None = None) -> int:
        """The bytes a packet along ``route`` carries above the IP header: the path MTU
        (the interface's, or less once a router said so: RFC 1191, RFC 8201) less the IP
        header."""
        if len(route.dst) == 4:
            iface4 = route.iface if isinstance(route.iface, IPv4Iface) else None
            return self.v4.path_mtu(route.dst, now, iface4) - IPV4_HEADER_LEN
        iface6 = route.iface if isinstance(route.iface, IPv6Iface) else None
        return self.v6.path_mtu(route.dst, now, iface6) - IPV6_HEADER_LEN

    @staticmethod
    def min_room(ip: bytes) -> int:
        """The bytes above the IP header every path to ``ip`` carries (576 - 20 for IPv4,
        RFC 9293 3.7.1; 1280 - 40 for IPv6, RFC 8200 5)."""
        return _MIN_MTU4 - IPV4_HEADER_LEN if len(ip) == 4 else _MIN_MTU6 - IPV6_HEADER_LEN

    @staticmethod
    def max_payload(ip: bytes) -> int:
        """The most bytes of upper-layer message one datagram to ``ip`` carries (65 535 less
        IPv4's header; IPv6's Payload Length counts no header)."""
        return 65535 - IPV4_HEADER_LEN if len(ip) == 4 else 65535

    # -- sending ---------------------------------------------------------------------------
    def first_iface(self, dst: bytes) -> IPv4Iface | IPv6Iface:
        """The first interface of ``dst``'s family: where a route made by hand (without an
        interface) goes."""
        return self.v4.interface(0) if len(dst) == 4 else self.v6.interface(0)

    def port_unreachable(
        self, header: IPv4Header | IPv6Header, data: memoryview, now: float, to_group: bool,
        ifindex: int,
    ) -> None:  # fmt: skip
        """Answer a datagram for a port nobody listens on (RFC 1122 3.2.2.1, RFC 4443 3.1),
        out of the interface it came in on."""
        if isinstance(header, IPv4Header):
            self.icmp.send_error(IcmpType.DEST_UNREACHABLE, UnreachableCode.PORT, header, data,
                                 now, to_group=to_group, ifindex=ifindex)  # fmt: skip
        else:
            self.icmp6.send_error(Icmp6Type.DEST_UNREACHABLE, UnreachableCode6.PORT, header,
                                  data, now, to_group=to_group, ifindex=ifindex)  # fmt: skip

    def unreachable(
        self, header: IPv4Header | IPv6Header, data: memoryview, kind: str, now: float,
        ifindex: int,
    ) -> None:  # fmt: skip
        """Tell the sender of a datagram that its destination cannot be reached, as a
        router does (RFC 1812 4.3.3.1, RFC 4443 3.1): ``kind`` "net" (IPv4 network
        unreachable, IPv6 no route) or "host" (IPv4 host unreachable, IPv6 address
        unreachable)."""
        net = kind == "net"
        if isinstance(header, IPv4Header):
            code4 = UnreachableCode.NET if net else UnreachableCode.HOST
            self.icmp.send_error(IcmpType.DEST_UNREACHABLE, code4, header, data, now,
                                 ifindex=ifindex)  # fmt: skip
        else:
            code6 = UnreachableCode6.NO_ROUTE if net else UnreachableCode6.ADDRESS
            self.icmp6.send_error(Icmp6Type.DEST_UNREACHABLE, code6, header, data, now,
                                  ifindex=ifindex)  # fmt: skip

    def send_echo_request(
        self, dst: bytes, ident: int, sequence: int, data: bytes, now: float, scope: int = 0
    ) -> None:
        """An ICMP or ICMPv6 echo request (``scope``: the interface of a link-local IPv6
        destination).

        Raises:
            NoRouteError: no route to ``dst``.
            MessageTooLargeError: the datagram would exceed 65 535 bytes.
        """
        if len(dst) == 4:
            self.icmp.send_echo_request(dst, ident, sequence, data, now)
        else:
            self.icmp6.send_echo_request(dst, ident, sequence, data, now, scope)

    # -- errors from ICMP and ICMPv6, to the transports --------------------------------------
    def icmp_error(
        self, type_: int, code: int, rest: int, inner: IPv4Header, payload: memoryview,
        now: float,
    ) -> None:  # fmt: skip
        """An ICMP error the ICMP layer believed (RFC 1122 3.2.2, RFC 5927 4.1)."""
        room = None
        if type_ == IcmpType.DEST_UNREACHABLE and code == UnreachableCode.FRAGMENTATION_NEEDED:
            mtu = rest & 0xFFFF
            if mtu == 0:
                mtu = max(68, inner.total_length - 40)  # RFC 1191 5: a guess for old routers
            # Remembered for the destination (RFC 1191 5), so that later connections start
            # from it; the room reported is what the message said either way (the transport
            # believes only a lower one).
            lowered = self.v4.fragmentation_needed(inner.dst, mtu, now)
            room = (mtu if lowered is None else lowered) - IPV4_HEADER_LEN
        self._dispatch(self.error_handlers, inner.proto, inner.src, inner.dst, payload,
                       to_oserror(type_, code), room, now)  # fmt: skip

    def icmp6_error(
        self, type_: int, code: int, rest: int, inner: Quoted6, payload: memoryview,
        now: float,
    ) -> None:  # fmt: skip
        """An ICMPv6 error the ICMPv6 layer believed (RFC 4443 2.4, RFC 5927 4.1); a Packet
        Too Big has lowered the path MTU already (RFC 8201)."""
        room = None
        if type_ == Icmp6Type.PACKET_TOO_BIG:
            room = self.v6.path_mtu(inner.dst, now, self._iface6_to(inner.dst)) - IPV6_HEADER_LEN
        self._dispatch(self.error_handlers, inner.next_header, inner.src, inner.dst, payload,
                       to_oserror6(type_, code), room, now)  # fmt: skip

    def unresolved(
        self, type_: int, code: int, rest: int, inner: IPv4Header, payload: memoryview,
        now: float,
    ) -> None:  # fmt: skip
        """A datagram lost because ARP found nobody at its next hop (RFC 1122 2.3.2.2)."""
        self._dispatch(self.unresolved_handlers, inner.proto, inner.src, inner.dst, payload,
                       to_oserror(type_, code), None, now, fallback=True)  # fmt: skip

    def unresolved6(
        self, type_: int, code: int, rest: int, inner: Quoted6, payload: memoryview,
        now: float,
    ) -> None:  # fmt: skip
        """A packet lost because neighbour discovery found nobody (RFC 4861 7.2.2)."""
        self._dispatch(self.unresolved_handlers, inner.next_header, inner.src, inner.dst,
                       payload, to_oserror6(type_, code), None, now, fallback=True)  # fmt: skip

    def _dispatch(
        self, handlers: dict[int, ErrorHandler], proto: int, src: bytes, dst: bytes,
        payload: memoryview, exc: OSError | None, room: int | None, now: float, *,
        fallback: bool = False,
    ) -> None:  # fmt: skip
        handler = handlers.get(proto)
        if handler is None and fallback:
            handler = self.error_handlers.get(proto)
        if handler is not None:
            handler(src, dst, payload, exc, room, now)

    def _iface6_to(self, dst: bytes) -> IPv6Iface | None:
        try:
            return self.v6.route(dst).iface
        except OSError:
            return None
