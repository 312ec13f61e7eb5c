"""The :class:`Stack`: netstack's layers composed over one link or several, driven by asyncio.

This module is the composition root. Layering follows MirageOS: each layer is handed the
layers below it (Ethernet over the link, ARP and IPv4 over Ethernet, ICMP, UDP and TCP over
IPv4 and IPv6, TCP and UDP through the one dual-family facade), and every callback between
layers, or from a layer up to a driver, is set in one place (:meth:`Stack._wire`, and
:meth:`Stack._wire_link` for what belongs to one interface). The layers are sans-IO; the
drivers (:mod:`netstack.drivers`: TCP, UDP, ping, DHCP) turn them into asyncio objects and are
typed against the narrow protocols of :mod:`netstack.core`, which the stack satisfies. The
stack owns one receive loop per interface and one timer
(:class:`~netstack.drivers.timer.MachineTimer`) re-armed from the layers' ``poll_at()`` once
per turn of the event loop in which something happened; the layer registry serves statistics
and deadlines alike.

A stack has one interface or more (:class:`~netstack.interface.Interface`): each a link with
its Ethernet layer, ARP and neighbour caches, addresses, and IPv6 address configuration and
MLD. The IPv4 and IPv6 layers serve them all, with one routing table each (longest prefix,
then lowest metric), and tell the layers above on which interface each packet came in.

The receive path is plain calls: link callback -> Ethernet -> IPv4 -> UDP -> the protocol's
``datagram_received``. Sending is plain calls too, down to the link's ``transmit`` when it has
one, else through a queue drained by one task (:class:`~netstack.link.QueuedTransmitter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import errno
import functools
import ipaddress
import logging
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from . import happy_eyeballs
from .addressing import (
    ANY4,
    ANY6,
    InterfaceAddress,
    InterfaceAddress6,
    Route,
    format_ip,
    format_ipv4,
    parse_ip,
    parse_ip_interface,
    parse_ip_network,
    parse_ipv4,
    parse_ipv4_interface,
    parse_port,
    split_zone,
)
from .core import Rng
from .drivers import tcp as tcp_driver
from .drivers.ping import Pinger
from .drivers.tcp import Server
from .drivers.timer import MachineTimer
from .drivers.udp import DatagramTransport
from .errors import AddressInUseError, ClosedError, LinkError
from .interface import Interface, link_stats
from .link import offload
from .link.base import Link, QueuedTransmitter
from .link.offload import DATA_VALID, NO_OFFLOADS, FrameMeta, offloads_of, tx_offloads_of
from .proto.arp.layer import ArpLayer
from .proto.dhcp.client import DhcpClientConfig
from .proto.ethernet.layer import EthernetLayer
from .proto.ethernet.wire import EtherType
from .proto.icmp.layer import IcmpConfig, IcmpLayer
from .proto.icmpv6.layer import Icmp6Config, Icmp6Layer
from .proto.ip.dual import DualIP
from .proto.ip.forward import RP_FILTERS, Forwarder
from .proto.ip.hooks import PacketHooks
from .proto.ipv4.layer import IPv4Config, IPv4Layer
from .proto.ipv4.wire import IpProto, IPv4Header
from .proto.ipv6 import addrconf
from .proto.ipv6.addressing import ALL_ROUTERS, is_link_local
from .proto.ipv6.layer import IPv6Config, IPv6Iface, IPv6Layer
from .proto.ipv6.radv import AdvertConfig, RouterAdvertiser
from .proto.ipv6.wire import IPv6Header, NextHeader
from .proto.layer import Layer
from .proto.ndp.wire import RouterSolicit
from .proto.neighbour.cache import NeighbourConfig
from .proto.netfilter import Filter, Nat, Netfilter
from .proto.tcp.congestion import make_controller
from .proto.tcp.connection import TcpConfig, TcpConnection
from .proto.tcp.layer import CatchAll as TcpCatchAll
from .proto.tcp.layer import SynRequest, TcpLayer, TcpLimits
from .proto.udp.layer import DUAL, UdpLayer
from .proto.udp.layer import CatchAll as UdpCatchAll
from .streams import (
    NetstackStreamWriter,
    check_keywords,
    open_stream_connection,
    stream_server_factory,
)

if TYPE_CHECKING:
    from .dns import Resolver
    from .drivers.dhcp import DhcpClientDriver

__all__ = ["Interface", "Stack", "StackConfig"]

log = logging.getLogger("netstack.stack")

#: Frames up to this size whose metadata is only DATA_VALID are verified in software.
_SMALL = 512

_P = TypeVar("_P", bound=asyncio.BaseProtocol)
#: The source MAC of a datagram received again from the packet hooks (not a loopback one).
_NO_MAC = bytes(6)


@runtime_checkable
class _Timed(Protocol):
    """A layer with deadlines (a sans-IO machine's ``poll_at`` / ``handle_timeout``)."""

    def poll_at(self) -> float | None: ...
    def handle_timeout(self, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class StackConfig:
    """Tunables of every layer; the defaults are what a Linux host does."""

    arp: NeighbourConfig = field(default_factory=NeighbourConfig)
    ipv4: IPv4Config = field(default_factory=IPv4Config)
    icmp: IcmpConfig = field(default_factory=IcmpConfig)
    ipv6: IPv6Config = field(default_factory=IPv6Config)
    icmp6: Icmp6Config = field(default_factory=Icmp6Config)
    #: Seconds :meth:`Stack.open` waits for IPv6 duplicate address detection.
    ipv6_ready_timeout: float = 10.0
    #: Seconds ``Stack.open(dhcp=True)`` waits for a lease.
    dhcp_timeout: float = 30.0
    #: The DHCP client's tunables (:class:`netstack.proto.dhcp.client.DhcpClientConfig`:
    #: ARP probing, retransmissions, options); None for the RFCs' defaults.
    dhcp: DhcpClientConfig | None = None
    tcp: TcpConfig = field(default_factory=TcpConfig)
    tcp_limits: TcpLimits = field(default_factory=TcpLimits)


class Stack:
    """A TCP/IP host on one link or several. Create it with :meth:`open` (its first
    interface) and add more with :meth:`add_interface`; use it as an async context manager
    or call :meth:`close`.

    This class is the composition root: it makes every layer, hands each the layers below
    it, wires every callback between layers and from layers to drivers (:meth:`_wire`, the
    one place that does, with :meth:`_wire_link` for each interface), keeps the layers in one
    registry for statistics and deadlines, and satisfies the narrow
    :class:`netstack.core.Core` protocols its drivers are typed against.
    """

    def __init__(
        self,
        link: Link,
        *,
        config: StackConfig | None = None,
        rng: Rng | None = None,
        hostname: str | None = None,
        close_link: bool = True,
    ) -> None:
        if not isinstance(link, Link):
            raise TypeError(f"{link!r} does not implement the netstack Link interface")
        self.loop = asyncio.get_running_loop()
        self.config = config or StackConfig()
        self.hostname = hostname
        self._rng: Rng = rng if rng is not None else random.SystemRandom()
        # The layers, each handed the layers below it (the order of the draws from the rng
        # is part of what a seeded run repeats). The first interface's Ethernet layer and
        # ARP are made with the shared layers; others come with add_interface.
        index = self._next_index = 1
        transmit, queued = self._transmitter(link)
        ethernet = EthernetLayer(link.mac, transmit, index)
        ethernet.offloads = tx_offloads_of(link)
        arp = ArpLayer(ethernet, self.config.arp)
        self.ipv4 = IPv4Layer(
            ethernet, arp, mtu=link.mtu, rng=self._rng, config=self.config.ipv4, ifindex=index
        )
        self.icmp = IcmpLayer(self.ipv4, self.config.icmp)
        self.ipv6 = IPv6Layer(
            ethernet,
            mtu=link.mtu,
            rng=self._rng,
            secret=self._rng.getrandbits(256).to_bytes(32, "big"),
            config=self.config.ipv6,
            ifindex=index,
        )
        self.icmp6 = Icmp6Layer(self.ipv6, self.config.icmp6)
        #: IPv4 and IPv6 behind one face, for TCP, UDP and ping.
        self.ip = DualIP(self.ipv4, self.icmp, self.ipv6, self.icmp6)
        self.udp = UdpLayer(self.ip, self._rng)
        self.tcp = TcpLayer(
            self.ip, self._rng, config=self.config.tcp, limits=self.config.tcp_limits
        )
        first = Interface(
            "eth0", index, link, ethernet, arp, self.ipv4.interface(index),
            self.ipv6.interface(index), self.ipv6, queued, close_link,
        )  # fmt: skip
        self._interfaces: list[Interface] = [first]
        #: Forwarding or packet hooks on: offloads set aside (see _apply_offloads).
        self._routing = False
        #: The layers every interface shares, in the order :meth:`stats` reports them
        #: (after the interfaces' Ethernet layers and ARP).
        #: Forwarding between the interfaces (off until :attr:`forwarding` is set) and the
        #: verdicts of installed packet hooks; Router Advertisements (:meth:`advertise`).
        self.forwarder = Forwarder(self.ipv4, self.icmp, self.ipv6, self.icmp6)
        self.radv = RouterAdvertiser(self._send_ndp, self._rng)
        self._shared: tuple[Layer, ...] = (
            self.ipv4, self.icmp, self.ipv6, self.icmp6, self.udp, self.tcp, self.forwarder,
            self.radv,
        )  # fmt: skip
        self._layers: tuple[Layer, ...] = ()
        self._poll_ats: tuple[Callable[[], float | None], ...] = ()
        self._timeouts: tuple[Callable[[float], None], ...] = ()
        self._registry_changed()
        # The drivers.
        self._pinger = Pinger(self, self._rng)
        self._servers: set[Server] = set()
        self._endpoints: set[DatagramTransport] = set()
        self._timer = MachineTimer(self.loop, self._on_timer)
        #: Name servers learnt from IPv6 Router Advertisements (RFC 8106).
        self.ipv6_dns_servers: tuple[str, ...] = ()
        #: The DNS Search List learnt from IPv6 Router Advertisements (RFC 8106 5.2), which
        #: the resolver's ``search`` list follows.
        self.ipv6_search_domains: tuple[str, ...] = ()
        self._static_dns: list[str] = []
        self._resolver: Resolver | None = None
        #: The DHCP client, with ``Stack.open(dhcp=True)`` (its ``lease``, ``state``).
        self.dhcp: DhcpClientDriver | None = None
        self._addrconf_changed = asyncio.Event()
        self._rearm_scheduled = False
        #: The scheduled _rearm, and whether it runs after what the frames since woke.
        self._rearm_handle: asyncio.Handle | None = None
        self._rearm_behind = False
        self._closed = False
        self.internal_errors = 0
        self.loopback_packets = 0
        #: Connection tracking, NAT and the filter, made (and installed as
        #: :attr:`packet_hooks`) once :attr:`nat` or :attr:`filter` is first used.
        self._netfilter: Netfilter | None = None
        self._wire()

    @staticmethod
    def _transmitter(link: Link) -> tuple[Callable[[bytearray], None], QueuedTransmitter | None]:
        """The link's own ``transmit`` when it has one, else a queue drained by a task."""
        transmit = getattr(link, "transmit", None)
        if callable(transmit):
            return transmit, None
        queued = QueuedTransmitter(link)
        return queued.transmit, queued

    def _registry_changed(self) -> None:
        """The layer registry: every interface's Ethernet layer and ARP, then the shared
        layers; :meth:`stats` reports them in this order (one entry per name, summed over
        the interfaces), :meth:`reset_stats` resets them all, and those with deadlines are
        polled and timed out in this order."""
        per_link: list[Layer] = []
        for iface in self._interfaces:
            per_link += (iface.ethernet, iface.arp)
        self._layers = (*per_link, *self._shared)
        timed = [layer for layer in self._layers if isinstance(layer, _Timed)]
        self._poll_ats = tuple(layer.poll_at for layer in timed)
        self._timeouts = tuple(layer.handle_timeout for layer in timed)

    def _wire(self) -> None:
        """Every callback between layers, and from layers up to drivers, set here and
        nowhere else (MirageOS applies its functors in one place; no layer's constructor
        reaches into another layer)."""
        for iface in self._interfaces:
            self._wire_link(iface)
        ip4, icmp, ip6, icmp6, ip = self.ipv4, self.icmp, self.ipv6, self.icmp6, self.ip
        udp, tcp = self.udp, self.tcp
        # IPv4 and IPv6 demultiplex by protocol; ICMP and ICMPv6 report what they cannot
        # deliver (RFC 1122 3.2.2.1, RFC 4443 3.1, 3.3, 3.4).
        ip4.protocols[IpProto.ICMP] = icmp.receive
        ip4.protocols[IpProto.UDP] = udp.receive
        ip4.protocols[IpProto.TCP] = tcp.receive
        ip4.on_unknown_protocol = icmp.protocol_unreachable
        ip4.on_reassembly_timeout = icmp.reassembly_timeout
        ip6.protocols[NextHeader.ICMPV6] = icmp6.receive
        ip6.protocols[NextHeader.UDP] = udp.receive
        ip6.protocols[NextHeader.TCP] = tcp.receive
        ip6.on_parameter_problem = icmp6.parameter_problem
        ip6.on_reassembly_timeout = icmp6.reassembly_timeout
        ip6.on_neighbour_failed = self.forwarder.neighbour_failed6
        # ICMP errors go to the transport whose datagram they quote (RFC 1122 3.2.2),
        # through the dual-family facade, which gives them one shape for both families.
        for proto in (IpProto.UDP, IpProto.TCP, IpProto.ICMP):
            icmp.error_handlers[proto] = ip.icmp_error
        for next_header in (NextHeader.UDP, NextHeader.TCP, NextHeader.ICMPV6):
            icmp6.error_handlers[next_header] = ip.icmp6_error
        for proto in (IpProto.UDP, IpProto.TCP):
            icmp.unresolved_handlers[proto] = ip.unresolved
            icmp6.unresolved_handlers[proto] = ip.unresolved6
        ip.error_handlers[IpProto.UDP] = udp.ip_error
        ip.unresolved_handlers[IpProto.UDP] = udp.unresolved
        ip.error_handlers[IpProto.TCP] = tcp.ip_error
        ip.unresolved_handlers[IpProto.TCP] = tcp.ip_unresolved
        # Up to the drivers: TCP's events to its transports (acknowledgements held until
        # _rearm flushes them, once per turn of the loop), echo replies and the errors
        # quoting an echo request to ping, loopback and address configuration to the stack.
        tcp.on_event = tcp_driver.deliver_event
        tcp.on_flushed = tcp_driver.after_input
        tcp.coalesce_acks = True
        tcp.gro = True  # _rearm ends every batch of frames with flush_acks
        pinger = self._pinger
        icmp.on_echo_reply = pinger.echo_reply
        icmp6.on_echo_reply = pinger.echo_reply
        ip.error_handlers[IpProto.ICMP] = pinger.echo_error
        ip.error_handlers[NextHeader.ICMPV6] = pinger.echo_error
        ip4.loopback = self._loopback
        ip6.loopback = self._loopback
        ip6.on_addrconf_event = self._on_addrconf_event
        # The packet hooks' rejections (ICMP, or a TCP reset sent through IP's output), and
        # Router Solicitations to the advertiser.
        ip4.on_verdict = ip6.on_verdict = self.forwarder.verdict
        self.forwarder.send_reset = self._send_reset
        ip6.on_router_solicit = self._on_router_solicit

    def _wire_link(self, iface: Interface) -> None:
        """The callbacks of what belongs to one interface (its Ethernet layer and ARP) into
        the layers every interface shares."""
        eth, arp = iface.ethernet, iface.arp
        # Ethernet demultiplexes by EtherType (RFC 894, RFC 826, RFC 2464), and hands each
        # frame up with the interface's index.
        eth.handlers[EtherType.ARP] = arp.receive
        eth.handlers[EtherType.IPV4] = self.ipv4.receive
        eth.handlers[EtherType.IPV6] = self.ipv6.receive
        # ARP asks IPv4 which of the interface's addresses a request goes out from, and
        # tells ICMP of the datagrams stranded by a neighbour that never answered.
        arp.source_selector = iface.ip4.source_for
        arp.on_failed = self.forwarder.neighbour_failed4

    # -- lifecycle -----------------------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        link: Link,
        *,
        ipv4: str | None = None,
        gateway: str | None = None,
        ipv6: str | None = None,
        dhcp: bool = False,
        dns: list[str] | None = None,
        hostname: str | None = None,
        config: StackConfig | None = None,
        rng: Rng | None = None,
        close_link: bool = True,
    ) -> Stack:
        """Start a stack on ``link``.

        Args:
            link: any :class:`~netstack.link.Link`.
            ipv4: this host's address and prefix length, ``"198.18.0.2/24"``.
            gateway: the default router, on the link.
            ipv6: an address with prefix length, or ``"auto"``.
            dhcp: configure IPv4 from a DHCP server before returning.
            dns: name servers for the stack's resolver.
            hostname: this host's name.
            config: tunables (:class:`StackConfig`).
            rng: the source of randomness (ISNs, ports, identifiers); a seeded
                :class:`random.Random` makes a run repeatable. Defaults to the OS's.
            close_link: disconnect ``link`` when the stack closes.

        With ``ipv6``, IPv6 is turned on: a link-local address, router solicitation, and
        (``"auto"``) SLAAC addresses from the prefixes routers advertise, or the static
        address given. ``open`` returns once duplicate address detection has finished for
        the link-local and static addresses (SLAAC addresses follow when a router answers).

        Raises:
            ValueError: a malformed address, or a gateway off every configured network.
            AddressInUseError: duplicate address detection found the static IPv6 address in
                use on the link.
            TimeoutError: ``dhcp=True`` and no DHCP server gave a lease in time
                (``StackConfig.dhcp_timeout``).
        """
        iface6 = None
        if ipv6 is not None and ipv6 != "auto":
            iface6 = parse_ip_interface(ipv6)
            if iface6.version != 6:
                raise ValueError(f"ipv6={ipv6!r} is not an IPv6 address")
        if dhcp and ipv4 is not None:
            raise ValueError("give ipv4= or dhcp=True, not both")
        static_dns = [format_ip(parse_ip(server, what="dns server")) for server in dns or ()]
        iface = parse_ipv4_interface(ipv4) if ipv4 is not None else None
        gw = parse_ipv4(gateway, what="gateway") if gateway is not None else None
        stack = cls(link, config=config, rng=rng, hostname=hostname, close_link=close_link)
        stack._static_dns = static_dns
        try:
            await stack._start(stack._interfaces[0])
            if iface is not None:
                stack.add_address(str(iface))
            if gw is not None:
                stack.set_gateway(format_ipv4(gw))
            if ipv6 is not None:
                stack.ipv6.start(stack.loop.time())
                if iface6 is not None:
                    stack.add_address(str(iface6))
                stack.touch()
                await stack.wait_ipv6_ready()
            if dhcp:
                from .drivers import dhcp as dhcp_driver

                stack.dhcp = await dhcp_driver.configure(
                    stack,
                    hostname=hostname,
                    timeout=stack.config.dhcp_timeout,
                    config=stack.config.dhcp,
                )
        except BaseException:
            await stack.close()
            raise
        return stack

    async def _start(self, iface: Interface) -> None:
        # In a context of its own: the link's callbacks are the stack's, not those of the code
        # that opened it (under netstack.use, say).
        iface.listen_task = self.loop.create_task(
            self._listen(iface), name=f"netstack-rx-{iface.link!r}", context=contextvars.Context()
        )
        # One turn of the loop: the task's first step registers the frame callback, so
        # nothing sent to this host from now on is missed.
        await asyncio.sleep(0)

    async def _listen(self, iface: Interface) -> None:
        try:
            link = iface.link
            on_frame = self._frame_handler(iface.ethernet)
            if offloads_of(link):
                on_offload = self._offload_frame_handler(iface.ethernet, on_frame)
                await link.listen(on_frame, on_offload_frame=on_offload)  # type: ignore[call-arg]
            else:
                await link.listen(on_frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("link %r failed: %s", iface.link, exc)
            self._pinger.fail_all(LinkError(f"the link failed: {exc}"))

    async def __aenter__(self) -> Stack:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def rng(self) -> Rng:
        """The source of randomness (given to :meth:`open`, else the operating system's)."""
        return self._rng

    async def close(self) -> None:
        """Close every endpoint, fail every waiter, stop the receive loops and (unless
        ``close_link=False``) disconnect the links. Safe to call twice."""
        if self._closed:
            return
        if self.dhcp is not None:
            # RFC 2131 4.4.6: give the address back (a RELEASE) while UDP still works.
            with contextlib.suppress(Exception):
                await self.dhcp.close()
        self._closed = True
        for endpoint in list(self._endpoints):
            endpoint.close()
        for server in list(self._servers):
            server.close()
        gone = ConnectionAbortedError(errno.ECONNABORTED, "the stack was closed")
        tcp_driver.abort_all(self, gone)
        self._pinger.fail_all(ClosedError("the stack was closed"))
        self._timer.cancel()
        for iface in self._interfaces:
            await self._stop(iface, iface.close_link)
        await asyncio.sleep(0)  # let connection_lost callbacks run

    async def _stop(self, iface: Interface, disconnect: bool) -> None:
        """Stop an interface's transmit queue and receive loop, and disconnect its link
        with ``disconnect``."""
        if iface.queued is not None:
            await iface.queued.close()
        if disconnect:
            with contextlib.suppress(Exception):
                await iface.link.disconnect()
        task = iface.listen_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the stack is closed")

    # -- the receive path and time -------------------------------------------------------------
    def _frame_handler(self, eth: EthernetLayer) -> Callable[[memoryview], None]:
        """The frame callback of one interface's link (a closure: no call more per frame
        than a bound method would cost)."""
        receive = eth.receive
        loop = self.loop
        tcp = self.tcp
        ipv4, ipv6 = self.ipv4, self.ipv6

        def on_frame(frame: memoryview) -> None:
            dispatched = tcp.events_dispatched
            try:
                held = tcp._gro
                ack = tcp._ack
                ip: IPv4Layer | IPv6Layer = ipv4
                if (
                    held is not None
                    and held.owner is eth
                    and (ip := ipv4 if held.l4 == 34 else ipv6).hooks is None
                    and tcp.merge_frame(held, frame, loop.time())
                ) or (
                    ack is not None
                    and ack.owner is eth
                    and (ip := ipv4 if ack.l4 == 34 else ipv6).hooks is None
                    and tcp.merge_ack_frame(ack, frame)
                ):
                    # The next frame of a burst TCP holds, or the next plain ACK of the
                    # connection whose ACK it holds, merged from the frame (GRO): counted
                    # as the Ethernet and IP layers would have counted it.
                    n = len(frame)
                    eth.rx_packets += 1
                    eth.rx_bytes += n
                    ip.rx_packets += 1
                    ip.rx_bytes += n - 14
                    ip.delivered += 1
                else:
                    receive(frame, loop.time())
                    held = tcp._gro
                    if held is not None and held.owner is None:
                        tcp.note_frame(frame, eth)
                    ack = tcp._ack
                    if ack is not None and ack.owner is None and ack.count > 1:
                        # A run of ACKs (a lone one, as in a request and its answer, is
                        # not worth a template): the next ones from the frame.
                        tcp.note_ack_frame(frame, eth)
            except Exception:  # a bug: count it, never let it into the event loop
                self.internal_errors += 1
                log.exception("internal error while receiving a frame")
            woke = tcp.events_dispatched != dispatched
            if not self._rearm_scheduled:
                self._rearm_scheduled = True
                self._rearm_handle = loop.call_soon(self._rearm)
                self._rearm_behind = woke
            elif woke and not self._rearm_behind:
                self._rearm_later()

        return on_frame

    def _offload_frame_handler(
        self, eth: EthernetLayer, on_frame: Callable[[memoryview], None]
    ) -> Callable[[memoryview, FrameMeta], None]:
        """The callback for frames that come with offload metadata: bad metadata is a
        counted drop (``offload_*`` in the Ethernet layer's drops), a trusted checksum is
        not verified again, a TCP super-segment goes up whole (TCP takes segments larger
        than the MSS), UDP super-datagrams are cut into their datagrams first."""
        ip = self.ip

        def on_offload_frame(frame: memoryview, meta: FrameMeta) -> None:
            if meta.flags == DATA_VALID and not meta.gso_type and len(frame) <= _SMALL:
                # A hint on a small frame (a DNS query, an ACK): verifying its checksum
                # costs less than judging the hint (csum_trusted parses the headers), so it
                # goes up as the plain frame it is.
                on_frame(frame)
                return
            reason = offload.check(frame, meta)
            if reason is not None:
                eth._drop(reason, meta)
                return
            eth.rx_offloaded += 1
            if meta.gso_type:
                eth.rx_super += 1
            if self._routing or meta.gso_type & ~offload.GSO_ECN == offload.GSO_UDP_L4:
                # A router forwards, and its hooks rewrite, what the wire carries: the
                # pieces, each with its checksum complete (verified again on the way up).
                for piece in offload.segment(frame, meta):
                    on_frame(memoryview(piece))
                return
            if not offload.csum_trusted(frame, meta):
                on_frame(frame)
                return
            ip.csum_trusted = True
            try:
                on_frame(frame)
            finally:
                ip.csum_trusted = False

        return on_offload_frame

    def _rearm_later(self) -> None:
        """Move the scheduled :meth:`_rearm` behind what a frame's events just woke (an
        application's task whose read completed, a server's new handler): what that sends
        then carries the ACKs the frames asked for, which ``_rearm`` would otherwise send
        first as pure ACKs. A burst that begins with a frame that woke nobody (a peer's
        quick ACK before its request, as kernels send) needs it; at most once a burst, so a
        burst of data costs no more handles."""
        self._rearm_behind = True
        handle = self._rearm_handle
        if handle is not None:
            handle.cancel()
        self._rearm_handle = self.loop.call_soon(self._rearm)

    def _on_frame(self, frame: memoryview) -> None:
        """A frame as if from the first interface's link."""
        self._frame_handler(self._interfaces[0].ethernet)(frame)

    def touch(self) -> None:
        """Something may have set a new deadline, or left an acknowledgement to flush:
        re-arm the timer at the end of this turn of the loop (the drivers call this after
        handing a machine a user's input)."""
        if not self._rearm_scheduled and not self._closed:
            self._rearm_scheduled = True
            self._rearm_handle = self.loop.call_soon(self._rearm)
            self._rearm_behind = False

    def _poll_at(self) -> float | None:
        at = None
        for poll_at in self._poll_ats:
            other = poll_at()
            if other is not None and (at is None or other < at):
                at = other
        return at

    def _rearm(self) -> None:
        self._rearm_scheduled = False
        self._rearm_handle = None
        if self._closed:
            return
        self.tcp.flush_acks(self.loop.time())
        self._timer.rearm_earlier(self._poll_at())

    def _on_timer(self, now: float) -> None:
        try:
            for handle_timeout in self._timeouts:
                handle_timeout(now)
        except Exception:
            self.internal_errors += 1
            log.exception("internal error in a timer")
        self._rearm()

    def _loopback(self, frame: bytearray, ifindex: int) -> None:
        self.loopback_packets += 1
        self.loop.call_soon(self._loopback_deliver, frame, ifindex)

    def _loopback_deliver(self, frame: bytearray, ifindex: int) -> None:
        """A datagram to one of our own addresses, received as if on interface
        ``ifindex``."""
        if self._closed:
            return
        iface = next((i for i in self._interfaces if i.index == ifindex), None)
        if iface is None:
            return  # the interface went away meanwhile
        try:
            view = memoryview(frame)[14:]
            mac = iface.ethernet.mac
            if view and view[0] >> 4 == 6:
                self.ipv6.receive(view, mac, False, self.loop.time(), ifindex)
            else:
                self.ipv4.receive(view, mac, False, self.loop.time(), ifindex)
        except Exception:
            self.internal_errors += 1
            log.exception("internal error in loopback delivery")
        self.touch()

    # -- interfaces ----------------------------------------------------------------------------
    @property
    def interfaces(self) -> list[Interface]:
        """The interfaces, the first (made by :meth:`open`) first."""
        return list(self._interfaces)

    @property
    def link(self) -> Link:
        """The first interface's link."""
        return self._interfaces[0].link

    @property
    def ethernet(self) -> EthernetLayer:
        """The first interface's Ethernet layer."""
        return self._interfaces[0].ethernet

    @property
    def arp(self) -> ArpLayer:
        """The first interface's ARP."""
        return self._interfaces[0].arp

    @property
    def mac(self) -> str:
        """The first interface's Ethernet address."""
        return self._interfaces[0].mac

    def interface(self, key: Interface | str | int) -> Interface:
        """The interface ``key`` names: the object itself, its name (``"eth1"``) or its index
        (the scope id of its link-local addresses).

        Raises:
            ValueError: no such interface on this stack.
        """
        for iface in self._interfaces:
            if key is iface or (
                not isinstance(key, (Interface, bool)) and (key == iface.name or key == iface.index)
            ):
                return iface
        raise ValueError(f"{key!r} is not an interface of this stack")

    def scope_id(self, zone: str | int) -> int:
        """The index of the interface a zone names (RFC 4007 11: ``fe80::1%eth1`` or
        ``fe80::1%2``; a socket address's scope id).

        Raises:
            ValueError: no such interface on this stack.
        """
        if isinstance(zone, str) and zone.isdigit():
            zone = int(zone)
        return self.interface(zone).index

    async def add_interface(
        self,
        link: Link,
        *,
        ipv4: str | None = None,
        ipv6: str | None = None,
        name: str | None = None,
        close_link: bool = True,
    ) -> Interface:
        """Attach another link: an interface with its own Ethernet layer, ARP and neighbour
        caches, addresses and IPv6 address configuration.

        Args:
            link: any :class:`~netstack.link.Link` no interface of this stack uses.
            ipv4: the interface's address and prefix length, ``"198.18.2.1/24"``; its network
                becomes a connected route out of this interface.
            ipv6: an address with prefix length, or ``"auto"`` (SLAAC); either turns IPv6 on
                for this interface (a link-local address of its own, router solicitation).
            name: what to call it (default ``eth<n>``); a zone (``fe80::1%eth1``) names it.
            close_link: disconnect ``link`` when the interface is removed or the stack closes.

        Returns once duplicate address detection has finished for the link-local and static
        IPv6 addresses, as :meth:`open` does.

        Raises:
            TypeError: ``link`` is not a link.
            ValueError: a malformed address, one the stack has already, a network that
                overlaps another interface's, a link or name in use.
            AddressInUseError: duplicate address detection found the static IPv6 address in
                use on the link.
        """
        self._check_open()
        if not isinstance(link, Link):
            raise TypeError(f"{link!r} does not implement the netstack Link interface")
        if any(i.link is link for i in self._interfaces):
            raise ValueError(f"{link!r} is already an interface of this stack")
        iface4 = parse_ipv4_interface(ipv4) if ipv4 is not None else None
        iface6 = None
        if ipv6 is not None and ipv6 != "auto":
            iface6 = parse_ip_interface(ipv6)
            if iface6.version != 6:
                raise ValueError(f"ipv6={ipv6!r} is not an IPv6 address")
        index = self._next_index + 1
        if name is None:
            name = f"eth{index - 1}"
        if not isinstance(name, str) or not name or name.isdigit() or "%" in name:
            raise ValueError(f"an interface name is a string that is not a number: {name!r}")
        if any(i.name == name for i in self._interfaces):
            raise ValueError(f"an interface is called {name!r} already")
        # Addresses the stack has, or networks of other interfaces, refused before anything
        # is made.
        if iface4 is not None:
            self.ipv4.check_address(iface4.ip.packed, iface4.network.prefixlen, index)
        if iface6 is not None:
            self.ipv6.check_address(iface6.ip.packed, iface6.network.prefixlen, index)
        self._next_index = index
        transmit, queued = self._transmitter(link)
        ethernet = EthernetLayer(link.mac, transmit, index)
        ethernet.offloads = NO_OFFLOADS if self._routing else tx_offloads_of(link)
        arp = ArpLayer(ethernet, self.config.arp)
        ip4 = self.ipv4.add_interface(index, ethernet, arp, link.mtu)
        ip6 = self.ipv6.add_interface(index, ethernet, link.mtu, name.encode())
        iface = Interface(name, index, link, ethernet, arp, ip4, ip6, self.ipv6, queued,
                          close_link)  # fmt: skip
        self._interfaces.append(iface)
        self._registry_changed()
        self._wire_link(iface)
        try:
            await self._start(iface)
            now = self.loop.time()
            if iface4 is not None:
                self.ipv4.add_address(iface4.ip.packed, iface4.network.prefixlen, now, index)
            if ipv6 is not None:
                self.ipv6.start(now, index)
                if iface6 is not None:
                    self.ipv6.add_address(iface6.ip.packed, iface6.network.prefixlen, now,
                                          ifindex=index)  # fmt: skip
                self.touch()
                await self.wait_ipv6_ready(interface=iface)
            self.touch()
        except BaseException:
            # The link stays the caller's: it is not disconnected.
            if not self._closed and not iface.removed:
                await self._detach(iface, disconnect=False)
            raise
        return iface

    async def remove_interface(self, interface: Interface | str | int) -> None:
        """Detach an interface: its addresses and every route out of it go, the TCP
        connections through it (or from one of its addresses) fail with ``ENETDOWN``, its
        link is disconnected (unless added with ``close_link=False``).

        Raises:
            ValueError: not an interface of this stack, or its last one.
        """
        self._check_open()
        iface = self.interface(interface)
        if len(self._interfaces) == 1:
            raise ValueError("a stack keeps one interface at least: close() it instead")
        await self._detach(iface, disconnect=iface.close_link)

    async def _detach(self, iface: Interface, *, disconnect: bool) -> None:
        index = iface.index
        if self.dhcp is not None and iface is self._interfaces[0]:
            with contextlib.suppress(Exception):
                await self.dhcp.close()
            self.dhcp = None
        mine = {a.ip for a in iface.ip4.addresses} | iface.ip6.local | iface.ip6.tentative

        def through(conn: TcpConnection) -> bool:
            out = conn.route.iface if conn.route is not None else None
            return (out is not None and out.index == index) or conn.local[0] in mine

        # The connections reset while the link still carries their resets.
        gone = OSError(errno.ENETDOWN, f"interface {iface.name} was removed")
        tcp_driver.fail_where(self, gone, through)
        iface.removed = True
        self._interfaces.remove(iface)
        self.ipv4.remove_interface(index)
        self.ipv6.remove_interface(index)
        self.radv.forget(index)
        self._registry_changed()
        await self._stop(iface, disconnect)
        self._addrconf_changed.set()
        self.touch()

    # -- addresses and routes ------------------------------------------------------------------
    @property
    def addresses(self) -> list[InterfaceAddress | InterfaceAddress6]:
        """This host's addresses: :class:`ipaddress.IPv4Interface` and
        :class:`ipaddress.IPv6Interface` objects that also have a ``state`` ("preferred";
        IPv6 addresses may be "tentative", "deprecated" or "duplicate") and the name of their
        ``interface``. IPv4 addresses first, the first interface's first."""
        every = [a for iface in self._interfaces for a in iface.addresses]
        return [a for a in every if a.version == 4] + [a for a in every if a.version == 6]

    @property
    def routes(self) -> list[Route]:
        """The routing table: ``(network, gateway or None, source)`` tuples with the
        ``interface`` (name) and ``metric`` of each as attributes; IPv4 routes, longest prefix
        first, then IPv6 ones (static, then each interface's on-link prefixes and default
        routers)."""
        names = {i.index: i.name for i in self._interfaces}
        out = []
        for r in self.ipv4.route_table:
            out.append(Route(
                ipaddress.IPv4Network((r.net, r.prefix)),
                ipaddress.IPv4Address(r.gateway) if r.gateway else None,
                ipaddress.IPv4Address(r.source) if r.source else None,
                names.get(r.ifindex) if r.ifindex is not None else None,
                r.metric,
            ))  # fmt: skip
        for network, gateway, ifindex, metric in self.ipv6.route_table:
            name = names.get(ifindex) if ifindex is not None else None
            out.append(Route(network, gateway, None, name, metric))
        return out

    @property
    def dns_servers(self) -> list[str]:
        """The resolver's name servers: those given to :meth:`open`, then those DHCP and IPv6
        Router Advertisements (RDNSS, RFC 8106) announced."""
        out: list[str] = []
        lease = self.dhcp.lease if self.dhcp is not None else None
        learnt = [str(a) for a in getattr(lease, "dns_servers", ()) or ()]
        for server in [*self._static_dns, *learnt, *self.ipv6_dns_servers]:
            text = format_ip(parse_ip(server)) if isinstance(server, str) else format_ip(server)
            if text not in out:
                out.append(text)
        return out

    @property
    def dns(self) -> Resolver:
        """The stub resolver (:class:`netstack.dns.Resolver`) over this stack's UDP and TCP,
        asking :attr:`dns_servers`."""
        if self._resolver is None:
            from .dns import Resolver

            # No servers of its own: it asks dns_servers, which follow DHCP and RDNSS. Its
            # search list starts with the domains Router Advertisements gave so far.
            self._resolver = Resolver(self, search=self.ipv6_search_domains)
        return self._resolver

    async def resolve(self, name: str, family: int = 0) -> list[str]:
        """The addresses of ``name`` (IPv6 first), as strings; IP literals come back as
        they are.

        Raises:
            socket.gaierror: the name does not exist, or has no address of that family.
            TimeoutError: no name server answered.
        """
        self._check_open()
        return await self.dns.resolve(name, family)

    async def wait_ipv6_ready(
        self, timeout: float | None = None, *, interface: Interface | str | int | None = None
    ) -> None:
        """Wait until no link-local or static IPv6 address (of ``interface``, or of any
        interface) is tentative any more.

        Raises:
            AddressInUseError: a static address turned out to be a duplicate.
            TimeoutError: still tentative after ``timeout`` seconds.
            ValueError: not an interface of this stack.
        """
        limit = self.config.ipv6_ready_timeout if timeout is None else timeout
        only = self.interface(interface) if interface is not None else None
        async with asyncio.timeout(limit):
            while True:
                waiting = False
                for iface in self._interfaces if only is None else [only]:
                    if iface.removed:
                        raise ValueError(f"interface {iface.name} was removed")
                    for info in iface.ip6.addrconf.addresses:
                        if info.origin is addrconf.Origin.SLAAC:
                            continue
                        if info.state is addrconf.AddressState.TENTATIVE:
                            waiting = True
                        elif (
                            info.state is addrconf.AddressState.DUPLICATE
                            and info.origin is addrconf.Origin.STATIC
                        ):
                            raise AddressInUseError(
                                f"{format_ip(info.address)} is already used on the link "
                                "(duplicate address detection)"
                            )
                if not waiting:
                    return
                self._addrconf_changed.clear()
                await self._addrconf_changed.wait()

    def _on_addrconf_event(self, event: object, ifindex: int) -> None:
        if isinstance(event, addrconf.DnsServersChanged):
            self.ipv6_dns_servers = tuple(format_ip(a) for a in event.servers)
        elif isinstance(event, addrconf.SearchDomainsChanged):
            self._learn_search_domains(event.domains)
        log.debug("ipv6 on interface %d: %s", ifindex, event)
        self._addrconf_changed.set()

    def _learn_search_domains(self, domains: tuple[str, ...]) -> None:
        """RFC 8106 5.3.1: the DNS Search List goes into the resolver's configuration. The
        domains a Router Advertisement withdrew (or let expire) leave ``stack.dns.search``,
        new ones are added after those already there; domains put there by other hands
        stay."""
        old, self.ipv6_search_domains = self.ipv6_search_domains, tuple(domains)
        if self._resolver is None:
            return
        search = self._resolver.search
        search[:] = [d for d in search if d not in old or d in domains]
        search.extend(d for d in domains if d not in search)

    def add_address(self, address: str, interface: Interface | str | int | None = None) -> None:
        """Add ``"a.b.c.d/len"`` (announced with gratuitous ARP) or ``"fd00::2/64"`` (which
        turns IPv6 on and is tentative until duplicate address detection finishes) to
        ``interface`` (default: the first).

        Raises:
            ValueError: malformed, already configured, a network that overlaps another
                interface's, or not an interface of this stack.
        """
        self._check_open()
        iface = parse_ip_interface(address)
        index = self.interface(interface).index if interface is not None else 0
        if iface.version == 6:
            self.ipv6.add_address(iface.ip.packed, iface.network.prefixlen, self.loop.time(),
                                  ifindex=index)  # fmt: skip
        else:
            self.ipv4.add_address(iface.ip.packed, iface.network.prefixlen, self.loop.time(),
                                  index)  # fmt: skip
        self.touch()

    def remove_address(self, address: str) -> None:
        """Remove an address (given with or without its prefix length), of any interface."""
        self._check_open()
        ip = ipaddress.ip_interface(address).ip
        if ip.version == 6:
            self.ipv6.remove_address(ip.packed, self.loop.time())
            self.touch()
        else:
            self.ipv4.remove_address(ip.packed)

    # -- forwarding, packet hooks, router advertisements ---------------------------------------
    @property
    def forwarding(self) -> bool:
        """Whether the stack routes IPv4 and IPv6 between its interfaces (RFC 1812, RFC 8200;
        :mod:`netstack.proto.ip.forward` says what it forwards and what it drops). Off by
        default: a host drops datagrams that are not for it."""
        return self.ipv4.forward is not None

    @forwarding.setter
    def forwarding(self, on: bool) -> None:
        if not isinstance(on, bool):
            raise ValueError(f"forwarding is True or False, not {on!r}")
        fwd = self.forwarder
        self.ipv4.forward = fwd.forward4 if on else None
        self.ipv6.forward = fwd.forward6 if on else None
        # RFC 4861 4.4: a router's Neighbor Advertisements carry the Router flag.
        self.ipv6.is_router = on
        self._apply_offloads()

    @property
    def send_redirects(self) -> bool:
        """Whether a forwarding stack sends ICMP / ICMPv6 Redirects (RFC 1812 5.2.7.2,
        RFC 4861 8.2); off by default."""
        return self.forwarder.config.send_redirects

    @send_redirects.setter
    def send_redirects(self, on: bool) -> None:
        self.forwarder.config.send_redirects = bool(on)

    @property
    def rp_filter(self) -> str:
        """Reverse-path filtering of forwarded datagrams (RFC 3704): ``"strict"`` (the route
        back to the source leaves by the interface the datagram came in on), ``"loose"`` (a
        route back exists; a default route counts) or ``"off"`` (the default). A datagram
        that fails is a counted drop (``stats()["forward"]["drops"]["rpf_strict"]``)."""
        return self.forwarder.config.rp_filter

    @rp_filter.setter
    def rp_filter(self, mode: str) -> None:
        if mode not in RP_FILTERS:
            raise ValueError(f"rp_filter must be one of {RP_FILTERS}, not {mode!r}")
        self.forwarder.config.rp_filter = mode

    @property
    def packet_hooks(self) -> PacketHooks | None:
        """The :class:`~netstack.proto.ip.hooks.PacketHooks` the IP layers call at the five
        hook points (the packet filter and NAT install theirs here; None: no hooks, and no
        cost). One object: a filter and a NAT together install one that calls both."""
        return self.forwarder.hooks

    @packet_hooks.setter
    def packet_hooks(self, hooks: PacketHooks | None) -> None:
        if hooks is not None and not callable(getattr(hooks, "run", None)):
            raise TypeError(f"{hooks!r} has no run(hook, datagram, ingress, egress, now)")
        self.forwarder.hooks = self.ipv4.hooks = self.ipv6.hooks = hooks
        self._apply_offloads()

    # -- catch-all: terminating flows to every address (a user-mode gateway) ------------------
    def catch_all(
        self,
        *,
        tcp: TcpCatchAll | None = None,
        udp: UdpCatchAll | None = None,
        echo: Callable[[IPv4Header | IPv6Header, int, memoryview, int, float], None] | None = None,
    ) -> None:
        """Terminate flows to every address, not only the stack's own, as a user-mode
        gateway (slirp, vpnkit, gVisor's forwarders) does for its guest: with any handler
        given, unicast datagrams to any address are taken as the stack's (IP_TRANSPARENT for
        the whole stack), and what no connection, listener or endpoint takes goes to the
        handler instead of being answered with a reset, a port unreachable or an echo reply:

        - ``tcp(request, now) -> bool``: a SYN (:class:`~netstack.proto.tcp.layer.SynRequest`);
          True takes it, to be answered later with :meth:`accept_caught` or
          :meth:`refuse_caught` (a retransmitted SYN comes again meanwhile: ignore it by
          returning True); False sends the usual reset.
        - ``udp(header, sport, dport, payload, ifindex, now) -> bool``: a datagram (the
          payload is a view valid during the call); True takes it, False sends the port
          unreachable. Answer with :meth:`send_caught_datagram`.
        - ``echo(header, rest, data, ifindex, now)``: an ICMP / ICMPv6 echo request to an
          address not the stack's; answer with :meth:`answer_caught_echo`, or not at all.

        The handlers run on the receive path and must not block. Listeners and endpoints
        bound to a wildcard address take their ports on every address. Called with no
        handler, the stack is a host again. The host's own traffic never meets a handler:
        they are asked only where a datagram would have been dropped or refused.
        """
        on = tcp is not None or udp is not None or echo is not None
        self.ipv4.transparent = self.ipv6.transparent = on
        self.tcp.catch_all = tcp
        self.udp.catch_all = udp
        self.icmp.echo_catch_all = echo
        self.icmp6.echo_catch_all = echo

    def accept_caught(
        self,
        request: SynRequest,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        *,
        config: TcpConfig | None = None,
    ) -> bool:
        """Answer a SYN the ``tcp`` catch-all took with a SYN-ACK; when the handshake
        completes, ``protocol_factory()`` is connected to the connection's transport
        (``connection_made``), as a server's protocol is. A handshake that never completes
        is dropped by TCP's own timers, and the protocol is never made.

        Returns:
            Whether the connection was made (False: it exists already, or the stack's
            connection limit is reached -- counted in ``stats()["tcp"]``).
        """
        self._check_open()
        context = contextvars.copy_context()

        def accept(conn: TcpConnection) -> bool:
            try:
                protocol = context.run(protocol_factory)
            except Exception as exc:
                self.loop.call_exception_handler(
                    {"message": "protocol_factory raised", "exception": exc}
                )
                return False
            tcp_driver.TcpTransport(self, conn, protocol, context=context)
            return True

        conn = self.tcp.accept_request(request, accept, self.loop.time(), config)
        self.touch()
        return conn is not None

    def refuse_caught(self, request: SynRequest, error: OSError | None = None) -> None:
        """Answer a SYN the ``tcp`` catch-all took with what connecting to its destination
        met: a reset for ``ECONNREFUSED`` (or no ``error``), ICMP network unreachable for
        ``ENETUNREACH``, host unreachable (ICMPv6 address unreachable) for anything else."""
        self._check_open()
        self.tcp.refuse_request(request, self.loop.time(), error)
        self.touch()

    def send_caught_datagram(
        self,
        src: tuple[bytes, int],
        dst: tuple[bytes, int],
        data: bytes | bytearray | memoryview,
        ifindex: int = 0,
    ) -> None:
        """Send a UDP datagram from any address (``src``, packed address and port), as the
        answer to a datagram the ``udp`` catch-all took from ``dst``.

        Raises:
            NoRouteError: no route to ``dst``.
            MessageTooLargeError: the datagram is too large.
        """
        self._check_open()
        route = self.ip.route(dst[0], src[0], ifindex)
        self.udp.send(route, src[1], dst[1], data, self.loop.time())

    def answer_caught_echo(
        self, request: IPv4Header | IPv6Header, rest: int, data: bytes, ifindex: int = 0
    ) -> None:
        """Answer an echo request the ``echo`` catch-all took: the reply comes from the
        address it was sent to, with its identifier, sequence number and ``data``."""
        self._check_open()
        if isinstance(request, IPv6Header):
            self.icmp6.answer_echo(request, rest, data, self.loop.time(), ifindex)
        else:
            self.icmp.answer_echo(request, rest, data, self.loop.time(), ifindex)

    def _apply_offloads(self) -> None:
        """Offloads serve a host's own traffic. A router (forwarding, or hooks that may
        rewrite datagrams: NAT, the filter) takes and sends only what the wire carries:
        super-segments cut and checksums completed in software on the way in, and none
        built on the way out."""
        self._routing = self.ipv4.forward is not None or self.forwarder.hooks is not None
        for iface in self._interfaces:
            iface.ethernet.offloads = NO_OFFLOADS if self._routing else tx_offloads_of(iface.link)

    def advertise(
        self,
        interface: Interface | str | int,
        *,
        prefixes: list[str] | None = None,
        dns: list[str] | None = None,
        mtu: int | None = None,
        router_lifetime: int = 1800,
        max_interval: float = 600.0,
    ) -> None:
        """Send IPv6 Router Advertisements on ``interface`` and answer Router Solicitations
        there (RFC 4861 6.2), so SLAAC hosts on its link configure themselves: ``prefixes``
        (default: the /64 networks of the interface's own global addresses) on-link and,
        for /64s, for autonomous configuration; ``dns`` as RDNSS (RFC 8106); ``mtu`` as the
        MTU option; ``router_lifetime`` 0 says "not a default router". Calling it again
        replaces the configuration. Set :attr:`forwarding` for the hosts' traffic to go on.

        Raises:
            ValueError: IPv6 is not on for the interface, a malformed prefix or server, or a
                value out of RFC 4861 6.2.1's ranges.
        """
        self._check_open()
        iface = self.interface(interface)
        ip6 = iface.ip6
        if not ip6.enabled:
            raise ValueError(f"IPv6 is not on for {iface.name}")
        if prefixes is None:
            nets = {
                ipaddress.IPv6Interface((a.address, 64)).network
                for a in ip6.addrconf.addresses
                if not is_link_local(a.address) and a.prefix_len == 64
            }
        else:
            nets = set()
            for text in prefixes:
                net = parse_ip_network(text)
                if not isinstance(net, ipaddress.IPv6Network):
                    raise ValueError(f"{text!r} is not an IPv6 prefix")
                nets.add(net)
        servers = []
        for text in dns or ():
            server = parse_ip(text, what="dns server")
            if len(server) != 16:
                raise ValueError(f"{text!r} is not an IPv6 address")
            servers.append(server)
        config = AdvertConfig(
            prefixes=[(n.network_address.packed, n.prefixlen) for n in sorted(nets)],
            dns=servers, mtu=mtu, router_lifetime=router_lifetime, max_interval=max_interval,
        )  # fmt: skip
        now = self.loop.time()
        self.radv.start(ip6, iface.link.mac, config, now)
        # RFC 4291 2.8: a router listens to all-routers, where solicitations go.
        if ALL_ROUTERS not in ip6.groups:
            self.ipv6.join(ALL_ROUTERS, now, iface.index)
        self.touch()

    def stop_advertising(self, interface: Interface | str | int) -> None:
        """Stop the Router Advertisements on ``interface``, with a last one that withdraws
        this router (RFC 4861 6.2.5)."""
        iface = self.interface(interface)
        self.radv.stop(iface.index, self.loop.time())

    def _send_ndp(self, index: int, message: bytes, src: bytes, dst: bytes, now: float) -> None:
        iface = self.ipv6.interfaces.get(index)
        if iface is not None:
            self.ipv6.send_ndp(iface, message, src, dst, now)

    def _on_router_solicit(
        self, iface: IPv6Iface, header: IPv6Header, rs: RouterSolicit, now: float
    ) -> None:
        self.radv.receive_solicit(iface.index, header.src, now)

    def _send_reset(
        self, segment: bytes, src: bytes, dst: bytes, ingress: int | None, now: float
    ) -> None:
        """A TCP reset a hook's REJECT_RESET asked for, from ``src`` (the rejected segment's
        destination) to ``dst``."""
        try:
            if len(dst) == 4:
                route4 = self.ipv4.route(dst, via=ingress or 0)._replace(src=src)
                frame = bytearray(route4.iface.headroom if route4.iface else 34)
                frame += segment
                self.ipv4.output(frame, route4, IpProto.TCP, now)
            else:
                route6 = self.ipv6.route(dst, scope=ingress or 0, via=ingress or 0)
                frame = bytearray(54) + segment
                self.ipv6.output(frame, route6._replace(src=src), NextHeader.TCP, now)
        except OSError as exc:
            self.forwarder.drop("reset_no_route", exc)

    def set_gateway(self, gateway: str | None) -> None:
        """Set (or with None remove) the default route: the one-interface shortcut of
        ``add_route("0.0.0.0/0", gateway)`` that first removes every other IPv4 default
        route (an IPv6 gateway replaces the static IPv6 default routes).

        Raises:
            ValueError: the gateway is not on a configured network.
        """
        self._check_open()
        if gateway is not None and ":" in gateway:
            literal, zone = split_zone(gateway)
            gw6 = parse_ip(literal, what="gateway")
            default6 = ipaddress.IPv6Network("::/0")
            for network, old, _, _ in self.ipv6.route_table:
                if network == default6 and old is not None:
                    with contextlib.suppress(ValueError):  # a router's: not ours to remove
                        self.ipv6.remove_route(default6, old.packed)
            self.ipv6.add_route(default6, gw6, self._gateway6_interface(gw6, zone, None))
            return
        default = ipaddress.IPv4Network("0.0.0.0/0")
        for r in self.ipv4.route_table:
            if r.prefix == 0:
                with contextlib.suppress(ValueError):  # gone with an earlier one
                    self.ipv4.remove_route(default, r.gateway, r.ifindex)
        if gateway is None:
            return
        gw = parse_ipv4(gateway, what="gateway")
        if not any(ipaddress.IPv4Address(gw) in a.network for a in self.ipv4.addresses):
            raise ValueError(f"gateway {gateway} is not on any configured network")
        self.ipv4.add_route(default, gw)

    def add_route(
        self,
        network: str,
        gateway: str | None = None,
        interface: Interface | str | int | None = None,
        metric: int = 0,
    ) -> None:
        """Route ``network`` (``"a.b.c.d/len"`` or ``"fd00:1::/64"``) via ``gateway``, or
        on-link when None, out of ``interface``. Without an interface, the one on whose
        network the gateway (for an on-link route, the destination) lies is found when
        sending. Routes are chosen by longest prefix, then lowest ``metric``.

        Raises:
            ValueError: a malformed network or gateway, one of another family than the
                network, a link-local IPv6 gateway without its interface on a stack with
                several, a negative metric, or an interface not on this stack.
        """
        self._check_open()
        net, gw, index = self._route_args(network, gateway, interface)
        if isinstance(metric, bool) or not isinstance(metric, int) or metric < 0:
            raise ValueError(f"metric must be an int >= 0, got {metric!r}")
        if isinstance(net, ipaddress.IPv6Network):
            self.ipv6.add_route(net, gw, index, metric)
        else:
            self.ipv4.add_route(net, gw, index, metric)

    def remove_route(
        self,
        network: str,
        gateway: str | None = None,
        interface: Interface | str | int | None = None,
    ) -> None:
        """Remove the routes to ``network`` via ``gateway`` (out of ``interface``, when
        given) that :meth:`add_route` (or :meth:`set_gateway`, or DHCP) made.

        Raises:
            ValueError: no such route, or bad arguments as for :meth:`add_route`.
        """
        self._check_open()
        net, gw, index = self._route_args(network, gateway, interface)
        if isinstance(net, ipaddress.IPv6Network):
            self.ipv6.remove_route(net, gw, index)
        else:
            self.ipv4.remove_route(net, gw, index)

    def _route_args(
        self, network: str, gateway: str | None, interface: Interface | str | int | None
    ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, bytes | None, int | None]:
        net = parse_ip_network(network)
        index = self.interface(interface).index if interface is not None else None
        if gateway is None:
            return net, None, index
        if not isinstance(gateway, str):
            raise ValueError(f"gateway must be a string, got {gateway!r}")
        literal, zone = split_zone(gateway)
        gw = parse_ip(literal, what="gateway")
        if (len(gw) == 16) != (net.version == 6):
            raise ValueError(f"gateway {gateway} is not of the family of {network}")
        if len(gw) == 16:
            index = self._gateway6_interface(gw, zone, index)
        return net, gw, index

    def _gateway6_interface(self, gw: bytes, zone: str | None, index: int | None) -> int | None:
        """The interface of an IPv6 gateway: its zone's, or the one given; a link-local
        gateway needs one when the stack has more than one interface (RFC 4007 6)."""
        if zone is not None:
            by_zone = self.scope_id(zone)
            if index is not None and index != by_zone:
                raise ValueError(f"gateway zone %{zone} is not interface {index}")
            return by_zone
        if index is None and is_link_local(gw) and len(self._interfaces) > 1:
            raise ValueError(
                f"gateway {format_ip(gw)} is link-local: give its interface "
                "(interface= or a zone, fe80::1%eth1)"
            )
        return index

    # -- ICMP echo -----------------------------------------------------------------------------
    async def ping(self, host: str, *, timeout: float = 1.0, size: int = 56) -> float:
        """Send one ICMP echo request and wait for the reply.

        Args:
            host: an IPv4 or IPv6 address, or a name (resolved by :attr:`dns`); a link-local
                IPv6 address names its interface with a zone (``fe80::1%eth1``) on a stack
                with several.
            timeout: seconds to wait.
            size: bytes of echo data (as ``ping -s``); larger than the MTU means fragments.

        Returns:
            The round-trip time in seconds.

        Raises:
            TimeoutError: no reply in time.
            OSError: an ICMP error came back (e.g. host unreachable), or no route.
            ValueError: a bad address or size.
        """
        self._check_open()
        if isinstance(host, str) and not _is_literal(host):
            host = (await self.resolve(host))[0]
        dst, scope = self._scoped(host, "host")
        return await self._pinger.ping(dst, host, timeout, size, scope)

    def _scoped(self, host: object, what: str) -> tuple[bytes, int]:
        """An address literal and the interface its zone names (0 without one).

        Raises:
            ValueError: a malformed address, or a zone that names no interface.
        """
        if not isinstance(host, str):
            raise ValueError(f"{what} must be a string, got {type(host).__name__}")
        literal, zone = split_zone(host)
        ip = parse_ip(literal, what=what)
        return ip, self.scope_id(zone) if zone is not None else 0

    def _local_ip(self, host: str | None, family: int, what: str) -> bytes:
        """The address to bind for ``host``: a wildcard (of both families for None or "" with
        no family given) or one of this host's addresses.

        Raises:
            ValueError: a malformed address, or one of another family than ``family``.
            OSError: ``EADDRNOTAVAIL`` for an address that is not this host's.
        """
        if host in (None, ""):
            if family == socket.AF_INET:
                return ANY4
            if family == socket.AF_INET6:
                return ANY6
            return DUAL
        ip, _ = self._scoped(host, what)
        if family and (len(ip) == 4) != (family == socket.AF_INET):
            raise ValueError(f"{what} {host!r} is not of the address family asked for")
        if ip in (ANY4, ANY6):
            return ip
        if not self.ip.is_local(ip) and not (len(ip) == 4 and ip in self.ipv4._broadcasts):
            raise OSError(errno.EADDRNOTAVAIL, f"{host} is not an address of this host")
        return ip

    # -- UDP -----------------------------------------------------------------------------------
    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], _P],
        local_addr: tuple[str | None, int] | None = None,
        remote_addr: tuple[str, int] | None = None,
        *,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        reuse_port: bool | None = None,
        allow_broadcast: bool | None = None,
        sock: Any = None,
        reuse_address: bool | None = None,
    ) -> tuple[DatagramTransport, _P]:
        """A UDP endpoint, as :meth:`asyncio.loop.create_datagram_endpoint`.

        Args:
            protocol_factory: makes the :class:`asyncio.DatagramProtocol`.
            local_addr: ``(host, port)`` to bind; host ``None``/``""``/``"0.0.0.0"`` for
                every address, port 0 for an ephemeral one.
            remote_addr: ``(host, port)`` to connect to: ``sendto(data)`` needs no address
                and only that peer's datagrams arrive. A link-local IPv6 host names its
                interface with a zone (``fe80::1%eth1``) or ``(host, port, 0, scope_id)``.
            allow_broadcast: allow sending to broadcast addresses.
            family, proto, flags: as asyncio takes them (``proto`` 0 or ``IPPROTO_UDP``).
            reuse_address: ``True`` is refused, as asyncio refuses it (SO_REUSEADDR on UDP
                lets another process take the port's datagrams).

        Returns:
            ``(transport, protocol)``.

        Raises:
            ValueError: a bad address or port, or an option netstack does not support.
            socket.gaierror: a ``proto`` other than UDP's, or unknown ``flags``.
            AddressInUseError: the local port is taken.
            OSError: ``EADDRNOTAVAIL`` for a local address that is not this host's.
        """
        self._check_open()
        if family not in (0, socket.AF_INET, socket.AF_INET6):
            raise ValueError("family must be AF_INET, AF_INET6 or 0")
        if sock is not None:
            raise ValueError("sock= is not supported: netstack endpoints have no OS socket")
        if reuse_port:
            raise ValueError("reuse_port is not supported")
        if reuse_address:
            raise ValueError(
                "reuse_address=True is not supported for UDP (asyncio refuses it too: "
                "another socket could take this port's datagrams)"
            )
        _check_proto(proto, socket.IPPROTO_UDP)
        _check_flags(flags, family)
        remote: tuple[bytes, int] | None = None
        scope = 0
        if remote_addr is not None:
            host, port = _split_addr(remote_addr, "remote_addr", scoped=True)
            if isinstance(host, str) and not _is_literal(host):
                wanted = family if family in (socket.AF_INET, socket.AF_INET6) else 0
                host = (await self.resolve(host, family=wanted))[0]
            ip, scope = self._scoped(host, "remote host")
            if isinstance(remote_addr, tuple) and len(remote_addr) == 4 and remote_addr[3]:
                scope = self.scope_id(remote_addr[3])
            remote = (ip, parse_port(port, allow_zero=False))
            if not family:
                family = socket.AF_INET if len(remote[0]) == 4 else socket.AF_INET6
        local_ip, local_port = (ANY4 if family != socket.AF_INET6 else ANY6), 0
        if family == 0:
            local_ip = DUAL
        if local_addr is not None:
            host, port = _split_addr(local_addr, "local_addr")
            local_port = parse_port(port)
            local_ip = self._local_ip(host, family, "local host")
        if remote is not None:
            if local_ip and len(local_ip) != len(remote[0]):
                raise ValueError("local_addr and remote_addr are of different address families")
            if local_ip in (ANY4, ANY6, DUAL):
                # Like connect(2) on a UDP socket: the source address is chosen now.
                local_ip = self.ip.route(remote[0], None, scope).src
        protocol = protocol_factory()
        if not isinstance(protocol, asyncio.DatagramProtocol):
            raise TypeError("protocol_factory must return an asyncio.DatagramProtocol")
        transport = DatagramTransport(
            self,
            protocol,
            local_ip,
            remote,
            bool(allow_broadcast),
            self._endpoints.discard,
            scope,
        )
        transport.local_port = self.udp.bind(transport, local_ip, local_port)
        self._endpoints.add(transport)
        protocol.connection_made(transport)
        return transport, protocol

    # -- TCP -----------------------------------------------------------------------------------
    def _tcp_config(
        self, nodelay: bool | None, congestion: str | None, keepalive: bool | None = None
    ) -> TcpConfig | None:
        changes: dict[str, Any] = {}
        if nodelay is not None:
            changes["nodelay"] = bool(nodelay)
        if keepalive is not None:
            changes["keepalive"] = bool(keepalive)
        if congestion is not None:
            make_controller(congestion, 1460)  # raises ValueError for an unknown name
            changes["congestion"] = congestion
        return dataclasses.replace(self.config.tcp, **changes) if changes else None

    async def create_connection(
        self,
        protocol_factory: Callable[[], _P],
        host: str | None = None,
        port: int | None = None,
        *,
        ssl: Any = None,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        sock: Any = None,
        local_addr: tuple[str | None, int] | None = None,
        server_hostname: str | None = None,
        local_port: int | None = None,
        nodelay: bool | None = None,
        congestion: str | None = None,
        keepalive: bool | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        happy_eyeballs_delay: float | None = None,
        interleave: int | None = None,
        all_errors: bool = False,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, _P]:
        """Open a TCP connection, as :meth:`asyncio.loop.create_connection`.

        Args:
            protocol_factory: makes the :class:`asyncio.Protocol` (once, for the connection
                that was made).
            ssl: TLS over the connection: an :class:`ssl.SSLContext` (OpenSSL), a
                :class:`netstack.tls.TLSConfig` (netstack's own TLS 1.3), or ``True`` for
                the default verifying OpenSSL context.
            server_hostname: the name the server's certificate must carry, and SNI (default:
                ``host``).
            ssl_handshake_timeout: seconds the TLS handshake may take (default 60).
            ssl_shutdown_timeout: seconds a closing TLS connection waits for the peer's
                close (default 30).
            host: the peer's IPv4 or IPv6 address, or a name: its addresses are tried in
                the order the resolver gives (RFC 6724), each after the one before failed. A
                link-local IPv6 address names its interface with a zone (``fe80::1%eth1``) on
                a stack with several.
            port: the peer's port.
            family: ``AF_INET`` or ``AF_INET6`` for only that family's addresses.
            proto: 0 or ``IPPROTO_TCP``.
            flags: ``getaddrinfo`` flags for ``host``: ``AI_NUMERICHOST`` (no name lookup)
                and ``AI_ADDRCONFIG`` (only families this host has an address of) are
                honoured; ``AI_PASSIVE``, ``AI_CANONNAME`` and ``AI_NUMERICSERV`` change
                nothing for a connection.
            happy_eyeballs_delay: race the addresses (RFC 8305): the next attempt starts
                this many seconds after the one before (at least 10 ms) or as soon as it
                failed, and the first to connect wins (asyncio recommends 0.25).
            interleave: RFC 8305's First Address Family Count: the addresses of both
                families take turns, this many of the first family first (default 1 with
                ``happy_eyeballs_delay``, else the resolver's order).
            all_errors: when every attempt failed, raise an :class:`ExceptionGroup` of
                their errors.
            local_addr: ``(host, port)`` to connect from.
            local_port: the local port (shorthand for ``local_addr=(None, port)``).
            nodelay: turn Nagle's algorithm off (like ``TCP_NODELAY``).
            congestion: ``"newreno"`` (default) or ``"cubic"``.
            keepalive: send keep-alive probes when idle (``SO_KEEPALIVE``; the timings are
                in ``StackConfig.tcp``).

        Returns:
            ``(transport, protocol)`` once the handshake completed.

        Raises:
            TypeError: a keyword argument asyncio's ``create_connection`` does not take
                either (as asyncio's).
            ConnectionRefusedError: the peer answered with a reset (no listener).
            TimeoutError: no answer after the SYN retries.
            OSError: no route, unreachable, or too many connections; ``Multiple
                exceptions: ...`` when the addresses of a name failed differently.
            ExceptionGroup: every attempt failed, with ``all_errors=True``.
            socket.gaierror: ``host`` is a name that does not resolve (or a name with
                ``AI_NUMERICHOST``), a ``proto`` other than TCP's, or unknown ``flags``.
            ssl.SSLError: the TLS handshake failed (``ssl.SSLCertVerificationError`` for a
                certificate that does not verify; netstack's TLS raises its alert classes,
                which subclass ``ssl.SSLError``).
            ValueError: a bad address or port, a TLS option without ``ssl``, or an
                unsupported option.
        """
        check_keywords("create_connection", kwargs)
        self._check_open()
        delay = happy_eyeballs.attempt_delay(happy_eyeballs_delay)
        first_count = happy_eyeballs.first_family_count(interleave, delay)
        if ssl is not None and ssl is not False:
            return await self._tls_connection(
                protocol_factory, host, port, ssl, server_hostname, ssl_handshake_timeout,
                ssl_shutdown_timeout, family=family, proto=proto, flags=flags, sock=sock,
                local_addr=local_addr, local_port=local_port, nodelay=nodelay,
                congestion=congestion, keepalive=keepalive,
                happy_eyeballs_delay=happy_eyeballs_delay, interleave=interleave,
                all_errors=all_errors,
            )  # fmt: skip
        _only_with_ssl(
            server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )  # fmt: skip
        if sock is not None:
            raise ValueError("sock= is not supported: netstack connections have no OS socket")
        if family not in (0, socket.AF_INET, socket.AF_INET6):
            raise ValueError("family must be AF_INET, AF_INET6 or 0")
        _check_proto(proto, socket.IPPROTO_TCP)
        _check_flags(flags, family)
        if host is None or port is None:
            raise ValueError("host and port are required")
        dport = parse_port(port, allow_zero=False)
        config = self._tcp_config(nodelay, congestion, keepalive)
        if not isinstance(host, str):
            raise ValueError(f"host must be a string, got {type(host).__name__}")
        scope = 0
        if _is_literal(host):
            ip, scope = self._scoped(host, "host")
            candidates = [ip]
            if family and (len(candidates[0]) == 4) != (family == socket.AF_INET):
                raise ValueError(f"host {host!r} is not of the address family asked for")
        elif flags & _AI_NUMERICHOST:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        else:
            # A name: the stack's resolver, sorted as RFC 6724 (6) says.
            names = await self.resolve(host, family=family)
            candidates = [parse_ip(a, what="host") for a in names]
        if flags & _AI_ADDRCONFIG:
            candidates = [ip for ip in candidates if self._has_family(len(ip))]
            if not candidates:
                raise socket.gaierror(socket.EAI_ADDRFAMILY, f"no address of {host}'s family")
        if first_count is not None:
            candidates = happy_eyeballs.interleave(candidates, first_count, len)
        attempts = []
        for dst in candidates:
            src: bytes | None = None
            sport = 0
            if local_addr is not None:
                lhost, lport = _split_addr(local_addr, "local_addr")
                sport = parse_port(lport)
                fam = socket.AF_INET if len(dst) == 4 else socket.AF_INET6
                try:
                    chosen = self._local_ip(lhost, fam, "local host")
                except ValueError:
                    if len(candidates) == 1:
                        raise
                    continue  # a local address of the other family
                if chosen not in (ANY4, ANY6, DUAL):
                    src = chosen
            if local_port is not None:
                sport = parse_port(local_port)
            attempts.append(
                functools.partial(tcp_driver.handshake, self, dst, dport, src, sport, config, scope)
            )
        opened = await happy_eyeballs.race(
            attempts, delay, all_errors=all_errors,
            discard=functools.partial(tcp_driver.abandon, self),
        )  # fmt: skip
        return tcp_driver.adopt(self, opened, protocol_factory)

    def _has_family(self, length: int) -> bool:
        """Whether this host has an address of the family of addresses ``length`` bytes long
        (``AI_ADDRCONFIG``: loopback and link-local addresses do not count)."""
        for address in self.addresses:
            ip = address.ip
            if len(ip.packed) == length and not ip.is_loopback and not ip.is_link_local:
                return True
        return False

    async def _tls_connection(
        self,
        protocol_factory: Callable[[], _P],
        host: str | None,
        port: int | None,
        ssl: Any,
        server_hostname: str | None,
        handshake_timeout: float | None,
        shutdown_timeout: float | None,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, _P]:
        # As asyncio does: without server_hostname, the name asked for is the one checked.
        name = server_hostname if server_hostname is not None else host
        from .tls.stream import connect_tls  # TLS (and cryptography) only when used

        return await connect_tls(
            self.loop, self.create_connection, protocol_factory, ssl, name, handshake_timeout,
            host, port, shutdown_timeout=shutdown_timeout, **kwargs,
        )  # fmt: skip

    async def open_connection(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        limit: int = 2**16,
        ssl: Any = None,
        server_hostname: str | None = None,
        local_port: int | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection as asyncio streams, as :func:`asyncio.open_connection`.

        Raises:
            ConnectionRefusedError, TimeoutError, OSError, ValueError: as
            :meth:`create_connection`.
        """
        return await open_stream_connection(
            self.loop,
            self.create_connection,
            limit,
            host,
            port,
            ssl=ssl,
            server_hostname=server_hostname,
            local_port=local_port,
            writer_class=NetstackStreamWriter,
            **kwargs,
        )

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int = 0,
        *,
        family: int = 0,
        flags: int = 0,
        sock: Any = None,
        backlog: int = 128,
        ssl: Any = None,
        reuse_address: bool | None = None,
        reuse_port: bool | None = None,
        start_serving: bool = True,
        nodelay: bool | None = None,
        congestion: str | None = None,
        keepalive: bool | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        keep_alive: bool | None = None,
        **kwargs: Any,
    ) -> Server:
        """Listen for TCP connections, as :meth:`asyncio.loop.create_server`.

        Args:
            protocol_factory: makes one :class:`asyncio.Protocol` per connection.
            host: the local address; ``None``, ``""`` or ``"0.0.0.0"`` for all.
            port: the port; 0 for an ephemeral one (see ``server.addresses``).
            family: ``AF_INET`` or ``AF_INET6`` (with no host: every address of it).
            flags: ``getaddrinfo`` flags, as asyncio takes them (``host`` is an address,
                so they change nothing; unknown ones are refused).
            backlog: connections that may be half-open (the SYN queue); beyond it,
                SYN cookies answer.
            ssl, ssl_handshake_timeout, ssl_shutdown_timeout: TLS on every connection, as
                in :meth:`create_connection`.
            reuse_address: accepted (a netstack listener never waits for old connections
                to end); ``reuse_port=True`` is refused.
            nodelay, congestion, keepalive: for every accepted connection, as in
                :meth:`create_connection`; ``keep_alive`` is Python 3.13's name of
                ``keepalive``.

        Raises:
            TypeError: a keyword argument asyncio's ``create_server`` does not take either.
            AddressInUseError: the port is taken.
            ValueError: a bad address or port, a TLS option without ``ssl``, or an
                unsupported option.
        """
        check_keywords("create_server", kwargs)
        self._check_open()
        if ssl is not None and ssl is not False:
            from .tls.stream import tls_server_factory

            protocol_factory = tls_server_factory(
                self.loop, protocol_factory, ssl, ssl_handshake_timeout, ssl_shutdown_timeout
            )
        else:
            _only_with_ssl(
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout,
            )
        if sock is not None:
            raise ValueError("sock= is not supported: netstack servers have no OS socket")
        if family not in (0, socket.AF_INET, socket.AF_INET6):
            raise ValueError("family must be AF_INET, AF_INET6 or 0")
        _check_flags(flags, family)
        if reuse_port:
            raise ValueError("reuse_port is not supported")
        if keep_alive is not None:
            if keepalive is not None and bool(keepalive) != bool(keep_alive):
                raise ValueError("keepalive and keep_alive disagree")
            keepalive = keep_alive
        hosts = list(host) if isinstance(host, (list, tuple)) else [host]
        if not hosts:
            raise ValueError("host must not be an empty list")
        local_ips: list[bytes] = []
        for one in hosts:
            chosen = self._local_ip(one, family, "host")
            # No host: every address of both families (one listener each), like asyncio's
            # create_server(host=None), which makes an IPv4 and an IPv6 socket.
            for ip in (ANY4, ANY6) if chosen == DUAL else (chosen,):
                if ip not in local_ips:
                    local_ips.append(ip)
        config = self._tcp_config(nodelay, congestion, keepalive)
        server = Server(
            self, protocol_factory, local_ips, parse_port(port), backlog, start_serving, config
        )
        self._servers.add(server)
        return server

    async def start_server(
        self,
        client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
        host: str | None = None,
        port: int = 0,
        *,
        limit: int = 2**16,
        ssl: Any = None,
        backlog: int = 128,
        **kwargs: Any,
    ) -> Server:
        """A TCP server calling ``client_connected_cb(reader, writer)`` for every connection,
        as :func:`asyncio.start_server` (the callback may be a coroutine function).

        Raises:
            AddressInUseError, ValueError: as :meth:`create_server`.
        """
        factory = stream_server_factory(self.loop, client_connected_cb, limit)
        return await self.create_server(factory, host, port, ssl=ssl, backlog=backlog, **kwargs)

    # -- connection tracking, NAT, packet filter -------------------------------------------------
    @property
    def netfilter(self) -> Netfilter:
        """Connection tracking, NAT and the packet filter (made and installed as
        :attr:`packet_hooks` on first use; its counters are ``stats()["netfilter"]``)."""
        if self._netfilter is None:
            self._netfilter = Netfilter(self._rng, self._ipv4_addresses_of, self._ifindex)
            self._netfilter.tcp_takes = self.tcp.takes
            self._netfilter.port_unreachable = self.forwarder.port_unreachable
            self._netfilter.reinject = self._receive_again
            self.packet_hooks = self._netfilter
            self._shared = (*self._shared, self._netfilter)
            self._registry_changed()
        return self._netfilter

    @property
    def nat(self) -> Nat:
        """The NAT: ``stack.nat.masquerade(iface)``, ``stack.nat.forward_port("tcp", 8080,
        to=("198.18.1.10", 80), on=iface)``, ``stack.nat.remove(rule)``, ``.mappings``."""
        return self.netfilter.nat

    @property
    def filter(self) -> Filter:
        """The packet filter: ``stack.filter.rules = [Rule(...), ...]``,
        ``set_policy(chain, action)``, ``load(text)``, ``counters()``."""
        return self.netfilter.filter

    def _receive_again(self, datagram: bytearray, ifindex: int, now: float) -> None:
        """An IP datagram the packet hooks held (a fragment before its first), received
        again as if it had just come in on interface ``ifindex``."""
        if datagram[0] >> 4 == 6:
            self.ipv6.receive(memoryview(datagram), _NO_MAC, False, now, ifindex)
        else:
            self.ipv4.receive(memoryview(datagram), _NO_MAC, False, now, ifindex)

    def _ipv4_addresses_of(self, ifindex: int) -> list[bytes]:
        for iface in self._interfaces:
            if iface.index == ifindex:
                return [a.ip for a in iface.ip4.addresses]
        return []

    def _ifindex(self, key: object) -> int:
        if isinstance(key, (Interface, str, int)):
            return self.interface(key).index
        raise TypeError(f"{key!r} is not an Interface, an interface name or an index")

    # -- statistics ----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters per layer, each with its drops by reason: the link, Ethernet and ARP
        summed over the interfaces, then the shared layers; ``"interfaces"`` holds each
        interface's own (:meth:`Interface.stats`), by name."""
        out: dict[str, Any] = {"link": {}}
        for iface in self._interfaces:
            _add_counts(out["link"], link_stats(iface.link))
        for layer in self._layers:
            if layer.name in out:
                _add_counts(out[layer.name], layer.stats())
            else:
                out[layer.name] = layer.stats()
        out["stack"] = {
            "internal_errors": self.internal_errors,
            "loopback_packets": self.loopback_packets,
            "endpoints": len(self._endpoints),
            "tx_queue_dropped": sum(i.queued.dropped for i in self._interfaces if i.queued),
        }
        out["interfaces"] = {iface.name: iface.stats() for iface in self._interfaces}
        return out

    def reset_stats(self) -> None:
        """Zero the counters of the links and of every layer."""
        for layer in self._layers:
            layer.reset_stats()
        for iface in self._interfaces:
            iface.link.reset_stats()

    def arp_table(self) -> list[tuple[str, str | None, str]]:
        """The ARP caches as (address, MAC or None, state), the first interface's first."""
        return [
            (format_ipv4(ip), mac.hex(":") if mac else None, state.value)
            for iface in self._interfaces
            for ip, mac, state in iface.arp.cache.entries()
        ]

    def __repr__(self) -> str:
        addrs = ", ".join(str(a) for a in self.ipv4.addresses) or "no address"
        more = f" +{len(self._interfaces) - 1} interfaces" if len(self._interfaces) > 1 else ""
        return f"<Stack {self.mac} {addrs}{more}{' closed' if self._closed else ''}>"


def _add_counts(into: dict[str, Any], more: dict[str, Any]) -> None:
    """Add the counters of ``more`` to those of ``into`` (numbers summed, nested dicts such
    as ``drops`` merged; what is neither stays as ``into`` has it)."""
    for key, value in more.items():
        mine = into.get(key)
        if key not in into:
            into[key] = dict(value) if isinstance(value, dict) else value
        elif isinstance(value, dict) and isinstance(mine, dict):
            _add_counts(mine, value)
        elif isinstance(value, int) and isinstance(mine, int) and not isinstance(value, bool):
            into[key] = mine + value


def _is_literal(host: str) -> bool:
    """Whether ``host`` is meant as an IP address literal rather than a name to resolve:
    a valid literal, or something only an address would look like (digits and dots, or a
    colon), which ``parse_ip`` then rejects with a clear ``ValueError``."""
    if ":" in host or not host.strip("0123456789."):
        return True
    try:
        parse_ip(host)
    except ValueError:
        return False
    return True


def _only_with_ssl(**options: Any) -> None:
    """asyncio's refusal of a TLS option without ``ssl=``.

    Raises:
        ValueError: one of ``options`` is set.
    """
    for name, value in options.items():
        if value is not None:
            raise ValueError(f"{name} is only meaningful with ssl")


def _check_proto(proto: int, expected: int) -> None:
    """``proto`` as getaddrinfo checks it for asyncio: 0 or the transport's own.

    Raises:
        socket.gaierror: another protocol (``EAI_SOCKTYPE``, as getaddrinfo).
    """
    if proto not in (0, expected):
        raise socket.gaierror(socket.EAI_SOCKTYPE, f"ai_socktype not supported (proto={proto})")


#: getaddrinfo flags that change nothing for netstack: AI_PASSIVE and AI_NUMERICSERV concern
#: what a host or port may be (netstack's are addresses and numbers), AI_CANONNAME only the
#: name getaddrinfo reports; AI_NUMERICHOST and AI_ADDRCONFIG are honoured where a name is
#: looked up (create_connection).
#: An int: the complement of an IntFlag keeps only the flags the class knows.
_KNOWN_FLAGS = int(
    socket.AI_PASSIVE | socket.AI_CANONNAME | socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
    | socket.AI_ADDRCONFIG | socket.AI_V4MAPPED | socket.AI_ALL
)  # fmt: skip


#: Plain ints: ``int & IntFlag`` goes through the flag class's Python-level ``__rand__``.
_AI_NUMERICHOST = int(socket.AI_NUMERICHOST)
_AI_ADDRCONFIG = int(socket.AI_ADDRCONFIG)


def _check_flags(flags: int, family: int) -> None:
    """The getaddrinfo ``flags`` of a loop method, checked.

    Raises:
        ValueError: ``AI_V4MAPPED`` or ``AI_ALL`` with ``AF_INET6`` (IPv4-mapped IPv6
            addresses, which netstack does not speak; without AF_INET6 they change
            nothing, as in getaddrinfo).
        socket.gaierror: unknown flags (``EAI_BADFLAGS``, as getaddrinfo).
    """
    if isinstance(flags, bool) or not isinstance(flags, int) or flags & ~_KNOWN_FLAGS:
        raise socket.gaierror(socket.EAI_BADFLAGS, f"Bad value for ai_flags: {flags!r}")
    if family == socket.AF_INET6:
        for flag in (socket.AI_V4MAPPED, socket.AI_ALL):
            if flags & flag:
                raise ValueError(f"{flag.name} is not supported: netstack has no "
                                 "IPv4-mapped IPv6 addresses")  # fmt: skip


def _split_addr(addr: object, what: str, *, scoped: bool = False) -> tuple[Any, Any]:
    """``(host, port)``, or with ``scoped`` also an IPv6 ``(host, port, flowinfo, scope_id)``
    (whose scope id the caller reads)."""
    if not isinstance(addr, tuple) or not (len(addr) == 2 or (scoped and len(addr) == 4)):
        raise ValueError(f"{what} must be a (host, port) tuple, got {addr!r}")
    return addr[0], addr[1]
