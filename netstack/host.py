"""The :class:`HostStack`: :class:`~netstack.Stack`'s methods on the operating system's own
TCP/IP stack.

MirageOS builds one application against either its own stack or the host's sockets
(``--net socket``); this is the same idea. A :class:`HostStack` has the call shapes of
:class:`~netstack.Stack` -- ``open_connection``, ``start_server``, ``create_connection``,
``create_server``, ``create_datagram_endpoint``, ``ping``, ``resolve``, ``stats``,
``reset_stats``, ``close`` and the async context manager, the contract both fulfil
(:class:`netstack.NetworkStack`) -- and carries each call out through the running event loop
on ordinary sockets, so code written against one runs on the other unchanged::

    async def serve(stack: netstack.NetworkStack) -> None:
        server = await stack.start_server(handle, port=0)
        print("listening on", server.addresses[0][1])

Servers come back as :class:`HostServer`, a thin wrapper around :class:`asyncio.Server` that
adds netstack's ``addresses`` and ``port``. Where netstack and asyncio differ, netstack's
meaning wins: ``local_port=`` is a shorthand for ``local_addr``, and a server on every address
(``host=None``) with an ephemeral port gets *one* port for IPv4 and IPv6 alike (asyncio would
pick one per address family).

``ping`` needs an ICMP socket: an unprivileged ICMP datagram socket where the kernel allows it
(Linux's ``net.ipv4.ping_group_range``), else a raw socket (root or ``CAP_NET_RAW``), else it
raises :class:`PermissionError` saying so. An ICMP error about the request fails the ping
with the error netstack's own stack raises for the same message (the table of
:mod:`netstack.proto.icmp.oserror`, which is Linux's).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import os
import socket
import ssl as ssl_module
import struct
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

from . import happy_eyeballs
from .errors import ClosedError
from .proto.checksum import checksum
from .proto.icmp.oserror import to_oserror, to_oserror6
from .proto.icmp.wire import ERROR_TYPES, IcmpType
from .proto.icmpv6.wire import Icmp6Type
from .streams import (
    NetstackStreamWriter,
    is_tls_config,
    open_stream_connection,
    stream_server_factory,
)
from .switch import unpatched

__all__ = ["HostServer", "HostStack"]

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

#: An echo request or reply's header: type, code, checksum, identifier, sequence number.
_ICMP_HEADER = struct.Struct("!BBHHH")
#: How many times a shared port for IPv4 and IPv6 is looked for before giving up.
_DUAL_PORT_ATTEMPTS = 8


class _Connections:
    """The transports of open connections, for ``close()`` to end them.

    Weakly referenced where the transport allows it, so a transport dropped unclosed is still
    collected as asyncio lets it be; uvloop's SSL transports take no weak reference, so those
    are held, until the ``connection_lost`` that :meth:`HostStack._track` reports.
    """

    def __init__(self) -> None:
        self._weak: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        self._held: set[asyncio.BaseTransport] = set()

    def add(self, transport: asyncio.BaseTransport, *, hold: bool = True) -> None:
        """Remember ``transport``; one that takes no weak reference only with ``hold``
        (when its ``connection_lost`` will :meth:`discard` it)."""
        try:
            self._weak.add(transport)
        except TypeError:
            if hold:
                self._held.add(transport)

    def discard(self, transport: asyncio.BaseTransport) -> None:
        self._held.discard(transport)
        with contextlib.suppress(TypeError):
            self._weak.discard(transport)

    def __iter__(self) -> Iterator[asyncio.BaseTransport]:
        return iter([*self._weak, *self._held])


class HostServer(asyncio.AbstractServer):
    """A listening TCP server of a :class:`HostStack`: one or more :class:`asyncio.Server`
    objects behind the interface of netstack's :class:`~netstack.streams.Server`.

    Everything :class:`asyncio.Server` offers is delegated (``sockets``, ``close()``,
    ``wait_closed()``, ``serve_forever()``, ``async with``, ...); ``addresses`` and ``port``
    are added, so ``server.addresses[0][1]`` works on both kinds of stack.
    """

    def __init__(self, servers: Iterable[asyncio.Server]) -> None:
        """Wrap servers that belong together (one per address family of one endpoint).

        Args:
            servers: the :class:`asyncio.Server` objects; at least one.

        Raises:
            ValueError: no server given.
        """
        self._servers = tuple(servers)
        if not self._servers:
            raise ValueError("a HostServer needs at least one asyncio.Server")
        self._transports = _Connections()
        self._serving_forever = False
        # Kept: asyncio forgets its sockets on close(), netstack's Server keeps its addresses.
        self._addresses: list[tuple[str, int]] = []
        for sock in self.sockets:
            name = sock.getsockname()
            if isinstance(name, tuple):
                self._addresses.append((str(name[0]), int(name[1])))

    @property
    def servers(self) -> tuple[asyncio.Server, ...]:
        """The wrapped :class:`asyncio.Server` objects."""
        return self._servers

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (``asyncio.TransportSocket`` objects), of every server."""
        out: list[socket.socket] = []
        for server in self._servers:
            out.extend(server.sockets)
        return tuple(out)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The ``(host, port)`` pairs listened on (also after :meth:`close`), as netstack's
        ``Server.addresses``."""
        return list(self._addresses)

    @property
    def port(self) -> int:
        """The port listened on (the first address's; all share it unless ``host`` named
        several addresses and ``port`` was 0)."""
        return self._addresses[0][1] if self._addresses else 0

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the server runs on."""
        return self._servers[0].get_loop()

    def is_serving(self) -> bool:
        """Whether the server accepts connections."""
        return any(server.is_serving() for server in self._servers)

    async def start_serving(self) -> None:
        """Start accepting connections (for ``start_serving=False``); idempotent."""
        for server in self._servers:
            await server.start_serving()

    def close(self) -> None:
        """Stop listening; connections already accepted go on, as :meth:`asyncio.Server.close`."""
        for server in self._servers:
            server.close()

    def close_clients(self) -> None:
        """Close every connection this server accepted (as Python 3.13's asyncio.Server)."""
        for transport in list(self._transports):
            transport.close()

    def abort_clients(self) -> None:
        """Abort every connection this server accepted."""
        for transport in list(self._transports):
            _abort(transport)

    async def wait_closed(self) -> None:
        """Wait until the server is closed, as :meth:`asyncio.Server.wait_closed`."""
        for server in self._servers:
            await server.wait_closed()

    async def serve_forever(self) -> None:
        """Accept connections until cancelled; cancelling closes the server.

        Raises:
            RuntimeError: already being awaited, or the server is closed.
            asyncio.CancelledError: when cancelled (the server is closed by then).
        """
        if self._serving_forever:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        self._serving_forever = True
        try:
            if len(self._servers) == 1:
                await self._servers[0].serve_forever()
            else:
                # gather() cancels every child when it is cancelled itself; each child closes
                # its own server on the way out.
                await asyncio.gather(*(server.serve_forever() for server in self._servers))
        finally:
            self._serving_forever = False

    async def __aenter__(self) -> HostServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()

    def __repr__(self) -> str:
        return f"<HostServer {self.addresses}>"


