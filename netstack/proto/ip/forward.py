"""Forwarding between a stack's interfaces, for IPv4 (RFC 1812) and IPv6 (RFC 8200, RFC 4443),
and the verdicts of the packet hooks (:mod:`.hooks`) the IP layers act on.

A datagram the IP layer finds is not for this host comes here while ``Stack.forwarding`` is
on (``IPv4Layer.forward`` / ``IPv6Layer.forward`` set; None otherwise, so a host pays one test
for a datagram that is not its own and nothing for one that is). The path is plain calls, no
coroutine: the datagram is copied once into a new frame (the link's receive buffer is
read-only and lives only during the call), the TTL / Hop Limit is decremented in that frame
with the header checksum updated incrementally (RFC 1624), and the frame goes to the next hop's
neighbour resolution on the egress interface.

What is not forwarded, each a counted drop with its reason in ``stats()["forward"]``:

- datagrams that came in as link-layer broadcast or multicast (RFC 1812 5.3.4);
- IPv4 "martians" (RFC 1812 5.3.7, 4.2.2.11): a source or destination on network 0, on 127
  (loopback), in class E (240/4); link-local 169.254/16 (RFC 3927 2.7); source-routed
  datagrams (RFC 7126 4.3, 4.4 advise dropping them by default);
- IPv6 packets from or to a link-local, loopback, unspecified or IPv4-mapped address (RFC 4291
  2.5.2, 2.5.3, 2.5.5.2, 2.5.6: "Routers must not forward any packets with Link-Local source
  or destination addresses to other links");
- a TTL / Hop Limit that would reach zero: ICMP Time Exceeded (RFC 1812 5.3.1, 4.3.3.4;
  RFC 4443 3.3);
- no route: Destination Unreachable, network / no route (RFC 1812 5.2.7.1; RFC 4443 3.1);
- larger than the egress MTU: IPv4 with DF set gets "fragmentation needed" with the next-hop
  MTU (RFC 1812 5.2.6, RFC 1191 4), without DF it is fragmented (RFC 791 3.2, RFC 1812 5.2.6);
  IPv6 is never fragmented by a router and gets Packet Too Big (RFC 8200 5, RFC 4443 3.2);
- a directed broadcast to a subnet of another interface (RFC 2644: off by default).

ICMP errors go through the ICMP layers' ``send_error``, which applies RFC 1812 4.3.2.7 /
RFC 4443 2.4(e) (never about an ICMP error, a broadcast, a non-first fragment) and their token
bucket (RFC 1812 4.3.2.8, RFC 4443 2.4(f)). Redirects (RFC 1812 5.2.7.2, RFC 4861 8.2) are sent
only with :attr:`ForwardConfig.send_redirects`: a router that forwards back out of the
interface a datagram came in on sends one to a source on that link, and forwards the datagram
still.

Hooks: with a :class:`~.hooks.PacketHooks` installed, a forwarded datagram passes PREROUTING
(in the IP layer's receive, before the route), FORWARD and POSTROUTING; a verdict other than
ACCEPT ends it: DROP is counted, REJECT_ICMP answers ICMP "administratively prohibited"
(RFC 1812 5.2.7.1: type 3 code 13; RFC 4443 3.1: type 1 code 1), REJECT_RESET answers a TCP
segment with a reset (RFC 9293 3.10.7.1) and anything else as REJECT_ICMP.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import NoRouteError, ParseError
from ..checksum import checksum, pseudo_header_sum, pseudo_header_sum6
from ..ethernet.wire import ETHERNET_HEADER_LEN
from ..icmp.wire import IcmpType, UnreachableCode
from ..icmpv6.wire import Icmp6Type
from ..ipv4.fragment import fragment4
from ..ipv4.wire import (
    FLAG_DF,
    IPV4_HEADER_LEN,
    OFFSET_MASK,
    IPv4Header,
    iter_options,
)
from ..ipv4.wire import parse as parse4
from ..ipv6.wire import IPV6_HEADER_LEN, IPv6Header, new_ipv6_header
from ..layer import Layer
from ..ndp import wire as ndp
from .hooks import Hook, PacketHooks, Verdict, run_hook

if TYPE_CHECKING:
    from ..icmp.layer import IcmpLayer
    from ..icmpv6.layer import Icmp6Layer
    from ..ipv4.layer import IPv4Layer
    from ..ipv6.layer import IPv6Layer

__all__ = ["ForwardConfig", "Forwarder", "martian4", "martian6", "tcp_reset_for"]

_TCP = 6
_RST = 0x04
_ACK = 0x10
_SYN = 0x02
_FIN = 0x01
_TCP_HEADER = struct.Struct("!HHIIBBHHH")
#: IPv4 options that route a datagram by the source's say (RFC 791: LSRR 131, SSRR 137).
_SOURCE_ROUTES = frozenset((131, 137))
#: RFC 1812 5.2.7.1 / RFC 1122 3.2.2.1: "communication administratively prohibited".
_ADMIN_PROHIBITED4 = UnreachableCode.ADMIN_PROHIBITED
_ADMIN_PROHIBITED6 = 1
_ADDRESS_UNREACHABLE6 = 3
_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
_LOOPBACK6 = bytes(15) + b"\x01"
_UNSPECIFIED6 = bytes(16)


@dataclass(slots=True)
class ForwardConfig:
    """The router's switches."""

    #: Send ICMP / ICMPv6 Redirects (RFC 1812 5.2.7.2, RFC 4861 8.2); off by default, as
    #: a router between networks it does not manage gains little from them.
    send_redirects: bool = False
    #: Reverse-path filtering of forwarded datagrams (RFC 3704 2): ``"strict"`` forwards
    #: one only if the route back to its source leaves by the interface it came in on (2.2),
    #: ``"loose"`` if there is a route back at all (2.4: a default route counts), ``"off"``
    #: (the default) checks nothing.
    rp_filter: str = "off"


