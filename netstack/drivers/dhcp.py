"""The DHCP driver: :func:`serve` runs a server on a stack, :func:`configure` a client
(both public as :mod:`netstack.dhcp`).

Both are thin drivers around the sans-IO machines of :mod:`netstack.proto.dhcp`: datagrams
arrive through a UDP endpoint of the stack (port 67 or 68) and go straight into the machine;
what the machine wants sent goes out through the stack's UDP layer with an explicit route
(from 0.0.0.0 before the client has an address, to the limited broadcast, or to a client's
MAC without ARP); one ``loop.call_at`` timer is re-armed from the machine's ``poll_at()``
after every input.

The server keeps its lease database in a JSON file when given ``leases_path``: it is loaded on
start and rewritten after every change (a temporary file in the same folder, flushed and
fsynced, then ``os.replace``), before the reply that the change allows is sent, so a restarted
server never hands out an address it had already leased.

The client configures the stack as the lease says: the address (``stack.add_address``), the
classless static routes or else the default router, and the Interface MTU when it lowers the
link's; it renews in the background, takes everything away when the lease ends or a NAK
arrives, and gives the lease back (RELEASE) on :meth:`DhcpClientDriver.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..addressing import ANY4, format_ipv4, parse_ipv4
from ..core import Core, Rng
from ..errors import ClosedError
from ..link.base import Link
from ..proto.arp.layer import ArpLayer
from ..proto.dhcp.client import (
    AddressDeclined,
    DhcpClient,
    DhcpClientConfig,
    DhcpState,
    Event,
    Lease,
    LeaseAcquired,
    LeaseExpired,
    LeaseLost,
    LeaseRenewed,
    Outgoing,
    ProbeAddress,
)
from ..proto.dhcp.server import DhcpServer, DhcpServerConfig, Pool, ServerLease
from ..proto.ethernet.layer import EthernetLayer
from ..proto.ipv4.layer import IPv4Layer, OutRoute
from ..proto.neighbour.cache import NeighbourState
from ..proto.udp.layer import UdpLayer
from .timer import MachineTimer

if TYPE_CHECKING:
    from ..dns import DnsServer

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

__all__ = [
    "AddressDeclined",
    "DhcpClientConfig",
    "DhcpClientDriver",
    "DhcpCore",
    "DhcpServerHandle",
    "DhcpState",
    "Lease",
    "LeaseAcquired",
    "LeaseExpired",
    "LeaseLost",
    "LeaseRenewed",
    "ServerLease",
    "configure",
    "serve",
]

log = logging.getLogger("netstack.dhcp")

SERVER_PORT = 67
CLIENT_PORT = 68
LIMITED_BROADCAST = b"\xff\xff\xff\xff"
BROADCAST_MAC = b"\xff" * 6
#: Events kept for :attr:`DhcpClientDriver.events` when nobody reads them.
MAX_QUEUED_EVENTS = 256
#: How long :meth:`DhcpClientDriver.close` waits for the server's MAC so the RELEASE leaves.
RELEASE_ARP_WAIT = 1.0


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(
        self, on_datagram: Callable[[bytes, Any], None], on_lost: Callable[[], None]
    ) -> None:
        self._on_datagram = on_datagram
        self._on_lost = on_lost

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._on_datagram(data, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost()


class DhcpCore(Core, Protocol):
    """What the DHCP driver needs of a stack: its UDP, its IPv4 configuration, and (for the
    client) the link it runs on, its MAC and ARP."""

    @property
    def rng(self) -> Rng: ...

    @property
    def hostname(self) -> str | None: ...

    @property
    def link(self) -> Link: ...

    @property
    def ethernet(self) -> EthernetLayer: ...

    @property
    def arp(self) -> ArpLayer: ...

    @property
    def ipv4(self) -> IPv4Layer: ...

    @property
    def udp(self) -> UdpLayer: ...

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], _P],
        local_addr: tuple[str | None, int] | None = ...,
        remote_addr: tuple[str, int] | None = ...,
        *,
        allow_broadcast: bool | None = ...,
    ) -> tuple[asyncio.DatagramTransport, _P]: ...

    def add_address(self, address: str) -> None: ...

    def remove_address(self, address: str) -> None: ...


def _check_open(stack: DhcpCore) -> None:
    if stack.closed:
        raise ClosedError("the stack is closed")


def _send(
    stack: DhcpCore,
    src: bytes,
    dst: bytes,
    src_port: int,
    dst_port: int,
    payload: bytes,
    *,
    broadcast: bool = False,
    mac: bytes | None = None,
) -> None:
    """One UDP datagram with the route given: a link broadcast, a frame to ``mac`` (no ARP),
    or the routing table's choice."""
    # Out of the interface that has the source address (a server's, on the pool's network);
    # a client without an address yet runs on the stack's first interface.
    iface = stack.ipv4.owner(src) or stack.ipv4.interface(0)
    if broadcast:
        route = OutRoute(src, LIMITED_BROADCAST, LIMITED_BROADCAST, BROADCAST_MAC, iface=iface)
    elif mac is not None:
        route = OutRoute(src, dst, dst, mac, iface=iface)
    else:
        route = stack.ipv4.route(dst, None if src == ANY4 else src)
    try:
        stack.udp.send(route, src_port, dst_port, payload, stack.loop.time())
    finally:
        stack.touch()