class HostStack:
    """netstack's :class:`~netstack.Stack` interface on the operating system's sockets.

    Create it with ``HostStack()`` or ``await HostStack.open()``; use it as an async context
    manager or call :meth:`close`. It must be created and used inside a running event loop.
    """

    def __init__(self) -> None:
        """A host stack on the running loop.

        Raises:
            RuntimeError: no event loop is running.
        """
        self.loop = asyncio.get_running_loop()
        self._closed = False
        self._servers: set[HostServer] = set()
        self._endpoints: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        self._transports = _Connections()
        self._ping_ident = int.from_bytes(os.urandom(2), "big")
        self._ping_seq = int.from_bytes(os.urandom(2), "big")
        self._counters = {
            "connections_opened": 0,
            "connections_accepted": 0,
            "connections_failed": 0,
            "servers_started": 0,
            "datagram_endpoints": 0,
            "pings_sent": 0,
            "pings_answered": 0,
        }

    # -- lifecycle -----------------------------------------------------------------------------
    @classmethod
    async def open(cls) -> HostStack:
        """Make a host stack, for symmetry with :meth:`netstack.Stack.open` (there is no link
        to start and no address to configure: the operating system has them).

        Returns:
            The stack.
        """
        return cls()

    async def __aenter__(self) -> HostStack:
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
        """Whether :meth:`close` was called."""
        return self._closed

    async def close(self) -> None:
        """Close every server and datagram endpoint made through this stack and abort every
        TCP connection it opened or accepted, as :meth:`netstack.Stack.close` does. Safe to
        call twice."""
        if self._closed:
            return
        self._closed = True
        for server in list(self._servers):
            server.close()
        for endpoint in list(self._endpoints):
            endpoint.close()
        for transport in list(self._transports):
            _abort(transport)
        for server in list(self._servers):
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        await asyncio.sleep(0)  # let connection_lost callbacks run

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the stack is closed")

    def _track(self, protocol: _P, *sets: _Connections) -> _P:
        """Remember the transport a protocol is given until its connection is lost, so that
        :meth:`close` can abort it."""
        made, lost = protocol.connection_made, protocol.connection_lost
        current: list[asyncio.BaseTransport] = []

        def connection_made(transport: asyncio.BaseTransport) -> None:
            current.append(transport)
            for tracked in sets:
                tracked.add(transport)
            made(transport)

        def connection_lost(exc: Exception | None) -> None:
            for transport in current:
                for tracked in sets:
                    tracked.discard(transport)
            current.clear()
            lost(exc)

        # A protocol class with __slots__ cannot be tracked; it still works, only close()
        # will not abort its connection.
        with contextlib.suppress(AttributeError, TypeError):
            protocol.connection_lost = connection_lost  # type: ignore[method-assign]
            protocol.connection_made = connection_made  # type: ignore[method-assign]
        return protocol

    # -- TCP -----------------------------------------------------------------------------------
    async def create_connection(
        self,
        protocol_factory: Callable[[], _P],
        host: str | None = None,
        port: int | None = None,
        *,
        ssl: Any = None,
        local_addr: tuple[str | None, int] | None = None,
        server_hostname: str | None = None,
        local_port: int | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, _P]:
        """Open a TCP connection, as :meth:`asyncio.loop.create_connection`.

        Args:
            protocol_factory: makes the :class:`asyncio.Protocol`.
            host: the peer's address or name.
            port: the peer's port.
            ssl: an :class:`ssl.SSLContext` (or ``True`` for the default one) for TLS.
            local_addr: ``(host, port)`` to connect from.
            server_hostname: the name to check the server's certificate against.
            local_port: the local port; a shorthand for ``local_addr`` on every address.
            kwargs: more keyword arguments for :meth:`asyncio.loop.create_connection`
                (``family``, ``ssl_handshake_timeout``, ...), and netstack's own:
                ``nodelay``, ``keepalive`` and ``congestion`` (``"newreno"`` or
                ``"cubic"``), set as socket options (``TCP_NODELAY``, ``SO_KEEPALIVE``,
                ``TCP_CONGESTION``). ``happy_eyeballs_delay``, ``interleave`` and
                ``all_errors`` are carried out here (RFC 8305, :mod:`netstack.happy_eyeballs`),
                with asyncio's meaning on any loop (uvloop's takes none of them).

        Returns:
            ``(transport, protocol)`` once connected.

        Raises:
            TypeError: a keyword argument the loop's ``create_connection`` does not take.
            ConnectionRefusedError: nothing listens there.
            TimeoutError: the peer did not answer.
            OSError: no route, unreachable, the local port is taken, a socket option the
                operating system refuses, ...
            ExceptionGroup: every attempt failed, with ``all_errors=True``.
            ValueError: a bad argument (both ``local_addr`` and ``local_port``, an
                ``ssl`` that is not an :class:`ssl.SSLContext`, an unknown congestion
                control).
            ClosedError: the stack is closed.
        """
        self._check_open()
        _check_ssl(ssl)
        if is_tls_config(ssl):
            from .tls.stream import connect_tls

            # netstack's own TLS 1.3 over the operating system's TCP.
            name = server_hostname if server_hostname is not None else host
            return await connect_tls(
                self.loop, self.create_connection, protocol_factory, ssl, name,
                kwargs.pop("ssl_handshake_timeout", None), host, port,
                shutdown_timeout=kwargs.pop("ssl_shutdown_timeout", None),
                local_addr=local_addr, local_port=local_port, **kwargs,
            )  # fmt: skip
        options = _socket_options(kwargs)
        delay = happy_eyeballs.attempt_delay(kwargs.pop("happy_eyeballs_delay", None))
        first_count = happy_eyeballs.first_family_count(kwargs.pop("interleave", None), delay)
        all_errors = bool(kwargs.pop("all_errors", False))
        if local_port is not None:
            if local_addr is not None:
                raise ValueError("give local_addr or local_port, not both")
            local_addr, family = _wildcard_for(host, kwargs.get("family", 0), local_port)
            kwargs["family"] = family
        elif local_addr is not None and local_addr[0] in (None, ""):
            local_addr, family = _wildcard_for(host, kwargs.get("family", 0), local_addr[1])
            kwargs["family"] = family
        transport: asyncio.Transport
        protocol: _P
        try:
            # The loop's own method, also under netstack.use(this stack); asyncio checks
            # host/port/sock itself, typeshed is stricter.
            create_connection: Any = unpatched(self.loop, "create_connection")
            if host is not None and (delay is not None or first_count or all_errors):
                # The race runs here, on sockets; the winner becomes the connection.
                sock = await self._race(
                    host, port, local_addr, delay, first_count, all_errors,
                    kwargs.pop("family", 0), kwargs.pop("proto", 0), kwargs.pop("flags", 0),
                )  # fmt: skip
                if ssl and server_hostname is None:
                    server_hostname = host
                host = port = local_addr = None
                kwargs["sock"] = sock
            transport, protocol = await create_connection(
                lambda: self._track(protocol_factory(), self._transports),
                host,
                port,
                ssl=ssl,
                local_addr=local_addr,
                server_hostname=server_hostname,
                **kwargs,
            )
            try:
                _set_options(transport.get_extra_info("socket"), options)
            except BaseException:
                transport.abort()
                raise
        except BaseException:
            self._counters["connections_failed"] += 1
            raise
        self._counters["connections_opened"] += 1
        # Also when the protocol could not be tracked (then only weakly: nothing would let go).
        self._transports.add(transport, hold=False)
        return transport, protocol

    async def _race(
        self,
        host: str,
        port: Any,
        local_addr: tuple[str | None, int] | None,
        delay: float | None,
        first_count: int | None,
        all_errors: bool,
        family: int,
        proto: int,
        flags: int,
    ) -> socket.socket:
        """A connected socket to ``host``: its addresses tried as RFC 8305 says
        (:func:`netstack.happy_eyeballs.race`), each from ``local_addr`` when given.

        Raises:
            OSError, ExceptionGroup: no address took the connection.
        """
        loop = self.loop
        getaddrinfo: Any = unpatched(loop, "getaddrinfo")
        sock_connect: Any = unpatched(loop, "sock_connect")
        infos = await getaddrinfo(
            host, port, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
        )
        if not infos:
            raise OSError("getaddrinfo() returned empty list")
        local_infos = None
        if local_addr is not None:
            local_infos = await getaddrinfo(
                *local_addr, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
            )
            if not local_infos:
                raise OSError("getaddrinfo() returned empty list")
        if first_count is not None:
            infos = happy_eyeballs.interleave(infos, first_count, lambda info: int(info[0]))

        async def attempt(info: Any) -> socket.socket:
            fam, kind, proto_, _, address = info
            sock = socket.socket(fam, kind, proto_)
            try:
                sock.setblocking(False)
                if local_infos is not None:
                    mine = [i[4] for i in local_infos if i[0] == fam]
                    if not mine:
                        raise OSError(f"no matching local address with family={fam} found")
                    sock.bind(mine[0])
                await sock_connect(sock, address)
            except BaseException:
                sock.close()
                raise
            return sock

        attempts = [functools.partial(attempt, info) for info in infos]
        return await happy_eyeballs.race(
            attempts, delay, all_errors=all_errors, discard=socket.socket.close
        )

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

        Args:
            host: the peer's address or name.
            port: the peer's port.
            limit: the :class:`asyncio.StreamReader`'s buffer limit.
            ssl: an :class:`ssl.SSLContext` (or ``True``) for TLS.
            server_hostname: the name to check the server's certificate against.
            local_port: the local port to connect from.
            kwargs: more keyword arguments for :meth:`create_connection`.

        Returns:
            ``(reader, writer)``.

        Raises:
            ConnectionRefusedError, TimeoutError, OSError, ValueError, ClosedError: as
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
            # STARTTLS with either engine on either loop (the loop's own start_tls takes
            # only an ssl.SSLContext).
            writer_class=NetstackStreamWriter,
            **kwargs,
        )

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | list[str] | None = None,
        port: int = 0,
        *,
        ssl: Any = None,
        backlog: int = 128,
        sock: socket.socket | None = None,
        start_serving: bool = True,
        **kwargs: Any,
    ) -> HostServer:
        """Listen for TCP connections, as :meth:`asyncio.loop.create_server`.

        Args:
            protocol_factory: makes one :class:`asyncio.Protocol` per connection.
            host: the local address (or a list of them); ``None`` or ``""`` for every
                address, IPv4 and IPv6 -- with ``port=0`` both on one ephemeral port.
            port: the port; 0 for an ephemeral one (see ``server.addresses``).
            ssl: an :class:`ssl.SSLContext` for TLS.
            backlog: the listen queue's length.
            sock: an already bound socket to listen on (``host`` and ``port`` must be unset).
            start_serving: accept connections at once.
            kwargs: more keyword arguments for :meth:`asyncio.loop.create_server`, and
                netstack's ``nodelay``, ``keepalive`` (also as Python 3.13's
                ``keep_alive``) and ``congestion``, set on the listening sockets, whose
                connections inherit them.

        Returns:
            The :class:`HostServer`.

        Raises:
            TypeError: a keyword argument the loop's ``create_server`` does not take.
            OSError: the address is in use or not this host's, or a socket option the
                operating system refuses.
            ValueError: a bad argument.
            ClosedError: the stack is closed.
        """
        self._check_open()
        _check_ssl(ssl)
        if "keep_alive" in kwargs:
            kwargs.setdefault("keepalive", kwargs.pop("keep_alive"))
        socket_options = _socket_options(kwargs)
        if is_tls_config(ssl):
            from .tls.stream import tls_server_factory

            protocol_factory = tls_server_factory(
                self.loop, protocol_factory, ssl, kwargs.pop("ssl_handshake_timeout", None),
                kwargs.pop("ssl_shutdown_timeout", None),
            )  # fmt: skip
            ssl = None
        holder: list[HostServer] = []

        def factory() -> asyncio.BaseProtocol:
            self._counters["connections_accepted"] += 1
            protocol = protocol_factory()
            sets = [self._transports]
            if holder:
                sets.append(holder[0]._transports)
            return self._track(protocol, *sets)

        options: dict[str, Any] = dict(
            ssl=ssl, backlog=backlog, start_serving=start_serving, **kwargs
        )
        # The loop's own method, also under netstack.use(this stack); typeshed's overloads
        # forbid host and sock both None.
        create_server: Any = unpatched(self.loop, "create_server")
        servers: list[asyncio.Server] = []
        if sock is None and host in (None, "") and port == 0 and "family" not in kwargs:
            listening = _dual_stack_sockets(kwargs.get("reuse_address"))
            try:
                for one in listening:
                    servers.append(await create_server(factory, sock=one, **options))
            except BaseException:
                for started in servers:
                    started.close()
                for one in listening:
                    one.close()
                raise
        else:
            servers.append(await create_server(factory, host, port, sock=sock, **options))
        host_server = HostServer(servers)
        try:
            for listening_socket in host_server.sockets:
                _set_options(listening_socket, socket_options)
        except BaseException:
            host_server.close()
            raise
        holder.append(host_server)
        self._servers.add(host_server)
        self._counters["servers_started"] += 1
        return host_server

    async def start_server(
        self,
        client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
        host: str | list[str] | None = None,
        port: int = 0,
        *,
        limit: int = 2**16,
        ssl: Any = None,
        backlog: int = 128,
        **kwargs: Any,
    ) -> HostServer:
        """A TCP server calling ``client_connected_cb(reader, writer)`` for every connection,
        as :func:`asyncio.start_server` (the callback may be a coroutine function).

        Args:
            client_connected_cb: called with the streams of every accepted connection.
            host: the local address; ``None`` for every address (see :meth:`create_server`).
            port: the port; 0 for an ephemeral one.
            limit: each :class:`asyncio.StreamReader`'s buffer limit.
            ssl: an :class:`ssl.SSLContext` for TLS.
            backlog: the listen queue's length.
            kwargs: more keyword arguments for :meth:`create_server`.

        Returns:
            The :class:`HostServer`.

        Raises:
            OSError, ValueError, ClosedError: as :meth:`create_server`.
        """
        factory = stream_server_factory(self.loop, client_connected_cb, limit)
        return await self.create_server(factory, host, port, ssl=ssl, backlog=backlog, **kwargs)

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
        **kwargs: Any,
    ) -> tuple[asyncio.DatagramTransport, _P]:
        """A UDP endpoint, as :meth:`asyncio.loop.create_datagram_endpoint`.

        Args:
            protocol_factory: makes the :class:`asyncio.DatagramProtocol`.
            local_addr: ``(host, port)`` to bind; host ``None`` or ``""`` for every address
                (as netstack: IPv4, or IPv6 when ``remote_addr`` or ``family`` is IPv6),
                port 0 for an ephemeral one.
            remote_addr: ``(host, port)`` to connect to.
            family, proto, flags, reuse_port, allow_broadcast, sock: as
                :meth:`asyncio.loop.create_datagram_endpoint`.
            kwargs: more keyword arguments for the loop's ``create_datagram_endpoint``.

        Returns:
            ``(transport, protocol)``.

        Raises:
            OSError: the port is taken, or the address is not this host's.
            ValueError: a bad argument.
            ClosedError: the stack is closed.
        """
        self._check_open()
        if local_addr is not None and local_addr[0] in (None, ""):
            remote_host = remote_addr[0] if remote_addr is not None else None
            local_addr, family = _wildcard_for(remote_host, family, local_addr[1])
        transport: asyncio.DatagramTransport
        protocol: _P
        # local_addr's host is a str by now; typeshed cannot tell
        create_datagram_endpoint: Any = unpatched(self.loop, "create_datagram_endpoint")
        transport, protocol = await create_datagram_endpoint(
            protocol_factory, local_addr=local_addr, remote_addr=remote_addr, family=family,
            proto=proto, flags=flags, reuse_port=reuse_port, allow_broadcast=allow_broadcast,
            sock=sock, **kwargs,
        )  # fmt: skip
        self._endpoints.add(transport)
        self._counters["datagram_endpoints"] += 1
        return transport, protocol

    # -- ICMP echo -----------------------------------------------------------------------------
    async def ping(self, host: str, *, timeout: float = 1.0, size: int = 56) -> float:
        """Send one ICMP (or ICMPv6) echo request and wait for the reply.

        Args:
            host: an IPv4 or IPv6 address, or a name (resolved by the operating system).
            timeout: seconds to wait.
            size: bytes of echo data (as ``ping -s``).

        Returns:
            The round-trip time in seconds.

        Raises:
            TimeoutError: no reply in time.
            PermissionError: neither an unprivileged ICMP socket
                (``net.ipv4.ping_group_range``) nor a raw socket (root, ``CAP_NET_RAW``)
                is allowed.
            OSError: an ICMP error came back, or the address cannot be reached.
            ValueError: a bad size or timeout.
            ClosedError: the stack is closed.
        """
        self._check_open()
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 65507:
            raise ValueError(f"size must be in 0..65507, got {size!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        family, address = await self._resolve_one(host)
        sock, raw = _icmp_socket(family)
        try:
            return await self._ping_on(sock, raw, family, address, host, timeout, size)
        finally:
            sock.close()

    async def resolve(self, name: str, family: int = 0) -> list[str]:
        """The addresses of ``name``, as :meth:`netstack.Stack.resolve` gives them (IPv6
        first), from the operating system's resolver (``getaddrinfo``).

        Raises:
            socket.gaierror: the name does not resolve.
            ClosedError: the stack is closed.
        """
        self._check_open()
        getaddrinfo = unpatched(self.loop, "getaddrinfo")
        infos = await getaddrinfo(name, None, family=family, type=socket.SOCK_STREAM)
        out: list[str] = []
        for fam, _, _, _, sockaddr in sorted(infos, key=lambda i: i[0] != socket.AF_INET6):
            address = str(sockaddr[0])
            if fam in (socket.AF_INET, socket.AF_INET6) and address not in out:
                out.append(address)
        return out

    async def _resolve_one(self, host: str) -> tuple[int, str]:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            infos = await unpatched(self.loop, "getaddrinfo")(host, None, type=socket.SOCK_RAW)
            if not infos:
                raise OSError(errno.EHOSTUNREACH, f"no address for {host}") from None
            family, _, _, _, sockaddr = infos[0]
            return int(family), str(sockaddr[0])
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), str(ip)

    async def _ping_on(
        self,
        sock: socket.socket,
        raw: bool,
        family: int,
        address: str,
        host: str,
        timeout: float,
        size: int,
    ) -> float:
        v6 = family == socket.AF_INET6
        self._ping_seq = (self._ping_seq + 1) & 0xFFFF
        seq = self._ping_seq
        # A datagram ICMP socket owns its identifier (the kernel writes its port there).
        ident = self._ping_ident if raw else 0
        payload = (bytes(range(256)) * (size // 256 + 1))[:size]
        request = bytearray(
            _ICMP_HEADER.pack(
                Icmp6Type.ECHO_REQUEST if v6 else IcmpType.ECHO_REQUEST, 0, 0, ident, seq
            )
        )
        request += payload
        if not v6:
            # ICMPv6 checksums cover a pseudo-header: the kernel fills them in.
            struct.pack_into("!H", request, 2, checksum(request))
        sockaddr: tuple[Any, ...] = (address, 0, 0, 0) if v6 else (address, 0)
        if not raw:
            sock.connect(sockaddr)
            ident = sock.getsockname()[1]
        fut: asyncio.Future[float] = self.loop.create_future()

        def readable() -> None:
            while not fut.done():
                try:
                    data, src = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    fut.set_exception(exc)
                    return
                outcome = _match_reply(data, src, raw, v6, address, ident, seq, payload)
                if isinstance(outcome, OSError):
                    fut.set_exception(outcome)
                elif outcome:
                    fut.set_result(time.perf_counter())

        fd = sock.fileno()
        self.loop.add_reader(fd, readable)
        try:
            sent = time.perf_counter()
            try:
                sock.sendto(bytes(request), sockaddr)
            except BlockingIOError:
                raise OSError(errno.ENOBUFS, "the ICMP socket's send buffer is full") from None
            self._counters["pings_sent"] += 1
            try:
                async with asyncio.timeout(timeout):
                    received = await fut
            except TimeoutError:
                raise TimeoutError(f"no echo reply from {host} within {timeout} s") from None
        finally:
            self.loop.remove_reader(fd)
        self._counters["pings_answered"] += 1
        return received - sent

    # -- statistics ----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters of what was done through this stack.

        Returns:
            A dict with ``connections_opened``, ``connections_accepted``,
            ``connections_failed``, ``servers_started``, ``datagram_endpoints``,
            ``pings_sent``, ``pings_answered`` and ``servers`` (listening now).
        """
        out: dict[str, Any] = dict(self._counters)
        out["servers"] = sum(1 for server in self._servers if server.is_serving())
        return out

    def reset_stats(self) -> None:
        """Set the counters of :meth:`stats` back to zero (``servers`` counts what listens
        now, and stays)."""
        for name in self._counters:
            self._counters[name] = 0

    def __repr__(self) -> str:
        return f"<HostStack{' closed' if self._closed else ''}>"


def _abort(transport: asyncio.BaseTransport) -> None:
    """Abort a connection unless it is closed already."""
    abort = getattr(transport, "abort", None)
    if not callable(abort):
        transport.close()
        return
    # CPython 3.11's socket transports raise AttributeError from abort() once a close() that
    # had to flush its buffer first has finished: the connection is gone then anyway.
    with contextlib.suppress(AttributeError):
        abort()


#: netstack's congestion controls by the names Linux gives them (``TCP_CONGESTION``).
_CONGESTION = {"newreno": b"reno", "cubic": b"cubic"}


def _socket_options(kwargs: dict[str, Any]) -> list[tuple[int, int, int | bytes]]:
    """Take netstack's per-connection options out of ``kwargs`` (which then holds only
    what the loop's method takes): the socket options that carry them out.

    Raises:
        ValueError: an unknown congestion control.
    """
    out: list[tuple[int, int, int | bytes]] = []
    nodelay = kwargs.pop("nodelay", None)
    if nodelay is not None:
        out.append((socket.IPPROTO_TCP, socket.TCP_NODELAY, int(bool(nodelay))))
    keepalive = kwargs.pop("keepalive", None)
    if keepalive is not None:
        out.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(bool(keepalive))))
    congestion = kwargs.pop("congestion", None)
    if congestion is not None:
        if congestion not in _CONGESTION:
            raise ValueError(
                f"unknown congestion control {congestion!r}; have {sorted(_CONGESTION)}"
            )
        out.append((socket.IPPROTO_TCP, socket.TCP_CONGESTION, _CONGESTION[congestion]))
    return out


def _set_options(sock: Any, options: list[tuple[int, int, int | bytes]]) -> None:
    """Set socket options on a socket (or asyncio's or uvloop's stand-in for one)."""
    for level, name, value in options:
        sock.setsockopt(level, name, value)


def _check_ssl(ssl: Any) -> None:
    if ssl is None or ssl is True or ssl is False or isinstance(ssl, ssl_module.SSLContext):
        return
    if is_tls_config(ssl):
        return
    raise ValueError("ssl= takes an ssl.SSLContext or a netstack.tls.TLSConfig")


def _wildcard_for(host: str | None, family: int, port: int) -> tuple[tuple[str, int], int]:
    """The every-address ``local_addr`` matching the peer's address family.

    asyncio resolves a local host of ``None`` to the loopback addresses, which cannot reach
    anyone else; netstack means every address. A peer given by name is reached over IPv4,
    as on netstack (which has no IPv6 yet), unless ``family`` says otherwise.
    """
    if family == socket.AF_INET6:
        return ("::", port), family
    if family == 0 and host is not None:
        try:
            if ipaddress.ip_address(host).version == 6:
                return ("::", port), socket.AF_INET6
        except ValueError:
            pass
    return ("0.0.0.0", port), socket.AF_INET


def _dual_stack_sockets(reuse_address: bool | None) -> list[socket.socket]:
    """Listening sockets on every IPv4 and IPv6 address sharing one ephemeral port (only
    IPv4 when the host has no IPv6)."""
    reuse = True if reuse_address is None else reuse_address
    for _ in range(_DUAL_PORT_ATTEMPTS):
        s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if reuse:
                s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s4.bind(("0.0.0.0", 0))
        except BaseException:
            s4.close()
            raise
        port = s4.getsockname()[1]
        try:
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:
            return [s4]  # no IPv6 here
        try:
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if reuse:
                s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s6.bind(("::", port))
        except OSError as exc:
            s6.close()
            if exc.errno == errno.EADDRINUSE:
                s4.close()
                continue  # someone has this port on IPv6: try another
            return [s4]  # IPv6 exists but has no usable address
        return [s4, s6]
    raise OSError(errno.EADDRINUSE, "no ephemeral port is free on both IPv4 and IPv6")


def _icmp_socket(family: int) -> tuple[socket.socket, bool]:
    """An ICMP socket for echo requests: ``(socket, is_raw)``.

    Raises:
        PermissionError: neither kind of socket is allowed.
    """
    proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
    except PermissionError:
        pass
    else:
        sock.setblocking(False)
        return sock, False
    try:
        sock = socket.socket(family, socket.SOCK_RAW, proto)
    except PermissionError:
        raise PermissionError(
            errno.EPERM,
            "ping needs an ICMP socket: allow unprivileged ones for this group with "
            "`sysctl net.ipv4.ping_group_range` (Linux), or run as root / with CAP_NET_RAW",
        ) from None
    sock.setblocking(False)
    return sock, True


def _match_reply(
    data: bytes,
    src: Any,
    raw: bool,
    v6: bool,
    address: str,
    ident: int,
    seq: int,
    payload: bytes,
) -> bool | OSError:
    """Whether ``data`` is the reply to our request, or the error reported for it."""
    view = memoryview(data)
    if raw and not v6:
        if len(view) < 20:
            return False
        view = view[(view[0] & 0x0F) * 4 :]  # IPv4 raw sockets deliver the IP header
    if len(view) < 8:
        return False
    type_, code, _, r_ident, r_seq = _ICMP_HEADER.unpack_from(view)
    reply = Icmp6Type.ECHO_REPLY if v6 else IcmpType.ECHO_REPLY
    if type_ == reply:
        same_host = ipaddress.ip_address(src[0]) == ipaddress.ip_address(address)
        return same_host and r_ident == ident and r_seq == seq and view[8:] == payload
    # The errors netstack's ICMP layers hand to the sender of the datagram they quote: the
    # IPv4 error types, and every ICMPv6 type below 128 (RFC 4443 2.1).
    if raw and (type_ < 128 if v6 else type_ in ERROR_TYPES):
        # The error quotes our request: (IPv4 header |) ICMP header after 8 bytes.
        quoted = view[8:]
        if not v6:
            if len(quoted) < 20:
                return False
            quoted = quoted[(quoted[0] & 0x0F) * 4 :]
        else:
            quoted = quoted[40:]
        if len(quoted) < 8:
            return False
        q_type, _, _, q_ident, q_seq = _ICMP_HEADER.unpack_from(quoted)
        request = Icmp6Type.ECHO_REQUEST if v6 else IcmpType.ECHO_REQUEST
        if q_type == request and q_ident == ident and q_seq == seq:
            # The same table as netstack's own stack (and as Linux): a message that is no
            # error to report (a Redirect, say) leaves the ping waiting for its reply.
            error = to_oserror6(type_, code) if v6 else to_oserror(type_, code)
            return False if error is None else error
    return False