RP_FILTERS = ("off", "strict", "loose")


def martian4(ip: bytes) -> bool:
    """RFC 1812 5.3.7 and 4.2.2.11, RFC 3927 2.7: an address a router never forwards from or
    to (network 0, 127, class D/E and the limited broadcast, 169.254/16)."""
    first = ip[0]
    return first == 0 or first == 127 or first >= 224 or (first == 169 and ip[1] == 254)


def martian6(ip: bytes) -> bool:
    """RFC 4291 2.5.2, 2.5.3, 2.5.5.2, 2.5.6, 2.7: unspecified, loopback, IPv4-mapped,
    link-local and multicast addresses are never forwarded between links here."""
    return (
        ip[0] == 0xFF
        or (ip[0] == 0xFE and ip[1] & 0xC0 == 0x80)
        or ip == _UNSPECIFIED6
        or ip == _LOOPBACK6
        or ip[:12] == _MAPPED_PREFIX
    )


def _fix_checksum(frame: bytearray, at: int, old: int, new: int) -> None:
    """RFC 1624 (eqn. 3): HC' = ~(~HC + ~m + m') for one 16-bit word changed from ``old``
    to ``new`` in the header whose checksum is at ``frame[at:at+2]``."""
    hc = (frame[at] << 8) | frame[at + 1]
    s = (~hc & 0xFFFF) + (~old & 0xFFFF) + new
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    hc = ~s & 0xFFFF
    frame[at] = hc >> 8
    frame[at + 1] = hc & 0xFF


def tcp_reset_for(datagram: bytearray | memoryview, hlen: int, v6: bool) -> bytes | None:
    """RFC 9293 3.10.7.1: the reset that answers the TCP segment at ``datagram[hlen:]``
    (None for a reset, which is never answered, or a segment too short to read); the TCP
    segment alone, its checksum filled for the reversed addresses."""
    seg = memoryview(datagram)[hlen:]
    if len(seg) < 20:
        return None
    sport, dport, seq, ack, off, flags, _, _, _ = _TCP_HEADER.unpack_from(seg, 0)
    if flags & _RST:
        return None
    if flags & _ACK:
        r_seq, r_ack, r_flags = ack, 0, _RST
    else:
        seg_len = len(seg) - ((off >> 4) << 2) + (1 if flags & _SYN else 0) + (flags & _FIN)
        r_seq, r_ack, r_flags = 0, (seq + seg_len) & 0xFFFFFFFF, _RST | _ACK
    out = bytearray(20)
    _TCP_HEADER.pack_into(out, 0, dport, sport, r_seq, r_ack, 5 << 4, r_flags, 0, 0, 0)
    if v6:
        src, dst = bytes(datagram[24:40]), bytes(datagram[8:24])
        initial = pseudo_header_sum6(src, dst, _TCP, 20)
    else:
        src, dst = bytes(datagram[16:20]), bytes(datagram[12:16])
        initial = pseudo_header_sum(src, dst, _TCP, 20)
    c = checksum(out, initial)
    out[16], out[17] = c >> 8, c & 0xFF
    return bytes(out)


