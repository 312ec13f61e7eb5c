"""The UDP driver: endpoints as asyncio datagram transports.

:class:`DatagramTransport` is an :class:`asyncio.DatagramTransport`: code written for
``loop.create_datagram_endpoint`` works unchanged. As with asyncio's socket transports,
network errors of a send (no route, datagram too large, broadcast not allowed) and ICMP errors
for a connected endpoint reach ``protocol.error_received``; misuse of the API (bad address,
port out of range, a closed endpoint) raises at the call. A link-local IPv6 peer needs its
interface: a zone in the host (``"fe80::1%eth1"``) or the scope id of a 4-tuple names it, and a
datagram from one arrives with its interface as the scope id, as a socket reports it.

The protocol's callbacks run in a copy of the :mod:`contextvars` context of the code that made
the endpoint, as on asyncio's transports (see :mod:`netstack.drivers.tcp`).
``get_extra_info("socket")`` is a :class:`~netstack.drivers.sockets.TransportSocket` whose
``SO_BROADCAST`` is the endpoint's ``allow_broadcast``.

Beyond asyncio's interface, a server inside the stack that answers many small datagrams (the
DNS server) can take them as the UDP layer hands them and answer to the packed address they
came from: :meth:`DatagramTransport.set_packed_receiver` and
:meth:`DatagramTransport.sendto_packed` skip the copy into ``bytes``, the address tuple and
its parsing back, and the switch into the endpoint's context.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import socket
from collections.abc import Callable
from typing import Any, Protocol

from ..addressing import ANY4, ANY6, NTOA_CACHE, ntoa, parse_ip, parse_port, sockaddr, split_zone
from ..core import Core
from ..errors import ClosedError
from ..proto.ip.dual import DualIP
from ..proto.udp.layer import UdpLayer
from .sockets import UDP_SUPPORTED, TransportSocket, common_option, unsupported

__all__ = ["DatagramTransport", "UdpCore"]


class UdpCore(Core, Protocol):
    """What the UDP driver needs of a stack."""

    @property
    def udp(self) -> UdpLayer: ...

    @property
    def ip(self) -> DualIP: ...

    def scope_id(self, zone: str | int) -> int:
        """The index of the interface a zone names (``"eth1"`` or ``"2"``)."""


BROADCAST_MAC = b"\xff" * 6
#: How many parsed destination addresses an endpoint keeps.
_PARSED_MAX = 256

#: What :meth:`DatagramTransport.set_packed_receiver` takes: ``(payload, source address
#: (packed), source port, interface index)``; the payload is a view valid during the call.
PackedReceiver = Callable[[memoryview, bytes, int, int], None]


class DatagramTransport(asyncio.DatagramTransport):
    """A bound UDP endpoint of a :class:`~netstack.Stack`; ``on_closed`` hears of its
    closing (after it left the UDP layer)."""

    def __init__(
        self,
        stack: UdpCore,
        protocol: asyncio.DatagramProtocol,
        local_ip: bytes,
        remote: tuple[bytes, int] | None,
        allow_broadcast: bool,
        on_closed: Callable[[DatagramTransport], None] | None = None,
        remote_scope: int = 0,
    ) -> None:
        super().__init__()
        self._stack = stack
        self._on_closed = on_closed
        self._loop = stack.loop
        self._protocol = protocol
        self.local_ip = local_ip
        self.local_port = 0
        self.remote = remote
        #: The interface of a link-local ``remote``.
        self.remote_scope = remote_scope
        self._allow_broadcast = allow_broadcast
        self._closing = False
        self._context = contextvars.copy_context()
        self._in_context = False
        self._socket: TransportSocket | None = None
        self._reuse_address = 0
        #: sendto()'s parsed addresses without a zone, by the tuple given (a server answers
        #: the address tuple its datagram came with): bounded, cleared when full.
        self._parsed: dict[tuple[Any, ...], tuple[bytes, int, int]] = {}
        #: What the UDP layer calls with each datagram (the Endpoint interface): the protocol
        #: by way of :meth:`_to_protocol`, or a packed receiver (an attribute, not a method,
        #: so that the layer calls a packed receiver with no call in between).
        self.deliver: PackedReceiver = self._to_protocol

    # -- the UDP layer's Endpoint interface ----------------------------------------------------
    def set_packed_receiver(self, receiver: PackedReceiver | None) -> None:
        """Hand datagrams to ``receiver(payload, src, port, ifindex)`` instead of the
        protocol's ``datagram_received`` (None: to the protocol again).

        netstack's own fast path, for servers inside the stack: the payload is the UDP
        layer's view (valid only during the call: copy what is kept), the source its packed
        address bytes (answer with :meth:`sendto_packed`), the interface the index it came
        in on. The receiver runs in the receive path's context, not the endpoint's, and its
        exceptions are its own to catch (the stack logs and counts one that escapes).
        """
        self.deliver = self._to_protocol if receiver is None else receiver

    def _to_protocol(self, data: memoryview, src: bytes, port: int, ifindex: int = 0) -> None:
        if self._closing:
            return
        # _in_own_context's steps inline: this runs once per datagram.
        callback = self._protocol.datagram_received
        # sockaddr()'s IPv4 case inline, with the address text cached.
        if len(src) == 4:
            addr: tuple[Any, ...] = (NTOA_CACHE.get(src) or ntoa(src), port)
        else:
            addr = sockaddr(src, port, ifindex)
        try:
            if self._in_context:
                callback(bytes(data), addr)
                return
            self._in_context = True
            try:
                self._context.run(callback, bytes(data), addr)
            finally:
                self._in_context = False
        except Exception as exc:
            self._report(exc, "datagram_received")

    def error(self, exc: OSError) -> None:
        if self._closing:
            return
        self._in_own_context(self._error_received, exc)

    def _error_received(self, exc: OSError) -> None:
        try:
            self._protocol.error_received(exc)
        except Exception as inner:
            self._report(inner, "error_received")

    def _in_own_context(self, callback: Callable[..., None], *args: Any) -> None:
        """Call the protocol in the endpoint's context (entered once: an error a callback's
        own ``sendto`` reports comes back here while it is entered)."""
        if self._in_context:
            callback(*args)
            return
        self._in_context = True
        try:
            self._context.run(callback, *args)
        finally:
            self._in_context = False

    def _report(self, exc: BaseException, what: str) -> None:
        self._loop.call_exception_handler(
            {
                "message": f"Exception in {what} of {self._protocol!r}",
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            }
        )

    # -- asyncio.DatagramTransport -------------------------------------------------------------
    def sendto(self, data: Any, addr: Any = None) -> None:
        """Send one datagram to ``addr`` (``(host, port)``), or to the connected peer.

        Raises:
            TypeError: ``data`` is not bytes-like.
            ValueError: a bad address or port, or an ``addr`` on a connected endpoint that is
                not its peer.
            ClosedError: the endpoint is closed.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            kind = type(data).__name__
            raise TypeError(f"data argument must be a bytes-like object, not {kind!r}")
        if self._closing:
            raise ClosedError("sendto() on a closed UDP endpoint")
        if self.remote is not None:
            if addr is not None and self._parse_addr(addr)[:2] != self.remote:
                raise ValueError(
                    f"Invalid address: must be None or {self.get_extra_info('peername')}"
                )
            dst, port = self.remote
            scope = self.remote_scope
        elif addr is None:
            raise ValueError("sendto() needs an address on an endpoint without remote_addr")
        else:
            try:
                parsed = self._parsed.get(addr)
            except TypeError:  # unhashable: _parse_addr says what is wrong with it
                parsed = None
            if parsed is None:
                parsed = self._parse_addr(addr)
                if not parsed[2]:
                    if len(self._parsed) >= _PARSED_MAX:
                        self._parsed.clear()
                    self._parsed[addr] = parsed
            dst, port, scope = parsed
        self.sendto_packed(data, dst, port, scope)

    def sendto_packed(
        self, data: bytes | bytearray | memoryview, dst: bytes, port: int, scope: int = 0
    ) -> None:
        """:meth:`sendto` to a packed address (4 or 16 bytes, as a packed receiver hears it),
        with no tuple to parse; ``scope`` is the interface of a link-local ``dst``.

        Raises:
            ClosedError: the endpoint is closed.
            ValueError: on a connected endpoint, an address other than its peer's.
        """
        if self._closing:
            raise ClosedError("sendto() on a closed UDP endpoint")
        remote = self.remote
        if remote is not None and (dst != remote[0] or port != remote[1]):
            raise ValueError("sendto_packed() to another address than a connected peer's")
        stack = self._stack
        local = self.local_ip
        try:
            if local and len(dst) != len(local):
                raise OSError(
                    errno.EAFNOSUPPORT,
                    "an IPv4 destination on an IPv6 endpoint"
                    if len(dst) == 4
                    else "an IPv6 destination on an IPv4 endpoint",
                )
            src = None if local == ANY4 or not local or local == ANY6 else local
            # DualIP.route's choice, inline: this runs once per datagram.
            ip = stack.ip
            route = ip.v4.route(dst, src) if len(dst) == 4 else ip.v6.route(dst, src, scope)
            if route.mac == BROADCAST_MAC and not self._allow_broadcast:
                raise PermissionError(errno.EACCES, "Permission denied (allow_broadcast=False)")
            stack.udp.send(route, self.local_port, port, data, self._loop.time())
        except OSError as exc:
            # What asyncio's socket transports do with an error from sendto().
            self.error(exc)
        stack.touch()

    def _parse_addr(self, addr: Any) -> tuple[bytes, int, int]:
        """``(host, port)`` or ``(host, port, flowinfo, scope_id)``: the address, the port,
        and the interface a zone (``host%zone``) or the scope id names (0 for none)."""
        if not isinstance(addr, tuple) or len(addr) < 2:
            raise ValueError(f"address must be a (host, port) tuple, got {addr!r}")
        if not isinstance(addr[0], str):
            raise ValueError(f"host must be a string, got {type(addr[0]).__name__}")
        host = addr[0]
        if "%" in host:
            literal, zone = split_zone(host)
            ip = parse_ip(literal, what="host")
            scope = self._stack.scope_id(zone) if zone is not None else 0
        else:
            ip, scope = parse_ip(host, what="host"), 0
        if len(addr) == 4 and addr[3]:
            scope = self._stack.scope_id(addr[3])
        return ip, parse_port(addr[1], allow_zero=False), scope

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stack.udp.unbind(self)
        if self._on_closed is not None:
            self._on_closed(self)
        self._loop.call_soon(self._protocol.connection_lost, None, context=self._context)
        self._context = contextvars.Context()  # nothing more will be called in it

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            # An endpoint of both families shows itself as IPv6's wildcard, as a dual-stack
            # socket does.
            return sockaddr(self.local_ip or ANY6, self.local_port)
        if name == "peername":
            return sockaddr(*self.remote, self.remote_scope) if self.remote else default
        if name == "stack":
            return self._stack
        if name == "socket":
            if self._socket is None:
                self._socket = TransportSocket(self, socket.SOCK_DGRAM)
            return self._socket
        return default

    def set_socket_option(self, level: int, option: int, value: int) -> None:
        """``setsockopt`` of :class:`~netstack.drivers.sockets.TransportSocket`."""
        if (level, option) == (socket.SOL_SOCKET, socket.SO_BROADCAST):
            self._allow_broadcast = bool(value)
        elif (level, option) == (socket.SOL_SOCKET, socket.SO_REUSEADDR):
            self._reuse_address = int(bool(value))
        else:
            raise unsupported(level, option, UDP_SUPPORTED)

    def get_socket_option(self, level: int, option: int) -> int:
        """``getsockopt`` of :class:`~netstack.drivers.sockets.TransportSocket`."""
        if (level, option) == (socket.SOL_SOCKET, socket.SO_BROADCAST):
            return int(self._allow_broadcast)
        if (level, option) == (socket.SOL_SOCKET, socket.SO_REUSEADDR):
            return self._reuse_address
        common = common_option(level, option, self.get_extra_info("sockname"), socket.SOCK_DGRAM)
        if common is None:
            raise unsupported(level, option, UDP_SUPPORTED)
        return common

    def get_write_buffer_size(self) -> int:
        return 0  # datagrams are handed to the link at once, never buffered here

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        if not isinstance(protocol, asyncio.DatagramProtocol):
            raise TypeError("a datagram transport needs an asyncio.DatagramProtocol")
        self._protocol = protocol

    def __repr__(self) -> str:
        state = "closed" if self._closing else "open"
        peer = f" peer={self.get_extra_info('peername')}" if self.remote else ""
        return f"<DatagramTransport {state} local={self.get_extra_info('sockname')}{peer}>"
