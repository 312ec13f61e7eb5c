"""The IPv6 layer of a host (RFC 8200, RFC 4861, RFC 4862, RFC 3810, RFC 8201): addresses,
neighbour discovery, routing, path MTU, fragmentation, reassembly, and demultiplexing to
ICMPv6, UDP and TCP.

Receive (RFC 8200 4): the fixed header must be well formed; datagrams from a multicast source
or to an address that is neither ours nor a group we joined are dropped (a host does not
forward). The extension-header chain is walked by :func:`~.wire.walk`, which applies the
option action bits and reports Parameter Problems (RFC 8200 4.2, 4.4); fragments go through
:class:`~.reassembly.Reassembler`. A datagram for a tentative address is dropped (RFC 4862
5.4).

Send (RFC 4861 5.2, "conceptual sending algorithm"): the destination is on-link (link-local,
an on-link prefix, a prefix of one of our addresses, or a static on-link route) or goes to a
router (a static route, else a default router learnt from Router Advertisements); the source
is chosen by RFC 6724 5. Datagrams larger than the path MTU are fragmented at the source
(RFC 8200 4.5, 5), with unpredictable Identification values (RFC 7739). The path MTU comes
from Packet Too Big messages (RFC 8201) and ages out after 10 minutes (RFC 8201 5.3).

Neighbour discovery (RFC 4861 7): the neighbour cache is the same NUD machine as ARP's
(:class:`~..neighbour.cache.NeighbourCache`, whose states are RFC 4861 7.3.2's), driven by
Neighbor Solicitations and Advertisements; address configuration (link-local, SLAAC, DAD,
router and prefix lists) is the :class:`~.addrconf.Addrconf` machine; multicast listening is
reported with MLD by the :class:`~..mld.listener.MulticastListener` machine: MLDv2 (RFC 3810), or
MLDv1 while an MLDv1 querier is present (RFC 3810 8.2.1).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ...errors import MessageTooLargeError, NoRouteError, ParseError
from ..ethernet.layer import EthernetLayer
from ..ethernet.wire import ETHERNET_HEADER_LEN, EtherType
from ..icmpv6.wire import Icmp6Header, Icmp6Type
from ..ipv4.layer import OutRoute
from ..layer import Layer
from ..mld import listener as mldl
from ..mld import wire as mld
from ..ndp import wire as ndp
from ..neighbour.cache import (
    NeighbourCache,
    NeighbourConfig,
    NeighbourFailed,
    NeighbourResolved,
    NeighbourState,
)
from . import addrconf as ac
from .addressing import (
    ALL_MLDV2_ROUTERS,
    ALL_NODES,
    ALL_ROUTERS,
    UNSPECIFIED,
    is_link_local,
    multicast_mac,
    select_source,
    solicited_node,
)
from .reassembly import Expired, Reassembler, ReassemblyConfig
from .wire import (
    FRAGMENT_HEADER_LEN,
    IPV6_HEADER_LEN,
    MIN_MTU,
    Chain,
    IPv6Header,
    NextHeader,
    ParameterProblem,
    build_fragment_header_into,
    new_ipv6_header,
    walk,
)

__all__ = ["HEADROOM6", "IPv6Config", "IPv6Layer"]

_T = TypeVar("_T")

#: Bytes in front of a transport header in a frame: Ethernet and the fixed IPv6 header.
HEADROOM6 = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN

LOOPBACK = bytes(15) + b"\x01"

_HEADER = struct.Struct("!IHBB16s16s")

#: handler(header, payload, now, sent to a multicast address)
UpperHandler = Callable[[IPv6Header, memoryview, float, bool], None]
#: handler(header, the packet from its IPv6 header on, problem, now, to a group)
ProblemHandler = Callable[[IPv6Header, memoryview, ParameterProblem, float, bool], None]

#: The Hop-by-Hop header an MLD report carries (RFC 3810 5: Router Alert, RFC 2711),
#: Next Header ICMPv6, padded to 8 bytes with PadN.
_ROUTER_ALERT_HBH = bytes((NextHeader.ICMPV6, 0, 5, 2, 0, 0, 1, 0))


#: Bytes of each upper-layer header the first fragment must hold (RFC 7112 5).
_UPPER_MIN: dict[int, int] = {NextHeader.TCP: 20, NextHeader.UDP: 8, NextHeader.ICMPV6: 4}


class Rng(Protocol):
    def getrandbits(self, k: int, /) -> int: ...
    def random(self) -> float: ...


def _neighbour_defaults() -> NeighbourConfig:
    # RFC 4861 10: REACHABLE_TIME 30 s, RETRANS_TIMER 1 s, DELAY_FIRST_PROBE_TIME 5 s,
    # MAX_MULTICAST_SOLICIT 3, MAX_UNICAST_SOLICIT 3.
    return NeighbourConfig(reachable_time=30.0, retrans_time=1.0, max_requests=3, max_probes=3)


@dataclass(frozen=True, slots=True)
class IPv6Config:
    #: Default hop limit (RFC 8200 3; IANA and Linux use 64), until a router says otherwise.
    hop_limit: int = 64
    reassembly: ReassemblyConfig = field(default_factory=ReassemblyConfig)
    neighbour: NeighbourConfig = field(default_factory=_neighbour_defaults)
    addrconf: ac.AddrconfConfig = field(default_factory=ac.AddrconfConfig)
    #: RFC 8201 5.3: a path MTU learnt from Packet Too Big is kept this long (10 minutes).
    pmtu_timeout: float = 600.0
    pmtu_entries: int = 1024
    #: RFC 4861 8: Redirects are ignored unless this is set (a host on a link it does not
    #: trust gains nothing from them but a way to be misdirected).
    accept_redirects: bool = False
    max_groups: int = 64
    #: MLD's Robustness Variable and intervals (RFC 3810 9).
    mld: mldl.MldConfig = field(default_factory=mldl.MldConfig)


@dataclass(slots=True)
class _StaticRoute:
    net: int
    mask: int
    prefix: int
    gateway: bytes | None


def _mask(prefix: int) -> int:
    return ((1 << 128) - 1) ^ ((1 << (128 - prefix)) - 1)


def _fmt(ip: bytes) -> str:
    return str(ipaddress.IPv6Address(ip))


class IPv6Layer(Layer):
    name = "ipv6"
    _COUNTERS = (
        "rx_packets",
        "rx_bytes",
        "tx_packets",
        "tx_bytes",
        "fragments_received",
        "reassembled",
        "fragments_sent",
        "fragmented",
        "delivered",
        "ndp_received",
        "ndp_sent",
        "mld_reports_sent",
        "mld_v1_reports_sent",
        "mld_dones_sent",
        "parameter_problems",
    )

    def __init__(
        self,
        eth: EthernetLayer,
        *,
        mtu: int,
        rng: Rng,
        secret: bytes,
        config: IPv6Config | None = None,
    ) -> None:
        super().__init__()
        self.eth = eth
        self.config = config or IPv6Config()
        self.link_mtu = mtu
        #: The MTU of this link for IPv6 (an RA's MTU option may lower it, RFC 4861 6.3.4).
        self.mtu = mtu
        self.hop_limit = self.config.hop_limit
        self.enabled = False
        self.protocols: dict[int, UpperHandler] = {}
        #: Called with a datagram whose upper-layer protocol nobody handles.
        self.on_parameter_problem: ProblemHandler | None = None
        #: Called when a datagram's reassembly timed out (ICMPv6 Time Exceeded).
        self.on_reassembly_timeout: Callable[[Expired, float], None] | None = None
        #: Called with the frames that could not be sent because a neighbour never answered.
        self.on_neighbour_failed: Callable[[bytes, list[bytearray], float], None] | None = None
        #: Called with every address-configuration event (the driver logs and keeps DNS).
        self.on_addrconf_event: Callable[[object], None] | None = None
        #: Delivers a frame to this host itself, later (set by the driver).
        self.loopback: Callable[[bytearray], None] | None = None
        self.neighbours: NeighbourCache[bytearray] = NeighbourCache(self.config.neighbour)
        self.addrconf = ac.Addrconf(eth.mac, config=self.config.addrconf, rng=rng, secret=secret,
                                    link_mtu=mtu)  # fmt: skip
        self.reassembler = Reassembler(self.config.reassembly)
        self._rng = rng
        #: Groups this host listens to, with a count of users (all-nodes always).
        self.groups: dict[bytes, int] = {ALL_NODES: 1}
        self._local: set[bytes] = set()
        self._tentative: set[bytes] = set()
        self._routes: list[_StaticRoute] = []
        self._route_cache: dict[tuple[bytes, bytes | None], OutRoute] = {}
        self._pmtu: dict[bytes, tuple[int, float]] = {}
        #: RFC 4861 8.3: destinations a router redirected (to a better next hop).
        self._redirects: dict[bytes, bytes] = {}
        #: MLD: what is reported of ``groups``, in which version (RFC 3810, RFC 2710).
        self.mld = mldl.MulticastListener(rng, self.config.mld)
        self._known_upper = frozenset((NextHeader.TCP, NextHeader.UDP, NextHeader.ICMPV6))
        self.rx_packets = self.rx_bytes = self.tx_packets = self.tx_bytes = 0
        self.fragments_received = self.reassembled = self.fragments_sent = 0
        self.fragmented = self.delivered = 0
        self.ndp_received = self.ndp_sent = self.mld_reports_sent = 0
        self.mld_v1_reports_sent = self.mld_dones_sent = 0
        self.parameter_problems = 0

    # -- configuration ---------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Turn IPv6 on: a link-local address (with DAD) and router solicitations."""
        if self.enabled:
            return
        self.enabled = True
        self.addrconf.start(now)
        self._after_addrconf(now)

    def add_address(self, ip: bytes, prefix: int, now: float, *, dad: bool = True) -> None:
        """Add a static address; it is tentative until DAD finishes.

        Raises:
            ValueError: a bad or duplicate address or prefix length.
        """
        self.start(now)
        self.addrconf.add_static(ip, prefix, now, dad=dad)
        self._after_addrconf(now)

    def remove_address(self, ip: bytes, now: float) -> None:
        self.addrconf.remove(ip, now)
        self._after_addrconf(now)

    def add_route(self, network: ipaddress.IPv6Network, gateway: bytes | None) -> None:
        self._routes.append(
            _StaticRoute(int(network.network_address), _mask(network.prefixlen),
                         network.prefixlen, gateway)
        )  # fmt: skip
        self._routes.sort(key=lambda r: (-r.prefix, r.gateway is not None))
        self._route_cache.clear()

    def remove_route(self, network: ipaddress.IPv6Network, gateway: bytes | None) -> None:
        before = len(self._routes)
        net = int(network.network_address)
        self._routes = [
            r for r in self._routes
            if not (r.net == net and r.prefix == network.prefixlen and r.gateway == gateway)
        ]  # fmt: skip
        if len(self._routes) == before:
            raise ValueError(f"no route to {network} via {gateway!r}")
        self._route_cache.clear()

    @property
    def routes(self) -> list[tuple[ipaddress.IPv6Network, ipaddress.IPv6Address | None]]:
        """Static routes, then on-link prefixes, then default routers."""
        out: list[tuple[ipaddress.IPv6Network, ipaddress.IPv6Address | None]] = []
        if not self.enabled:
            return out
        for r in self._routes:
            gw = ipaddress.IPv6Address(r.gateway) if r.gateway else None
            out.append((ipaddress.IPv6Network((r.net, r.prefix)), gw))
        # RFC 5942 4: a SLAAC address says nothing about its prefix being on-link; static
        # addresses and the prefixes advertised with the L flag do.
        out.append((ipaddress.IPv6Network("fe80::/64"), None))
        for info in self.addrconf.addresses:
            if info.origin is not ac.Origin.STATIC:
                continue
            net = ipaddress.IPv6Network((info.address, info.prefix_len), strict=False)
            if (net, None) not in out:
                out.append((net, None))
        for prefix, plen in self.addrconf.on_link_prefixes:
            net = ipaddress.IPv6Network((prefix, plen), strict=False)
            if (net, None) not in out:
                out.append((net, None))
        default = ipaddress.IPv6Network("::/0")
        for router in self.addrconf.default_routers(0.0):
            out.append((default, ipaddress.IPv6Address(router)))
        return out

    def is_local(self, ip: bytes) -> bool:
        return ip in self._local or ip == LOOPBACK

    def join(self, group: bytes, now: float) -> None:
        """Listen to a multicast group (and report it with MLDv2)."""
        n = self.groups.get(group, 0)
        if n == 0 and len(self.groups) >= self.config.max_groups:
            raise ValueError("too many multicast groups")
        self.groups[group] = n + 1
        if n == 0:
            self.mld.join(group, now)
            self._send_mld(now)

    def leave(self, group: bytes, now: float) -> None:
        n = self.groups.get(group, 0)
        if n <= 1:
            if self.groups.pop(group, None) is not None:
                self.mld.leave(group, now)
                self._send_mld(now)
        else:
            self.groups[group] = n - 1

    # -- routing ---------------------------------------------------------------------------
    def route(self, dst: bytes, src: bytes | None = None) -> OutRoute:
        """Where to send a datagram for ``dst``.

        Raises:
            NoRouteError: no route, or no usable source address.
        """
        key = (dst, src)
        cached = self._route_cache.get(key)
        if cached is not None:
            return cached
        r = self._lookup(dst, src)
        if len(self._route_cache) >= 4096:
            self._route_cache.clear()
        self._route_cache[key] = r
        return r

    def _source(self, dst: bytes) -> bytes | None:
        return select_source(dst, self.addrconf.candidates())

    def _lookup(self, dst: bytes, src: bytes | None) -> OutRoute:
        if not self.enabled:
            raise NoRouteError("IPv6 is not enabled on this stack")
        if dst in self._local or dst == LOOPBACK:
            return OutRoute(src or dst, dst, dst, local=True)
        if dst[0] == 0xFF:
            source = src or self._source(dst) or UNSPECIFIED
            return OutRoute(source, dst, dst, multicast_mac(dst))
        chosen = src or self._source(dst)
        if chosen is None:
            raise NoRouteError(f"no IPv6 source address for {_fmt(dst)}")
        redirected = self._redirects.get(dst)
        if redirected is not None:
            return OutRoute(chosen, dst, redirected)
        d = int.from_bytes(dst, "big")
        for r in self._routes:
            if d & r.mask == r.net:
                return OutRoute(chosen, dst, r.gateway or dst)
        if is_link_local(dst) or self.addrconf.on_link(dst):
            return OutRoute(chosen, dst, dst)
        routers = self.addrconf.default_routers(0.0)
        if routers:
            # RFC 4861 6.3.6: prefer a router known to be reachable.
            for router in routers:
                state = self.neighbours.state(router)
                if state is not None and state is not NeighbourState.INCOMPLETE:
                    return OutRoute(chosen, dst, router)
            return OutRoute(chosen, dst, routers[0])
        raise NoRouteError(f"no route to {_fmt(dst)}")

    def path_mtu(self, dst: bytes, now: float | None = None) -> int:
        """The MTU towards ``dst``: the link's, or less after a Packet Too Big."""
        entry = self._pmtu.get(dst)
        if entry is None:
            return self.mtu
        mtu, until = entry
        if now is not None and now >= until:
            del self._pmtu[dst]  # RFC 8201 5.3: try the link MTU again
            return self.mtu
        return min(mtu, self.mtu)

    def packet_too_big(self, dst: bytes, mtu: int, now: float) -> int | None:
        """A Packet Too Big said ``mtu`` for ``dst``: lower the path MTU (RFC 8201 4-5).
        Returns the new path MTU, or None when nothing changed."""
        # RFC 8201 5: never below the IPv6 minimum link MTU, never raised by a PTB.
        mtu = max(mtu, MIN_MTU)
        if mtu >= self.path_mtu(dst, now):
            return None
        if len(self._pmtu) >= self.config.pmtu_entries:
            oldest = min(self._pmtu, key=lambda k: self._pmtu[k][1])
            del self._pmtu[oldest]
        self._pmtu[dst] = (mtu, now + self.config.pmtu_timeout)
        return mtu

    # -- send ------------------------------------------------------------------------------
    def output(
        self,
        frame: bytearray,
        route: OutRoute,
        proto: int,
        now: float,
        *,
        hop_limit: int | None = None,
        df: bool = False,
        tclass: int = 0,
    ) -> None:
        """Send the upper-layer message at ``frame[HEADROOM6:]``; the Ethernet and IPv6
        headers are filled in here. ``df``: never fragment (TCP sizes its segments itself).

        Raises:
            MessageTooLargeError: larger than 65 535 bytes of payload, or than the path MTU
                with ``df``.
        """
        plen = len(frame) - HEADROOM6
        if plen > 65535:
            raise MessageTooLargeError(f"IPv6 payload of {plen} bytes exceeds 65535")
        if hop_limit is None:
            # RFC 3493 5.2: multicast defaults to one hop.
            hop_limit = 1 if route.mac is not None else self.hop_limit
        if route.local or plen + IPV6_HEADER_LEN <= self.path_mtu(route.dst, now):
            _HEADER.pack_into(
                frame, ETHERNET_HEADER_LEN, 0x60000000 | (tclass << 20), plen, proto, hop_limit,
                route.src, route.dst,
            )  # fmt: skip
            self.tx_packets += 1
            self.tx_bytes += plen + IPV6_HEADER_LEN
            self._link_output(frame, route, now)
            return
        if df:
            raise MessageTooLargeError(
                f"{plen + IPV6_HEADER_LEN} bytes exceed the path MTU "
                f"{self.path_mtu(route.dst)} to {_fmt(route.dst)}"
            )
        self._fragment(frame, route, proto, hop_limit, tclass, now)

    def _fragment(
        self, frame: bytearray, route: OutRoute, proto: int, hop_limit: int, tclass: int,
        now: float,
    ) -> None:  # fmt: skip
        """RFC 8200 4.5: the unfragmentable part is the fixed header; every fragment but the
        last carries a multiple of 8 bytes; one Identification per datagram, unpredictable
        (RFC 7739 5)."""
        payload = memoryview(frame)[HEADROOM6:]
        step = (self.path_mtu(route.dst, now) - IPV6_HEADER_LEN - FRAGMENT_HEADER_LEN) & ~7
        ident = self._rng.getrandbits(32)
        n = len(payload)
        self.fragmented += 1
        for offset in range(0, n, step):
            chunk = payload[offset : offset + step]
            more = offset + step < n
            at = HEADROOM6 + FRAGMENT_HEADER_LEN
            piece = bytearray(at + len(chunk))
            piece[at:] = chunk
            build_fragment_header_into(piece, HEADROOM6, proto, offset, more, ident)
            _HEADER.pack_into(
                piece, ETHERNET_HEADER_LEN, 0x60000000 | (tclass << 20),
                FRAGMENT_HEADER_LEN + len(chunk), NextHeader.FRAGMENT, hop_limit, route.src,
                route.dst,
            )  # fmt: skip
            self.tx_packets += 1
            self.fragments_sent += 1
            self.tx_bytes += len(piece) - ETHERNET_HEADER_LEN
            self._link_output(piece, route, now)

    def _link_output(self, frame: bytearray, route: OutRoute, now: float) -> None:
        if route.local:
            if self.loopback is None:
                self._drop("no_loopback")
                return
            self.loopback(frame)
        elif route.mac is not None:
            self.eth.send(frame, route.mac, EtherType.IPV6)
        else:
            mac = self.neighbours.resolve(route.next_hop, frame, now)
            if mac is not None:
                self.eth.send(frame, mac, EtherType.IPV6)
            else:
                self._flush_neighbours(now)

    def _send_icmp6(
        self, message: bytes, src: bytes, dst: bytes, now: float, *, mac: bytes | None = None,
        hop_limit: int = 255, hop_by_hop: bytes = b"",
    ) -> None:  # fmt: skip
        """Send an NDP or MLD message (built with its checksum) straight to ``mac``, a
        multicast destination, or through neighbour resolution."""
        extra = len(hop_by_hop)
        frame = bytearray(HEADROOM6 + extra + len(message))
        if extra:
            frame[HEADROOM6 : HEADROOM6 + extra] = hop_by_hop
        frame[HEADROOM6 + extra :] = message
        nh = NextHeader.HOP_BY_HOP if extra else NextHeader.ICMPV6
        _HEADER.pack_into(frame, ETHERNET_HEADER_LEN, 0x60000000, extra + len(message), nh,
                          hop_limit, src, dst)  # fmt: skip
        self.tx_packets += 1
        self.tx_bytes += len(frame) - ETHERNET_HEADER_LEN
        if dst[0] == 0xFF:
            self.eth.send(frame, multicast_mac(dst), EtherType.IPV6)
        elif mac is not None:
            self.eth.send(frame, mac, EtherType.IPV6)
        else:
            self._link_output(frame, OutRoute(src, dst, dst), now)

    # -- receive ---------------------------------------------------------------------------
    def receive(self, data: memoryview, src_mac: bytes, group: bool, now: float) -> None:
        if not self.enabled:
            self._drop("disabled")
            return
        n = len(data)
        if n < IPV6_HEADER_LEN or data[0] >> 4 != 6:
            self._drop("truncated" if n < IPV6_HEADER_LEN else "bad_version")
            return
        vtf, plen, nh, hlim, src, dst = _HEADER.unpack_from(data, 0)
        if IPV6_HEADER_LEN + plen > n or (plen == 0 and nh == NextHeader.HOP_BY_HOP):
            self._drop("truncated" if plen else "jumbogram", plen)
            return
        # RFC 4291 2.7: a multicast address is never a source.
        if src[0] == 0xFF:
            self._drop("bad_source", _fmt(src))
            return
        if dst in self._local:
            to_group = False
        elif dst[0] == 0xFF:
            if dst not in self.groups:
                self._drop("not_member", _fmt(dst))
                return
            to_group = True
        elif dst == LOOPBACK and src_mac == self.eth.mac:
            to_group = False
        elif dst in self._tentative:
            # RFC 4862 5.4: packets to a tentative address are discarded (DAD's own
            # messages go to the solicited-node group).
            self._drop("tentative_destination", _fmt(dst))
            return
        else:
            self._drop("not_for_us", _fmt(dst))
            return
        if group and not to_group:
            self._drop("link_multicast_unicast", _fmt(dst))
            return
        if src in self._local and src_mac != self.eth.mac:
            self._drop("own_source", _fmt(src))
            return
        self.rx_packets += 1
        self.rx_bytes += IPV6_HEADER_LEN + plen
        header = new_ipv6_header(((vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, nh, hlim, src, dst))
        payload = data[IPV6_HEADER_LEN : IPV6_HEADER_LEN + plen]
        if nh == NextHeader.TCP or nh == NextHeader.UDP:
            handler = self.protocols.get(nh)
            if handler is not None:
                self.delivered += 1
                handler(header, payload, now, to_group)
                return
        packet = data[: IPV6_HEADER_LEN + plen]
        try:
            chain = walk(nh, payload, to_group, known_upper=self._known_upper)
        except ParameterProblem as exc:
            self._problem(header, packet, exc, now, to_group)
            return
        except ParseError as exc:
            self._drop(exc.reason, exc)
            return
        if chain.fragment is not None:
            self.fragments_received += 1
            if chain.fragment.offset == 0 and not self._first_fragment_complete(chain, payload):
                # RFC 7112 5: the first fragment must hold the whole header chain.
                self._problem(
                    header, packet,
                    ParameterProblem("incomplete_header_chain", 3, 0, send_icmp=True),
                    now, to_group,
                )  # fmt: skip
                return
            try:
                done = self.reassembler.receive(header, packet, chain, now)
            except ParameterProblem as exc:
                self._problem(header, packet, exc, now, to_group)
                return
            if done is None:
                return
            self.reassembled += 1
            header, upper, whole = done
            payload = memoryview(whole)
            try:
                chain = walk(upper, payload, to_group, known_upper=self._known_upper,
                             hop_by_hop_allowed=False)  # fmt: skip
            except ParseError as exc:
                # A problem behind the fragment header of a reassembled datagram: its
                # pointer would not match any packet the sender sent; count it only.
                self._drop(exc.reason, exc)
                return
            if chain.fragment is not None:
                self._drop("nested_fragment")
                return
        self._deliver(header, payload, packet, chain, now, to_group)

    def _first_fragment_complete(self, chain: Chain, payload: memoryview) -> bool:
        assert chain.fragment is not None
        rest = payload[chain.offset :]
        try:
            inner = walk(chain.fragment.next_header, rest, False, known_upper=self._known_upper)
        except ParseError:
            return False
        need = _UPPER_MIN.get(inner.upper, 0)
        return inner.fragment is None and len(rest) - inner.offset >= min(need, 8)

    def _deliver(
        self, header: IPv6Header, payload: memoryview, packet: memoryview, chain: Chain,
        now: float, to_group: bool,
    ) -> None:  # fmt: skip
        upper = chain.upper
        if upper == NextHeader.NO_NEXT:
            self.delivered += 1
            return
        handler = self.protocols.get(upper)
        if handler is None:
            self._drop("unknown_protocol", upper)
            # RFC 8200 4: an unrecognised Next Header is a Parameter Problem, code 1.
            self._problem(
                header, packet,
                ParameterProblem("unknown_protocol", 1, chain.next_header_pointer, True),
                now, to_group, count=False,
            )  # fmt: skip
            return
        self.delivered += 1
        handler(header, payload[chain.offset :], now, to_group)

    def _problem(
        self, header: IPv6Header, packet: memoryview, exc: ParameterProblem, now: float,
        to_group: bool, *, count: bool = True,
    ) -> None:  # fmt: skip
        self.parameter_problems += 1
        if count:
            self._drop(exc.reason, exc)
        if exc.send_icmp and self.on_parameter_problem is not None:
            self.on_parameter_problem(header, packet, exc, now, to_group)

    # -- neighbour discovery (RFC 4861) and MLD (RFC 3810), from the ICMPv6 layer --------
    def receive_ndp(
        self, header: IPv6Header, icmp: Icmp6Header, body: memoryview, now: float
    ) -> None:
        """An NDP message whose ICMPv6 checksum held."""
        self.ndp_received += 1
        t = icmp.type
        try:
            if t == Icmp6Type.NEIGHBOR_SOLICIT:
                ns = ndp.parse_neighbor_solicit(icmp, body)
                reason = ndp.validate_ip(t, header.hop_limit, header.src, header.dst, ns)
                if reason is None:
                    self._on_solicit(header, ns, now)
            elif t == Icmp6Type.NEIGHBOR_ADVERT:
                na = ndp.parse_neighbor_advert(icmp, body)
                reason = ndp.validate_ip(t, header.hop_limit, header.src, header.dst, na)
                if reason is None:
                    self._on_advert(header, na, now)
            elif t == Icmp6Type.ROUTER_ADVERT:
                ra = ndp.parse_router_advert(icmp, body)
                reason = ndp.validate_ip(t, header.hop_limit, header.src, header.dst, ra)
                if reason is None:
                    self._on_router_advert(header, ra, now)
            elif t == Icmp6Type.REDIRECT:
                rd = ndp.parse_redirect(icmp, body)
                reason = ndp.validate_ip(t, header.hop_limit, header.src, header.dst, rd)
                if reason is None:
                    reason = self._on_redirect(header, rd, now)
            else:  # a Router Solicitation: for routers only (RFC 4861 6.2.6)
                reason = "router_solicit_ignored"
        except ParseError as exc:
            self._drop(f"ndp_{exc.reason}", exc)
            return
        if reason is not None:
            self._drop(f"ndp_{reason}")
            return
        self._after_addrconf(now)
        self._flush_neighbours(now)

    def _on_solicit(self, header: IPv6Header, ns: ndp.NeighborSolicit, now: float) -> None:
        target, src = ns.target, header.src
        if self.addrconf.is_tentative(target):
            if src == UNSPECIFIED:
                # RFC 4862 5.4.3: another node is doing DAD for the same address.
                self.addrconf.receive_dad_solicit(target, now)
            return  # from a unicast source: discard (RFC 4862 5.4.3)
        if self.addrconf.assigned(target) is None:
            self._drop("ndp_not_our_target", _fmt(target))
            return
        if src == UNSPECIFIED:
            # RFC 4861 7.2.4: answer DAD to all-nodes, not solicited.
            self._advertise(target, ALL_NODES, None, solicited=False, now=now)
            return
        if ns.source_mac is not None:
            # RFC 4861 7.2.3: create or update the sender's entry (STALE if it changed).
            self.neighbours.update(src, ns.source_mac, now, solicited=False, create=True)
        self._advertise(target, src, ns.source_mac, solicited=True, now=now)

    def _advertise(
        self, target: bytes, dst: bytes, mac: bytes | None, *, solicited: bool, now: float
    ) -> None:
        msg = ndp.build_neighbor_advert(
            target, dst, target, self.eth.mac, router=False, solicited=solicited, override=True
        )
        self.ndp_sent += 1
        self._send_icmp6(msg, target, dst, now, mac=mac)

    def _on_advert(self, header: IPv6Header, na: ndp.NeighborAdvert, now: float) -> None:
        target = na.target
        if self.addrconf.is_tentative(target):
            self.addrconf.receive_advert(target, now)  # RFC 4862 5.4.4
            return
        if self.addrconf.assigned(target) is not None:
            if na.target_mac != self.eth.mac:
                self._log.warning("address conflict: %s is also claimed by %s", _fmt(target),
                                  na.target_mac.hex(":") if na.target_mac else "?")  # fmt: skip
                self.addrconf.receive_advert(target, now)
            return
        self.neighbours.advert(
            target, na.target_mac, now, solicited=na.solicited, override=na.override
        )

    def _on_redirect(self, header: IPv6Header, rd: ndp.Redirect, now: float) -> str | None:
        """RFC 4861 8.3: believe a Redirect only from the router this host uses for that
        destination (8.1); then send to the target (a better router, or the destination
        itself, on-link) and learn its link-layer address (STALE, unless it is known)."""
        if not self.config.accept_redirects:
            return "redirect_ignored"
        try:
            current = self.route(rd.destination)
        except NoRouteError:
            return "redirect_no_route"
        if current.next_hop != header.src or current.next_hop == rd.destination:
            return "redirect_not_from_router"  # RFC 4861 8.1
        if len(self._redirects) >= self.config.pmtu_entries:
            self._redirects.pop(next(iter(self._redirects)))
        self._redirects[rd.destination] = rd.target
        self._route_cache.clear()
        if rd.target_mac is not None:
            self.neighbours.update(rd.target, rd.target_mac, now, solicited=False, create=True)
        return None

    def _on_router_advert(self, header: IPv6Header, ra: ndp.RouterAdvert, now: float) -> None:
        if ra.source_mac is not None:
            # RFC 4861 6.3.4: the source link-layer address creates or updates the entry.
            self.neighbours.update(header.src, ra.source_mac, now, solicited=False, create=True)
        self.addrconf.receive_router_advert(header.src, ra, now)

    def receive_mld_query(
        self, header: IPv6Header, icmp: Icmp6Header, body: memoryview, now: float
    ) -> None:
        """A Multicast Listener Query of either version, for the MLD machine; queries must
        come from a link-local source with hop limit 1 (RFC 3810 5.1.14)."""
        if not is_link_local(header.src) or header.hop_limit != 1:
            self._drop("mld_bad_query")
            return
        query = self._mld_parse(mld.parse_query, icmp, body)
        if query is not None:
            self.mld.receive_query(query, now)

    def receive_mld_report(
        self, header: IPv6Header, icmp: Icmp6Header, body: memoryview, now: float
    ) -> None:
        """Another listener's MLDv1 Report: in MLDv1 mode it suppresses ours (RFC 2710 4)."""
        group = self._mld_parse(mld.parse_v1, icmp, body)
        if group is not None:
            self.mld.receive_report(group, now)

    def _mld_parse(
        self, parse: Callable[[Icmp6Header, memoryview], _T], icmp: Icmp6Header, body: memoryview
    ) -> _T | None:
        try:
            return parse(icmp, body)
        except ParseError as exc:
            self._drop(f"mld_{exc.reason}", exc)
            return None

    def _send_mld(self, now: float) -> None:
        """Send what the MLD machine asked for: from a link-local address, or :: while none
        is valid yet (RFC 3810 5.2.13, RFC 3590 4), hop limit 1 and a Router Alert (RFC 3810
        5, RFC 2710 3). Nothing while IPv6 is off."""
        messages = self.mld.messages_to_send()
        if not messages or not self.enabled:
            return
        src = next((a for a in self._local if is_link_local(a)), UNSPECIFIED)
        for m in messages:
            if isinstance(m, mldl.SendV2Report):
                msg, dst = mld.build_report(src, m.records), ALL_MLDV2_ROUTERS
                self.mld_reports_sent += 1
            elif isinstance(m, mldl.SendReport):
                dst = m.group
                msg = mld.build_v1(Icmp6Type.MLD_REPORT, src, dst, m.group)
                self.mld_v1_reports_sent += 1
            else:
                dst = ALL_ROUTERS
                msg = mld.build_v1(Icmp6Type.MLD_DONE, src, dst, m.group)
                self.mld_dones_sent += 1
            self._send_icmp6(msg, src, dst, now, hop_limit=1, hop_by_hop=_ROUTER_ALERT_HBH)

    # -- address configuration -------------------------------------------------------------
    def _after_addrconf(self, now: float) -> None:
        """Carry out what the addrconf machine asked for and apply its events."""
        conf = self.addrconf
        for action in conf.actions_to_send():
            if isinstance(action, ac.JoinGroup):
                self.join(action.group, now)
            elif isinstance(action, ac.LeaveGroup):
                self.leave(action.group, now)
            elif isinstance(action, ac.SendDadSolicit):
                # RFC 4862 5.4.2: from ::, to the target's solicited-node group, no SLLA.
                group = solicited_node(action.target)
                msg = ndp.build_neighbor_solicit(UNSPECIFIED, group, action.target, None)
                self.ndp_sent += 1
                self._send_icmp6(msg, UNSPECIFIED, group, now)
            elif isinstance(action, ac.SendRouterSolicit):
                src = next((a for a in self._local if is_link_local(a)), UNSPECIFIED)
                mac = self.eth.mac if src != UNSPECIFIED else None
                msg = ndp.build_router_solicit(src, ALL_ROUTERS, mac)
                self.ndp_sent += 1
                self._send_icmp6(msg, src, ALL_ROUTERS, now)
        changed = False
        while (event := conf.next_event()) is not None:
            changed = True
            if isinstance(event, ac.MtuChanged):
                self.mtu = min(event.mtu, self.link_mtu)
            elif isinstance(event, ac.HopLimitChanged):
                self.hop_limit = event.hop_limit
            elif isinstance(event, ac.ReachableTimeChanged):
                self.neighbours.config = dataclasses.replace(
                    self.neighbours.config, reachable_time=event.seconds
                )
            elif isinstance(event, ac.RetransTimerChanged):
                self.neighbours.config = dataclasses.replace(
                    self.neighbours.config, retrans_time=event.seconds
                )
            elif isinstance(event, ac.DuplicateAddress):
                self._log.warning("duplicate address detected: %s", _fmt(event.address))
            if self.on_addrconf_event is not None:
                self.on_addrconf_event(event)
        if changed:
            self._local = {i.address for i in conf.addresses if conf.assigned(i.address)}
            self._tentative = {i.address for i in conf.addresses if conf.is_tentative(i.address)}
            self._route_cache.clear()

    def _flush_neighbours(self, now: float) -> None:
        cache = self.neighbours
        for target, mac in cache.requests_to_send():
            # RFC 4861 7.2.2: multicast to the solicited-node group, or unicast to probe.
            dst = solicited_node(target) if mac is None else target
            src = self._source(target)
            if src is None:
                self._drop("ndp_no_source")
                continue
            msg = ndp.build_neighbor_solicit(src, dst, target, self.eth.mac)
            self.ndp_sent += 1
            self._send_icmp6(msg, src, dst, now, mac=mac)
        while (event := cache.next_event()) is not None:
            if isinstance(event, NeighbourResolved):
                for frame in event.packets:
                    self.eth.send(frame, event.mac, EtherType.IPV6)
            elif isinstance(event, NeighbourFailed):
                self._log.debug("no answer from %s", _fmt(event.ip))
                if self.on_neighbour_failed is not None and event.packets:
                    self.on_neighbour_failed(event.ip, event.packets, now)

    # -- time ------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        at = math.inf
        for t in (
            self.reassembler.poll_at(),
            self.neighbours.poll_at(),
            self.addrconf.poll_at(),
            self.mld.poll_at(),
        ):
            if t is not None and t < at:
                at = t
        return None if at == math.inf else at

    def handle_timeout(self, now: float) -> None:
        if not self.enabled:
            return
        for expired in self.reassembler.handle_timeout(now):
            if self.on_reassembly_timeout is not None:
                self.on_reassembly_timeout(expired, now)
        self.neighbours.handle_timeout(now)
        self._flush_neighbours(now)
        self.addrconf.handle_timeout(now)
        self._after_addrconf(now)
        self.mld.handle_timeout(now)
        self._send_mld(now)

    def reset_stats(self) -> None:
        super().reset_stats()
        self.reassembler.drops.clear()
        self.neighbours.drops.clear()

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["reassembling"] = len(self.reassembler)
        out["reassembly_bytes"] = self.reassembler.buffered_bytes
        out["neighbours"] = len(self.neighbours)
        out["pending_packets"] = self.neighbours.pending_packets
        out["groups"] = len(self.groups)
        out["mld_version"] = self.mld.version
        drops: dict[str, int] = out["drops"]
        for reason, n in self.reassembler.drops.items():
            drops[f"reassembly_{reason}"] = n
        for reason, n in self.neighbours.drops.items():
            drops[f"ndp_{reason}"] = drops.get(f"ndp_{reason}", 0) + n
        for reason, n in self.addrconf.drops.items():
            drops[f"addrconf_{reason}"] = n
        return out
