"""The ICMPv6 layer (RFC 4443): echo both ways, error messages within the rules and a rate
limit, errors received handed to the transport whose packet caused them, Packet Too Big into
the path-MTU cache (RFC 8201), and neighbour discovery and MLD messages handed to the IPv6
layer.

RFC 4443 2.4 (e): no error is sent about an ICMPv6 error or a Redirect, about a packet to a
multicast address or sent as a link-layer multicast (except Packet Too Big and a Parameter
Problem code 2 about an unrecognised option whose action bits ask for one), or about a packet
whose source does not name a single node. 2.4 (f): errors are rate limited (token bucket).
Echo requests to a multicast address are answered from a unicast address of ours, as Linux
does by default (RFC 4443 4.2). Echo replies and errors go out of the interface the packet they
answer came in on (which a link-local sender needs, RFC 4007 6); neighbour discovery and MLD
messages go to the IPv6 layer with that interface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from ...errors import NoRouteError, ParseError
from ..ethernet.wire import ETHERNET_HEADER_LEN
from ..icmp.oserror import to_oserror6
from ..icmp.ratelimit import TokenBucket
from ..ipv6.addressing import UNSPECIFIED
from ..ipv6.layer import HEADROOM6, IPv6Layer
from ..ipv6.reassembly import Expired
from ..ipv6.wire import IPV6_HEADER_LEN, IPv6Header, NextHeader, ParameterProblem
from ..layer import Layer
from .wire import (
    ICMPV6_HEADER_LEN,
    Icmp6Type,
    UnreachableCode6,
    build_into,
    checksum_ok,
    error_body,
    parse,
    parse_quoted,
)

__all__ = ["Icmp6Config", "Icmp6Layer", "Quoted6", "to_oserror6"]


class Quoted6(NamedTuple):
    """The addresses of the packet an error quotes (what transports match on)."""

    src: bytes
    dst: bytes
    next_header: int


#: handler(type, code, rest-of-header, quoted packet's addresses, quoted payload, now)
ErrorHandler6 = Callable[[int, int, int, Quoted6, memoryview, float], None]
#: handler(source, identifier, sequence, data, now)
EchoHandler6 = Callable[[bytes, int, int, memoryview, float], None]
#: A handler of echo requests to addresses not ours (see ``echo_catch_all``).
EchoCatchAll = Callable[[IPv6Header, int, memoryview, int, float], None]

_NDP = frozenset(
    (
        Icmp6Type.ROUTER_SOLICIT,
        Icmp6Type.ROUTER_ADVERT,
        Icmp6Type.NEIGHBOR_SOLICIT,
        Icmp6Type.NEIGHBOR_ADVERT,
        Icmp6Type.REDIRECT,
    )
)


@dataclass(frozen=True, slots=True)
class Icmp6Config:
    #: Error messages per second and burst (RFC 4443 2.4 (f); Linux: 1000/s, burst 50).
    error_rate: float = 100.0
    error_burst: float = 50.0
    #: Answer echo requests sent to a multicast group (Linux: icmp echo_ignore_multicast 0).
    echo_ignore_multicast: bool = False


class Icmp6Layer(Layer):
    name = "icmpv6"
    _COUNTERS = (
        "rx_packets",
        "tx_packets",
        "echo_requests_received",
        "echo_replies_sent",
        "echo_requests_sent",
        "echo_replies_received",
        "errors_received",
        "errors_sent",
        "errors_rate_limited",
        "packet_too_big_received",
    )

    def __init__(self, ip: IPv6Layer, config: Icmp6Config | None = None) -> None:
        super().__init__()
        self.ip = ip
        self.config = config or Icmp6Config()
        self.error_handlers: dict[int, ErrorHandler6] = {}
        #: Where a protocol hears of its packets lost to a failed neighbour resolution, when
        #: it treats that apart from a router's "address unreachable" (else error_handlers).
        self.unresolved_handlers: dict[int, ErrorHandler6] = {}
        self.on_echo_reply: EchoHandler6 | None = None
        self.bucket = TokenBucket(self.config.error_rate, self.config.error_burst)
        self.rx_packets = self.tx_packets = 0
        self.echo_requests_received = self.echo_replies_sent = 0
        #: Consulted for an echo request to an address not ours (which only a stack that
        #: takes every unicast datagram, a user-mode gateway's, receives): ``(request header,
        #: identifier and sequence word, data view, interface, now)``; the handler answers
        #: with :meth:`answer_echo` when the real destination did, else never. None: such a
        #: request is answered as if it were ours.
        self.echo_catch_all: EchoCatchAll | None = None
        self.echo_requests_sent = self.echo_replies_received = 0
        self.errors_received = self.errors_sent = self.errors_rate_limited = 0
        self.packet_too_big_received = 0

    # -- receive ---------------------------------------------------------------------------
    def receive(
        self, header: IPv6Header, data: memoryview, now: float, to_group: bool, ifindex: int = 0
    ) -> None:
        try:
            icmp, body = parse(data)
        except ParseError as exc:
            self._drop(exc.reason, exc)
            return
        if not checksum_ok(data, header.src, header.dst):
            self._drop("bad_checksum")
            return
        self.rx_packets += 1
        t = icmp.type
        if t == Icmp6Type.ECHO_REQUEST:
            self.echo_requests_received += 1
            if to_group and self.config.echo_ignore_multicast:
                self._drop("echo_to_multicast")
                return
            catch_all = self.echo_catch_all
            if catch_all is not None and not to_group and not self.ip.is_local(header.dst):
                catch_all(header, icmp.rest, body, ifindex, now)
                return
            self._echo_reply(header, icmp.rest, body, now, to_group, ifindex)
        elif t == Icmp6Type.ECHO_REPLY:
            self.echo_replies_received += 1
            if self.on_echo_reply is not None:
                self.on_echo_reply(header.src, icmp.ident, icmp.sequence, body, now)
        elif t in _NDP:
            self.ip.receive_ndp(header, icmp, body, now, ifindex)
        elif t == Icmp6Type.MLD_QUERY:
            self.ip.receive_mld_query(header, icmp, body, now, ifindex)
        elif t < 128:
            self.errors_received += 1
            self._dispatch_error(t, icmp.code, icmp.rest, body, now)
        elif t == Icmp6Type.MLD_REPORT:
            # Another listener's MLDv1 Report: it suppresses ours in MLDv1 mode (RFC 2710 4).
            self.ip.receive_mld_report(header, icmp, body, now, ifindex)
        elif t in (Icmp6Type.MLD_DONE, Icmp6Type.MLDV2_REPORT):
            pass  # for routers (RFC 3810 6: MLDv2 reports never suppress)
        else:
            # RFC 4443 2.4 (b): an unknown informational message is silently discarded.
            self._drop("unhandled_type", t)

    def _dispatch_error(
        self, type_: int, code: int, rest: int, quoted: memoryview, now: float,
        *, unresolved: bool = False,
    ) -> None:  # fmt: skip
        try:
            src, dst, nh, payload = parse_quoted(quoted)
        except ParseError as exc:
            self._drop(f"error_{exc.reason}", exc)
            return
        if not self.ip.is_local(src):
            # RFC 5927 4.1 / RFC 4443 5.2: believe an error only about a packet of ours.
            self._drop("error_not_ours", src)
            return
        if type_ == Icmp6Type.PACKET_TOO_BIG:
            self.packet_too_big_received += 1
            self.ip.packet_too_big(dst, rest, now)
        if nh == NextHeader.FRAGMENT and len(payload) >= 8:
            # A fragment of ours: the transport header follows the Fragment header.
            if payload[2] or payload[3] & 0xF8:
                self._drop("error_about_later_fragment")
                return
            nh, payload = payload[0], payload[8:]
        if len(payload) < 8:
            self._drop("error_truncated")
            return
        handler = self.unresolved_handlers.get(nh) if unresolved else None
        if handler is None:
            handler = self.error_handlers.get(nh)
        if handler is None:
            self._drop("error_unclaimed", nh)
            return
        handler(type_, code, rest, Quoted6(src, dst, nh), payload, now)

    # -- send ------------------------------------------------------------------------------
    def answer_echo(
        self, request: IPv6Header, rest: int, body: bytes | memoryview, now: float, ifindex: int
    ) -> None:
        """Answer an echo request (one a catch-all handler held): the reply comes from the
        address it was sent to, with its identifier, sequence number and data."""
        self._echo_reply(request, rest, body, now, False, ifindex)

    def _echo_reply(
        self, request: IPv6Header, rest: int, body: bytes | memoryview, now: float,
        to_group: bool, ifindex: int,
    ) -> None:  # fmt: skip
        # RFC 4443 4.2: the reply's source is the request's destination when that was a
        # unicast address of ours, else one of our unicast addresses; the data is returned.
        try:
            route = self.ip.route(request.src, src=None if to_group else request.dst,
                                  scope=ifindex, via=ifindex)  # fmt: skip
        except NoRouteError as exc:
            self._drop("no_route", exc)
            return
        frame = bytearray(HEADROOM6 + ICMPV6_HEADER_LEN + len(body))
        frame[HEADROOM6 + ICMPV6_HEADER_LEN :] = body
        build_into(frame, HEADROOM6, Icmp6Type.ECHO_REPLY, 0, rest, route.src, route.dst)
        self.tx_packets += 1
        self.echo_replies_sent += 1
        self.ip.output(frame, route, NextHeader.ICMPV6, now)

    def send_echo_request(
        self, dst: bytes, ident: int, sequence: int, data: bytes, now: float, scope: int = 0
    ) -> None:
        """Send an echo request (fragmented when larger than the path MTU); ``scope`` is the
        interface of a link-local ``dst``.

        Raises:
            NoRouteError: no route to ``dst``.
            MessageTooLargeError: larger than 65 535 bytes of payload.
        """
        route = self.ip.route(dst, scope=scope)
        frame = bytearray(HEADROOM6 + ICMPV6_HEADER_LEN + len(data))
        frame[HEADROOM6 + ICMPV6_HEADER_LEN :] = data
        build_into(frame, HEADROOM6, Icmp6Type.ECHO_REQUEST, 0, (ident << 16) | sequence,
                   route.src, route.dst)  # fmt: skip
        self.ip.output(frame, route, NextHeader.ICMPV6, now)
        self.tx_packets += 1
        self.echo_requests_sent += 1

    def send_error(
        self,
        type_: int,
        code: int,
        header: IPv6Header,
        payload: memoryview | bytes,
        now: float,
        *,
        to_group: bool = False,
        rest: int = 0,
        packet: memoryview | bytes | None = None,
        ifindex: int = 0,
    ) -> None:
        """Report a problem with a received packet (that came in on interface ``ifindex``, 0
        if none) to its sender, if RFC 4443 2.4 allows it and the rate limit has room.
        ``packet`` is the invoking packet from its IPv6 header on; without it the header is
        rebuilt in front of ``payload``."""
        src = header.src
        allowed_to_group = type_ == Icmp6Type.PACKET_TOO_BIG or (
            type_ == Icmp6Type.PARAMETER_PROBLEM and code == 2
        )
        invoking = packet if packet is not None else header.to_bytes() + bytes(payload)
        if (
            (to_group and not allowed_to_group)
            or src == UNSPECIFIED
            or src[0] == 0xFF
            or self._is_icmp_error(invoking)
        ):
            self._drop("error_suppressed")
            return
        if not self.bucket.allow(now):
            self.errors_rate_limited += 1
            return
        try:
            route = self.ip.route(
                src, src=header.dst if self.ip.is_local(header.dst) else None, scope=ifindex,
                via=ifindex,
            )  # fmt: skip
        except NoRouteError as exc:
            self._drop("no_route", exc)
            return
        quote = error_body(invoking)
        frame = bytearray(HEADROOM6 + ICMPV6_HEADER_LEN + len(quote))
        frame[HEADROOM6 + ICMPV6_HEADER_LEN :] = quote
        build_into(frame, HEADROOM6, type_, code, rest, route.src, route.dst)
        self.tx_packets += 1
        self.errors_sent += 1
        self.ip.output(frame, route, NextHeader.ICMPV6, now)

    # -- errors the IPv6 layer raises ------------------------------------------------------
    def parameter_problem(
        self, header: IPv6Header, packet: memoryview, exc: ParameterProblem, now: float,
        to_group: bool, ifindex: int = 0,
    ) -> None:  # fmt: skip
        self.send_error(Icmp6Type.PARAMETER_PROBLEM, exc.code, header, b"", now,
                        to_group=to_group, rest=exc.pointer, packet=packet,
                        ifindex=ifindex)  # fmt: skip

    @staticmethod
    def _is_icmp_error(packet: memoryview | bytes) -> bool:
        # Only without extension headers can the message type be read here; a chain that
        # failed to parse is not an ICMPv6 error we could recognise anyway.
        return (
            len(packet) > IPV6_HEADER_LEN
            and packet[6] == NextHeader.ICMPV6
            and (packet[IPV6_HEADER_LEN] < 128 or packet[IPV6_HEADER_LEN] == Icmp6Type.REDIRECT)
        )

    def reassembly_timeout(self, expired: Expired, now: float) -> None:
        # RFC 8200 4.5: Time Exceeded code 1, only when the first fragment arrived.
        first = expired.first
        if first is None or len(first) < IPV6_HEADER_LEN:
            return
        header = IPv6Header(
            0, 0, len(first) - IPV6_HEADER_LEN, first[6], first[7], bytes(first[8:24]),
            bytes(first[24:40]),
        )  # fmt: skip
        self.send_error(Icmp6Type.TIME_EXCEEDED, 1, header, b"", now, packet=first)

    def neighbour_failed(self, ip: bytes, frames: list[bytearray], now: float) -> None:
        """No answer from a neighbour: RFC 4861 7.2.2 asks for Destination Unreachable code 3
        (address unreachable) for each queued packet; ours go straight to the transports,
        through their :attr:`unresolved_handlers` where they have one."""
        for frame in frames:
            quoted = memoryview(frame)[ETHERNET_HEADER_LEN:]
            self._dispatch_error(Icmp6Type.DEST_UNREACHABLE, UnreachableCode6.ADDRESS, 0,
                                 quoted, now, unresolved=True)  # fmt: skip
