"""The IPv4 layer of a host (RFC 791, RFC 1122 3): addresses, routing, fragmentation,
reassembly and demultiplexing to ICMP, UDP and TCP.

Receive (RFC 1122 3.2.1, 3.3.6): the header must be well formed with a correct checksum;
datagrams from a broadcast or multicast source, or to an address that is not this host's, are
dropped (a host does not forward); fragments go through :class:`~.reassembly.Reassembler`.
Options are walked for well-formedness and otherwise ignored (RFC 1122 3.2.1.8 lets a host
ignore the ones it does not implement).

Send: the route gives the source address and the next hop (on-link, or a gateway by longest
prefix match); datagrams larger than the link MTU are fragmented (RFC 791 3.2, "Fragmentation")
unless Don't Fragment is set. Identification values come from per-destination counters with
random starts (RFC 6864 4, RFC 7739 5.3), so they reveal nothing about other traffic.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ...errors import MessageTooLargeError, NoRouteError, ParseError
from ..arp.layer import ArpLayer
from ..ethernet.layer import EthernetLayer
from ..ethernet.wire import ETHERNET_HEADER_LEN, EtherType
from ..layer import Layer
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

__all__ = ["HEADROOM", "IPv4Config", "IPv4Layer", "OutRoute", "RouteEntry"]

#: Bytes in front of a transport header in a frame: Ethernet and an option-less IPv4 header.
HEADROOM = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN

LIMITED_BROADCAST = b"\xff\xff\xff\xff"
ANY = b"\x00\x00\x00\x00"
BROADCAST_MAC = b"\xff" * 6

_HEADER = struct.Struct("!BBHHHBBH4s4s")

#: handler(header, payload, now, sent to a broadcast/multicast address)
UpperHandler = Callable[[IPv4Header, memoryview, float, bool], None]


class Rng(Protocol):
    def getrandbits(self, k: int, /) -> int: ...


@dataclass(frozen=True, slots=True)
class IPv4Config:
    #: Default TTL (RFC 1700 / IANA recommends 64).
    ttl: int = 64
    reassembly: ReassemblyConfig = field(default_factory=ReassemblyConfig)


class OutRoute(NamedTuple):
    """Where a datagram to ``dst`` goes: from ``src`` via ``next_hop``; ``mac`` is set for
    broadcast and multicast destinations, ``local`` for this host's own addresses."""

    src: bytes
    dst: bytes
    next_hop: bytes
    mac: bytes | None = None
    local: bool = False


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

    @classmethod
    def make(cls, ip: bytes, prefix: int) -> _Address:
        mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
        net = int.from_bytes(ip, "big") & mask
        bcast = (net | (~mask & 0xFFFFFFFF)).to_bytes(4, "big")
        return cls(ip, prefix, net, mask, bcast)


