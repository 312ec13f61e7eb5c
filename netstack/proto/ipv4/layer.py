"""The IPv4 layer of a host (RFC 791, RFC 1122 3): addresses, routing, fragmentation,
reassembly and demultiplexing to ICMP, UDP and TCP.

Receive (RFC 1122 3.2.1, 3.3.6): the header must be well formed with a correct checksum;
datagrams from a broadcast or multicast source, or to an address that is not this host's, are
dropped (a host does not forward); fragments go through :class:`~.reassembly.Reassembler`.
Options are walked for well-formedness and otherwise ignored (RFC 1122 3.2.1.8 lets a host
ignore the ones it does not implement).

Interfaces (RFC 1122 3.3.4, a multihomed host): the layer serves every interface of the host,
each an :class:`IPv4Iface` (its Ethernet layer and ARP, its MTU and addresses); the routing
table is one, its entries naming their interface. A datagram is accepted on any interface for
any address of the host (the "weak end system" model of RFC 1122 3.3.4.2, as Linux), and the
upper layers are told the interface it came in on. ARP answers on each interface only for that
interface's addresses.

Send: the route gives the interface, the source address and the next hop (on-link, or a
gateway by longest prefix match, then lowest metric); datagrams larger than the interface's MTU
are fragmented (RFC 791 3.2, "Fragmentation") unless Don't Fragment is set. Identification
values come from per-destination counters with random starts (RFC 6864 4, RFC 7739 5.3), so
they reveal nothing about other traffic.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ...errors import MessageTooLargeError, NoRouteError, ParseError
from ...link.offload import OffloadFrame
from ..arp.layer import ArpLayer
from ..ethernet.layer import EthernetLayer
from ..ethernet.wire import ETHERNET_HEADER_LEN, EtherType
from ..ip.hooks import Hook, PacketHooks, VerdictHandler, run_hook
from ..ip.pmtu import PathMtuCache
from ..ip.route import InterfaceTable, Output, OutRoute, RouteTable, TableEntry
from ..layer import Layer
from .fragment import datagram4, fragment4
from .reassembly import Expired, Reassembler, ReassemblyConfig
from .wire import (
    FLAG_DF,
    FLAG_MF,
    IPV4_HEADER_LEN,
    IPv4Header,
    build_header_into,
    checksum_ok,
    iter_options,
    new_ipv4_header,
    parse,
)

__all__ = ["HEADROOM", "IPv4Config", "IPv4Iface", "IPv4Layer", "OutRoute", "RouteEntry"]

#: Bytes in front of a transport header in a frame: Ethernet and an option-less IPv4 header.
HEADROOM = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN

LIMITED_BROADCAST = b"\xff\xff\xff\xff"
ANY = b"\x00\x00\x00\x00"
BROADCAST_MAC = b"\xff" * 6

_HEADER = struct.Struct("!BBHHHBBH4s4s")
#: Enum members as plain ints where every packet asks (a class attribute of an enum is a
#: slow lookup on Python 3.11).
_ETHERTYPE_IPV4 = int(EtherType.IPV4)

#: handler(header, payload, now, sent to a broadcast/multicast address, input interface)
UpperHandler = Callable[[IPv4Header, memoryview, float, bool, int], None]
#: forward(datagram, header, came as link broadcast, now, input interface)
ForwardHandler = Callable[[memoryview | bytearray, IPv4Header, bool, float, int], None]


class Rng(Protocol):
    def getrandbits(self, k: int, /) -> int: ...


@dataclass(frozen=True, slots=True)
class IPv4Config:
    #: Default TTL (RFC 1700 / IANA recommends 64).
    ttl: int = 64
    reassembly: ReassemblyConfig = field(default_factory=ReassemblyConfig)
    #: RFC 1191 6.3: a path MTU learnt from "fragmentation needed" is kept this long (it
    #: suggests 10 minutes), then the link's MTU is tried again.
    pmtu_timeout: float = 600.0
    pmtu_entries: int = 1024


class RouteEntry(NamedTuple):
    """One routing table entry: ``network`` via ``gateway`` (None: on-link)."""

    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None
    source: ipaddress.IPv4Address | None


@dataclass(slots=True)
class _Address:
    ip: bytes
    prefix: int
    net: int
    mask: int
    broadcast: bytes
    ifindex: int

    @classmethod
    def make(cls, ip: bytes, prefix: int, ifindex: int) -> _Address:
        mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
        net = int.from_bytes(ip, "big") & mask
        bcast = (net | (~mask & 0xFFFFFFFF)).to_bytes(4, "big")
        return cls(ip, prefix, net, mask, bcast, ifindex)


class IPv4Iface:
    """IPv4 on one interface: its Ethernet layer and ARP, MTU and addresses. A route out of
    it carries it (:attr:`OutRoute.iface`): ``headroom`` and ``output`` are what a transport
    sends with, whatever the family."""

    __slots__ = ("addresses", "arp", "eth", "headroom", "index", "mtu", "output")

    def __init__(self, index: int, eth: EthernetLayer, arp: ArpLayer, mtu: int,
                 output: Output) -> None:  # fmt: skip
        #: Bytes in front of a transport header in a frame.
        self.headroom = HEADROOM
        self.index = index
        self.eth = eth
        self.arp = arp
        self.mtu = mtu
        #: The layer's ``output``, bound once.
        self.output = output
        #: This interface's addresses, in the order they were added.
        self.addresses: list[_Address] = []

    def source_for(self, target: bytes) -> bytes:
        """The address to send from to ``target`` on this link: ours on its subnet, else our
        first, else 0.0.0.0 (an ARP request's sender, RFC 826; RFC 1122 3.3.4.3)."""
        i = int.from_bytes(target, "big")
        for a in self.addresses:
            if i & a.mask == a.net:
                return a.ip
        return self.addresses[0].ip if self.addresses else ANY

    def on_link(self, ip: bytes) -> bytes | None:
        """Our address on the subnet of ``ip``, if ``ip`` is on one of this link's subnets."""
        i = int.from_bytes(ip, "big")
        for a in self.addresses:
            if i & a.mask == a.net:
                return a.ip
        return None

    def __repr__(self) -> str:
        return f"<IPv4Iface {self.index}>"


def _is_multicast(ip: bytes) -> bool:
    return 224 <= ip[0] <= 239


def _is_loopback(ip: bytes) -> bool:
    return ip[0] == 127


def multicast_mac(ip: bytes) -> bytes:
    """RFC 1112 6.4: 01-00-5E followed by the low 23 bits of the group address."""
    return bytes((0x01, 0x00, 0x5E, ip[1] & 0x7F, ip[2], ip[3]))


class IPv4Layer(Layer):
    name = "ipv4"
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
    )

    def __init__(
        self,
        eth: EthernetLayer,
        arp: ArpLayer,
        *,
        mtu: int,
        rng: Rng,
        config: IPv4Config | None = None,
        ifindex: int = 1,
    ) -> None:
        """The layer with its first interface, ``ifindex``, on ``eth`` and ``arp``; more
        come with :meth:`add_interface`."""
        super().__init__()
        self.config = config or IPv4Config()
        self.protocols: dict[int, UpperHandler] = {}
        #: Called with a datagram for a protocol nobody handles (ICMP answers it).
        self.on_unknown_protocol: UpperHandler | None = None
        #: Called when a datagram's reassembly timed out (ICMP may report it).
        self.on_reassembly_timeout: Callable[[Expired, float], None] | None = None
        #: Delivers a frame to this host itself, later, as if it came in on the interface
        #: given (set by the driver).
        self.loopback: Callable[[bytearray, int], None] | None = None
        #: Accept unicast datagrams to any address (a DHCP client before it has one).
        self.accept_any_unicast = False
        #: Take unicast datagrams for every address as ours (Linux's IP_TRANSPARENT for the
        #: whole stack): a user-mode gateway terminates every flow of its guest. Consulted
        #: only for a datagram to an address not ours.
        self.transparent = False
        #: Where a datagram for none of our addresses goes while the stack forwards
        #: (:class:`~..ip.forward.Forwarder`); None: dropped, as a host does.
        self.forward: ForwardHandler | None = None
        #: The packet filter's and NAT's hooks (:mod:`..ip.hooks`), None while none are
        #: installed, and what acts on their verdicts.
        self.hooks: PacketHooks | None = None
        self.on_verdict: VerdictHandler | None = None
        self.groups: set[bytes] = {bytes((224, 0, 0, 1))}  # all-hosts, RFC 1112 4
        #: The interfaces by index.
        self.interfaces: InterfaceTable[IPv4Iface] = InterfaceTable("IPv4")
        self._by_index = self.interfaces.by_index
        self._addresses: list[_Address] = []
        self._local: set[bytes] = set()
        self._broadcasts: set[bytes] = {LIMITED_BROADCAST}
        self._routes = RouteTable(32)
        self._route_cache: dict[tuple[bytes, bytes | None, int], OutRoute[IPv4Iface]] = {}
        self._header_sums: dict[tuple[bytes, bytes, int, int], int] = {}
        self._rng = rng
        self._ident_key = rng.getrandbits(64)
        self._idents = [rng.getrandbits(16) for _ in range(256)]
        self.reassembler = Reassembler(self.config.reassembly)
        # RFC 1191 3: never below 68 octets (RFC 791's minimum).
        self._pmtu = PathMtuCache(68, self.config.pmtu_timeout, self.config.pmtu_entries)
        self.rx_packets = self.rx_bytes = self.tx_packets = self.tx_bytes = 0
        self.fragments_received = self.reassembled = self.fragments_sent = 0
        self.fragmented = self.delivered = 0
        self.interfaces.attach(ifindex, IPv4Iface(ifindex, eth, arp, mtu, self.output))

    # -- interfaces ------------------------------------------------------------------------
    def add_interface(self, ifindex: int, eth: EthernetLayer, arp: ArpLayer, mtu: int) -> IPv4Iface:
        """IPv4 on another interface (no address yet).

        Raises:
            ValueError: ``ifindex`` is taken (or not positive).
        """
        iface = IPv4Iface(ifindex, eth, arp, mtu, self.output)
        self.interfaces.attach(ifindex, iface)
        return iface

    def remove_interface(self, ifindex: int) -> None:
        """Forget an interface: its addresses, and every route out of it.

        Raises:
            ValueError: no such interface, or it is the last one.
        """
        iface = self.interfaces.detach(ifindex)
        for a in list(iface.addresses):
            self.remove_address(a.ip, iface)
        self._routes.remove_where(lambda e: e.ifindex == ifindex)
        self._routes_changed()

    def interface(self, ifindex: int) -> IPv4Iface:
        """The interface ``ifindex`` (0: the first).

        Raises:
            ValueError: no such interface.
        """
        return self.interfaces.find(ifindex)

    @property
    def _first(self) -> IPv4Iface:
        return self.interfaces.first

    @property
    def eth(self) -> EthernetLayer:
        """The first interface's Ethernet layer."""
        return self._first.eth

    @property
    def arp(self) -> ArpLayer:
        """The first interface's ARP."""
        return self._first.arp

    @property
    def mtu(self) -> int:
        """The first interface's MTU (a DHCP lease may lower it, RFC 2132 5.1)."""
        return self._first.mtu

    @mtu.setter
    def mtu(self, value: int) -> None:
        self._first.mtu = value

    # -- configuration ---------------------------------------------------------------------
    def add_address(self, ip: bytes, prefix: int, now: float, ifindex: int = 0) -> None:
        """Add ``ip``/``prefix`` to interface ``ifindex`` (0: the first) and announce it.

        Raises:
            ValueError: a bad prefix length, an address the host has already, a network
                that overlaps one of another interface, or no such interface.
        """
        iface = self.interface(ifindex)
        addr = self.check_address(ip, prefix, iface.index)
        self._addresses.append(addr)
        iface.addresses.append(addr)
        self._local.add(ip)
        iface.arp.addresses.add(ip)
        if prefix < 31:  # RFC 3021: /31 and /32 have no broadcast address
            self._broadcasts.add(addr.broadcast)
        # The connected route (RFC 1122 3.3.1.1: the destination is on the attached network).
        self._routes.add(addr.net, prefix, None, iface.index, 0, ip)
        self._routes_changed()
        iface.arp.announce(ip, now)

    def check_address(self, ip: bytes, prefix: int, ifindex: int) -> _Address:
        """What :meth:`add_address` would add to interface ``ifindex`` (which need not be
        attached yet).

        Raises:
            ValueError: a bad prefix length, an address the host has already, or a network
                that overlaps one of another interface.
        """
        if not 0 <= prefix <= 32:
            raise ValueError(f"prefix length must be 0..32, got {prefix}")
        if ip in self._local:
            raise ValueError(f"{ipaddress.IPv4Address(ip)} is already configured")
        addr = _Address.make(ip, prefix, ifindex)
        for other in self._addresses:
            if other.ifindex != ifindex and (
                addr.net & other.mask == other.net or other.net & addr.mask == addr.net
            ):
                raise ValueError(
                    f"{ipaddress.IPv4Interface((ip, prefix)).network} overlaps "
                    f"{ipaddress.IPv4Interface((other.ip, other.prefix)).network} of another "
                    "interface"
                )
        return addr

    def remove_address(self, ip: bytes, iface: IPv4Iface | None = None) -> None:
        addr = next((a for a in self._addresses if a.ip == ip), None)
        if addr is None:
            raise ValueError(f"{ipaddress.IPv4Address(ip)} is not configured")
        if iface is None:
            iface = self.interfaces[addr.ifindex]
        self._addresses.remove(addr)
        iface.addresses.remove(addr)
        self._local.discard(ip)
        iface.arp.addresses.discard(ip)
        self._broadcasts = {LIMITED_BROADCAST} | {
            a.broadcast for a in self._addresses if a.prefix < 31
        }
        self._routes.remove_where(lambda e: e.source == ip and e.gateway is None)
        self._routes_changed()

    def add_route(
        self,
        network: ipaddress.IPv4Network,
        gateway: bytes | None,
        ifindex: int | None = None,
        metric: int = 0,
    ) -> None:
        """Route ``network`` via ``gateway`` (None: on-link) out of interface ``ifindex``
        (None: the one whose network holds the gateway, or the destination, when sending).

        Raises:
            ValueError: no such interface.
        """
        if ifindex is not None:
            self.interface(ifindex)
        self._routes.add(int(network.network_address), network.prefixlen, gateway, ifindex,
                         metric)  # fmt: skip
        self._routes_changed()

    def remove_route(
        self, network: ipaddress.IPv4Network, gateway: bytes | None, ifindex: int | None = None
    ) -> None:
        n = self._routes.remove(int(network.network_address), network.prefixlen, gateway, ifindex)
        if not n:
            raise ValueError(f"no route to {network} via {gateway!r}")
        self._routes_changed()

    def _routes_changed(self) -> None:
        self._route_cache.clear()

    @property
    def addresses(self) -> list[ipaddress.IPv4Interface]:
        return [ipaddress.IPv4Interface((a.ip, a.prefix)) for a in self._addresses]

    def addresses_of(self, ifindex: int) -> list[ipaddress.IPv4Interface]:
        return [
            ipaddress.IPv4Interface((a.ip, a.prefix)) for a in self.interface(ifindex).addresses
        ]

    def owner(self, ip: bytes) -> IPv4Iface | None:
        """The interface that has the address ``ip``."""
        for a in self._addresses:
            if a.ip == ip:
                return self.interfaces[a.ifindex]
        return None

    @property
    def routes(self) -> list[RouteEntry]:
        """The routing table, best first: (network, gateway or None, source of a connected
        route)."""
        out = []
        for r in self._routes:
            network = ipaddress.IPv4Network((r.net, r.prefix))
            gateway = ipaddress.IPv4Address(r.gateway) if r.gateway else None
            source = ipaddress.IPv4Address(r.source) if r.source else None
            out.append(RouteEntry(network, gateway, source))
        return out

    @property
    def route_table(self) -> list[TableEntry]:
        """The routing table's entries (with interface and metric), best first."""
        return list(self._routes)

    def is_local(self, ip: bytes) -> bool:
        return ip in self._local or _is_loopback(ip)

    # -- routing ---------------------------------------------------------------------------
    def route(self, dst: bytes, src: bytes | None = None, via: int = 0) -> OutRoute[IPv4Iface]:
        """Where to send a datagram for ``dst`` (from ``src``, if given); with ``via``, out
        of that interface if any route through it matches, else as the table says.

        Raises:
            NoRouteError: no route matches, or no source address exists for it.
        """
        key = (dst, src, via)
        cached = self._route_cache.get(key)
        if cached is not None:
            return cached
        r = None
        if via:
            try:
                r = self._lookup(dst, src, via)
            except NoRouteError:
                pass
        if r is None:
            r = self._lookup(dst, src, 0)
        if len(self._route_cache) >= 4096:
            self._route_cache.clear()
        self._route_cache[key] = r
        return r

    def _lookup(self, dst: bytes, src: bytes | None, via: int) -> OutRoute[IPv4Iface]:
        if dst in self._local or _is_loopback(dst):
            return OutRoute(src or dst, dst, dst, local=True, iface=self.owner(dst) or self._first)
        if dst == LIMITED_BROADCAST or _is_multicast(dst):
            # RFC 1122 3.3.6: limited broadcast goes to the attached network, with a source
            # of our own, or 0.0.0.0 before any is configured (RFC 2131 4.1). Out of the
            # interface asked for, else the source's, else the first.
            iface = self._by_index.get(via) or (src and self.owner(src)) or self._first
            source = src or (iface.addresses[0].ip if iface.addresses else ANY)
            mac = BROADCAST_MAC if dst == LIMITED_BROADCAST else multicast_mac(dst)
            return OutRoute(source, dst, dst, mac, iface=iface)
        d = int.from_bytes(dst, "big")
        for r in self._routes.matches(d):
            next_hop = r.gateway or dst
            if r.ifindex is not None:
                iface = self.interfaces[r.ifindex]
                on_link = iface.on_link(next_hop)
            else:
                # The interface on whose network the next hop lies (RFC 1122 3.3.1.2).
                found, on_link = self._on_link(next_hop)
                if found is None:
                    continue
                iface = found
            if via and iface.index != via:
                continue
            chosen = src or r.source or on_link
            if chosen is None:
                if r.ifindex is None or not iface.addresses:
                    continue
                chosen = iface.addresses[0].ip  # a route out of an interface: its address
            if r.gateway is None and dst in self._broadcasts:
                return OutRoute(chosen, dst, dst, BROADCAST_MAC, iface=iface)
            return OutRoute(chosen, dst, next_hop, iface=iface)
        raise NoRouteError(f"no route to {ipaddress.IPv4Address(dst)}")

    def _on_link(self, ip: bytes) -> tuple[IPv4Iface | None, bytes | None]:
        i = int.from_bytes(ip, "big")
        for a in self._addresses:
            if i & a.mask == a.net:
                return self.interfaces[a.ifindex], a.ip
        return None, None

    def path_mtu(self, dst: bytes, now: float | None = None, iface: IPv4Iface | None = None) -> int:
        """The MTU towards ``dst`` out of ``iface`` (default: the first interface): the
        link's, or less after a "fragmentation needed" (RFC 1191)."""
        return self._pmtu.get(dst, (iface or self._first).mtu, now)

    def fragmentation_needed(self, dst: bytes, mtu: int, now: float) -> int | None:
        """A router could forward only ``mtu`` bytes towards ``dst`` (RFC 1191 4): lower
        the path MTU, which new connections to ``dst`` then start from (RFC 1191 5).
        Returns the new path MTU, or None when nothing changed."""
        try:
            iface = self.route(dst).iface or self._first
        except NoRouteError:
            iface = self._first
        return self._pmtu.lower(dst, mtu, iface.mtu, now)

    def arp_source(self, target: bytes) -> bytes:
        """The first interface's ARP sender address for ``target``."""
        return self._first.source_for(target)

    def _ident(self, dst: bytes, proto: int) -> int:
        i = hash((dst, proto, self._ident_key)) & 0xFF
        ident = self._idents[i] = (self._idents[i] + 1) & 0xFFFF
        return ident

    # -- send ------------------------------------------------------------------------------
    def output(
        self,
        frame: bytearray,
        route: OutRoute[IPv4Iface],
        proto: int,
        now: float,
        *,
        ttl: int | None = None,
        df: bool = False,
        tos: int = 0,
    ) -> None:
        """Send the transport segment at ``frame[HEADROOM:]``; the Ethernet and IPv4 headers
        are filled in here.

        Raises:
            MessageTooLargeError: larger than 65 535 bytes, or than the MTU with ``df``.
        """
        total = len(frame) - ETHERNET_HEADER_LEN
        if total > 65535:
            raise MessageTooLargeError(f"IPv4 datagram of {total} bytes exceeds 65535")
        ttl = self.config.ttl if ttl is None else ttl
        iface = route.iface or self._first
        if self.hooks is not None:
            self._output_hooked(self.hooks, frame, route, iface, proto, now, ttl, df, tos)
            return
        # A super-segment (TSO) exceeds the MTU; the link cuts it into MTU-sized pieces.
        if total <= iface.mtu or route.local or frame.__class__ is OffloadFrame:
            if df and not tos:
                # RFC 6864 4.1: an atomic datagram's Identification may be anything; 0 needs
                # no per-destination counter. The checksum is folded from a per-route sum.
                key = (route.src, route.dst, ttl, proto)
                base = self._header_sums.get(key)
                if base is None:
                    base = self._header_sum(route.src, route.dst, ttl, proto)
                s = (base + total) % 0xFFFF
                _HEADER.pack_into(
                    frame, ETHERNET_HEADER_LEN, 0x45, 0, total, 0, FLAG_DF, ttl, proto,
                    0xFFFF - s if s else 0, route.src, route.dst,
                )  # fmt: skip
            else:
                build_header_into(
                    frame, ETHERNET_HEADER_LEN, total, self._ident(route.dst, proto),
                    FLAG_DF if df else 0, ttl, proto, route.src, route.dst, tos,
                )  # fmt: skip
            self.tx_packets += 1
            self.tx_bytes += total
            self._link_output(frame, route, iface, now)
            return
        if df:
            raise MessageTooLargeError(f"{total} bytes exceed the MTU {iface.mtu} with DF set")
        self._fragment(frame, route, iface, proto, self._ident(route.dst, proto), ttl, tos, now)

    def _output_hooked(
        self, hooks: PacketHooks, frame: bytearray, route: OutRoute[IPv4Iface],
        iface: IPv4Iface, proto: int, now: float, ttl: int, df: bool, tos: int,
    ) -> None:  # fmt: skip
        """:meth:`output` with hooks installed: the whole datagram passes OUTPUT (a new
        destination is routed again) and POSTROUTING, then leaves, fragmented if needed."""
        total = len(frame) - ETHERNET_HEADER_LEN
        if df and total > iface.mtu and not route.local:
            raise MessageTooLargeError(f"{total} bytes exceed the MTU {iface.mtu} with DF set")
        build_header_into(
            frame, ETHERNET_HEADER_LEN, total, self._ident(route.dst, proto),
            FLAG_DF if df else 0, ttl, proto, route.src, route.dst, tos,
        )  # fmt: skip
        buf = frame[ETHERNET_HEADER_LEN:]
        if not self._run_hooks(hooks, Hook.OUTPUT, buf, None, iface.index, now):
            return
        dst = bytes(buf[16:20])
        if dst != route.dst:
            try:
                route = self.route(dst, bytes(buf[12:16]))
            except NoRouteError as exc:
                self._drop("no_route", exc)
                return
            iface = route.iface or self._first
        if not self._run_hooks(hooks, Hook.POSTROUTING, buf, None, iface.index, now):
            return
        self.tx_packets += 1
        self.tx_bytes += total
        if total <= iface.mtu or route.local:
            frame[ETHERNET_HEADER_LEN:] = buf
            self._link_output(frame, route, iface, now)
            return
        self.fragmented += 1
        for piece in fragment4(memoryview(buf), iface.mtu):
            self.fragments_sent += 1
            self._link_output(piece, route, iface, now)

    def _run_hooks(
        self, hooks: PacketHooks, hook: Hook, buf: bytearray, ingress: int | None,
        egress: int | None, now: float,
    ) -> bool:  # fmt: skip
        return run_hook(hooks, hook, buf, ingress, egress, now, self, self.on_verdict, False)

    def _header_sum(self, src: bytes, dst: bytes, ttl: int, proto: int) -> int:
        """The ones'-complement sum of a DF header's fixed words (all but Total Length)."""
        words = 0x4500 + FLAG_DF + ((ttl << 8) | proto)
        words += int.from_bytes(src + dst, "big") % 0xFFFF
        if len(self._header_sums) > 4096:
            self._header_sums.clear()
        self._header_sums[(src, dst, ttl, proto)] = words
        return words

    def _fragment(
        self,
        frame: bytearray,
        route: OutRoute[IPv4Iface],
        iface: IPv4Iface,
        proto: int,
        ident: int,
        ttl: int,
        tos: int,
        now: float,
    ) -> None:
        """RFC 791 3.2 "Fragmentation": pieces of a multiple of 8 bytes, MF on all but the
        last; every fragment is sent, or (with no neighbour) queued, in order."""
        payload = memoryview(frame)[HEADROOM:]
        step = (iface.mtu - IPV4_HEADER_LEN) & ~7
        n = len(payload)
        self.fragmented += 1
        for offset in range(0, n, step):
            chunk = payload[offset : offset + step]
            last = offset + step >= n
            piece = bytearray(HEADROOM + len(chunk))
            piece[HEADROOM:] = chunk
            flags = (0 if last else FLAG_MF) | (offset >> 3)
            build_header_into(
                piece, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN + len(chunk), ident, flags, ttl,
                proto, route.src, route.dst, tos,
            )  # fmt: skip
            self.tx_packets += 1
            self.fragments_sent += 1
            self.tx_bytes += len(piece) - ETHERNET_HEADER_LEN
            self._link_output(piece, route, iface, now)

    def _link_output(
        self, frame: bytearray, route: OutRoute[IPv4Iface], iface: IPv4Iface, now: float
    ) -> None:
        """Hand a frame whose IPv4 header is complete to its next hop (or to this host)."""
        if route.local:
            if self.loopback is None:
                self._drop("no_loopback")
                return
            self.loopback(frame, iface.index)
        elif route.mac is not None:
            iface.eth.send(frame, route.mac, _ETHERTYPE_IPV4)
        else:
            iface.arp.output(frame, route.next_hop, now)

    #: What the forwarding path sends its frames with.
    link_output = _link_output

    # -- receive ---------------------------------------------------------------------------
    def receive(
        self, data: memoryview, src_mac: bytes, group: bool, now: float, ifindex: int = 0
    ) -> None:
        """A datagram from the Ethernet layer of interface ``ifindex`` (0: the first)."""
        n = len(data)
        if n >= IPV4_HEADER_LEN and data[0] == 0x45:
            # The common case, no options: the same checks as parse() and checksum_ok(),
            # without building the header twice.
            fields = _HEADER.unpack_from(data, 0)
            total = fields[2]
            if total < IPV4_HEADER_LEN or total > n:
                self._drop("truncated" if total > n else "bad_total_length", total)
                return
            if int.from_bytes(data[:IPV4_HEADER_LEN], "big") % 0xFFFF:
                self._drop("bad_checksum")
                return
            header = new_ipv4_header((*fields[1:], b""))
            payload = data[IPV4_HEADER_LEN:total]
        else:
            try:
                header, payload = parse(data)
            except ParseError as exc:
                self._drop(exc.reason, exc)
                return
            if not checksum_ok(data):
                self._drop("bad_checksum")
                return
        if header.options:
            try:
                for _ in iter_options(header.options):
                    pass
            except ParseError as exc:
                self._drop(exc.reason, exc)
                return
        hooks = self.hooks
        if hooks is not None:
            buf = bytearray(data[: header.total_length])
            if not self._run_hooks(hooks, Hook.PREROUTING, buf, ifindex, None, now):
                return
            try:  # NAT may have rewritten it
                header, payload = parse(buf)
            except ParseError as exc:
                self._drop(exc.reason, exc)
                return
            data = memoryview(buf)
        src, dst = header.src, header.dst
        # RFC 1122 3.2.1.3: a host MUST silently discard a datagram whose source is a
        # broadcast or multicast address ("class E" 240/4 included, RFC 1122 3.2.1.3(g)).
        if src[0] >= 224 or src in self._broadcasts:
            self._drop("bad_source", src)
            return
        self.rx_packets += 1
        self.rx_bytes += header.total_length
        if dst in self._local:
            to_group = False
        elif dst in self._broadcasts:
            to_group = True
        elif _is_multicast(dst):
            if dst not in self.groups:
                self._drop("not_member", dst)
                return
            to_group = True
        elif _is_loopback(dst) and src_mac == self._mac(ifindex):
            to_group = False  # our own loopback delivery
        elif (self.accept_any_unicast or self.transparent) and not group:
            to_group = False
        elif self.forward is not None:
            if src in self._local:
                self._drop("own_source", src)
                return
            self.forward(data if hooks is None else buf, header, group, now, ifindex)
            return
        else:
            self._drop("not_for_us", dst)
            return
        if src in self._local and src_mac != self._mac(ifindex):
            # Our own address as the source, from the wire: spoofed or a conflict.
            self._drop("own_source", src)
            return
        if group and not to_group:
            # RFC 1122 3.3.6: a unicast datagram in a link-layer broadcast is discarded.
            self._drop("link_broadcast_unicast", dst)
            return
        if header.flags_fragment & 0x3FFF:  # MF or a non-zero offset
            self.fragments_received += 1
            done = self.reassembler.receive(header, payload, data, now)
            if done is None:
                return
            self.reassembled += 1
            header, whole = done
            payload = memoryview(whole)
        if hooks is not None:
            buf = datagram4(header, payload)
            if not self._run_hooks(hooks, Hook.INPUT, buf, ifindex, None, now):
                return
            try:
                header, payload = parse(buf)
            except ParseError as exc:
                self._drop(exc.reason, exc)
                return
        handler = self.protocols.get(header.proto)
        if handler is None:
            self._drop("unknown_protocol", header.proto)
            if self.on_unknown_protocol is not None:
                self.on_unknown_protocol(header, payload, now, to_group, ifindex)
            return
        self.delivered += 1
        handler(header, payload, now, to_group, ifindex)

    def _mac(self, ifindex: int) -> bytes | None:
        """The MAC of interface ``ifindex`` (None for one removed)."""
        iface = self._by_index.get(ifindex)
        return iface.eth.mac if iface is not None else None

    # -- time ------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        return self.reassembler.poll_at()

    def handle_timeout(self, now: float) -> None:
        for expired in self.reassembler.handle_timeout(now):
            if self.on_reassembly_timeout is not None:
                self.on_reassembly_timeout(expired, now)

    def reset_stats(self) -> None:
        super().reset_stats()
        self.reassembler.drops.clear()

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["reassembling"] = len(self.reassembler)
        out["reassembly_bytes"] = self.reassembler.buffered_bytes
        drops: dict[str, int] = out["drops"]
        for reason, n in self.reassembler.drops.items():
            drops[f"reassembly_{reason}"] = n
        return out