# -- the server --------------------------------------------------------------------------------


class DhcpServerHandle:
    """A running DHCP server (from :func:`serve`): :attr:`leases`, :meth:`stats`,
    :meth:`close`; an async context manager."""

    def __init__(self, stack: DhcpCore, server: DhcpServer, path: Path | None) -> None:
        self.stack = stack
        #: The server machine (pools, counters, the lease database).
        self.server = server
        self.path = path
        self.save_errors = 0
        self._endpoint: asyncio.DatagramTransport | None = None
        self._timer = MachineTimer(stack.loop, self._on_timer)
        self._saved = server.generation
        self._seen = server.generation
        self._closed = False
        self._done = stack.loop.create_future()
        self._dns: DnsServer | None = None
        self._dns_domain = ""
        self._registered: dict[str, str] = {}
        self._replies: list[Any] = []
        self._flush_scheduled = False
        #: Lets go of the shared endpoint of the servers of single interfaces.
        self._detach: Callable[[], None] | None = None

    @property
    def address(self) -> str:
        """The server's address (its Server Identifier)."""
        return format_ipv4(self.server.server_ip)

    @property
    def leases(self) -> list[ServerLease]:
        """The leases in force, by address."""
        return self.server.leases_at(self.stack.loop.time())

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> dict[str, Any]:
        out = self.server.stats()
        out["save_errors"] = self.save_errors
        return out

    async def _open(self) -> None:
        self._endpoint, _ = await self.stack.create_datagram_endpoint(
            lambda: _Endpoint(self._on_datagram, self._on_lost),
            local_addr=("0.0.0.0", SERVER_PORT),
            allow_broadcast=True,
        )
        self._rearm()

    def _on_datagram(self, data: bytes, addr: Any) -> None:
        if self._closed:
            return
        self._replies.extend(self.server.receive(data, self.stack.loop.time()))
        if not self._flush_scheduled:
            # The requests of one turn of the loop are answered together, after one save of
            # the lease database: no ACK leaves before the lease it grants is on disk.
            self._flush_scheduled = True
            self.stack.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        replies, self._replies = self._replies, []
        if self._closed:
            return
        self._save_if_changed()
        for r in replies:
            try:
                _send(
                    self.stack, self.server.server_ip, r.dst, SERVER_PORT, r.port, r.payload,
                    broadcast=r.broadcast, mac=r.mac,
                )  # fmt: skip
            except OSError as exc:
                log.debug("cannot send a DHCP reply to %s: %s", format_ipv4(r.dst), exc)
        self._rearm()

    def _on_lost(self) -> None:
        if not self._closed:
            self.close()

    def _rearm(self) -> None:
        if not self._closed:
            self._timer.rearm(self.server.poll_at())

    def _on_timer(self, now: float) -> None:
        if self._closed:
            return
        self.server.handle_timeout(now)
        self._save_if_changed()
        self._rearm()

    def register_names(self, dns_server: DnsServer, domain: str) -> None:
        """Publish every lease whose client sent a Host Name (option 12) in ``dns_server``
        as ``<hostname>.<domain>`` A records, kept in step as leases come and go (what
        dnsmasq does for its DHCP clients).

        Args:
            dns_server: a server from :func:`netstack.dns.serve` that holds ``domain``.
            domain: the zone the names go in, e.g. ``"lab.test"``.
        """
        self._dns = dns_server
        self._dns_domain = domain.rstrip(".") + "."
        self._sync_names()

    def _sync_names(self) -> None:
        dns_server = self._dns
        if dns_server is None:
            return
        current: dict[str, str] = {}
        for lease in self.leases:
            host = (lease.hostname or "").strip().lower().rstrip(".")
            # RFC 1123 2.1 host names only: a client cannot inject other names or labels.
            if host and len(host) <= 63 and host.replace("-", "").isalnum() and host.isascii():
                current[f"{host}.{self._dns_domain}"] = lease.address
        for name in self._registered.keys() - current.keys():
            dns_server.set_records(name, "A", [])
        for name, address in current.items():
            if self._registered.get(name) != address:
                dns_server.set_records(name, "A", [address], ttl=60)
        self._registered = current

    def _save_if_changed(self) -> None:
        if self.server.generation != self._seen:
            self._seen = self.server.generation
            try:
                self._sync_names()
            except Exception:
                log.exception("cannot publish DHCP names in DNS")
        if self.path is None or self.server.generation == self._saved:
            return
        data = self.server.snapshot(self.stack.loop.time())
        data["saved_at"] = time.time()
        try:
            _write_atomically(self.path, json.dumps(data, indent=1, sort_keys=True))
        except OSError as exc:
            self.save_errors += 1
            log.error("cannot save the DHCP lease database to %s: %s", self.path, exc)
            return
        self._saved = self.server.generation

    def close(self) -> None:
        """Stop serving (the lease database is saved first). Safe to call twice."""
        if self._closed:
            return
        self._save_if_changed()
        self._closed = True
        self._timer.cancel()
        if self._endpoint is not None:
            self._endpoint.close()
        if self._detach is not None:
            self._detach()
            self._detach = None
        if not self._done.done():
            self._done.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._done)

    async def __aenter__(self) -> DhcpServerHandle:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        pool = self.server.local_pool
        state = " closed" if self._closed else ""
        return f"<DhcpServerHandle {self.address} pool {pool.start}-{pool.end}{state}>"


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a temporary file beside it, fsynced, renamed over it,
    and the folder fsynced so the rename itself survives a crash."""
    folder = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _parse_pool(pool: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    start, sep, end = pool.partition("-")
    if not sep:
        raise ValueError(f"pool must be 'first-last', got {pool!r}")
    try:
        return ipaddress.IPv4Address(start.strip()), ipaddress.IPv4Address(end.strip())
    except ValueError:
        raise ValueError(f"pool must be 'first-last' IPv4 addresses, got {pool!r}") from None


def _option_bytes(code: int, value: object) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("ascii")
    raise TypeError(f"option {code}: give bytes or an ASCII str, not {type(value).__name__}")


async def serve(
    stack: DhcpCore,
    pool: str = "198.18.0.100-198.18.0.199",
    router: str | None = None,
    dns: str | Iterable[str] | None = None,
    lease_time: int = 3600,
    leases_path: str | os.PathLike[str] | None = None,
    *,
    domain: str | None = None,
    reservations: Mapping[str, str] | None = None,
    options: Mapping[int, bytes | str] | None = None,
    config: DhcpServerConfig | None = None,
    interface: Any = None,
) -> DhcpServerHandle:
    """Serve DHCP on ``stack`` (UDP port 67).

    Args:
        stack: a stack with an IPv4 address on the pool's network (the Server Identifier).
        pool: the dynamic range, ``"first-last"``.
        router: the default router to hand out (option 3).
        dns: name server(s) to hand out (option 6).
        lease_time: seconds (0xffffffff: infinite).
        leases_path: a JSON file for the lease database, loaded now and rewritten after
            every change; None keeps it in memory.
        domain: the domain name to hand out (option 15).
        reservations: fixed addresses, ``{"02:00:00:00:00:01": "198.18.0.50"}``.
        options: more options, ``{code: bytes or ASCII str}``.
        config: a whole :class:`~netstack.proto.dhcp.server.DhcpServerConfig` instead of the
            arguments above (besides ``leases_path``).
        interface: serve only the clients on this interface (an Interface or its index), the
            pool on one of its networks: a router serves each client network with a server
            of its own this way (every such server of a stack shares port 67, each taking
            the messages that came in on its interface). None: one server for the stack.

    Returns:
        The running server.

    Raises:
        ValueError: a malformed argument, a pool on no network of the stack, or a lease
            file that is not a netstack lease database.
        AddressInUseError: UDP port 67 is taken (by a server for the whole stack, or one
            for the same interface).
    """
    _check_open(stack)
    ifindex: int | None = None
    if interface is not None:
        ifindex = interface if isinstance(interface, int) else int(interface.index)
        local = stack.ipv4.addresses_of(ifindex)  # ValueError: no such interface
    else:
        local = stack.ipv4.addresses
    if config is None:
        first, last = _parse_pool(pool)
        iface = next((a for a in local if first in a.network and last in a.network), None)
        if iface is None:
            have = ", ".join(str(a) for a in stack.ipv4.addresses) or "none"
            raise ValueError(f"pool {pool} is on no network of this stack (addresses: {have})")
        servers = [dns] if isinstance(dns, str) else list(dns or ())
        config = DhcpServerConfig(
            pools=(
                Pool(
                    network=iface.network,
                    start=first,
                    end=last,
                    router=ipaddress.IPv4Address(router) if router is not None else None,
                    dns_servers=tuple(ipaddress.IPv4Address(s) for s in servers),
                    domain=domain,
                    lease_time=int(lease_time),
                    options={c: _option_bytes(c, v) for c, v in (options or {}).items()},
                ),
            ),
            reservations={
                bytes.fromhex(mac.replace(":", "").replace("-", "")): parse_ipv4(ip)
                for mac, ip in (reservations or {}).items()
            },
        )
        server_ip = iface.ip.packed
    else:
        network = config.pools[0].network
        found = next((a for a in local if a.ip in network), None)
        if found is None:
            raise ValueError(f"the stack has no address on {network}")
        server_ip = found.ip.packed
    server = DhcpServer(server_ip, config, rng=None)
    path = Path(leases_path) if leases_path is not None else None
    if path is not None and path.exists():
        _load(server, path, stack.loop.time())
    handle = DhcpServerHandle(stack, server, path)
    if ifindex is None:
        await handle._open()
    else:
        _PerInterface.attach(stack, ifindex, handle)
    return handle


class _PerInterface:
    """A stack's DHCP servers that each serve one interface: one endpoint on port 67 of every
    address, bound in the UDP layer (which says the interface a datagram came in on), that
    hands each message to the server of its interface."""

    _of: weakref.WeakKeyDictionary[object, _PerInterface] = weakref.WeakKeyDictionary()

    def __init__(self, stack: DhcpCore) -> None:
        self.stack = stack
        self.local_ip = ANY4
        self.local_port = 0
        self.remote: tuple[bytes, int] | None = None
        self.servers: dict[int, DhcpServerHandle] = {}

    @classmethod
    def attach(cls, stack: DhcpCore, ifindex: int, handle: DhcpServerHandle) -> None:
        shared = cls._of.get(stack)
        if shared is None:
            shared = cls(stack)
            # AddressInUseError: a server for the whole stack has the port.
            shared.local_port = stack.udp.bind(shared, ANY4, SERVER_PORT)
            cls._of[stack] = shared
        elif ifindex in shared.servers:
            from ..errors import AddressInUseError

            raise AddressInUseError(f"a DHCP server serves interface {ifindex} already")
        shared.servers[ifindex] = handle
        handle._detach = lambda: shared.detach(ifindex, handle)
        handle._rearm()

    def detach(self, ifindex: int, handle: DhcpServerHandle) -> None:
        if self.servers.get(ifindex) is handle:
            del self.servers[ifindex]
        if not self.servers:
            self.stack.udp.unbind(self)
            if self._of.get(self.stack) is self:
                del self._of[self.stack]

    # -- the UDP layer's Endpoint interface ----------------------------------------------------
    def deliver(self, data: memoryview, src: bytes, port: int, ifindex: int = 0) -> None:
        handle = self.servers.get(ifindex)
        if handle is not None:
            handle._on_datagram(bytes(data), (format_ipv4(src), port))

    def error(self, exc: OSError) -> None:
        pass  # a server sends no datagram whose errors it waits for


def _load(server: DhcpServer, path: Path, now: float) -> None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the DHCP lease database {path}: {exc}") from None
    saved_at = data.get("saved_at") if isinstance(data, dict) else None
    elapsed = max(time.time() - saved_at, 0.0) if isinstance(saved_at, (int, float)) else 0.0
    loaded = server.restore(data, now, elapsed=elapsed)
    log.info("loaded %d DHCP bindings from %s", loaded, path)


# -- the client --------------------------------------------------------------------------------


class DhcpClientDriver:
    """A stack's DHCP client (from :func:`configure`).

    Attributes:
        client: the client machine.
        events: lease events as they happen (:class:`LeaseAcquired`, :class:`LeaseRenewed`,
            :class:`LeaseExpired`, :class:`LeaseLost`, :class:`AddressDeclined`); the oldest
            are dropped past 256 unread.
    """

    def __init__(self, stack: DhcpCore, client: DhcpClient) -> None:
        self.stack = stack
        self.client = client
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self._endpoint: asyncio.DatagramTransport | None = None
        self._timer = MachineTimer(stack.loop, self._on_timer)
        self._applied: Lease | None = None
        self._routes: list[tuple[ipaddress.IPv4Network, bytes | None]] = []
        self._saved_mtu: int | None = None
        self._added = False
        self._probing: bytes | None = None
        self._acquired: asyncio.Future[Lease] = stack.loop.create_future()
        #: Set whenever a lease is applied or the client closes.
        self._ready = asyncio.Event()
        self._closed = False

    # -- what users read -------------------------------------------------------------------
    @property
    def lease(self) -> Lease | None:
        """The lease in use (its ``address``, ``router``, ``dns_servers``, ``domain``...)."""
        return self.client.lease

    @property
    def state(self) -> DhcpState:
        return self.client.state

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> dict[str, Any]:
        return self.client.stats()

    async def wait_lease(self, timeout: float | None = None) -> Lease:
        """The lease in use, waiting for one if there is none (after an expiry or a NAK).

        Raises:
            TimeoutError: none within ``timeout`` seconds.
            ClosedError: the client is closed.
        """
        async with asyncio.timeout(timeout):
            while True:
                if self._closed:
                    raise ClosedError("the DHCP client is closed")
                lease = self.client.lease
                if lease is not None and self._applied is not None:
                    return lease
                self._ready.clear()
                await self._ready.wait()

    def renew(self) -> None:
        """Renew the lease now instead of at T1 (a unicast REQUEST to the server); the
        outcome arrives as a :class:`LeaseRenewed` (or :class:`LeaseLost`) event."""
        if self._closed:
            raise ClosedError("the DHCP client is closed")
        self.client.renew(self.stack.loop.time())
        self._service()

    # -- start and stop --------------------------------------------------------------------
    async def _open(self, remembered: Lease | None) -> None:
        stack = self.stack
        self._endpoint, _ = await stack.create_datagram_endpoint(
            lambda: _Endpoint(self._on_datagram, self._on_lost),
            local_addr=("0.0.0.0", CLIENT_PORT),
            allow_broadcast=True,
        )
        # Offers and acknowledgements may be unicast to the address being leased before the
        # stack has it (RFC 2131 4.1).
        stack.ipv4.accept_any_unicast = True
        self.client.start(stack.loop.time(), remembered)
        self._service()

    async def close(self, *, release: bool = True) -> None:
        """Stop: send a RELEASE for the lease (unless ``release=False``), then remove its
        address and routes from the stack. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        stack = self.stack
        self._timer.cancel()
        lease = self.client.lease
        usable = not stack.closed and self._endpoint is not None
        self.client.release(stack.loop.time())
        outgoing = self.client.datagrams_to_send()
        if release and usable and lease is not None:
            for out in outgoing:
                self._transmit(out)
            await self._wait_release_sent(lease)
        self._stop_probing()
        if not stack.closed:
            self._unapply()
        stack.ipv4.accept_any_unicast = False
        if self._endpoint is not None:
            self._endpoint.close()
        self._fail_waiters(ClosedError("the DHCP client was closed"))

    def _fail_waiters(self, exc: BaseException) -> None:
        self._ready.set()
        if not self._acquired.done():
            self._acquired.set_exception(exc)
            self._acquired.exception()  # retrieved: nobody may be waiting

    async def _wait_release_sent(self, lease: Lease) -> None:
        """The RELEASE is unicast from the leased address: keep the address until ARP has
        found the server (or a second passed), so the frame is not stranded."""
        try:
            hop = self.stack.ipv4.route(parse_ipv4(lease.server_id)).next_hop
        except OSError:
            return
        deadline = self.stack.loop.time() + RELEASE_ARP_WAIT
        cache = self.stack.arp.cache
        while self.stack.loop.time() < deadline and not self.stack.closed:
            if cache.state(hop) not in (None, NeighbourState.INCOMPLETE):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)

    def _on_lost(self) -> None:
        # The endpoint went away under us (the stack closed).
        if not self._closed:
            self._closed = True
            self._timer.cancel()
            self._fail_waiters(ClosedError("the stack was closed"))

    async def __aenter__(self) -> DhcpClientDriver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- inputs ----------------------------------------------------------------------------
    def _on_datagram(self, data: bytes, addr: Any) -> None:
        if self._closed:
            return
        self.client.receive(data, self.stack.loop.time())
        self._service()

    def _on_probe_conflict(self, ip: bytes, mac: bytes, now: float) -> None:
        if self._closed or self.client.probing != ip:
            return
        log.warning("%s is in use by %s: declining it", format_ipv4(ip), mac.hex(":"))
        self.client.probe_result(ip, True, now)
        self._service()

    def _on_timer(self, now: float) -> None:
        if self._closed or self.stack.closed:
            return
        self.client.handle_timeout(now)
        self._service()

    # -- outputs ---------------------------------------------------------------------------
    def _service(self) -> None:
        """Carry out what the machine asked for, then re-arm the timer."""
        if self._closed or self.stack.closed:
            return
        client = self.client
        for out in client.datagrams_to_send():
            self._transmit(out)
        for action in client.actions_to_send():
            if isinstance(action, ProbeAddress):
                self._probing = action.ip
                self.stack.arp.probe(action.ip, self.stack.loop.time(), self._on_probe_conflict)
        if self._probing is not None and client.probing != self._probing:
            self._stop_probing()
        while (event := client.next_event()) is not None:
            self._on_event(event)
        self._rearm()
        self.stack.touch()

    def _transmit(self, out: Outgoing) -> None:
        try:
            _send(self.stack, out.src, out.dst, CLIENT_PORT, SERVER_PORT, out.payload,
                  broadcast=out.broadcast)  # fmt: skip
        except OSError as exc:
            log.debug("cannot send a DHCP message to %s: %s", format_ipv4(out.dst), exc)

    def _stop_probing(self) -> None:
        if self._probing is not None:
            self.stack.arp.stop_probing(self._probing)
            self._probing = None

    def _rearm(self) -> None:
        self._timer.rearm(self.client.poll_at())

    def _on_event(self, event: Event) -> None:
        log.info("dhcp: %s", _describe(event))
        if isinstance(event, LeaseAcquired):
            self._unapply()
            self._apply(event.lease)
            if not self._acquired.done():
                self._acquired.set_result(event.lease)
        elif isinstance(event, LeaseRenewed):
            if _config_of(event.lease) != _config_of(self._applied):
                self._unapply()
                self._apply(event.lease)
            self._applied = event.lease
        elif isinstance(event, (LeaseExpired, LeaseLost)):
            self._unapply()
        if self.events.qsize() >= MAX_QUEUED_EVENTS:
            self.events.get_nowait()
        self.events.put_nowait(event)

    # -- configuring the stack -------------------------------------------------------------
    def _apply(self, lease: Lease) -> None:
        stack = self.stack
        try:
            stack.add_address(lease.interface)
            self._added = True
        except ValueError as exc:  # configured already, by hand: left to its owner
            log.warning("dhcp: cannot add %s: %s", lease.interface, exc)
            self._added = False
        stack.ipv4.accept_any_unicast = False
        for destination, gateway in lease.effective_routes:
            network = ipaddress.IPv4Network(destination)
            via = parse_ipv4(gateway) if gateway is not None else None
            stack.ipv4.add_route(network, via)
            self._routes.append((network, via))
        if lease.mtu is not None and lease.mtu < stack.ipv4.mtu:
            # The Interface MTU (RFC 2132 5.1) lowers the link's, never raises it.
            self._saved_mtu = stack.ipv4.mtu
            stack.ipv4.mtu = lease.mtu
        self._applied = lease
        self._ready.set()

    def _unapply(self) -> None:
        lease = self._applied
        if lease is None:
            return
        stack = self.stack
        self._applied = None
        for network, gw in self._routes:
            with contextlib.suppress(ValueError):
                stack.ipv4.remove_route(network, gw)
        self._routes = []
        if self._saved_mtu is not None:
            stack.ipv4.mtu = self._saved_mtu
            self._saved_mtu = None
        if self._added:
            self._added = False
            with contextlib.suppress(ValueError):
                stack.remove_address(lease.address)
        if not self._closed:
            stack.ipv4.accept_any_unicast = True

    def __repr__(self) -> str:
        lease = self.client.lease
        what = lease.interface if lease is not None else "no lease"
        return f"<DhcpClientDriver {self.client.state.value} {what}>"


