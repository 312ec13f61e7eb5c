"""A user-mode gateway, as slirp4netns, vpnkit and gVisor's netstack forwarders are: a guest
(a network namespace, a VM's TAP device) on one link, whose every TCP and UDP flow, to any
address, netstack terminates and relays through the host's sockets. The guest needs no route,
NAT or privilege on the host: what leaves the host are ordinary connections of this process.

::

    gw = await netstack.gateway.start(link, dns_servers=["198.18.5.1"],
                                      forwards=["tcp:8080:80"])
    ...
    await gw.close()

The guest's network (defaults as slirp's: 10.0.2.0/24; IPv6 fd00::/64):

- the gateway is ``.2`` (and ``fd00::2``), the guest's default router;
- ``.3`` is the DNS address: queries to it (UDP and TCP port 53) go to ``dns_servers`` in
  turn (UDP: the first that answers within ``dns_timeout``; TCP: the first server);
- DHCPv4 (:func:`netstack.dhcp.serve`) hands the guest ``.100`` (the pool
  ``guest``-``guest``), the router and the DNS address; IPv6 Router Advertisements
  (:meth:`netstack.Stack.advertise`) give it the prefix for SLAAC and the default route.

How each kind of flow crosses (:meth:`netstack.Stack.catch_all` is what lets the stack take
flows to addresses not its own):

- **TCP** to any (address, port): the guest's SYN is answered only once the host's
  ``connect()`` to the same address and port succeeded, so the guest sees what a direct
  connection would (gVisor's forwarder, slirp's semantics). Refused on the host: the guest
  gets a reset (``ECONNREFUSED``). Unreachable (``EHOSTUNREACH``, ``ENETUNREACH``) or no answer
  within ``connect_timeout``: the gateway answers, as a router would, with ICMP destination
  unreachable (host, or network; ICMPv6 address unreachable / no route), which the guest's
  kernel reports as ``EHOSTUNREACH`` / ``ENETUNREACH``. Then bytes are relayed both ways; a
  side whose peer's write buffer is over its high-water mark stops being read until it
  drains (flow control end to end), and a FIN from either side becomes ``shutdown(SHUT_WR)``
  on the other (half-close carried across); a reset becomes an abort.
- **UDP**: one host socket per guest (source address, source port), unconnected, so a guest
  socket that talks to several peers keeps one mapping (RFC 4787 REQ-1, endpoint-independent
  mapping); replies come back with their sender as the source. A flow idle for
  ``udp_timeout`` seconds (RFC 4787 REQ-5: at least 120) is closed.
- **ICMP echo** to any address: a real echo request from the host (a ``SOCK_DGRAM``
  ``IPPROTO_ICMP`` ping socket where ``net.ipv4.ping_group_range`` allows, a raw socket as
  root); the guest gets its reply only when the host got one. Without either socket the
  requests are counted (``echo_not_permitted``) and dropped.
- **Port forwards** host to guest (``"tcp:HOSTPORT:GUESTPORT"``,
  ``"udp:HOSTADDR:HOSTPORT:GUESTADDR:GUESTPORT"``): a host listening socket whose
  connections (TCP) or senders (UDP) are relayed to the guest through netstack's own client.
- The gateway's own address is the host's loopback with ``host_loopback=True`` (slirp's
  default; off here, as ``slirp4netns --disable-host-loopback``): refused otherwise.

Bounded: TCP flows (``max_tcp_flows``; a SYN beyond it is refused with a reset), connects in
progress (``max_pending``), UDP flows (``max_udp_flows``; the least recently used is closed
for a new one), echo requests and DNS queries in flight; all counted in :meth:`Gateway.stats`.
The "host" is whatever stack ``host`` is: :class:`netstack.HostStack` (the default, the
operating system's sockets) or another :class:`netstack.Stack` (tests, the demo).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .dhcp import DhcpServerHandle
from .dhcp import serve as serve_dhcp
from .link.base import Link
from .proto.ipv4.wire import IPv4Header
from .proto.ipv6.wire import IPv6Header
from .proto.tcp.layer import SynRequest
from .stack import Stack

__all__ = ["Gateway", "GatewayLimits", "PortForward", "start"]

log = logging.getLogger(__name__)

GUEST, HOST = 0, 1


@dataclass(frozen=True)
class GatewayLimits:
    """How much the gateway holds at once, and how long."""

    #: Relayed TCP connections at once (either direction); a SYN beyond it gets a reset.
    max_tcp_flows: int = 4096
    #: Host connects in progress at once; a SYN beyond it gets a reset.
    max_pending: int = 256
    #: Seconds a host connect may take before the guest hears "host unreachable".
    connect_timeout: float = 10.0
    #: Seconds the guest has to complete its handshake after the SYN-ACK.
    handshake_timeout: float = 30.0
    #: Seconds a relayed TCP connection may carry nothing before both sides are aborted
    #: (RFC 5382 REQ-5: at least 2 h 4 min).
    tcp_idle_timeout: float = 7440.0
    #: UDP flows at once; a new one closes the least recently used beyond it.
    max_udp_flows: int = 1024
    #: Seconds a UDP flow lives without a datagram either way (RFC 4787 REQ-5).
    udp_timeout: float = 120.0
    #: Datagrams held for a UDP flow whose host socket is still being made.
    udp_queue: int = 16
    #: Echo requests (and DNS queries) waiting for the host at once.
    max_pings: int = 64
    max_dns_queries: int = 256
    #: Seconds the host waits for an echo reply.
    ping_timeout: float = 3.0
    #: Seconds each DNS server has to answer before the next is asked.
    dns_timeout: float = 2.0
    #: Seconds between sweeps of idle flows.
    sweep_interval: float = 1.0


@dataclass(frozen=True)
class PortForward:
    """A host port relayed into the guest: ``proto`` "tcp" or "udp"; ``guest_addr`` None
    means the guest's DHCP address."""

    proto: str
    host_port: int
    guest_port: int
    host_addr: str = "0.0.0.0"
    guest_addr: str | None = None

    @classmethod
    def parse(cls, text: str) -> PortForward:
        """``PROTO:HOSTPORT:GUESTPORT``, ``PROTO:HOSTADDR:HOSTPORT:GUESTPORT`` or
        ``PROTO:HOSTADDR:HOSTPORT:GUESTADDR:GUESTPORT`` (IPv6 addresses in brackets).

        Raises:
            ValueError: anything else.
        """
        parts = _split_forward(text)
        if len(parts) not in (3, 4, 5) or parts[0] not in ("tcp", "udp"):
            raise ValueError(
                f"a forward is tcp|udp:HOSTPORT:GUESTPORT or "
                f"tcp|udp:HOSTADDR:HOSTPORT:GUESTADDR:GUESTPORT, not {text!r}"
            )
        try:
            if len(parts) == 3:
                fwd = cls(parts[0], int(parts[1]), int(parts[2]))
            elif len(parts) == 4:
                ipaddress.ip_address(parts[1])
                fwd = cls(parts[0], int(parts[2]), int(parts[3]), parts[1])
            else:
                ipaddress.ip_address(parts[1])
                ipaddress.ip_address(parts[3])
                fwd = cls(parts[0], int(parts[2]), int(parts[4]), parts[1], parts[3])
        except ValueError:
            raise ValueError(f"a bad address or port in the forward {text!r}") from None
        for port in (fwd.host_port, fwd.guest_port):
            if not 0 < port < 65536:
                raise ValueError(f"port {port} out of range in the forward {text!r}")
        return fwd


