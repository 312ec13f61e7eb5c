"""The UDP layer (RFC 768, RFC 1122 4.1): port binding, demultiplexing, checksums, and
"port unreachable" for datagrams nobody listens for.

Demultiplexing prefers the most specific endpoint: connected (remote address and port set)
over bound to the datagram's destination address over bound to any address. A datagram to a
broadcast or multicast address goes to every endpoint that matches. Ephemeral ports are drawn
at random from 49152-65535 (RFC 6056 3.3.1, "Algorithm 1: Simple Port Randomization").

A zero checksum means the sender computed none (RFC 768); over IPv4 it is accepted, as RFC 1122
4.1.3.4 requires, and counted; over IPv6 it is invalid and the datagram is dropped (RFC 8200
8.1). The pseudo-header sums of IPv4 and IPv6 are the same expression for a UDP length below
65 536, so one checksum routine serves both.

Endpoints bind to a specific address, to "any IPv4 address" (0.0.0.0), to "any IPv6 address"
(::), or to any address of both families (``DUAL``, like a dual-stack socket). The layer sees
IPv4 and IPv6 through one facade (:class:`~..ip.dual.DualIP`); a route carries the family's
headroom and send function, and every datagram arrives with the index of the interface it came
in on, which an endpoint hears with it (the scope of a link-local source).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ...errors import AddressInUseError, MessageTooLargeError, ParseError
from ..checksum import checksum_pseudo, verify_pseudo
from ..ip.dual import ANY4, ANY6, WILDCARD, DualIP, Route
from ..ipv4.wire import IpProto, IPv4Header
from ..ipv6.wire import IPv6Header
from ..layer import Layer
from .wire import HEADER, PROTO_UDP, UDP_HEADER_LEN, parse

__all__ = [
    "ANY", "ANY6", "DUAL", "EPHEMERAL_PORTS", "MAX_PAYLOAD", "CatchAll", "Endpoint", "UdpLayer",
]  # fmt: skip

ANY = ANY4
#: Bound to every address of both families.
DUAL = b""
#: RFC 6335 6: the Dynamic and/or Private Ports.
EPHEMERAL_PORTS = range(49152, 65536)
#: 65 535 minus the IPv4 and UDP headers.
MAX_PAYLOAD = 65535 - 20 - UDP_HEADER_LEN
#: The protocol number as the IP layers take it: an enum member read from its class costs
#: ~100 ns a time, a module global a tenth of that.
_IP_PROTO_UDP = IpProto.UDP


class Rng(Protocol):
    def randrange(self, start: int, stop: int, /) -> int: ...


class Endpoint(Protocol):
    """What the UDP layer needs of a bound endpoint (the driver's datagram transport)."""

    local_ip: bytes
    local_port: int
    remote: tuple[bytes, int] | None

    def deliver(self, data: memoryview, src: bytes, port: int, ifindex: int) -> None:
        """A datagram arrived (on interface ``ifindex``)."""

    def error(self, exc: OSError) -> None:
        """An ICMP error about a datagram this endpoint sent."""


#: The layer's question about a unicast datagram no endpoint takes: ``(header, source port,
#: destination port, payload, interface, now)`` -> True when the handler took it (no port
#: unreachable then). The payload is a view valid only during the call.
CatchAll = Callable[[IPv4Header | IPv6Header, int, int, memoryview, int, float], bool]


class UdpLayer(Layer):
    name = "udp"
    _COUNTERS = (
        "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "no_checksum", "no_port", "caught",
    )  # fmt: skip

    def __init__(self, ip: DualIP, rng: Rng) -> None:
        super().__init__()
        self.ip = ip
        self._rng = rng
        self._ports: dict[int, list[Endpoint]] = {}
        self.rx_packets = self.rx_bytes = self.tx_packets = self.tx_bytes = 0
        self.no_checksum = self.no_port = self.caught = 0
        #: Consulted for a unicast datagram no endpoint takes, before the port unreachable
        #: (a user-mode gateway relays every flow). None, the default, costs nothing.
        self.catch_all: CatchAll | None = None

    # -- binding ---------------------------------------------------------------------------
    def bind(self, endpoint: Endpoint, local_ip: bytes, port: int) -> int:
        """Register ``endpoint`` on ``local_ip`` (``ANY`` for all) and ``port`` (0 for an
        ephemeral one); returns the port.

        Raises:
            AddressInUseError: the address and port are taken.
        """
        if port == 0:
            port = self._ephemeral(local_ip, endpoint.remote)
        elif not self._free(local_ip, port, endpoint.remote):
            raise AddressInUseError(f"UDP port {port} is already in use")
        self._ports.setdefault(port, []).append(endpoint)
        return port

    def unbind(self, endpoint: Endpoint) -> None:
        bound = self._ports.get(endpoint.local_port)
        if bound is not None and endpoint in bound:
            bound.remove(endpoint)
            if not bound:
                del self._ports[endpoint.local_port]

    def _free(self, local_ip: bytes, port: int, remote: tuple[bytes, int] | None) -> bool:
        for e in self._ports.get(port, ()):
            # Like Linux without SO_REUSEADDR: two endpoints may share a port only when
            # bound to different specific addresses (or to the wildcards of two families).
            if _overlap(e.local_ip, local_ip):
                return False
        return True

    def _ephemeral(self, local_ip: bytes, remote: tuple[bytes, int] | None) -> int:
        lo, n = EPHEMERAL_PORTS.start, len(EPHEMERAL_PORTS)
        port = lo + self._rng.randrange(0, n)
        for _ in range(n):
            if self._free(local_ip, port, remote):
                return port
            port = lo + (port - lo + 1) % n
        raise AddressInUseError("no free ephemeral UDP port")

    @property
    def bound_ports(self) -> list[int]:
        return sorted(self._ports)

    # -- send ------------------------------------------------------------------------------
    def send(
        self, route: Route, src_port: int, dst_port: int, data: bytes | bytearray | memoryview,
        now: float,
    ) -> None:  # fmt: skip
        """Send one datagram along ``route``.

        Raises:
            MessageTooLargeError: more than 65 507 bytes of data (65 527 over IPv6).
        """
        n = len(data)
        if n > MAX_PAYLOAD:  # the smaller (IPv4) bound; the family decides above it
            limit = self.ip.max_payload(route.dst) - UDP_HEADER_LEN
            if n > limit:
                raise MessageTooLargeError(f"UDP datagram of {n} bytes exceeds {limit}")
        iface = route.iface or self.ip.first_iface(route.dst)
        room = iface.headroom
        start = room + UDP_HEADER_LEN
        frame = bytearray(start + n)
        frame[start:] = data
        # build_into()'s work inline (this runs once per datagram): the checksum over the
        # data, with the header's words and the pseudo-header added, then the header once.
        length = UDP_HEADER_LEN + n
        c = checksum_pseudo(
            data, route.src, route.dst, PROTO_UDP, src_port + dst_port + length + UDP_HEADER_LEN
        )
        HEADER.pack_into(frame, room, src_port, dst_port, length, c or 0xFFFF)
        self.tx_packets += 1
        self.tx_bytes += n
        iface.output(frame, route, _IP_PROTO_UDP, now)

    # -- receive ---------------------------------------------------------------------------
    def receive(
        self, header: IPv4Header | IPv6Header, data: memoryview, now: float, to_group: bool,
        ifindex: int = 0,
    ) -> None:  # fmt: skip
        # parse() and checksum_ok() inline, without a header object: this runs once per
        # datagram. parse() itself says what is wrong with a bad header.
        n = len(data)
        if n < UDP_HEADER_LEN:
            self._bad_header(data)
            return
        sport, dport, length, csum = HEADER.unpack_from(data, 0)
        if length < UDP_HEADER_LEN or length > n:
            self._bad_header(data)
            return
        src, dst = header.src, header.dst
        if self.ip.csum_trusted:
            pass  # the link vouched for it, or it is partial and never crossed a wire
        elif csum == 0:
            if len(src) == 16:
                self._drop("zero_checksum_ipv6")  # RFC 8200 8.1
                return
            self.no_checksum += 1
        elif not verify_pseudo(data[:length], src, dst, PROTO_UDP):
            self._drop("bad_checksum")
            return
        payload = data[UDP_HEADER_LEN:length]
        self.rx_packets += 1
        self.rx_bytes += length - UDP_HEADER_LEN
        bound = self._ports.get(dport)
        if bound:
            if to_group:
                delivered = False
                wild = WILDCARD[len(dst)]
                for e in list(bound):
                    local = e.local_ip
                    if (local == dst or local == wild or local == DUAL) and (
                        e.remote is None or e.remote == (src, sport)
                    ):
                        e.deliver(payload, src, sport, ifindex)
                        delivered = True
                if delivered:
                    return
            else:
                best = None
                wild = WILDCARD[len(dst)]
                for e in bound:
                    local = e.local_ip
                    if local != wild and local != dst and local != DUAL:
                        continue
                    if e.remote is not None:
                        if e.remote == (src, sport):
                            best = e
                            break
                        continue
                    if best is None or local == dst:
                        best = e
                if best is not None:
                    best.deliver(payload, src, sport, ifindex)
                    return
        catch_all = self.catch_all
        if (
            catch_all is not None
            and not to_group
            and catch_all(header, sport, dport, payload, ifindex, now)
        ):
            self.caught += 1
            return
        self.no_port += 1
        self._drop("no_port", dport)
        self.ip.port_unreachable(header, data, now, to_group, ifindex)

    def _bad_header(self, data: memoryview) -> None:
        try:
            parse(data)
        except ParseError as exc:
            self._drop(exc.reason, exc)

    def ip_error(
        self, src: bytes, dst: bytes, payload: memoryview, exc: OSError | None,
        room: int | None, now: float,
    ) -> None:  # fmt: skip
        """An ICMP or ICMPv6 error about a datagram from ``src`` to ``dst`` whose first bytes
        are ``payload``, to the endpoint that sent it."""
        self._report(exc, src, dst, payload)

    def unresolved(
        self, src: bytes, dst: bytes, payload: memoryview, exc: OSError | None,
        room: int | None, now: float,
    ) -> None:  # fmt: skip
        """A datagram lost because address resolution found nobody at its next hop: a
        counted drop, and no error for the endpoint -- Linux reports this "host unreachable"
        to no UDP socket, connected or not, unless it asked with IP_RECVERR."""
        self._drop("unresolved")

    def _report(self, exc: OSError | None, src: bytes, dst: bytes, payload: memoryview) -> None:
        if exc is None:
            return
        # The quoted UDP header's Length describes the whole datagram, of which only the
        # first bytes are quoted: only the ports are read.
        src_port = int.from_bytes(payload[0:2], "big")
        dst_port = int.from_bytes(payload[2:4], "big")
        wild = WILDCARD[len(src)]
        for e in list(self._ports.get(src_port, ())):
            # Like Linux: only a connected socket hears about errors (no IP_RECVERR here).
            if e.remote == (dst, dst_port) and e.local_ip in (wild, DUAL, src):
                e.error(exc)


def _overlap(a: bytes, b: bytes) -> bool:
    """Whether endpoints bound to ``a`` and ``b`` would receive some of the same datagrams."""
    if a == b or a == DUAL or b == DUAL:
        return True
    if len(a) != len(b):
        return False
    wild = WILDCARD[len(a)]
    return a == wild or b == wild