@dataclass(slots=True)
class _Route:
    net: int
    mask: int
    prefix: int
    gateway: bytes | None
    source: bytes | None


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
    ) -> None:
        super().__init__()
        self.eth = eth
        self.arp = arp
        self.mtu = mtu
        self.config = config or IPv4Config()
        self.protocols: dict[int, UpperHandler] = {}
        #: Called with a datagram for a protocol nobody handles (ICMP answers it).
        self.on_unknown_protocol: UpperHandler | None = None
        #: Called when a datagram's reassembly timed out (ICMP may report it).
        self.on_reassembly_timeout: Callable[[Expired, float], None] | None = None
        #: Delivers a frame to this host itself, later (set by the driver).
        self.loopback: Callable[[bytearray], None] | None = None
        #: Accept unicast datagrams to any address (a DHCP client before it has one).
        self.accept_any_unicast = False
        self.groups: set[bytes] = {bytes((224, 0, 0, 1))}  # all-hosts, RFC 1112 4
        self._addresses: list[_Address] = []
        self._local: set[bytes] = arp.addresses
        self._broadcasts: set[bytes] = {LIMITED_BROADCAST}
        self._routes: list[_Route] = []
        self._route_cache: dict[tuple[bytes, bytes | None], OutRoute] = {}
        self._header_sums: dict[tuple[bytes, bytes, int, int], int] = {}
        self._rng = rng
        self._ident_key = rng.getrandbits(64)
        self._idents = [rng.getrandbits(16) for _ in range(256)]
        self.reassembler = Reassembler(self.config.reassembly)
        self.rx_packets = self.rx_bytes = self.tx_packets = self.tx_bytes = 0
        self.fragments_received = self.reassembled = self.fragments_sent = 0
        self.fragmented = self.delivered = 0

    # -- configuration ---------------------------------------------------------------------
    def add_address(self, ip: bytes, prefix: int, now: float) -> None:
        if not 0 <= prefix <= 32:
            raise ValueError(f"prefix length must be 0..32, got {prefix}")
        if ip in self._local:
            raise ValueError(f"{ipaddress.IPv4Address(ip)} is already configured")
        addr = _Address.make(ip, prefix)
        self._addresses.append(addr)
        self._local.add(ip)
        if prefix < 31:  # RFC 3021: /31 and /32 have no broadcast address
            self._broadcasts.add(addr.broadcast)
        self._routes.append(_Route(addr.net, addr.mask, prefix, None, ip))
        self._routes_changed()
        self.arp.announce(ip, now)

    def remove_address(self, ip: bytes) -> None:
        addr = next((a for a in self._addresses if a.ip == ip), None)
        if addr is None:
            raise ValueError(f"{ipaddress.IPv4Address(ip)} is not configured")
        self._addresses.remove(addr)
        self._local.discard(ip)
        self._broadcasts = {LIMITED_BROADCAST} | {
            a.broadcast for a in self._addresses if a.prefix < 31
        }
        self._routes = [r for r in self._routes if r.source != ip or r.gateway is not None]
        self._routes_changed()

    def add_route(self, network: ipaddress.IPv4Network, gateway: bytes | None) -> None:
        mask = int(network.netmask)
        self._routes.append(
            _Route(int(network.network_address), mask, network.prefixlen, gateway, None)
        )
        self._routes_changed()

    def remove_route(self, network: ipaddress.IPv4Network, gateway: bytes | None) -> None:
        before = len(self._routes)
        net = int(network.network_address)
        self._routes = [
            r
            for r in self._routes
            if not (r.net == net and r.prefix == network.prefixlen and r.gateway == gateway)
        ]
        if len(self._routes) == before:
            raise ValueError(f"no route to {network} via {gateway!r}")
        self._routes_changed()

    def _routes_changed(self) -> None:
        # Longest prefix first; among equals, on-link before gateways.
        self._routes.sort(key=lambda r: (-r.prefix, r.gateway is not None))
        self._route_cache.clear()

    @property
    def addresses(self) -> list[ipaddress.IPv4Interface]:
        return [ipaddress.IPv4Interface((a.ip, a.prefix)) for a in self._addresses]

    @property
    def routes(self) -> list[RouteEntry]:
        out = []
        for r in self._routes:
            network = ipaddress.IPv4Network((r.net, r.prefix))
            gateway = ipaddress.IPv4Address(r.gateway) if r.gateway else None
            source = ipaddress.IPv4Address(r.source) if r.source else None
            out.append(RouteEntry(network, gateway, source))
        return out

    def is_local(self, ip: bytes) -> bool:
        return ip in self._local or _is_loopback(ip)

    # -- routing ---------------------------------------------------------------------------
    def route(self, dst: bytes, src: bytes | None = None) -> OutRoute:
        """Where to send a datagram for ``dst``.

        Raises:
            NoRouteError: no route matches, or no source address exists for it.
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

    def _lookup(self, dst: bytes, src: bytes | None) -> OutRoute:
        if dst in self._local or _is_loopback(dst):
            return OutRoute(src or dst, dst, dst, local=True)
        if dst == LIMITED_BROADCAST:
            # RFC 1122 3.3.6: limited broadcast goes to the attached network, with a source
            # of our own, or 0.0.0.0 before any is configured (RFC 2131 4.1).
            source = src or (self._addresses[0].ip if self._addresses else ANY)
            return OutRoute(source, dst, dst, BROADCAST_MAC)
        if _is_multicast(dst):
            source = src or (self._addresses[0].ip if self._addresses else ANY)
            return OutRoute(source, dst, dst, multicast_mac(dst))
        d = int.from_bytes(dst, "big")
        for r in self._routes:
            if d & r.mask != r.net:
                continue
            next_hop = r.gateway or dst
            chosen = src or r.source or self._source_on_link(next_hop)
            if chosen is None:
                continue
            if r.gateway is None and dst in self._broadcasts:
                return OutRoute(chosen, dst, dst, BROADCAST_MAC)
            return OutRoute(chosen, dst, next_hop)
        raise NoRouteError(f"no route to {ipaddress.IPv4Address(dst)}")

    def _source_on_link(self, ip: bytes) -> bytes | None:
        i = int.from_bytes(ip, "big")
        for a in self._addresses:
            if i & a.mask == a.net:
                return a.ip
        return None

    def arp_source(self, target: bytes) -> bytes:
        found = self._source_on_link(target)
        if found is not None:
            return found
        return self._addresses[0].ip if self._addresses else ANY

    def _ident(self, dst: bytes, proto: int) -> int:
        i = hash((dst, proto, self._ident_key)) & 0xFF
        ident = self._idents[i] = (self._idents[i] + 1) & 0xFFFF
        return ident

    # -- send ------------------------------------------------------------------------------
    def output(
        self,
        frame: bytearray,
        route: OutRoute,
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
        if total <= self.mtu or route.local:
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
            self._link_output(frame, route, now)
            return
        if df:
            raise MessageTooLargeError(f"{total} bytes exceed the MTU {self.mtu} with DF set")
        self._fragment(frame, route, proto, self._ident(route.dst, proto), ttl, tos, now)

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
        route: OutRoute,
        proto: int,
        ident: int,
        ttl: int,
        tos: int,
        now: float,
    ) -> None:
        """RFC 791 3.2 "Fragmentation": pieces of a multiple of 8 bytes, MF on all but the
        last; every fragment is sent, or (with no neighbour) queued, in order."""
        payload = memoryview(frame)[HEADROOM:]
        step = (self.mtu - IPV4_HEADER_LEN) & ~7
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
            self._link_output(piece, route, now)

    def _link_output(self, frame: bytearray, route: OutRoute, now: float) -> None:
        if route.local:
            if self.loopback is None:
                self._drop("no_loopback")
                return
            self.loopback(frame)
        elif route.mac is not None:
            self.eth.send(frame, route.mac, EtherType.IPV4)
        else:
            self.arp.output(frame, route.next_hop, now)

    # -- receive ---------------------------------------------------------------------------
    def receive(self, data: memoryview, src_mac: bytes, group: bool, now: float) -> None:
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
        elif _is_loopback(dst) and src_mac == self.eth.mac:
            to_group = False  # our own loopback delivery
        elif self.accept_any_unicast and not group:
            to_group = False
        else:
            self._drop("not_for_us", dst)
            return
        if src in self._local and src_mac != self.eth.mac:
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
        handler = self.protocols.get(header.proto)
        if handler is None:
            self._drop("unknown_protocol", header.proto)
            if self.on_unknown_protocol is not None:
                self.on_unknown_protocol(header, payload, now, to_group)
            return
        self.delivered += 1
        handler(header, payload, now, to_group)

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