class Forwarder(Layer):
    """The forwarding path of both families, and what a hook's verdict does."""

    name = "forward"
    _COUNTERS = (
        "forwarded4",
        "forwarded6",
        "fragmented",
        "fragments_sent",
        "time_exceeded",
        "too_big",
        "no_route",
        "redirects_sent",
        "hook_dropped",
        "hook_rejected",
        "unresolved",
        "rpf_dropped",
    )

    def __init__(
        self, v4: IPv4Layer, icmp: IcmpLayer, v6: IPv6Layer, icmp6: Icmp6Layer,
        config: ForwardConfig | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.v4 = v4
        self.icmp = icmp
        self.v6 = v6
        self.icmp6 = icmp6
        self.config = config or ForwardConfig()
        #: The installed hooks (the stack sets them here and in the two IP layers at once).
        self.hooks: PacketHooks | None = None
        #: Sends a TCP reset (the transport segment, its source, its destination, the
        #: interface to answer on, now); set by the stack to the IP layers' output.
        self.send_reset: Callable[[bytes, bytes, bytes, int | None, float], None] | None = None
        self.forwarded4 = self.forwarded6 = self.fragmented = self.fragments_sent = 0
        self.time_exceeded = self.too_big = self.no_route = self.redirects_sent = 0
        self.hook_dropped = self.hook_rejected = 0
        self.unresolved = self.rpf_dropped = 0

    # -- IPv4 ------------------------------------------------------------------------------
    def forward4(
        self, data: memoryview | bytearray, header: IPv4Header, group: bool, now: float,
        ingress: int,
    ) -> None:  # fmt: skip
        """A well-formed datagram (checksum verified) that is for none of this host's
        addresses, received on interface ``ingress``."""
        src, dst = header.src, header.dst
        if group:
            self._drop("link_broadcast", dst)  # RFC 1812 5.3.4
            return
        if martian4(src):
            self._drop("martian_source", src)
            return
        if martian4(dst):
            self._drop("martian_destination", dst)
            return
        total = header.total_length
        hlen = IPV4_HEADER_LEN + len(header.options)
        if header.options:
            try:
                if any(o.kind in _SOURCE_ROUTES for o in iter_options(header.options)):
                    self._drop("source_routed", src)
                    return
            except ParseError as exc:
                self._drop(exc.reason, exc)
                return
        if self.config.rp_filter != "off" and not self._reverse_path(self.v4.route, src, ingress):
            return
        if header.ttl <= 1:
            # RFC 1812 5.3.1: a datagram whose TTL would reach zero is discarded, and the
            # source told with Time Exceeded, code 0.
            self.time_exceeded += 1
            self._drop("ttl_exceeded", src)
            self.icmp.send_error(IcmpType.TIME_EXCEEDED, 0, header, memoryview(data)[hlen:total],
                                 now, ifindex=ingress)  # fmt: skip
            return
        v4 = self.v4
        try:
            route = v4.route(dst)
        except NoRouteError:
            self.no_route += 1
            self._drop("no_route", dst)
            self.icmp.send_error(IcmpType.DEST_UNREACHABLE, UnreachableCode.NET,
                                 header, memoryview(data)[hlen:total], now,
                                 ifindex=ingress)  # fmt: skip
            return
        iface = route.iface or v4.interface(0)
        if route.mac is not None or route.local:
            self._drop("directed_broadcast", dst)  # RFC 2644
            return
        hooks = self.hooks
        if hooks is not None:
            buf = data if isinstance(data, bytearray) else bytearray(data[:total])
            if not self._hooks(hooks, Hook.FORWARD, buf, ingress, iface.index, now, False):
                return
            if not self._hooks(hooks, Hook.POSTROUTING, buf, ingress, iface.index, now, False):
                return
            data = buf
        if iface.index == ingress and self.config.send_redirects:
            self._redirect4(header, data, hlen, total, route.next_hop, now, ingress)
        if total > iface.mtu:
            if header.flags_fragment & FLAG_DF:
                # RFC 1812 5.2.6, RFC 1191 4: "fragmentation needed and DF set", with the
                # next-hop MTU in the low 16 bits of the second word.
                self.too_big += 1
                self._drop("fragmentation_needed", dst)
                self.icmp.send_error(
                    IcmpType.DEST_UNREACHABLE, UnreachableCode.FRAGMENTATION_NEEDED, header,
                    memoryview(data)[hlen:total], now, rest=iface.mtu & 0xFFFF, ifindex=ingress,
                )  # fmt: skip
                return
            view = memoryview(data)[:total]
            ttl = view[8]
            try:
                frames = fragment4(view, iface.mtu)
            except ParseError as exc:
                self._drop(exc.reason, exc)
                return
            self.fragmented += 1
            self.forwarded4 += 1
            for frame in frames:
                self._ttl4(frame, ttl)
                self.fragments_sent += 1
                v4.link_output(frame, route, iface, now)
            return
        frame = bytearray(ETHERNET_HEADER_LEN + total)
        frame[ETHERNET_HEADER_LEN:] = memoryview(data)[:total]
        self._ttl4(frame, header.ttl)
        self.forwarded4 += 1
        v4.link_output(frame, route, iface, now)

    def _reverse_path(self, route: Callable[[bytes], Any], src: bytes, ingress: int) -> bool:
        """RFC 3704 (2.2, 2.4): whether a datagram from ``src`` that came in on ``ingress``
        passes the reverse-path check; a failure is a counted drop (``rpf_strict``,
        ``rpf_loose``), without an ICMP error (the source is likely spoofed)."""
        strict = self.config.rp_filter == "strict"
        try:
            back = route(src)
        except NoRouteError:
            back = None
        if back is not None and (not strict or (back.iface.index if back.iface else 0) == ingress):
            return True
        self.rpf_dropped += 1
        self._drop("rpf_strict" if strict else "rpf_loose")
        return False

    @staticmethod
    def _ttl4(frame: bytearray, ttl: int) -> None:
        """TTL - 1 in the frame's IPv4 header, the checksum updated (RFC 1812 5.3.1,
        RFC 1624)."""
        at = ETHERNET_HEADER_LEN
        proto = frame[at + 9]
        frame[at + 8] = ttl - 1
        _fix_checksum(frame, at + 10, (ttl << 8) | proto, ((ttl - 1) << 8) | proto)

    def _redirect4(
        self, header: IPv4Header, data: memoryview | bytearray, hlen: int, total: int,
        next_hop: bytes, now: float, ingress: int,
    ) -> None:  # fmt: skip
        """RFC 1812 5.2.7.2: a Redirect (host, code 1) to a source on the link the datagram
        came in on and goes back out of, naming the better next hop."""
        iface = self.v4.interface(ingress)
        if iface.on_link(header.src) is None or next_hop == header.src:
            return
        self.redirects_sent += 1
        self.icmp.send_error(IcmpType.REDIRECT, 1, header, memoryview(data)[hlen:total], now,
                             rest=int.from_bytes(next_hop, "big"), ifindex=ingress)  # fmt: skip

    # -- IPv6 ------------------------------------------------------------------------------
    def forward6(self, data: memoryview | bytearray, group: bool, now: float, ingress: int) -> None:
        """A packet (fixed header well formed, ``data`` exactly the packet) that is for none
        of this host's addresses, received on interface ``ingress``."""
        src = bytes(data[8:24])
        dst = bytes(data[24:40])
        if group:
            self._drop("link_multicast", dst)
            return
        if martian6(src):
            self._drop("martian_source", src.hex())
            return
        if martian6(dst):
            self._drop("martian_destination", dst.hex())
            return
        if self.config.rp_filter != "off" and not self._reverse_path(self.v6.route, src, ingress):
            return
        hlim = data[7]
        total = len(data)
        if hlim <= 1:
            # RFC 8200 3, RFC 4443 3.3: Hop Limit exceeded in transit, code 0.
            self.time_exceeded += 1
            self._drop("hop_limit_exceeded", src.hex())
            self.icmp6.send_error(Icmp6Type.TIME_EXCEEDED, 0, self._header6(data), b"", now,
                                  packet=memoryview(data), ifindex=ingress)  # fmt: skip
            return
        v6 = self.v6
        try:
            route = v6.route(dst)
        except NoRouteError:
            self.no_route += 1
            self._drop("no_route", dst.hex())
            self.icmp6.send_error(Icmp6Type.DEST_UNREACHABLE, 0, self._header6(data), b"", now,
                                  packet=memoryview(data), ifindex=ingress)  # fmt: skip
            return
        iface = route.iface or v6.interface(0)
        hooks = self.hooks
        if hooks is not None:
            buf = data if isinstance(data, bytearray) else bytearray(data)
            if not self._hooks(hooks, Hook.FORWARD, buf, ingress, iface.index, now, True):
                return
            if not self._hooks(hooks, Hook.POSTROUTING, buf, ingress, iface.index, now, True):
                return
            data = buf
        if iface.index == ingress and self.config.send_redirects:
            self._redirect6(data, route.next_hop, now, ingress)
        if total > iface.mtu:
            # RFC 8200 5: routers do not fragment; RFC 4443 3.2: Packet Too Big with the
            # MTU of the next-hop link.
            self.too_big += 1
            self._drop("packet_too_big", dst.hex())
            self.icmp6.send_error(
                Icmp6Type.PACKET_TOO_BIG, 0, self._header6(data), b"", now, rest=iface.mtu,
                packet=memoryview(data), ifindex=ingress,
            )  # fmt: skip
            return
        frame = bytearray(ETHERNET_HEADER_LEN + total)
        frame[ETHERNET_HEADER_LEN:] = data
        frame[ETHERNET_HEADER_LEN + 7] = hlim - 1
        self.forwarded6 += 1
        v6.link_output(frame, route, iface, now)

    @staticmethod
    def _header6(data: memoryview | bytearray) -> IPv6Header:
        vtf = int.from_bytes(data[0:4], "big")
        return new_ipv6_header(((vtf >> 20) & 0xFF, vtf & 0xFFFFF, len(data) - IPV6_HEADER_LEN,
                                data[6], data[7], bytes(data[8:24]),
                                bytes(data[24:40])))  # fmt: skip

    def _redirect6(
        self, data: memoryview | bytearray, next_hop: bytes, now: float, ingress: int
    ) -> None:
        """RFC 4861 8.2: a Redirect from our link-local address to a source that sent,
        on this link, a packet that goes back out of it (target: the better router, or the
        destination itself when on-link), rate limited as other ICMPv6 errors."""
        src, dst = bytes(data[8:24]), bytes(data[24:40])
        iface = self.v6.interface(ingress)
        ll = iface.link_local()
        if ll == _UNSPECIFIED6 or not iface.addrconf.on_link(src):
            return
        if not self.icmp6.bucket.allow(now):
            self.icmp6.errors_rate_limited += 1
            return
        msg = ndp.build_redirect(ll, src, next_hop, dst, redirected=data)
        self.redirects_sent += 1
        self.v6.send_ndp(iface, msg, ll, src, now)

    # -- verdicts --------------------------------------------------------------------------
    def _hooks(
        self, hooks: PacketHooks, hook: Hook, buf: bytearray, ingress: int | None,
        egress: int | None, now: float, v6: bool,
    ) -> bool:  # fmt: skip
        """Run ``hook``; True to go on, else the verdict has been acted on."""
        return run_hook(hooks, hook, buf, ingress, egress, now, None, self.verdict, v6)

    def verdict(
        self, verdict: Verdict, hook: Hook, buf: bytearray, ingress: int | None, now: float,
        v6: bool,
    ) -> None:  # fmt: skip
        """Act on a verdict other than ACCEPT for the datagram ``buf`` (IP header first),
        which came in on ``ingress`` (None: this host's own)."""
        self._drop(f"{hook.name.lower()}_{verdict.name.lower()}")
        if verdict == Verdict.DROP:
            self.hook_dropped += 1
            return
        self.hook_rejected += 1
        try:
            if v6:
                self._reject6(verdict, buf, ingress, now)
            else:
                self._reject4(verdict, buf, ingress, now)
        except (ParseError, ValueError, IndexError, struct.error) as exc:
            self._drop("reject_malformed", exc)

    def _reject4(self, verdict: Verdict, buf: bytearray, ingress: int | None,
                 now: float) -> None:  # fmt: skip
        hlen = (buf[0] & 0x0F) << 2
        if len(buf) < hlen or hlen < IPV4_HEADER_LEN:
            raise ParseError("reject_malformed", "short datagram")
        header, _ = parse4(buf)  # raises ParseError on what a hook left malformed
        if (verdict == Verdict.REJECT_RESET and header.proto == _TCP
                and not header.flags_fragment & OFFSET_MASK):  # fmt: skip
            rst = tcp_reset_for(buf, hlen, False)
            if rst is not None and self.send_reset is not None:
                self.send_reset(rst, header.dst, header.src, ingress, now)
            return
        self.icmp.send_error(IcmpType.DEST_UNREACHABLE, _ADMIN_PROHIBITED4, header,
                             memoryview(buf)[hlen:header.total_length], now,
                             ifindex=ingress or 0)  # fmt: skip

    # -- a next hop that never answered ------------------------------------------------------
    def neighbour_failed4(self, ip: bytes, frames: list[bytearray], now: float) -> None:
        """ARP gave up on ``ip``: the datagrams queued for it are dropped. The stack's own go
        to its transports (:meth:`IcmpLayer.neighbour_failed`); for each forwarded one the
        source is told Destination Unreachable, Host Unreachable (RFC 1812 5.2.7.1: the
        destination is on an attached network but does not answer; 4.3.3.1's code 1)."""
        own = self._unreachable(frames, now, False)
        if own:
            self.icmp.neighbour_failed(ip, own, now)

    def neighbour_failed6(self, ip: bytes, frames: list[bytearray], now: float) -> None:
        """Neighbour discovery gave up on ``ip``: as :meth:`neighbour_failed4`, with ICMPv6
        Destination Unreachable, Address Unreachable (RFC 4861 7.2.2, RFC 4443 3.1: code 3)
        for each forwarded packet."""
        own = self._unreachable(frames, now, True)
        if own:
            self.icmp6.neighbour_failed(ip, own, now)

    def _unreachable(self, frames: list[bytearray], now: float, v6: bool) -> list[bytearray]:
        """Answer and count the forwarded datagrams of ``frames`` (Ethernet frames whose next
        hop never answered); the stack's own are returned."""
        own = []
        for frame in frames:
            d = memoryview(frame)[ETHERNET_HEADER_LEN:]
            if v6:
                local = len(d) < IPV6_HEADER_LEN or self.v6.is_local(bytes(d[8:24]))
            else:
                local = len(d) < IPV4_HEADER_LEN or self.v4.is_local(bytes(d[12:16]))
            if local:
                own.append(frame)
                continue
            self.unresolved += 1
            self._drop("next_hop_unresolved")
            if v6:
                self.icmp6.send_error(Icmp6Type.DEST_UNREACHABLE, _ADDRESS_UNREACHABLE6,
                                      self._header6(d), b"", now, packet=d)  # fmt: skip
                continue
            if not (d[6] << 8 | d[7]) & OFFSET_MASK:
                # (RFC 1812 4.3.2.7: no error about a fragment but the first.)
                self._unreachable4(d, UnreachableCode.HOST, now, 0)
        return own

    def port_unreachable(self, buf: bytearray, ingress: int | None, now: float) -> None:
        """Answer the IPv4 datagram ``buf`` (addressed to this host, which came in on
        ``ingress``) with ICMP Port Unreachable, later than it arrived: what a NAT sends for
        an unsolicited SYN it held (RFC 5382 REQ-4)."""
        self._unreachable4(buf, UnreachableCode.PORT, now, ingress or 0)

    def _unreachable4(
        self, datagram: bytearray | memoryview, code: int, now: float, ifindex: int
    ) -> None:
        """Destination Unreachable with ``code`` about the IPv4 ``datagram``, to its source."""
        try:
            header, payload = parse4(datagram)
        except ParseError as exc:
            self._drop("reject_malformed", exc)
            return
        self.icmp.send_error(IcmpType.DEST_UNREACHABLE, code, header, payload, now,
                             ifindex=ifindex)  # fmt: skip

    def _reject6(self, verdict: Verdict, buf: bytearray, ingress: int | None,
                 now: float) -> None:  # fmt: skip
        if len(buf) < IPV6_HEADER_LEN:
            raise ParseError("reject_malformed", "short packet")
        if verdict == Verdict.REJECT_RESET and buf[6] == _TCP:
            rst = tcp_reset_for(buf, IPV6_HEADER_LEN, True)
            if rst is not None and self.send_reset is not None:
                self.send_reset(rst, bytes(buf[24:40]), bytes(buf[8:24]), ingress, now)
            return
        self.icmp6.send_error(Icmp6Type.DEST_UNREACHABLE, _ADMIN_PROHIBITED6,
                              self._header6(buf), b"", now, packet=memoryview(buf),
                              ifindex=ingress or 0)  # fmt: skip

    def stats(self) -> dict[str, Any]:
        return super().stats()