def _config_of(lease: Lease | None) -> tuple[Any, ...] | None:
    if lease is None:
        return None
    return (lease.address, lease.prefix_len, lease.router, lease.routes, lease.mtu)


def _describe(event: Event) -> str:
    if isinstance(event, (LeaseAcquired, LeaseRenewed, LeaseExpired)):
        lease = event.lease
        return f"{type(event).__name__} {lease.interface} from {lease.server_id}"
    if isinstance(event, LeaseLost):
        return f"LeaseLost ({event.reason})"
    return f"AddressDeclined {event.address}"


async def configure(
    stack: DhcpCore,
    *,
    hostname: str | None = None,
    timeout: float = 30.0,
    config: DhcpClientConfig | None = None,
    remembered: Lease | None = None,
) -> DhcpClientDriver:
    """Configure ``stack``'s IPv4 from a DHCP server, and keep the lease renewed.

    Args:
        stack: an open stack; it needs no IPv4 address.
        hostname: the Host Name to send (default: the stack's).
        timeout: seconds to wait for the first lease.
        config: client tunables (:class:`DhcpClientConfig`): probing, retransmission,
            options to ask for or send.
        remembered: a lease from an earlier run (:meth:`Lease.from_dict`): its address is
            asked for again first (INIT-REBOOT, RFC 2131 3.2).

    Returns:
        The running client; ``.lease`` is the lease in use.

    Raises:
        TimeoutError: no lease within ``timeout`` seconds.
        ClosedError: the stack closed meanwhile.
        AddressInUseError: UDP port 68 is taken (another DHCP client on this stack).
    """
    _check_open(stack)
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    name = hostname if hostname is not None else stack.hostname
    if config is None:
        mtu = stack.link.mtu
        config = DhcpClientConfig(hostname=name, max_message_size=max(576, min(mtu, 0xFFFF)))
    elif name is not None and config.hostname is None:
        config = dataclasses.replace(config, hostname=name)
    client = DhcpClient(bytes(stack.ethernet.mac), config, stack.rng)
    driver = DhcpClientDriver(stack, client)
    try:
        await driver._open(remembered)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(driver._acquired)
        except TimeoutError:
            raise TimeoutError(
                f"no DHCP lease within {timeout} s (state {client.state.value}, "
                f"{client.discovers_sent} DISCOVERs and {client.requests_sent} REQUESTs sent, "
                f"{client.offers_received} OFFERs received)"
            ) from None
    except BaseException:
        await driver.close(release=False)
        raise
    return driver
