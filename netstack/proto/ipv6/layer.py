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
router (a static route, or a default router learnt from Router Advertisements), the longest
prefix winning, then the lowest metric; the source is chosen by RFC 6724 5. Datagrams larger
than the path MTU are fragmented at the source (RFC 8200 4.5, 5), with unpredictable
Identification values (RFC 7739). The path MTU comes from Packet Too Big messages (RFC 8201)
and ages out after 10 minutes (RFC 8201 5.3).

Neighbour discovery (RFC 4861 7): the neighbour cache is the same NUD machine as ARP's
(:class:`~..neighbour.cache.NeighbourCache`, whose states are RFC 4861 7.3.2's), driven by
Neighbor Solicitations and Advertisements; address configuration (link-local, SLAAC, DAD,
router and prefix lists) is the :class:`~.addrconf.Addrconf` machine; multicast listening is
reported with MLD by the :class:`~..mld.listener.MulticastListener` machine: MLDv2 (RFC 3810), or
MLDv1 while an MLDv1 querier is present (RFC 3810 8.2.1).

Interfaces: the layer serves every interface of the host, each an :class:`IPv6Iface` with
what RFC 4861 6.3.2 keeps per interface (MTU, hop limit, neighbour cache, address
configuration, groups and MLD); routing is one table over all of them. A link-local
destination needs its interface (RFC 4007 6), named by a zone unless IPv6 runs on only one;
every packet is handed up with the interface it came in on, and neighbour discovery and MLD
messages are handled by that interface's machines.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ...errors import MessageTooLargeError, NoRouteError, ParseError
from ...link.offload import OffloadFrame
from ..ethernet.layer import EthernetLayer
from ..ethernet.wire import ETHERNET_HEADER_LEN, EtherType
from ..icmpv6.wire import Icmp6Header, Icmp6Type
from ..ip.hooks import Hook, PacketHooks, VerdictHandler, run_hook
from ..ip.pmtu import PathMtuCache
from ..ip.route import InterfaceTable, Output, OutRoute, RouteTable
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

__all__ = ["HEADROOM6", "IPv6Config", "IPv6Iface", "IPv6Layer"]

_T = TypeVar("_T")

#: Bytes in front of a transport header in a frame: Ethernet and the fixed IPv6 header.
HEADROOM6 = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN

LOOPBACK = bytes(15) + b"\x01"

_HEADER = struct.Struct("!IHBB16s16s")
#: Enum members as plain ints where every packet asks (a class attribute of an enum is a
#: slow lookup on Python 3.11).
_ETHERTYPE_IPV6 = int(EtherType.IPV6)
_HOP_BY_HOP, _TCP, _UDP = int(NextHeader.HOP_BY_HOP), int(NextHeader.TCP), int(NextHeader.UDP)

#: handler(header, payload, now, sent to a multicast address, input interface)
UpperHandler = Callable[[IPv6Header, memoryview, float, bool, int], None]
#: forward(the packet from its IPv6 header on, came as link multicast, now, input interface)
ForwardHandler = Callable[[memoryview | bytearray, bool, float, int], None]
#: on_router_solicit(interface, solicitation's IPv6 header, solicitation, now)
SolicitHandler = Callable[["IPv6Iface", IPv6Header, ndp.RouterSolicit, float], None]
#: handler(header, the packet from its IPv6 header on, problem, now, to a group, interface)
ProblemHandler = Callable[[IPv6Header, memoryview, ParameterProblem, float, bool, int], None]

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


#: The metric of a default route learnt from a Router Advertisement: after a static default
#: route of the default metric (Linux gives RA routes 1024 too, and user routes 1024).
RA_ROUTE_METRIC = 1024


def _fmt(ip: bytes) -> str:
    return str(ipaddress.IPv6Address(ip))


class IPv6Iface:
    """IPv6 on one interface (RFC 4861 6.3.2's host variables and more): its Ethernet layer,
    MTU and hop limit, neighbour cache, address configuration, multicast groups and MLD.
    A route out of it carries it (:attr:`OutRoute.iface`): ``headroom`` and ``output`` are
    what a transport sends with, whatever the family."""

    __slots__ = (
        "addrconf", "enabled", "eth", "groups", "headroom", "hop_limit", "index", "link_mtu",
        "local", "mld", "mtu", "neighbours", "output", "tentative",
    )  # fmt: skip

    def __init__(
        self,
        index: int,
        eth: EthernetLayer,
        *,
        mtu: int,
        rng: Rng,
        secret: bytes,
        config: IPv6Config,
        output: Output,
        net_iface: bytes = b"eth0",
    ) -> None:
        #: Bytes in front of a transport header in a frame.
        self.headroom = HEADROOM6
        self.index = index
        self.eth = eth
        #: The layer's ``output``, bound once.
        self.output = output
        #: IPv6 runs on this interface (:meth:`IPv6Layer.start`).
        self.enabled = False
        self.link_mtu = mtu
        #: The MTU of this link for IPv6 (an RA's MTU option may lower it, RFC 4861 6.3.4).
        self.mtu = mtu
        self.hop_limit = config.hop_limit
        self.neighbours: NeighbourCache[bytearray] = NeighbourCache(config.neighbour)
        self.addrconf = ac.Addrconf(eth.mac, config=config.addrconf, rng=rng, secret=secret,
                                    link_mtu=mtu, net_iface=net_iface)  # fmt: skip
        #: MLD: what is reported of ``groups``, in which version (RFC 3810, RFC 2710).
        self.mld = mldl.MulticastListener(rng, config.mld)
        #: Groups this interface listens to, with a count of users (all-nodes always).
        self.groups: dict[bytes, int] = {ALL_NODES: 1}
        #: Assigned and tentative addresses of this interface.
        self.local: set[bytes] = set()
        self.tentative: set[bytes] = set()

    def link_local(self) -> bytes:
        """An assigned link-local address, or :: (the source of MLD messages and Router
        Solicitations before one is valid, RFC 3810 5.2.13, RFC 4861 4.1)."""
        return next((a for a in self.local if is_link_local(a)), UNSPECIFIED)

    def __repr__(self) -> str:
        return f"<IPv6Iface {self.index}{'' if self.enabled else ' off'}>"


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
        ifindex: int = 1,
    ) -> None:
        """The layer with its first interface, ``ifindex``, on ``eth`` (IPv6 off until
        :meth:`start`); more come with :meth:`add_interface`."""
        super().__init__()
        self.config = config or IPv6Config()
        self.protocols: dict[int, UpperHandler] = {}
        #: Called with a datagram whose upper-layer protocol nobody handles.
        self.on_parameter_problem: ProblemHandler | None = None
        #: Called when a datagram's reassembly timed out (ICMPv6 Time Exceeded).
        self.on_reassembly_timeout: Callable[[Expired, float], None] | None = None
        #: Called with the frames that could not be sent because a neighbour never answered.
        self.on_neighbour_failed: Callable[[bytes, list[bytearray], float], None] | None = None
        #: Called with every address-configuration event and its interface (the driver logs
        #: and keeps DNS).
        self.on_addrconf_event: Callable[[object, int], None] | None = None
        #: Delivers a frame to this host itself, later, as if it came in on the interface
        #: given (set by the driver).
        self.loopback: Callable[[bytearray, int], None] | None = None
        #: Where a packet for none of our addresses goes while the stack forwards
        #: (:class:`~..ip.forward.Forwarder`); None: dropped, as a host does.
        self.forward: ForwardHandler | None = None
        #: Take unicast packets for every address as ours (see IPv4Layer.transparent).
        self.transparent = False
        #: The packet filter's and NAT's hooks (:mod:`..ip.hooks`), None while none are
        #: installed, and what acts on their verdicts.
        self.hooks: PacketHooks | None = None
        self.on_verdict: VerdictHandler | None = None
        #: Router Solicitations go here (the router advertiser), else they are ignored
        #: (RFC 4861 6.2.6: for routers only).
        self.on_router_solicit: SolicitHandler | None = None
        #: This node is a router: its Neighbor Advertisements say so (RFC 4861 4.4, the R
        #: flag; a host that saw it advertise as a router drops it as one if not, 7.2.5).
        self.is_router = False
        self._rng = rng
        self._secret = secret
        #: The interfaces by index.
        self.interfaces: InterfaceTable[IPv6Iface] = InterfaceTable("IPv6")
        self._by_index = self.interfaces.by_index
        self._make_iface(ifindex, eth, mtu, b"eth0")
        self.reassembler = Reassembler(self.config.reassembly)
        self._local: set[bytes] = set()
        self._tentative: set[bytes] = set()
        self._routes = RouteTable(128)
        self._route_cache: dict[tuple[bytes, bytes | None, int, int], OutRoute[IPv6Iface]] = {}
        #: The interfaces IPv6 runs on.
        self._enabled: list[IPv6Iface] = []
        # RFC 8201 4: never below the IPv6 minimum link MTU.
        self._pmtu = PathMtuCache(MIN_MTU, self.config.pmtu_timeout, self.config.pmtu_entries)
        #: RFC 4861 8.3: destinations a router redirected (to a better next hop, on the
        #: interface the Redirect came in on).
        self._redirects: dict[bytes, tuple[bytes, int]] = {}
        self._known_upper = frozenset((NextHeader.TCP, NextHeader.UDP, NextHeader.ICMPV6))
        self.rx_packets = self.rx_bytes = self.tx_packets = self.tx_bytes = 0
        self.fragments_received = self.reassembled = self.fragments_sent = 0
        self.fragmented = self.delivered = 0
        self.ndp_received = self.ndp_sent = self.mld_reports_sent = 0
        self.mld_v1_reports_sent = self.mld_dones_sent = 0
        self.parameter_problems = 0

    # -- interfaces ------------------------------------------------------------------------
    def _make_iface(self, ifindex: int, eth: EthernetLayer, mtu: int, name: bytes) -> IPv6Iface:
        iface = IPv6Iface(ifindex, eth, mtu=mtu, rng=self._rng, secret=self._secret,
                          config=self.config, output=self.output, net_iface=name)  # fmt: skip
        self.interfaces.attach(ifindex, iface)
        return iface

    def add_interface(self, ifindex: int, eth: EthernetLayer, mtu: int, name: bytes) -> IPv6Iface:
        """IPv6 on another interface (off until :meth:`start`). ``name`` is RFC 7217's
        Net_Iface, which makes its stable addresses differ from other interfaces'.

        Raises:
            ValueError: ``ifindex`` is taken (or not positive).
        """
        if ifindex <= 0 or ifindex in self.interfaces:
            raise ValueError(f"interface index {ifindex} is taken or invalid")  # no rng draw
        return self._make_iface(ifindex, eth, mtu, name)

    def remove_interface(self, ifindex: int) -> None:
        """Forget an interface: its addresses, neighbours and groups, and every route out
        of it.

        Raises:
            ValueError: no such interface, or it is the last one.
        """
        iface = self.interfaces.detach(ifindex)
        iface.enabled = False
        self._enabled_changed()
        self._routes.remove_where(lambda e: e.ifindex == ifindex)
        self._redirects = {d: r for d, r in self._redirects.items() if r[1] != ifindex}
        self._update_local()

    def interface(self, ifindex: int) -> IPv6Iface:
        """The interface ``ifindex`` (0: the first).

        Raises:
            ValueError: no such interface.
        """
        return self.interfaces.find(ifindex)

    @property
    def _first(self) -> IPv6Iface:
        return self.interfaces.first

    def owner(self, ip: bytes) -> IPv6Iface | None:
        """The interface that has the address ``ip`` (assigned or tentative)."""
        for iface in self.interfaces.values():
            if ip in iface.local or ip in iface.tentative:
                return iface
        return None

    # The first interface's parts, by their old names.
    @property
    def enabled(self) -> bool:
        """IPv6 runs on some interface."""
        return bool(self._enabled)

    def _enabled_changed(self) -> None:
        self._enabled = [i for i in self.interfaces.values() if i.enabled]
        self._route_cache.clear()

    @property
    def eth(self) -> EthernetLayer:
        return self._first.eth

    @property
    def neighbours(self) -> NeighbourCache[bytearray]:
        return self._first.neighbours

    @property
    def addrconf(self) -> ac.Addrconf:
        return self._first.addrconf

    @property
    def mld(self) -> mldl.MulticastListener:
        return self._first.mld

    @property
    def groups(self) -> dict[bytes, int]:
        return self._first.groups

    @property
    def mtu(self) -> int:
        return self._first.mtu

    @property
    def link_mtu(self) -> int:
        return self._first.link_mtu

    @property
    def hop_limit(self) -> int:
        return self._first.hop_limit

    # -- configuration ---------------------------------------------------------------------
    def start(self, now: float, ifindex: int = 0) -> None:
        """Turn IPv6 on on interface ``ifindex`` (0: the first): a link-local address (with
        DAD) and router solicitations."""
        iface = self.interface(ifindex)
        if iface.enabled:
            return
        iface.enabled = True
        self._enabled_changed()
        iface.addrconf.start(now)
        self._after_addrconf(iface, now)

    def add_address(
        self, ip: bytes, prefix: int, now: float, *, dad: bool = True, ifindex: int = 0
    ) -> None:
        """Add a static address to interface ``ifindex`` (0: the first), turning IPv6 on
        there; it is tentative until DAD finishes.

        Raises:
            ValueError: a bad or duplicate address or prefix length, a prefix that overlaps
                one of another interface, or no such interface.
        """
        iface = self.interface(ifindex)
        self.check_address(ip, prefix, iface.index)
        self.start(now, iface.index)
        iface.addrconf.add_static(ip, prefix, now, dad=dad)
        self._after_addrconf(iface, now)

    def check_address(self, ip: bytes, prefix: int, ifindex: int) -> None:
        """Whether :meth:`add_address` may add a static address to interface ``ifindex``
        (which need not be attached yet).

        Raises:
            ValueError: an address the host has already, or a prefix that overlaps the
                prefix of a static address of another interface.
        """
        if self.owner(ip) is not None:
            raise ValueError(f"{_fmt(ip)} is already configured")
        if is_link_local(ip) or not 0 <= prefix <= 128:
            return  # the link-local prefix is on every link; a bad length is Addrconf's
        mine = ipaddress.IPv6Network((ip, prefix), strict=False)
        for other in self.interfaces.values():
            if other.index == ifindex:
                continue
            for info in other.addrconf.addresses:
                if info.origin is not ac.Origin.STATIC:
                    continue
                theirs = ipaddress.IPv6Network((info.address, info.prefix_len), strict=False)
                if mine.overlaps(theirs):
                    raise ValueError(f"{mine} overlaps {theirs} of another interface")

    def remove_address(self, ip: bytes, now: float) -> None:
        """Remove an address of any interface.

        Raises:
            ValueError: no interface has it.
        """
        for iface in self.interfaces.values():
            if any(info.address == ip for info in iface.addrconf.addresses):
                iface.addrconf.remove(ip, now)
                self._after_addrconf(iface, now)
                return
        raise ValueError(f"{_fmt(ip)} is not configured")

    def add_route(
        self,
        network: ipaddress.IPv6Network,
        gateway: bytes | None,
        ifindex: int | None = None,
        metric: int = 0,
    ) -> None:
        """Route ``network`` via ``gateway`` (None: on-link) out of interface ``ifindex``
        (None: found when sending, from the gateway or destination).

        Raises:
            ValueError: no such interface.
        """
        if ifindex is not None:
            self.interface(ifindex)
        self._routes.add(int(network.network_address), network.prefixlen, gateway, ifindex,
                         metric)  # fmt: skip
        self._route_cache.clear()

    def remove_route(
        self, network: ipaddress.IPv6Network, gateway: bytes | None, ifindex: int | None = None
    ) -> None:
        n = self._routes.remove(int(network.network_address), network.prefixlen, gateway, ifindex)
        if not n:
            raise ValueError(f"no route to {network} via {gateway!r}")
        self._route_cache.clear()

    @property
    def routes(self) -> list[tuple[ipaddress.IPv6Network, ipaddress.IPv6Address | None]]:
        """Static routes, then on-link prefixes, then default routers: (network, gateway)."""
        return [(network, gateway) for network, gateway, _, _ in self.route_table]

    @property
    def route_table(
        self,
    ) -> list[tuple[ipaddress.IPv6Network, ipaddress.IPv6Address | None, int | None, int]]:
        """(network, gateway, interface index, metric) of the static routes, then of each
        interface's on-link prefixes, then of its default routers."""
        out: list[tuple[ipaddress.IPv6Network, ipaddress.IPv6Address | None, int | None, int]]
        out = []
        if not self.enabled:
            return out
        for r in self._routes:
            gw = ipaddress.IPv6Address(r.gateway) if r.gateway else None
            out.append((ipaddress.IPv6Network((r.net, r.prefix)), gw, r.ifindex, r.metric))
        link_local = ipaddress.IPv6Network("fe80::/64")
        default = ipaddress.IPv6Network("::/0")
        for iface in self.interfaces.values():
            if not iface.enabled:
                continue
            nets = [link_local]
            # RFC 5942 4: a SLAAC address says nothing about its prefix being on-link;
            # static addresses and the prefixes advertised with the L flag do.
            for info in iface.addrconf.addresses:
                if info.origin is ac.Origin.STATIC:
                    net = ipaddress.IPv6Network((info.address, info.prefix_len), strict=False)
                    if net not in nets:
                        nets.append(net)
            for prefix, plen in iface.addrconf.on_link_prefixes:
                net = ipaddress.IPv6Network((prefix, plen), strict=False)
                if net not in nets:
                    nets.append(net)
            out.extend((net, None, iface.index, 0) for net in nets)
            for router in iface.addrconf.default_routers(0.0):
                out.append((default, ipaddress.IPv6Address(router), iface.index, RA_ROUTE_METRIC))
        return out

    def is_local(self, ip: bytes) -> bool:
        return ip in self._local or ip == LOOPBACK

    def join(self, group: bytes, now: float, ifindex: int = 0) -> None:
        """Listen to a multicast group on interface ``ifindex`` (0: the first), and report it
        with MLDv2."""
        iface = self.interface(ifindex)
        n = iface.groups.get(group, 0)
        if n == 0 and len(iface.groups) >= self.config.max_groups:
            raise ValueError("too many multicast groups")
        iface.groups[group] = n + 1
        if n == 0:
            iface.mld.join(group, now)
            self._send_mld(iface, now)

    def leave(self, group: bytes, now: float, ifindex: int = 0) -> None:
        iface = self.interface(ifindex)
        n = iface.groups.get(group, 0)
        if n <= 1:
            if iface.groups.pop(group, None) is not None:
                iface.mld.leave(group, now)
                self._send_mld(iface, now)
        else:
            iface.groups[group] = n - 1

    # -- routing ---------------------------------------------------------------------------
    def route(
        self, dst: bytes, src: bytes | None = None, scope: int = 0, via: int = 0
    ) -> OutRoute[IPv6Iface]:
        """Where to send a datagram for ``dst`` (from ``src``, if given). ``scope`` is the
        zone of a link-local (or multicast) destination: the index of its interface, which a
        stack with IPv6 on more than one interface needs (RFC 4007 6). With ``via``, out of
        that interface if any route through it matches, else as the table says.

        Raises:
            NoRouteError: no route, a link-local destination without its interface, or no
                usable source address.
        """
        key = (dst, src, scope, via)
        cached = self._route_cache.get(key)
        if cached is not None:
            return cached
        r = None
        if via:
            try:
                r = self._lookup(dst, src, scope, via)
            except NoRouteError:
                pass
        if r is None:
            r = self._lookup(dst, src, scope, 0)
        if len(self._route_cache) >= 4096:
            self._route_cache.clear()
        self._route_cache[key] = r
        return r

    def _lookup(self, dst: bytes, src: bytes | None, scope: int, via: int) -> OutRoute[IPv6Iface]:
        enabled = self._enabled
        if not enabled:
            raise NoRouteError("IPv6 is not enabled on this stack")
        if dst in self._local or dst == LOOPBACK:
            return OutRoute(src or dst, dst, dst, local=True, iface=self.owner(dst) or enabled[0])
        if dst[0] == 0xFF:
            iface = self._zone(dst, scope or via, enabled)
            source = src or self._source(dst, iface, enabled) or UNSPECIFIED
            return OutRoute(source, dst, dst, multicast_mac(dst), iface=iface)
        redirected = self._redirects.get(dst)
        if redirected is not None and redirected[1] in self.interfaces:
            iface = self.interfaces[redirected[1]]
            next_hop = redirected[0]
        elif is_link_local(dst):
            # RFC 4007 6: a link-local address means something only on its link.
            iface = self._zone(dst, scope or via, enabled)
            next_hop = dst
        else:
            iface, next_hop = self._best(dst, via, enabled)
        chosen = src or self._source(dst, iface, enabled)
        if chosen is None:
            raise NoRouteError(f"no IPv6 source address for {_fmt(dst)}")
        return OutRoute(chosen, dst, next_hop, iface=iface)

    def _zone(self, dst: bytes, zone: int, enabled: list[IPv6Iface]) -> IPv6Iface:
        """The interface of a link-local or multicast destination: the one its zone names;
        without a zone, the only interface with IPv6 (a multicast destination: the first)."""
        if zone:
            iface = self._by_index.get(zone)
            if iface is None or not iface.enabled:
                raise NoRouteError(f"no IPv6 interface {zone} for {_fmt(dst)}")
            return iface
        if len(enabled) == 1 or dst[0] == 0xFF:
            return enabled[0]
        raise NoRouteError(
            f"{_fmt(dst)} is a link-local address: name its interface (a scope id, as "
            f"{_fmt(dst)}%{enabled[0].index})"
        )

    def _best(self, dst: bytes, via: int, enabled: list[IPv6Iface]) -> tuple[IPv6Iface, bytes]:
        """RFC 4861 5.2's next-hop determination over every interface: the longest prefix,
        then the lowest metric, then on-link before a router, among the static routes, each
        interface's on-link prefixes and its default routers (preferring routers known to be
        reachable, RFC 4861 6.3.6)."""
        best: tuple[tuple[int, int, int, int], IPv6Iface, bytes] | None = None
        d = int.from_bytes(dst, "big")
        for r in self._routes.matches(d):
            hop = r.gateway or dst
            iface = self._by_index.get(r.ifindex) if r.ifindex is not None else (
                self._on_link_iface(hop, enabled)
            )  # fmt: skip
            if iface is None or not iface.enabled or (via and iface.index != via):
                continue
            best = ((-r.prefix, r.metric, r.gateway is not None, 0), iface, hop)
            break  # the table is in order: the first usable static route is its best
        for iface in enabled:
            if via and iface.index != via:
                continue
            plen = iface.addrconf.on_link_length(dst)
            if plen is not None:
                key = (-plen, 0, 0, 1)
                if best is None or key < best[0]:
                    best = (key, iface, dst)
            for router in iface.addrconf.default_routers(0.0):
                state = iface.neighbours.state(router)
                reachable = state is not None and state is not NeighbourState.INCOMPLETE
                key = (0, RA_ROUTE_METRIC, 1, 2 if reachable else 3)
                if best is None or key < best[0]:
                    best = (key, iface, router)
        if best is None:
            raise NoRouteError(f"no route to {_fmt(dst)}")
        return best[1], best[2]

    def _on_link_iface(self, ip: bytes, enabled: list[IPv6Iface]) -> IPv6Iface | None:
        """The interface ``ip`` is on-link on (for a route that names none): link-local
        addresses and those of no interface's prefixes go to the first."""
        if not is_link_local(ip):
            for iface in enabled:
                if iface.addrconf.on_link(ip):
                    return iface
        return enabled[0] if enabled else None

    def _source(self, dst: bytes, iface: IPv6Iface, enabled: list[IPv6Iface]) -> bytes | None:
        """RFC 6724 5 over the addresses of every interface, rule 5 preferring those of the
        outgoing one (a host may send from any of its addresses, RFC 1122 3.3.4.2), but never
        another interface's link-local address (RFC 4007 6)."""
        mine = iface.addrconf.candidates()
        if len(enabled) == 1 or is_link_local(dst):
            return select_source(dst, mine)
        others = [
            c
            for i in enabled
            if i is not iface
            for c in i.addrconf.candidates()
            if not is_link_local(c.address)
        ]
        return select_source(dst, mine + others, {c.address for c in mine})

    def path_mtu(self, dst: bytes, now: float | None = None, iface: IPv6Iface | None = None) -> int:
        """The MTU towards ``dst`` out of ``iface`` (default: the first interface): the
        link's, or less after a Packet Too Big."""
        return self._pmtu.get(dst, (iface or self._first).mtu, now)

    def packet_too_big(self, dst: bytes, mtu: int, now: float) -> int | None:
        """A Packet Too Big said ``mtu`` for ``dst``: lower the path MTU (RFC 8201 4-5).
        Returns the new path MTU, or None when nothing changed."""
        return self._pmtu.lower(dst, mtu, (self._iface_to(dst) or self._first).mtu, now)

    def _iface_to(self, dst: bytes) -> IPv6Iface | None:
        """The interface a datagram to ``dst`` leaves by, if there is a route."""
        try:
            return self.route(dst).iface
        except NoRouteError:
            return None

    # -- send ------------------------------------------------------------------------------
    def output(
        self,
        frame: bytearray,
        route: OutRoute[IPv6Iface],
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
        iface = route.iface or self._first
        if hop_limit is None:
            # RFC 3493 5.2: multicast defaults to one hop.
            hop_limit = 1 if route.mac is not None else iface.hop_limit
        if self.hooks is not None:
            hooked = self._output_hooked(self.hooks, frame, route, iface, proto, hop_limit,
                                         tclass, now)  # fmt: skip
            if hooked is None:
                return
            route, iface = hooked
        # A super-segment (TSO) exceeds the MTU; the link cuts it into MTU-sized pieces.
        if (
            route.local
            or plen + IPV6_HEADER_LEN <= self.path_mtu(route.dst, now, iface)
            or frame.__class__ is OffloadFrame
        ):
            _HEADER.pack_into(
                frame, ETHERNET_HEADER_LEN, 0x60000000 | (tclass << 20), plen, proto, hop_limit,
                route.src, route.dst,
            )  # fmt: skip
            self.tx_packets += 1
            self.tx_bytes += plen + IPV6_HEADER_LEN
            self._link_output(frame, route, iface, now)
            return
        if df:
            raise MessageTooLargeError(
                f"{plen + IPV6_HEADER_LEN} bytes exceed the path MTU "
                f"{self.path_mtu(route.dst, None, iface)} to {_fmt(route.dst)}"
            )
        self._fragment(frame, route, iface, proto, hop_limit, tclass, now)

    def _output_hooked(
        self, hooks: PacketHooks, frame: bytearray, route: OutRoute[IPv6Iface],
        iface: IPv6Iface, proto: int, hop_limit: int, tclass: int, now: float,
    ) -> tuple[OutRoute[IPv6Iface], IPv6Iface] | None:  # fmt: skip
        """The OUTPUT and POSTROUTING hooks over the whole packet (its header built here;
        :meth:`output` builds it again from the route, which follows what the hooks
        rewrote): the route to send by, or None when a hook ended the packet."""
        plen = len(frame) - HEADROOM6
        _HEADER.pack_into(frame, ETHERNET_HEADER_LEN, 0x60000000 | (tclass << 20), plen, proto,
                          hop_limit, route.src, route.dst)  # fmt: skip
        buf = frame[ETHERNET_HEADER_LEN:]
        if not self._run_hooks(hooks, Hook.OUTPUT, buf, None, iface.index, now):
            return None
        dst = bytes(buf[24:40])
        if dst != route.dst:
            try:
                route = self.route(dst, bytes(buf[8:24]))
            except NoRouteError as exc:
                self._drop("no_route", exc)
                return None
            iface = route.iface or self._first
        if not self._run_hooks(hooks, Hook.POSTROUTING, buf, None, iface.index, now):
            return None
        src = bytes(buf[8:24])
        if src != route.src:
            route = route._replace(src=src)
        frame[ETHERNET_HEADER_LEN:] = buf
        return route, iface

    def _run_hooks(
        self, hooks: PacketHooks, hook: Hook, buf: bytearray, ingress: int | None,
        egress: int | None, now: float,
    ) -> bool:  # fmt: skip
        return run_hook(hooks, hook, buf, ingress, egress, now, self, self.on_verdict, True)

    def _fragment(
        self, frame: bytearray, route: OutRoute[IPv6Iface], iface: IPv6Iface, proto: int,
        hop_limit: int, tclass: int, now: float,
    ) -> None:  # fmt: skip
        """RFC 8200 4.5: the unfragmentable part is the fixed header; every fragment but the
        last carries a multiple of 8 bytes; one Identification per datagram, unpredictable
        (RFC 7739 5)."""
        payload = memoryview(frame)[HEADROOM6:]
        mtu = self.path_mtu(route.dst, now, iface)
        step = (mtu - IPV6_HEADER_LEN - FRAGMENT_HEADER_LEN) & ~7
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
            self._link_output(piece, route, iface, now)

    def _link_output(
        self, frame: bytearray, route: OutRoute[IPv6Iface], iface: IPv6Iface, now: float
    ) -> None:
        if route.local:
            if self.loopback is None:
                self._drop("no_loopback")
                return
            self.loopback(frame, iface.index)
        elif route.mac is not None:
            iface.eth.send(frame, route.mac, _ETHERTYPE_IPV6)
        else:
            mac = iface.neighbours.resolve(route.next_hop, frame, now)
            if mac is not None:
                iface.eth.send(frame, mac, _ETHERTYPE_IPV6)
            else:
                self._flush_neighbours(iface, now)

    #: What the forwarding path sends its frames with.
    link_output = _link_output

    def send_ndp(self, iface: IPv6Iface, message: bytes, src: bytes, dst: bytes,
                 now: float) -> None:  # fmt: skip
        """Send a neighbour discovery message (built with its checksum) out of ``iface``
        with hop limit 255 (RFC 4861 4): a Router Advertisement, a Redirect."""
        self.ndp_sent += 1
        self._send_icmp6(iface, message, src, dst, now)

    def _send_icmp6(
        self, iface: IPv6Iface, message: bytes, src: bytes, dst: bytes, now: float, *,
        mac: bytes | None = None, hop_limit: int = 255, hop_by_hop: bytes = b"",
    ) -> None:  # fmt: skip
        """Send an NDP or MLD message (built with its checksum) out of ``iface``: straight to
        ``mac``, to a multicast destination, or through neighbour resolution."""
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
            iface.eth.send(frame, multicast_mac(dst), EtherType.IPV6)
        elif mac is not None:
            iface.eth.send(frame, mac, EtherType.IPV6)
        else:
            self._link_output(frame, OutRoute(src, dst, dst, iface=iface), iface, now)

    # -- receive ---------------------------------------------------------------------------
    def receive(
        self, data: memoryview, src_mac: bytes, group: bool, now: float, ifindex: int = 0
    ) -> None:
        """A packet from the Ethernet layer of interface ``ifindex`` (0: the first)."""
        iface = self._by_index.get(ifindex)
        if iface is None or not iface.enabled:
            self._drop("disabled")
            return
        n = len(data)
        if n < IPV6_HEADER_LEN or data[0] >> 4 != 6:
            self._drop("truncated" if n < IPV6_HEADER_LEN else "bad_version")
            return
        vtf, plen, nh, hlim, src, dst = _HEADER.unpack_from(data, 0)
        if IPV6_HEADER_LEN + plen > n or (plen == 0 and nh == _HOP_BY_HOP):
            self._drop("truncated" if plen else "jumbogram", plen)
            return
        # RFC 4291 2.7: a multicast address is never a source.
        if src[0] == 0xFF:
            self._drop("bad_source", _fmt(src))
            return
        hooks = self.hooks
        if hooks is not None:
            buf = bytearray(data[: IPV6_HEADER_LEN + plen])
            if not self._run_hooks(hooks, Hook.PREROUTING, buf, iface.index, None, now):
                return
            data = memoryview(buf)  # NAT may have rewritten it (never its length)
            src, dst = bytes(buf[8:24]), bytes(buf[24:40])
        if dst in self._local:
            if dst[0] == 0xFE and dst[1] & 0xC0 == 0x80 and dst not in iface.local:
                # RFC 4007 6: the link-local address of another interface means nothing
                # on this link.
                self._drop("not_for_us", _fmt(dst))
                return
            to_group = False
        elif dst[0] == 0xFF:
            if dst not in iface.groups:
                self._drop("not_member", _fmt(dst))
                return
            to_group = True
        elif dst == LOOPBACK and src_mac == iface.eth.mac:
            to_group = False
        elif dst in self._tentative:
            # RFC 4862 5.4: packets to a tentative address are discarded (DAD's own
            # messages go to the solicited-node group).
            self._drop("tentative_destination", _fmt(dst))
            return
        elif self.transparent and not group:
            to_group = False  # a user-mode gateway's: every unicast packet is ours
        elif self.forward is not None:
            if src in self._local:
                self._drop("own_source", _fmt(src))
                return
            self.forward(data[: IPV6_HEADER_LEN + plen] if hooks is None else buf, group, now,
                         iface.index)  # fmt: skip
            return
        else:
            self._drop("not_for_us", _fmt(dst))
            return
        if group and not to_group:
            self._drop("link_multicast_unicast", _fmt(dst))
            return
        if src in self._local and src_mac != iface.eth.mac:
            self._drop("own_source", _fmt(src))
            return
        self.rx_packets += 1
        self.rx_bytes += IPV6_HEADER_LEN + plen
        ifindex = iface.index
        header = new_ipv6_header(((vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, nh, hlim, src, dst))
        payload = data[IPV6_HEADER_LEN : IPV6_HEADER_LEN + plen]
        if (nh == _TCP or nh == _UDP) and hooks is None:
            handler = self.protocols.get(nh)
            if handler is not None:
                self.delivered += 1
                handler(header, payload, now, to_group, ifindex)
                return
        packet = data[: IPV6_HEADER_LEN + plen]
        try:
            chain = walk(nh, payload, to_group, known_upper=self._known_upper)
        except ParameterProblem as exc:
            self._problem(header, packet, exc, now, to_group, ifindex)
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
                    now, to_group, ifindex,
                )  # fmt: skip
                return
            try:
                done = self.reassembler.receive(header, packet, chain, now)
            except ParameterProblem as exc:
                self._problem(header, packet, exc, now, to_group, ifindex)
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
        self._deliver(header, payload, packet, chain, now, to_group, ifindex)

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
        now: float, to_group: bool, ifindex: int,
    ) -> None:  # fmt: skip
        upper = chain.upper
        if upper == NextHeader.NO_NEXT:
            self.delivered += 1
            return
        if self.hooks is not None:
            # INPUT sees the fixed header and the upper-layer message (extension headers,
            # a reassembly's fragment headers, left out), as the transport will.
            upper_data = payload[chain.offset :]
            buf = bytearray(IPV6_HEADER_LEN + len(upper_data))
            header._replace(payload_length=len(upper_data), next_header=upper).emit_into(buf)
            buf[IPV6_HEADER_LEN:] = upper_data
            if not self._run_hooks(self.hooks, Hook.INPUT, buf, ifindex, None, now):
                return
            vtf, plen, _, hlim, src, dst = _HEADER.unpack_from(buf, 0)
            header = new_ipv6_header(((vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, upper, hlim,
                                      src, dst))  # fmt: skip
            payload = memoryview(buf)[IPV6_HEADER_LEN:]
            chain = chain._replace(offset=0)
        handler = self.protocols.get(upper)
        if handler is None:
            self._drop("unknown_protocol", upper)
            # RFC 8200 4: an unrecognised Next Header is a Parameter Problem, code 1.
            self._problem(
                header, packet,
                ParameterProblem("unknown_protocol", 1, chain.next_header_pointer, True),
                now, to_group, ifindex, count=False,
            )  # fmt: skip
            return
        self.delivered += 1
        handler(header, payload[chain.offset :], now, to_group, ifindex)

    def _problem(
        self, header: IPv6Header, packet: memoryview, exc: ParameterProblem, now: float,
        to_group: bool, ifindex: int, *, count: bool = True,
    ) -> None:  # fmt: skip
        self.parameter_problems += 1
        if count:
            self._drop(exc.reason, exc)
        if exc.send_icmp and self.on_parameter_problem is not None:
            self.on_parameter_problem(header, packet, exc, now, to_group, ifindex)

    # -- neighbour discovery (RFC 4861) and MLD (RFC 3810), from the ICMPv6 layer --------
    def receive_ndp(
        self, header: IPv6Header, icmp: Icmp6Header, body: memoryview, now: float,
        ifindex: int = 0,
    ) -> None:  # fmt: skip
        """An NDP message whose ICMPv6 checksum held, received on interface ``ifindex``:
        neighbour discovery is one link's business (RFC 4861 1), and its answers go out of
        the interface the question came in on."""
        iface = self._by_index.get(ifindex)
        if iface is None:
            self._drop("ndp_no_interface")
            return
        self.ndp_received += 1
        t = icmp.type
        try:
            if t == Icmp6Type.NEIGHBOR_SOLICIT:
                ns = ndp.parse_neighbor_solicit(icmp, body)
                reason = ndp.validate_ip(t, header.hop_limit, header.src, header.dst, ns)
                if reason is None:
                    self._on_solicit(iface, header, ns, now)
            elif t == Icmp6Type.NEIGHBOR_ADVERT:
                na = ndp.parse_neighbor_advert(icmp, body)
                reason = ndp.validate_ip(t, header.hop_limit, header.src, header.dst, na)
                if reason is None:
                    self._on_advert(iface, header, na, now)
            elif t == Icmp6Type.ROUTER_ADVERT:
                ra = ndp.parse_router_advert(icmp, body)
                reason = ndp.validate_ip(t, header.hop_limit, header.src, header.dst, ra)
                if reason is None:
                    self._on_router_advert(iface, header, ra, now)
            elif t == Icmp6Type.REDIRECT:
                rd = ndp.parse_redirect(icmp, body)
                reason = ndp.validate_ip(t, header.hop_limit, header.src, header.dst, rd)
                if reason is None:
                    reason = self._on_redirect(iface, header, rd, now)
            elif self.on_router_solicit is None:
                reason = "router_solicit_ignored"  # for routers only (RFC 4861 6.2.6)
            else:
                rs = ndp.parse_router_solicit(icmp, body)
                reason = ndp.validate_ip(t, header.hop_limit, header.src, header.dst, rs)
                if reason is None:
                    if rs.source_mac is not None and header.src != UNSPECIFIED:
                        # RFC 4861 6.2.6: the source link-layer address updates the cache.
                        iface.neighbours.update(header.src, rs.source_mac, now,
                                                solicited=False, create=True)  # fmt: skip
                    self.on_router_solicit(iface, header, rs, now)
        except ParseError as exc:
            self._drop(f"ndp_{exc.reason}", exc)
            return
        if reason is not None:
            self._drop(f"ndp_{reason}")
            return
        self._after_addrconf(iface, now)
        self._flush_neighbours(iface, now)

    def _on_solicit(
        self, iface: IPv6Iface, header: IPv6Header, ns: ndp.NeighborSolicit, now: float
    ) -> None:
        target, src = ns.target, header.src
        conf = iface.addrconf
        if conf.is_tentative(target):
            if src == UNSPECIFIED:
                # RFC 4862 5.4.3: another node is doing DAD for the same address.
                conf.receive_dad_solicit(target, now)
            return  # from a unicast source: discard (RFC 4862 5.4.3)
        if conf.assigned(target) is None:
            self._drop("ndp_not_our_target", _fmt(target))
            return
        if src == UNSPECIFIED:
            # RFC 4861 7.2.4: answer DAD to all-nodes, not solicited.
            self._advertise(iface, target, ALL_NODES, None, solicited=False, now=now)
            return
        if ns.source_mac is not None:
            # RFC 4861 7.2.3: create or update the sender's entry (STALE if it changed).
            iface.neighbours.update(src, ns.source_mac, now, solicited=False, create=True)
        self._advertise(iface, target, src, ns.source_mac, solicited=True, now=now)

    def _advertise(
        self, iface: IPv6Iface, target: bytes, dst: bytes, mac: bytes | None, *,
        solicited: bool, now: float,
    ) -> None:  # fmt: skip
        msg = ndp.build_neighbor_advert(
            target,
            dst,
            target,
            iface.eth.mac,
            router=self.is_router,
            solicited=solicited,
            override=True,
        )
        self.ndp_sent += 1
        self._send_icmp6(iface, msg, target, dst, now, mac=mac)

    def _on_advert(
        self, iface: IPv6Iface, header: IPv6Header, na: ndp.NeighborAdvert, now: float
    ) -> None:
        target = na.target
        conf = iface.addrconf
        if conf.is_tentative(target):
            conf.receive_advert(target, now)  # RFC 4862 5.4.4
            return
        if conf.assigned(target) is not None:
            if na.target_mac != iface.eth.mac:
                self._log.warning("address conflict: %s is also claimed by %s", _fmt(target),
                                  na.target_mac.hex(":") if na.target_mac else "?")  # fmt: skip
                conf.receive_advert(target, now)
            return
        iface.neighbours.advert(
            target, na.target_mac, now, solicited=na.solicited, override=na.override
        )

    def _on_redirect(
        self, iface: IPv6Iface, header: IPv6Header, rd: ndp.Redirect, now: float
    ) -> str | None:
        """RFC 4861 8.3: believe a Redirect only from the router this host uses for that
        destination (8.1), on this link; then send to the target (a better router, or the
        destination itself, on-link) and learn its link-layer address (STALE, unless it is
        known)."""
        if not self.config.accept_redirects:
            return "redirect_ignored"
        try:
            current = self.route(rd.destination, scope=iface.index)
        except NoRouteError:
            return "redirect_no_route"
        if (
            current.iface is not iface
            or current.next_hop != header.src
            or current.next_hop == rd.destination
        ):
            return "redirect_not_from_router"  # RFC 4861 8.1
        if len(self._redirects) >= self.config.pmtu_entries:
            self._redirects.pop(next(iter(self._redirects)))
        self._redirects[rd.destination] = (rd.target, iface.index)
        self._route_cache.clear()
        if rd.target_mac is not None:
            iface.neighbours.update(rd.target, rd.target_mac, now, solicited=False, create=True)
        return None

    def _on_router_advert(
        self, iface: IPv6Iface, header: IPv6Header, ra: ndp.RouterAdvert, now: float
    ) -> None:
        if ra.source_mac is not None:
            # RFC 4861 6.3.4: the source link-layer address creates or updates the entry.
            iface.neighbours.update(header.src, ra.source_mac, now, solicited=False, create=True)
        iface.addrconf.receive_router_advert(header.src, ra, now)

    def receive_mld_query(
        self, header: IPv6Header, icmp: Icmp6Header, body: memoryview, now: float,
        ifindex: int = 0,
    ) -> None:  # fmt: skip
        """A Multicast Listener Query of either version, for the MLD machine of the
        interface it came in on; queries must come from a link-local source with hop limit
        1 (RFC 3810 5.1.14)."""
        iface = self._by_index.get(ifindex)
        if iface is None:
            return
        if not is_link_local(header.src) or header.hop_limit != 1:
            self._drop("mld_bad_query")
            return
        query = self._mld_parse(mld.parse_query, icmp, body)
        if query is not None:
            iface.mld.receive_query(query, now)

    def receive_mld_report(
        self, header: IPv6Header, icmp: Icmp6Header, body: memoryview, now: float,
        ifindex: int = 0,
    ) -> None:  # fmt: skip
        """Another listener's MLDv1 Report: in MLDv1 mode it suppresses ours (RFC 2710 4)."""
        iface = self._by_index.get(ifindex)
        if iface is None:
            return
        group = self._mld_parse(mld.parse_v1, icmp, body)
        if group is not None:
            iface.mld.receive_report(group, now)

    def _mld_parse(
        self, parse: Callable[[Icmp6Header, memoryview], _T], icmp: Icmp6Header, body: memoryview
    ) -> _T | None:
        try:
            return parse(icmp, body)
        except ParseError as exc:
            self._drop(f"mld_{exc.reason}", exc)
            return None

    def _send_mld(self, iface: IPv6Iface, now: float) -> None:
        """Send what an interface's MLD machine asked for: from a link-local address, or ::
        while none is valid yet (RFC 3810 5.2.13, RFC 3590 4), hop limit 1 and a Router
        Alert (RFC 3810 5, RFC 2710 3). Nothing while IPv6 is off there."""
        messages = iface.mld.messages_to_send()
        if not messages or not iface.enabled:
            return
        src = iface.link_local()
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
            self._send_icmp6(iface, msg, src, dst, now, hop_limit=1, hop_by_hop=_ROUTER_ALERT_HBH)

    # -- address configuration -------------------------------------------------------------
    def _after_addrconf(self, iface: IPv6Iface, now: float) -> None:
        """Carry out what an interface's addrconf machine asked for and apply its events."""
        conf = iface.addrconf
        for action in conf.actions_to_send():
            if isinstance(action, ac.JoinGroup):
                self.join(action.group, now, iface.index)
            elif isinstance(action, ac.LeaveGroup):
                self.leave(action.group, now, iface.index)
            elif isinstance(action, ac.SendDadSolicit):
                # RFC 4862 5.4.2: from ::, to the target's solicited-node group, no SLLA.
                group = solicited_node(action.target)
                msg = ndp.build_neighbor_solicit(UNSPECIFIED, group, action.target, None)
                self.ndp_sent += 1
                self._send_icmp6(iface, msg, UNSPECIFIED, group, now)
            elif isinstance(action, ac.SendRouterSolicit):
                src = iface.link_local()
                mac = iface.eth.mac if src != UNSPECIFIED else None
                msg = ndp.build_router_solicit(src, ALL_ROUTERS, mac)
                self.ndp_sent += 1
                self._send_icmp6(iface, msg, src, ALL_ROUTERS, now)
        changed = False
        while (event := conf.next_event()) is not None:
            changed = True
            if isinstance(event, ac.MtuChanged):
                iface.mtu = min(event.mtu, iface.link_mtu)
            elif isinstance(event, ac.HopLimitChanged):
                iface.hop_limit = event.hop_limit
            elif isinstance(event, ac.ReachableTimeChanged):
                iface.neighbours.config = dataclasses.replace(
                    iface.neighbours.config, reachable_time=event.seconds
                )
            elif isinstance(event, ac.RetransTimerChanged):
                iface.neighbours.config = dataclasses.replace(
                    iface.neighbours.config, retrans_time=event.seconds
                )
            elif isinstance(event, ac.DuplicateAddress):
                self._log.warning("duplicate address detected: %s", _fmt(event.address))
            if self.on_addrconf_event is not None:
                self.on_addrconf_event(event, iface.index)
        if changed:
            iface.local = {i.address for i in conf.addresses if conf.assigned(i.address)}
            iface.tentative = {i.address for i in conf.addresses if conf.is_tentative(i.address)}
            self._update_local()

    def _update_local(self) -> None:
        self._local = set().union(*(i.local for i in self.interfaces.values()))
        self._tentative = set().union(*(i.tentative for i in self.interfaces.values()))
        self._route_cache.clear()

    def _flush_neighbours(self, iface: IPv6Iface, now: float) -> None:
        cache = iface.neighbours
        for target, mac in cache.requests_to_send():
            # RFC 4861 7.2.2: multicast to the solicited-node group, or unicast to probe.
            dst = solicited_node(target) if mac is None else target
            src = select_source(target, iface.addrconf.candidates())
            if src is None:
                self._drop("ndp_no_source")
                continue
            msg = ndp.build_neighbor_solicit(src, dst, target, iface.eth.mac)
            self.ndp_sent += 1
            self._send_icmp6(iface, msg, src, dst, now, mac=mac)
        while (event := cache.next_event()) is not None:
            if isinstance(event, NeighbourResolved):
                for frame in event.packets:
                    iface.eth.send(frame, event.mac, EtherType.IPV6)
            elif isinstance(event, NeighbourFailed):
                self._log.debug("no answer from %s", _fmt(event.ip))
                if self.on_neighbour_failed is not None and event.packets:
                    self.on_neighbour_failed(event.ip, event.packets, now)

    # -- time ------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        # Asked after every batch of frames: no tuple per interface.
        at = self.reassembler.poll_at()
        for iface in self._enabled:
            t = iface.neighbours.poll_at()
            if t is not None and (at is None or t < at):
                at = t
            t = iface.addrconf.poll_at()
            if t is not None and (at is None or t < at):
                at = t
            t = iface.mld.poll_at()
            if t is not None and (at is None or t < at):
                at = t
        return at

    def handle_timeout(self, now: float) -> None:
        if not self._enabled:
            return
        for expired in self.reassembler.handle_timeout(now):
            if self.on_reassembly_timeout is not None:
                self.on_reassembly_timeout(expired, now)
        for iface in list(self._enabled):
            iface.neighbours.handle_timeout(now)
            self._flush_neighbours(iface, now)
            iface.addrconf.handle_timeout(now)
            self._after_addrconf(iface, now)
            iface.mld.handle_timeout(now)
            self._send_mld(iface, now)

    def reset_stats(self) -> None:
        super().reset_stats()
        self.reassembler.drops.clear()
        for iface in self.interfaces.values():
            iface.neighbours.drops.clear()

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["reassembling"] = len(self.reassembler)
        out["reassembly_bytes"] = self.reassembler.buffered_bytes
        ifaces = list(self.interfaces.values())
        out["neighbours"] = sum(len(i.neighbours) for i in ifaces)
        out["pending_packets"] = sum(i.neighbours.pending_packets for i in ifaces)
        out["groups"] = sum(len(i.groups) for i in ifaces)
        out["mld_version"] = self._first.mld.version
        drops: dict[str, int] = out["drops"]
        for reason, n in self.reassembler.drops.items():
            drops[f"reassembly_{reason}"] = n
        for iface in ifaces:
            _merge_iface_drops(iface, drops)
        return out

    def iface_stats(self, ifindex: int) -> dict[str, Any]:
        """What belongs to one interface: whether IPv6 runs there, its MTU and hop limit,
        neighbours, groups and MLD version, and the drops of its neighbour cache and address
        configuration."""
        iface = self.interface(ifindex)
        drops: dict[str, int] = {}
        _merge_iface_drops(iface, drops)
        return {
            "enabled": iface.enabled,
            "mtu": iface.mtu,
            "hop_limit": iface.hop_limit,
            "neighbours": len(iface.neighbours),
            "pending_packets": iface.neighbours.pending_packets,
            "groups": len(iface.groups),
            "mld_version": iface.mld.version,
            "drops": drops,
        }


def _merge_iface_drops(iface: IPv6Iface, drops: dict[str, int]) -> None:
    for reason, n in iface.neighbours.drops.items():
        drops[f"ndp_{reason}"] = drops.get(f"ndp_{reason}", 0) + n
    for reason, n in iface.addrconf.drops.items():
        drops[f"addrconf_{reason}"] = drops.get(f"addrconf_{reason}", 0) + n
