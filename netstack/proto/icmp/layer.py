"""The ICMPv4 layer (RFC 792, RFC 1122 3.2.2): answers echo requests, sends echo requests
for ``ping``, sends error messages within the rules and a rate limit, and hands received
errors to the transport whose datagram caused them.

RFC 1122 3.2.2: an ICMP error is never sent about an ICMP error, a datagram sent to a
broadcast or multicast address (IP or link layer), a fragment other than the first, or a
datagram whose source is not a single host. Echo requests to a broadcast address are ignored,
as Linux does by default (icmp_echo_ignore_broadcasts; RFC 1122 3.2.2.6 allows it).
A received error is believed only when the datagram it quotes came from this host. Echo
replies and errors go out of the interface the datagram they answer came in on, when a route
through it reaches the sender.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...errors import NoRouteError, ParseError
from ..ethernet.wire import ETHERNET_HEADER_LEN
from ..ipv4.layer import HEADROOM, IPv4Layer
from ..ipv4.reassembly import Expired
from ..ipv4.wire import IpProto, IPv4Header, parse_quoted
from ..layer import Layer
from .oserror import to_oserror
from .ratelimit import TokenBucket
from .wire import (
    ERROR_TYPES,
    ICMP_HEADER_LEN,
    IcmpType,
    build_into,
    checksum_ok,
    parse,
)

__all__ = ["ErrorHandler", "IcmpConfig", "IcmpLayer", "to_oserror"]

#: handler(type, code, rest-of-header, quoted header, quoted payload, now)
ErrorHandler = Callable[[int, int, int, IPv4Header, memoryview, float], None]
#: handler(source, identifier, sequence, data, now)
EchoHandler = Callable[[bytes, int, int, memoryview, float], None]
#: A handler of echo requests to addresses not ours (see ``echo_catch_all``).
EchoCatchAll = Callable[[IPv4Header, int, memoryview, int, float], None]

#: RFC 1812 4.3.2.3: quote as much of the datagram as fits in 576 bytes.
MAX_ERROR_LEN = 576


@dataclass(frozen=True, slots=True)
class IcmpConfig:
    #: Error messages per second, and the burst allowed (Linux: icmp_msgs_per_sec 1000,
    #: icmp_msgs_burst 50; a user-space host is a smaller target, so fewer by default).
    error_rate: float = 100.0
    error_burst: float = 50.0
    echo_ignore_broadcasts: bool = True


class IcmpLayer(Layer):
    name = "icmp"
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
    )

    def __init__(self, ip: IPv4Layer, config: IcmpConfig | None = None) -> None:
        super().__init__()
        self.ip = ip
        self.config = config or IcmpConfig()
        self.error_handlers: dict[int, ErrorHandler] = {}
        #: Where a protocol hears of its datagrams lost to a failed ARP resolution, when it
        #: treats that apart from a router's "host unreachable" (else in error_handlers).
        self.unresolved_handlers: dict[int, ErrorHandler] = {}
        self.on_echo_reply: EchoHandler | None = None
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

    # -- receive ---------------------------------------------------------------------------
    def receive(
        self, header: IPv4Header, data: memoryview, now: float, to_group: bool, ifindex: int = 0
    ) -> None:
        try:
            icmp, body = parse(data)
        except ParseError as exc:
            self._drop(exc.reason, exc)
            return
        if not checksum_ok(data):
            self._drop("bad_checksum")
            return
        self.rx_packets += 1
        t = icmp.type
        if t == IcmpType.ECHO_REQUEST:
            self.echo_requests_received += 1
            if to_group and self.config.echo_ignore_broadcasts:
                self._drop("echo_to_broadcast")
                return
            catch_all = self.echo_catch_all
            if catch_all is not None and not to_group and not self.ip.is_local(header.dst):
                catch_all(header, icmp.rest, body, ifindex, now)
                return
            self._echo_reply(header, icmp.rest, body, now, ifindex)
        elif t == IcmpType.ECHO_REPLY:
            self.echo_replies_received += 1
            if self.on_echo_reply is not None:
                self.on_echo_reply(header.src, icmp.ident, icmp.sequence, body, now)
        elif t in ERROR_TYPES:
            self.errors_received += 1
            self._dispatch_error(t, icmp.code, icmp.rest, body, now)
        else:
            self._drop("unhandled_type", t)

    def _dispatch_error(
        self, type_: int, code: int, rest: int, quoted: memoryview, now: float,
        *, unresolved: bool = False,
    ) -> None:  # fmt: skip
        try:
            inner, inner_payload = parse_quoted(quoted)
        except ParseError as exc:
            self._drop(f"error_{exc.reason}", exc)
            return
        if not self.ip.is_local(inner.src):
            # RFC 5927 4.1: check the quoted datagram is one of ours before believing it.
            self._drop("error_not_ours", inner.src)
            return
        if len(inner_payload) < 8:
            self._drop("error_truncated")
            return
        handler = self.unresolved_handlers.get(inner.proto) if unresolved else None
        if handler is None:
            handler = self.error_handlers.get(inner.proto)
        if handler is None:
            self._drop("error_unclaimed", inner.proto)
            return
        handler(type_, code, rest, inner, inner_payload, now)

    # -- send ------------------------------------------------------------------------------
    def answer_echo(
        self, request: IPv4Header, rest: int, body: bytes | memoryview, now: float, ifindex: int
    ) -> None:
        """Answer an echo request (one a catch-all handler held): the reply comes from the
        address it was sent to, with its identifier, sequence number and data."""
        self._echo_reply(request, rest, body, now, ifindex)

    def _echo_reply(
        self, request: IPv4Header, rest: int, body: bytes | memoryview, now: float, ifindex: int
    ) -> None:
        # RFC 1122 3.2.2.6: the reply's source is the request's specific destination, and
        # the data is returned entire.
        try:
            route = self.ip.route(request.src, src=request.dst, via=ifindex)
        except NoRouteError as exc:
            self._drop("no_route", exc)
            return
        frame = bytearray(HEADROOM + ICMP_HEADER_LEN + len(body))
        frame[HEADROOM + ICMP_HEADER_LEN :] = body
        build_into(frame, HEADROOM, IcmpType.ECHO_REPLY, 0, rest)
        self.tx_packets += 1
        self.echo_replies_sent += 1
        self.ip.output(frame, route, IpProto.ICMP, now)

    def send_echo_request(
        self, dst: bytes, ident: int, sequence: int, data: bytes, now: float
    ) -> None:
        """Send an echo request.

        Raises:
            NoRouteError: no route to ``dst``.
            MessageTooLargeError: the datagram would exceed 65 535 bytes.
        """
        route = self.ip.route(dst)
        frame = bytearray(HEADROOM + ICMP_HEADER_LEN + len(data))
        frame[HEADROOM + ICMP_HEADER_LEN :] = data
        build_into(frame, HEADROOM, IcmpType.ECHO_REQUEST, 0, (ident << 16) | sequence)
        self.ip.output(frame, route, IpProto.ICMP, now)
        self.tx_packets += 1
        self.echo_requests_sent += 1

    def send_error(
        self,
        type_: int,
        code: int,
        header: IPv4Header,
        payload: memoryview,
        now: float,
        *,
        to_group: bool = False,
        rest: int = 0,
        ifindex: int = 0,
    ) -> None:
        """Report a problem with a received datagram (that came in on interface ``ifindex``,
        0 if none) to its sender, if RFC 1122 3.2.2 allows it and the rate limit has room."""
        src = header.src
        if (
            to_group
            or header.fragment_offset
            or src == b"\x00\x00\x00\x00"
            or src[0] == 127
            or src[0] >= 224
            or (header.proto == IpProto.ICMP and (not payload or payload[0] in ERROR_TYPES))
        ):
            self._drop("error_suppressed")
            return
        if not self.bucket.allow(now):
            self.errors_rate_limited += 1
            return
        try:
            route = self.ip.route(
                src, src=header.dst if self.ip.is_local(header.dst) else None, via=ifindex
            )
        except NoRouteError as exc:
            self._drop("no_route", exc)
            return
        quoted_header = header.to_bytes()
        room = MAX_ERROR_LEN - (HEADROOM - ETHERNET_HEADER_LEN) - ICMP_HEADER_LEN
        quote = quoted_header + bytes(payload[: max(8, room - len(quoted_header))])
        frame = bytearray(HEADROOM + ICMP_HEADER_LEN + len(quote))
        frame[HEADROOM + ICMP_HEADER_LEN :] = quote
        build_into(frame, HEADROOM, type_, code, rest)
        self.tx_packets += 1
        self.errors_sent += 1
        self.ip.output(frame, route, IpProto.ICMP, now)

    # -- errors the IPv4 and ARP layers raise ----------------------------------------------
    def protocol_unreachable(
        self, header: IPv4Header, payload: memoryview, now: float, to_group: bool,
        ifindex: int = 0,
    ) -> None:  # fmt: skip
        self.send_error(IcmpType.DEST_UNREACHABLE, 2, header, payload, now, to_group=to_group,
                        ifindex=ifindex)  # fmt: skip

    def reassembly_timeout(self, expired: Expired, now: float) -> None:
        # RFC 792 (Time Exceeded, code 1), only when fragment zero arrived (RFC 1122 3.3.2).
        if expired.first is None:
            return
        try:
            header, payload = parse_quoted(expired.first)
        except ParseError:
            return
        self.send_error(IcmpType.TIME_EXCEEDED, 1, header, payload, now)

    def neighbour_failed(self, ip: bytes, frames: list[bytearray], now: float) -> None:
        """No ARP answer from a next hop: report "host unreachable" to the transports that
        sent the queued datagrams, as if a router had said it (what Linux does), through
        their :attr:`unresolved_handlers` where they have one (TCP fails a connection
        attempt at once, UDP counts a drop)."""
        for frame in frames:
            quoted = memoryview(frame)[ETHERNET_HEADER_LEN:]
            if len(quoted) > 6 and (quoted[6] & 0x1F or quoted[7]):
                continue  # only the first fragment stands for the datagram
            self._dispatch_error(IcmpType.DEST_UNREACHABLE, 1, 0, quoted, now, unresolved=True)