def _split_forward(text: str) -> list[str]:
    out: list[str] = []
    rest = text
    while rest:
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise ValueError(f"an unclosed [ in the forward {text!r}")
            out.append(rest[1:end])
            rest = rest[end + 1 :]
            rest = rest[1:] if rest.startswith(":") else rest
        else:
            head, _, rest = rest.partition(":")
            out.append(head)
    return out


def _ip(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


# -- TCP: one relayed connection ---------------------------------------------------------------
class _Side(asyncio.Protocol):
    """One end of a relayed TCP connection: what happens to it happens to its flow."""

    def __init__(self, flow: _TcpFlow, side: int) -> None:
        self.flow = flow
        self.side = side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.flow.made(self.side, transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.flow.data(self.side, data)

    def eof_received(self) -> bool:
        self.flow.eof(self.side)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.flow.lost(self.side, exc)

    def pause_writing(self) -> None:
        self.flow.pause(1 - self.side)

    def resume_writing(self) -> None:
        self.flow.resume(1 - self.side)


class _TcpFlow:
    """The two connections of a relayed flow: the guest's (terminated by netstack) and the
    host's. Bytes from one are written to the other; a side whose peer's write buffer is
    full is not read until it drains; an EOF is passed on as a half-close; when both
    directions ended, or either side was lost, both close."""

    def __init__(self, gateway: Gateway, label: str) -> None:
        self.gateway = gateway
        self.label = label
        self.transports: list[asyncio.Transport | None] = [None, None]
        self.eofs = [False, False]
        self.gone = [False, False]
        self.paused = [False, False]
        #: What a side sent before the other side existed.
        self.early: list[bytes] = []
        self.closed = False
        self.last = gateway.loop.time()
        self.deadline: float | None = None  # the guest's handshake, when it is awaited

    def made(self, side: int, transport: asyncio.Transport) -> None:
        self.transports[side] = transport
        if self.closed:
            transport.abort()
            return
        other = self.transports[1 - side]
        if other is None:
            # Nothing can be written on until the other side exists. (uvloop starts reading
            # an accepted connection after connection_made whatever it was told, so what
            # arrives meanwhile is held, and reading paused again at the first data.)
            transport.pause_reading()
            self.paused[side] = True
        else:
            self.deadline = None
            early, self.early = self.early, []
            for data in early:
                transport.write(data)
            if self.eofs[1 - side] and transport.can_write_eof():
                transport.write_eof()  # the other side ended before this one existed
                if all(self.eofs):
                    self.close()
                    return
            self.resume(1 - side)
            self.resume(side)

    def data(self, side: int, data: bytes) -> None:
        self.last = self.gateway.loop.time()
        self.gateway.counters["tcp_bytes_out" if side == GUEST else "tcp_bytes_in"] += len(data)
        other = self.transports[1 - side]
        if other is None:
            self.early.append(data)
            t = self.transports[side]
            if t is not None:
                t.pause_reading()
                self.paused[side] = True
            return
        if self.gone[1 - side]:
            return  # the other side is gone: what is left has nowhere to go
        other.write(data)

    def eof(self, side: int) -> None:
        self.eofs[side] = True
        other = self.transports[1 - side]
        if other is not None and not self.gone[1 - side] and other.can_write_eof():
            other.write_eof()
        self.gateway.counters["tcp_half_closes"] += 1
        if all(self.eofs):
            self.close()

    def lost(self, side: int, exc: Exception | None) -> None:
        self.gone[side] = True
        other = self.transports[1 - side]
        if other is not None and not self.gone[1 - side]:
            if exc is not None or not self.eofs[side]:
                # A reset (or a close without the FIN reaching us): abort the other side,
                # which its peer sees as a reset too.
                other.abort()
            else:
                other.close()  # flushes what is buffered first
        self.closed = True
        self.gateway._tcp_flows.discard(self)

    def pause(self, side: int) -> None:
        t = self.transports[side]
        if t is not None and not self.paused[side] and not self.gone[side]:
            self.paused[side] = True
            t.pause_reading()
            self.gateway.counters["tcp_pauses"] += 1

    def resume(self, side: int) -> None:
        t = self.transports[side]
        other = self.transports[1 - side]
        if t is None or other is None or not self.paused[side] or self.gone[side]:
            return
        # Only while the other side's write buffer has room (pause_writing said it had not).
        if (
            other.get_write_buffer_size() > other.get_write_buffer_limits()[1]
            and not (self.gone[1 - side])
        ):
            return
        self.paused[side] = False
        t.resume_reading()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for t in self.transports:
            if t is not None:
                t.close()
        self.gateway._tcp_flows.discard(self)

    def abort(self) -> None:
        self.closed = True
        for t in self.transports:
            if t is not None:
                t.abort()
        self.gateway._tcp_flows.discard(self)


# -- UDP: one relayed source (address, port) ---------------------------------------------------
class _UdpFlow(asyncio.DatagramProtocol):
    """A guest's UDP (address, port) and the host socket that speaks for it."""

    def __init__(self, gateway: Gateway, guest: tuple[bytes, int], ifindex: int) -> None:
        self.gateway = gateway
        self.guest = guest
        self.ifindex = ifindex
        self.transport: asyncio.DatagramTransport | None = None
        self.queue: list[tuple[bytes, tuple[str, int]]] = []
        self.last = gateway.loop.time()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.closed:
            transport.close()
            return
        for data, dst in self.queue:
            self.transport.sendto(data, dst)  # type: ignore[union-attr]
        self.queue.clear()

    def send(self, data: bytes, dst: tuple[str, int]) -> None:
        self.last = self.gateway.loop.time()
        if self.transport is None:
            if len(self.queue) >= self.gateway.limits.udp_queue:
                self.gateway.counters["udp_queue_full"] += 1
                return
            self.queue.append((data, dst))
            return
        self.transport.sendto(data, dst)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        gw = self.gateway
        self.last = gw.loop.time()
        try:
            src = ipaddress.ip_address(addr[0])
        except ValueError:
            gw.counters["udp_bad_source"] += 1
            return
        if isinstance(src, ipaddress.IPv6Address) and src.ipv4_mapped is not None:
            src = src.ipv4_mapped
        if len(src.packed) != len(self.guest[0]):
            gw.counters["udp_bad_source"] += 1
            return
        try:
            gw.stack.send_caught_datagram((src.packed, addr[1]), self.guest, data, self.ifindex)
        except OSError as exc:
            gw.counters["udp_send_errors"] += 1
            log.debug("UDP reply to the guest: %s", exc)
            return
        gw.counters["udp_datagrams_in"] += 1

    def error_received(self, exc: Exception) -> None:
        self.gateway.counters["udp_host_errors"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        flows = self.gateway._udp_flows
        if flows.get(self.guest) is self:
            del flows[self.guest]


class _Forwarded(asyncio.DatagramProtocol):
    """The guest's side of one host sender of a UDP port forward: a netstack endpoint
    connected to the guest's port; its answers go back to the sender."""

    def __init__(self, owner: _UdpForward, sender: tuple[Any, ...]) -> None:
        self.owner = owner
        self.sender = sender
        self.transport: asyncio.DatagramTransport | None = None
        self.last = owner.gateway.loop.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.last = self.owner.gateway.loop.time()
        host = self.owner.transport
        if host is not None:
            host.sendto(data, self.sender)

    def error_received(self, exc: Exception) -> None:
        self.owner.gateway.counters["udp_forward_errors"] += 1


class _UdpForward(asyncio.DatagramProtocol):
    """A host UDP port relayed to a guest port, one guest-side endpoint per host sender."""

    def __init__(self, gateway: Gateway, guest: tuple[str, int]) -> None:
        self.gateway = gateway
        self.guest = guest
        self.transport: asyncio.DatagramTransport | None = None
        self.senders: OrderedDict[tuple[Any, ...], _Forwarded] = OrderedDict()
        self.making: dict[tuple[Any, ...], list[bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        gw = self.gateway
        inner = self.senders.get(addr)
        if inner is not None and inner.transport is not None:
            self.senders.move_to_end(addr)
            inner.last = gw.loop.time()
            inner.transport.sendto(data)
            return
        queue = self.making.get(addr)
        if queue is not None:
            if len(queue) < gw.limits.udp_queue:
                queue.append(data)
            return
        if len(self.senders) + len(self.making) >= gw.limits.max_udp_flows:
            if not self.senders:
                gw.counters["udp_flows_refused"] += 1
                return
            _, old = self.senders.popitem(last=False)
            if old.transport is not None:
                old.transport.close()
            gw.counters["udp_flows_evicted"] += 1
        self.making[addr] = [data]
        gw._spawn(self._make(addr))

    async def _make(self, addr: tuple[Any, ...]) -> None:
        gw = self.gateway
        try:
            _, proto = await gw.stack.create_datagram_endpoint(
                lambda: _Forwarded(self, addr), remote_addr=self.guest
            )
        except OSError as exc:
            gw.counters["udp_forward_errors"] += 1
            log.debug("UDP forward to %s: %s", self.guest, exc)
            self.making.pop(addr, None)
            return
        queue = self.making.pop(addr, [])
        self.senders[addr] = proto
        gw.counters["udp_forwarded_flows"] += 1
        if proto.transport is not None:
            for data in queue:
                proto.transport.sendto(data)

    def sweep(self, now: float, timeout: float) -> None:
        for addr, inner in list(self.senders.items()):
            if now - inner.last > timeout:
                del self.senders[addr]
                if inner.transport is not None:
                    inner.transport.close()

    def close(self) -> None:
        for inner in self.senders.values():
            if inner.transport is not None:
                inner.transport.close()
        self.senders.clear()
        if self.transport is not None:
            self.transport.close()


# -- DNS ---------------------------------------------------------------------------------------
class _DnsAnswer(asyncio.DatagramProtocol):
    def __init__(self, future: asyncio.Future[bytes], query_id: bytes) -> None:
        self.future = future
        self.query_id = query_id

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # RFC 5452 (section 3): only an answer with the query's ID is the answer.
        if len(data) >= 12 and data[:2] == self.query_id and not self.future.done():
            self.future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.future.done() and isinstance(exc, OSError):
            self.future.set_exception(exc)


class _DnsForwarder(asyncio.DatagramProtocol):
    """The guest's DNS address: each query is sent to the servers in turn from a host socket
    of its own (a fresh random source port per query, as RFC 5452 asks of resolvers), and
    the first answer goes back (RFC 5625: a DNS proxy passes messages on unchanged)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.transport: asyncio.DatagramTransport | None = None
        self.in_flight = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        gw = self.gateway
        gw.counters["dns_queries"] += 1
        if len(data) < 12 or data[2] & 0x80:  # too short, or a response
            gw.counters["dns_malformed"] += 1
            return
        if self.in_flight >= gw.limits.max_dns_queries or not gw.dns_servers:
            gw.counters["dns_dropped"] += 1
            return
        self.in_flight += 1
        gw._spawn(self._forward(data, addr))

    async def _forward(self, query: bytes, addr: tuple[Any, ...]) -> None:
        gw = self.gateway
        try:
            for server in gw.dns_servers:
                future: asyncio.Future[bytes] = gw.loop.create_future()
                try:
                    transport, _ = await gw.host.create_datagram_endpoint(
                        lambda f=future: _DnsAnswer(f, query[:2]),
                        remote_addr=(server, 53),
                    )
                except OSError:
                    continue
                try:
                    transport.sendto(query)
                    async with asyncio.timeout(gw.limits.dns_timeout):
                        answer = await future
                except (OSError, TimeoutError):
                    continue
                finally:
                    transport.close()
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.sendto(answer, addr)
                    gw.counters["dns_answers"] += 1
                return
            gw.counters["dns_unanswered"] += 1
        finally:
            self.in_flight -= 1


# -- the gateway -------------------------------------------------------------------------------
@dataclass(eq=False)
class Gateway:
    """A running gateway (made by :func:`start`): its stack on the guest's link, the host
    stack its flows leave through, the DHCP server, the forwards."""

    stack: Stack
    host: Any
    address: str
    dns_address: str
    guest: str
    dns_servers: tuple[str, ...]
    limits: GatewayLimits
    host_loopback: bool
    dhcp: DhcpServerHandle | None = None
    forwards: list[PortForward] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    _tcp_flows: set[_TcpFlow] = field(default_factory=set)
    _pending: dict[tuple[bytes, int, bytes, int], SynRequest] = field(default_factory=dict)
    _udp_flows: OrderedDict[tuple[bytes, int], _UdpFlow] = field(default_factory=OrderedDict)
    _pings: int = 0
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _servers: list[Any] = field(default_factory=list)
    _udp_forwards: list[_UdpForward] = field(default_factory=list)
    _dns: _DnsForwarder | None = None
    _dns_transport: asyncio.BaseTransport | None = None
    _sweeper: asyncio.TimerHandle | None = None
    _closed: bool = False
    _own_host: bool = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.stack.loop

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.counters["internal_errors"] += 1
            log.error("gateway task failed", exc_info=task.exception())

    # -- TCP ---------------------------------------------------------------------------------
    def _on_syn(self, request: SynRequest, now: float) -> bool:
        key = (*request.remote, *request.local)
        if key in self._pending:
            self.counters["tcp_syn_retransmits"] += 1
            return True  # still connecting on the host: the guest will ask again
        target = self._tcp_target(request)
        if target is None:
            self.counters["tcp_refused_local"] += 1
            return False
        if len(self._pending) >= self.limits.max_pending:
            self.counters["tcp_refused_pending"] += 1
            return False
        if len(self._tcp_flows) >= self.limits.max_tcp_flows:
            self.counters["tcp_refused_full"] += 1
            return False
        self._pending[key] = request
        self._spawn(self._connect(key, request, target))
        return True

    def _tcp_target(self, request: SynRequest) -> tuple[str, int] | None:
        """Where the host connects for a guest SYN, or None to refuse it."""
        dst, port = _ip(request.local[0]), request.local[1]
        if dst == self.dns_address:
            if port == 53 and self.dns_servers:
                return self.dns_servers[0], 53
            return None
        if dst == self.address or dst == self._address6:
            if not self.host_loopback:
                return None
            return ("127.0.0.1" if dst == self.address else "::1"), port
        return dst, port

    @property
    def _address6(self) -> str | None:
        for a in self.stack.addresses:
            if a.version == 6 and not a.ip.is_link_local:
                return str(a.ip)
        return None

    async def _connect(
        self, key: tuple[bytes, int, bytes, int], request: SynRequest, target: tuple[str, int]
    ) -> None:
        flow = _TcpFlow(self, f"{target[0]}:{target[1]}")
        try:
            try:
                async with asyncio.timeout(self.limits.connect_timeout):
                    await self.host.create_connection(lambda: _Side(flow, HOST), *target)
            except TimeoutError as exc:
                self.counters["tcp_connect_timeouts"] += 1
                self._refuse(request, TimeoutError(110, "connect timed out"), exc)
                return
            except OSError as exc:
                self.counters["tcp_connect_failed"] += 1
                self._refuse(request, exc, exc)
                return
        finally:
            self._pending.pop(key, None)
        if self._closed:
            flow.abort()
            return
        self._tcp_flows.add(flow)
        try:
            accepted = self.stack.accept_caught(request, lambda: _Side(flow, GUEST))
        except Exception:
            accepted = False
        if not accepted:
            self.counters["tcp_accept_failed"] += 1
            flow.abort()
            return
        flow.deadline = self.loop.time() + self.limits.handshake_timeout
        self.counters["tcp_flows"] += 1

    def _refuse(self, request: SynRequest, error: OSError, cause: BaseException) -> None:
        log.debug("host connect for %s failed: %r", request.local, cause)
        if not self._closed:
            self.stack.refuse_caught(request, error)

    # -- UDP ---------------------------------------------------------------------------------
    def _on_datagram(
        self, header: IPv4Header | IPv6Header, sport: int, dport: int, payload: memoryview,
        ifindex: int, now: float,
    ) -> bool:  # fmt: skip
        dst = _ip(header.dst)
        if dst == self.dns_address or dst == self.address or dst == self._address6:
            return False  # the gateway's own addresses: a port nobody serves
        key = (header.src, sport)
        flow = self._udp_flows.get(key)
        if flow is None:
            if len(self._udp_flows) >= self.limits.max_udp_flows:
                _, old = self._udp_flows.popitem(last=False)
                old.close()
                self.counters["udp_flows_evicted"] += 1
            flow = _UdpFlow(self, key, ifindex)
            self._udp_flows[key] = flow
            self.counters["udp_flows"] += 1
            self._spawn(self._open_udp(flow, len(header.src) == 16))
        else:
            self._udp_flows.move_to_end(key)
        flow.send(bytes(payload), (dst, dport))
        self.counters["udp_datagrams_out"] += 1
        return True

    async def _open_udp(self, flow: _UdpFlow, v6: bool) -> None:
        try:
            await self.host.create_datagram_endpoint(
                lambda: flow, local_addr=("::" if v6 else "0.0.0.0", 0)
            )
        except OSError as exc:
            self.counters["udp_host_errors"] += 1
            log.debug("UDP host socket: %s", exc)
            flow.close()

    # -- ICMP echo ---------------------------------------------------------------------------
    def _on_echo(
        self, header: IPv4Header | IPv6Header, rest: int, data: memoryview, ifindex: int,
        now: float,
    ) -> None:  # fmt: skip
        self.counters["echo_requests"] += 1
        if self._pings >= self.limits.max_pings:
            self.counters["echo_dropped"] += 1
            return
        dst = _ip(header.dst)
        if dst in (self.dns_address, self.address):
            target = "127.0.0.1" if self.host_loopback else None
        else:
            target = dst
        if target is None:
            self.counters["echo_dropped"] += 1
            return
        self._pings += 1
        self._spawn(self._ping(header, rest, bytes(data), ifindex, target))

    async def _ping(
        self, header: IPv4Header | IPv6Header, rest: int, data: bytes, ifindex: int, target: str
    ) -> None:
        try:
            await self.host.ping(target, timeout=self.limits.ping_timeout, size=len(data))
        except PermissionError:
            self.counters["echo_not_permitted"] += 1
            return
        except (OSError, TimeoutError):
            self.counters["echo_unanswered"] += 1
            return
        finally:
            self._pings -= 1
        if not self._closed:
            self.stack.answer_caught_echo(header, rest, data, ifindex)
            self.counters["echo_replies"] += 1

    # -- forwards into the guest -------------------------------------------------------------
    async def _start_forward(self, fwd: PortForward) -> None:
        guest = (fwd.guest_addr or self.guest, fwd.guest_port)
        if fwd.proto == "tcp":

            def factory() -> asyncio.Protocol:
                flow = _TcpFlow(self, f"forward {fwd.host_port}")
                self._spawn(self._forward_in(flow, guest))
                return _Side(flow, HOST)

            server = await self.host.create_server(factory, fwd.host_addr, fwd.host_port)
            self._servers.append(server)
        else:
            udp = _UdpForward(self, guest)
            await self.host.create_datagram_endpoint(
                lambda: udp, local_addr=(fwd.host_addr, fwd.host_port)
            )
            self._udp_forwards.append(udp)

    async def _forward_in(self, flow: _TcpFlow, guest: tuple[str, int]) -> None:
        self.counters["forward_connections"] += 1
        if len(self._tcp_flows) >= self.limits.max_tcp_flows:
            self.counters["tcp_refused_full"] += 1
            flow.abort()
            return
        self._tcp_flows.add(flow)
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                await self.stack.create_connection(lambda: _Side(flow, GUEST), *guest)
        except (OSError, TimeoutError) as exc:
            self.counters["forward_failed"] += 1
            log.debug("forward to the guest %s: %r", guest, exc)
            flow.abort()

    # -- housekeeping ------------------------------------------------------------------------
    def _sweep(self) -> None:
        if self._closed:
            return
        now = self.loop.time()
        try:
            for flow in list(self._tcp_flows):
                if flow.deadline is not None and now > flow.deadline:
                    self.counters["tcp_handshake_timeouts"] += 1
                    flow.abort()
                elif now - flow.last > self.limits.tcp_idle_timeout:
                    self.counters["tcp_idle_timeouts"] += 1
                    flow.abort()
            timeout = self.limits.udp_timeout
            for udp in list(self._udp_flows.values()):
                if now - udp.last > timeout:
                    self.counters["udp_timeouts"] += 1
                    udp.close()
            for forward in self._udp_forwards:
                forward.sweep(now, timeout)
        finally:
            self._sweeper = self.loop.call_later(self.limits.sweep_interval, self._sweep)

    def stats(self) -> dict[str, Any]:
        """The gateway's counters and tables, and its stack's ``stats()`` under ``stack``.

        Returns:
            Counters (``tcp_flows`` made, ``tcp_connect_failed``, ``tcp_refused_full``,
            ``udp_flows``, ``udp_flows_evicted``, ``udp_timeouts``, ``echo_replies``,
            ``echo_not_permitted``, ``dns_answers``, ...) and the tables' sizes now
            (``tcp_open``, ``tcp_pending``, ``udp_open``, ``pings_in_flight``).
        """
        out: dict[str, Any] = dict(self.counters)
        out.update(
            tcp_open=len(self._tcp_flows),
            tcp_pending=len(self._pending),
            udp_open=len(self._udp_flows),
            pings_in_flight=self._pings,
            dns_in_flight=self._dns.in_flight if self._dns is not None else 0,
            stack=self.stack.stats(),
        )
        return out

    async def close(self) -> None:
        """Stop relaying: abort every flow, stop the forwards and the DHCP server, close the
        stack (and its link). The host stack is the caller's (closed only if ``start`` made
        it)."""
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.stack.catch_all()
        for server in self._servers:
            server.close()
        for udp_forward in self._udp_forwards:
            udp_forward.close()
        for flow in list(self._tcp_flows):
            flow.abort()
        for udp in list(self._udp_flows.values()):
            udp.close()
        if self._dns_transport is not None:
            self._dns_transport.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.dhcp is not None:
            self.dhcp.close()
        await self.stack.close()
        if self._own_host:
            await self.host.close()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def start(
    link: Link,
    *,
    host: Any = None,
    network: str = "10.0.2.0/24",
    address: str | None = None,
    dns_address: str | None = None,
    guest: str | None = None,
    ipv6: str | None = "fd00::/64",
    dns_servers: Iterable[str] = (),
    forwards: Sequence[PortForward | str] = (),
    host_loopback: bool = False,
    lease_time: int = 3600,
    dhcp: bool = True,
    limits: GatewayLimits | None = None,
) -> Gateway:
    """Start a gateway for the guest on the other end of ``link``.

    Args:
        link: the guest's link (a TAP device whose other side is in the guest's namespace,
            a memory link); closed with the gateway.
        host: the stack flows leave through: a :class:`netstack.HostStack` (made, and closed
            with the gateway, when None) or any stack with its API (a :class:`netstack.Stack`).
        network: the guest's IPv4 network.
        address: the gateway's address (default: the network's second, ``.2``).
        dns_address: the guest's DNS address (default ``.3``); served by the gateway.
        guest: the address DHCP gives the guest, and forwards go to (default ``.100``).
        ipv6: the /64 prefix advertised for SLAAC (the gateway takes ``::2`` in it), or None.
        dns_servers: where DNS queries to ``dns_address`` go (the host's servers).
        forwards: port forwards into the guest (:class:`PortForward` or its text form).
        host_loopback: the gateway's own address reaches the host's loopback.
        lease_time: DHCP lease seconds.
        dhcp: serve DHCP to the guest.
        limits: the bounds and time-outs (:class:`GatewayLimits`).

    Returns:
        The running gateway.

    Raises:
        ValueError: a bad address, network or forward.
        OSError: a forward's host port cannot be bound.
    """
    net = ipaddress.IPv4Network(network)
    if net.num_addresses < 8:
        raise ValueError(f"the guest's network {network} is too small")
    addr = ipaddress.IPv4Address(address) if address else net.network_address + 2
    dns_addr = ipaddress.IPv4Address(dns_address) if dns_address else net.network_address + 3
    guest_addr = ipaddress.IPv4Address(guest) if guest else net.network_address + 100
    for a in (addr, dns_addr, guest_addr):
        if a not in net:
            raise ValueError(f"{a} is not in the guest's network {network}")
    if len({addr, dns_addr, guest_addr}) != 3:
        raise ValueError("the gateway, DNS and guest addresses must differ")
    servers = tuple(str(ipaddress.ip_address(s)) for s in dns_servers)
    parsed = [f if isinstance(f, PortForward) else PortForward.parse(f) for f in forwards]
    v6_addr: str | None = None
    if ipv6 is not None:
        prefix = ipaddress.IPv6Network(ipv6)
        if prefix.prefixlen != 64:
            raise ValueError(f"SLAAC needs a /64 prefix, not {ipv6}")
        v6_addr = f"{prefix.network_address + 2}/64"
    own_host = host is None
    if own_host:
        from .host import HostStack

        host = HostStack()
    stack = await Stack.open(link, ipv4=f"{addr}/{net.prefixlen}", ipv6=v6_addr, hostname="gateway")
    gw = Gateway(
        stack, host, str(addr), str(dns_addr), str(guest_addr), servers,
        limits or GatewayLimits(), host_loopback,
    )  # fmt: skip
    gw._own_host = own_host
    for name in _COUNTERS:
        gw.counters[name] = 0
    try:
        iface = stack.interfaces[0]
        # The DNS address answers ARP as the gateway's own (slirp's 10.0.2.3).
        stack.add_address(f"{dns_addr}/{net.prefixlen}", iface)
        stack.catch_all(tcp=gw._on_syn, udp=gw._on_datagram, echo=gw._on_echo)
        dns = gw._dns = _DnsForwarder(gw)
        gw._dns_transport, _ = await stack.create_datagram_endpoint(
            lambda: dns, local_addr=(str(dns_addr), 53)
        )
        if dhcp:
            gw.dhcp = await serve_dhcp(
                stack, pool=f"{guest_addr}-{guest_addr}", router=str(addr),
                dns=str(dns_addr), lease_time=lease_time,
            )  # fmt: skip
        if ipv6 is not None:
            stack.advertise(iface, prefixes=[ipv6])
        for fwd in parsed:
            await gw._start_forward(fwd)
            gw.forwards.append(fwd)
        gw._sweeper = gw.loop.call_later(gw.limits.sweep_interval, gw._sweep)
    except BaseException:
        await gw.close()
        raise
    return gw


_COUNTERS = (
    "tcp_flows", "tcp_syn_retransmits", "tcp_refused_local", "tcp_refused_pending",
    "tcp_refused_full", "tcp_connect_failed", "tcp_connect_timeouts", "tcp_accept_failed",
    "tcp_handshake_timeouts", "tcp_idle_timeouts", "tcp_half_closes", "tcp_pauses",
    "tcp_bytes_out", "tcp_bytes_in", "udp_flows", "udp_flows_evicted", "udp_timeouts",
    "udp_datagrams_out", "udp_datagrams_in", "udp_queue_full", "udp_bad_source",
    "udp_send_errors", "udp_host_errors", "udp_forwarded_flows", "udp_flows_refused",
    "udp_forward_errors", "echo_requests", "echo_replies", "echo_dropped",
    "echo_not_permitted", "echo_unanswered", "dns_queries", "dns_answers", "dns_unanswered",
    "dns_dropped", "dns_malformed", "forward_connections", "forward_failed", "internal_errors",
)  # fmt: skip
