"""The TCP driver: connections as asyncio transports, and servers.

:class:`TcpTransport` implements :class:`asyncio.Transport` over one
:class:`~netstack.proto.tcp.connection.TcpConnection`, so asyncio's own
``StreamReaderProtocol``, ``StreamReader`` and ``StreamWriter`` work on it unchanged, with real
backpressure: ``pause_writing`` when the connection holds more than the high-water mark (unsent
plus unacknowledged bytes), ``resume_writing`` below the low one, and ``pause_reading`` closing
the TCP window as unread data piles up.

As with asyncio's socket transports, ``close()`` hands the connection to the stack (it finishes
the FIN exchange in the background, as a kernel does with a closed socket) and
``connection_lost(None)`` follows at once; ``abort()`` resets it.

TCP urgent data (RFC 9293 3.8.5), in line as RFC 6093 recommends (what ``SO_OOBINLINE`` gives
on sockets): :meth:`TcpTransport.write_urgent` sends data marked urgent; a protocol with an
``urgent_data_received(mark)`` method is told whenever the peer's urgent mark arrives or
advances, ``mark`` being the offset in the received stream where the urgent data ends;
``get_extra_info("urgent_mark")`` gives the latest mark (None before any), which, compared
with the bytes read so far, says how much urgent data remains to be read.

As on asyncio's own transports, a protocol's callbacks run in the :mod:`contextvars` context
of the code that made the connection: a copy of the caller's for ``create_connection``, a copy
of the server's (taken when it was created) for every connection a server accepts. Frames
arrive in whatever context the link delivers them from (on an in-memory link, the sender's),
so without this a server's handlers would see the context variables of whoever sent to it
(:func:`netstack.use`'s choice of stack among them).

``get_extra_info("socket")`` is a :class:`~netstack.drivers.sockets.TransportSocket`: names,
family, and the options ``TCP_NODELAY``, ``SO_KEEPALIVE``, ``TCP_KEEPIDLE``,
``TCP_KEEPINTVL``, ``TCP_KEEPCNT`` of this connection alone (:meth:`TcpTransport.set_options`).

asyncio's loop methods take these transports as they take their own: a
:class:`TcpTransport` is a flow-control transport that asyncio's ``loop.sendfile`` sends a
file over (its fallback: the file in chunks, paced by ``pause_writing``/``resume_writing``)
and that ``loop.start_tls`` upgrades. :meth:`TcpTransport.sendfile` does the same on any event
loop (uvloop implements ``loop.sendfile`` for no transport). ``pause_reading()`` holds back
everything from the moment it returns, also what arrived in the same burst of segments.

:func:`handshake` and :func:`adopt` open a connection in two steps, so that several attempts
can race (RFC 8305) and only the winner gets a protocol: the handshake alone, then the
transport and the protocol, with what arrived in between.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import logging
import socket
from asyncio.constants import _SendfileMode
from asyncio.transports import _FlowControlMixin
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..addressing import format_ip, sockaddr
from ..core import Core
from ..proto.tcp.connection import (
    Connected,
    ConnectionClosed,
    ConnectionReset,
    DataReceived,
    EofReceived,
    Event,
    TcpConfig,
    TcpConnection,
    UrgentDataReceived,
)
from ..proto.tcp.layer import Listener, TcpLayer
from .sockets import (
    TCP_OPTIONS,
    TCP_SUPPORTED,
    Readiness,
    TransportSocket,
    common_option,
    unsupported,
)

__all__ = [
    "Handshake",
    "ListeningSocket",
    "Server",
    "TcpCore",
    "TcpTransport",
    "abort_all",
    "abandon",
    "adopt",
    "after_input",
    "connect",
    "deliver_event",
    "handshake",
]

_P = TypeVar("_P", bound=asyncio.BaseProtocol)


class TcpCore(Core, Protocol):
    """What the TCP driver needs of a stack."""

    @property
    def tcp(self) -> TcpLayer: ...


log = logging.getLogger("netstack.streams")

#: What a transport or server that will call nothing more keeps as its context.
_EMPTY_CONTEXT = contextvars.Context()

#: Default water marks of the write buffer: the bytes a connection holds (unsent and
#: unacknowledged) beyond its own send buffer (:func:`write_buffer_size`).
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
#: The most a connection's own send buffer grows to: Linux's ``tcp_wmem`` maximum.
SNDBUF_MAX = 4 << 20


def write_buffer_size(conn: TcpConnection) -> int:
    """What a transport counts against its water marks: the bytes ``conn`` holds beyond
    twice its congestion window (at most :data:`SNDBUF_MAX`). asyncio on a kernel socket
    counts only what the kernel has not taken, and Linux grows a connection's send buffer
    to twice the congestion window (``tcp_sndbuf_expand``), so a fast path keeps its window
    full; a fixed bound on everything unacknowledged would cap a connection at that bound
    per round trip, whatever its window."""
    return max(0, conn.buffered - min(2 * conn.cc.cwnd, SNDBUF_MAX))


#: Bytes :meth:`TcpTransport.sendfile` reads from the file at a time.
SENDFILE_CHUNK = 64 * 1024
#: Events that keep their order with the data: held while reading is paused.
_IN_ORDER = (DataReceived, EofReceived, ConnectionClosed, UrgentDataReceived)


def _kept(event: Event) -> Event:
    """``event`` for keeping past the input that made it: a :class:`DataReceived` may
    view the segment it came in (it is copied)."""
    if type(event) is DataReceived and type(event.data) is not bytes:
        return DataReceived(bytes(event.data))
    return event


def _feed_buffered(protocol: asyncio.BufferedProtocol, data: bytes | memoryview) -> None:
    """Hand ``data`` to a buffered protocol (asyncio's SSL protocol is one) through the
    buffers it offers, as asyncio's own transports do."""
    view = memoryview(data)
    while view:
        buf = memoryview(protocol.get_buffer(len(view)))
        n = min(len(buf), len(view))
        if not n:
            raise RuntimeError("get_buffer() returned an empty buffer")
        buf[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


class TcpTransport(_FlowControlMixin):
    """The asyncio face of one TCP connection.

    A flow-control transport as asyncio's socket transports are (``_FlowControlMixin``:
    ``_protocol_paused``, ``_high_water``, ``_low_water``), which is what asyncio's
    ``loop.sendfile`` asks of a transport it sends a file over."""

    #: asyncio's ``loop.start_tls`` (and so ``StreamWriter.start_tls`` on asyncio's own loop)
    #: upgrades transports that say this; :func:`netstack.tls.stream.start_tls` does it on any.
    _start_tls_compatible = True
    #: asyncio's ``loop.sendfile`` sends a file over transports that say this, in chunks
    #: (there is no kernel socket for ``os.sendfile``).
    _sendfile_compatible = _SendfileMode.FALLBACK

    _loop: asyncio.AbstractEventLoop
    _protocol_paused: bool
    _high_water: int
    _low_water: int

    def __init__(
        self,
        stack: TcpCore,
        conn: TcpConnection,
        protocol: asyncio.BaseProtocol,
        *,
        server: Server | None = None,
        context: contextvars.Context | None = None,
    ) -> None:
        # What _FlowControlMixin.__init__ (and BaseTransport's) would set, without its
        # calls: the water marks it computes are set below.
        self._extra: dict[str, Any] = {}
        self._loop = stack.loop
        self._protocol_paused = False
        self._stack = stack
        self._conn = conn
        self._protocol = protocol
        self._server = server
        #: Where the protocol's callbacks run (see the module's docstring); entered once,
        #: not again by a callback that makes the connection report more (an abort).
        self._context = context if context is not None else contextvars.copy_context()
        self._in_context = False
        self._socket: TransportSocket | None = None
        #: What ``get_extra_info("socket").fileno()`` gives, once asked for; closed with
        #: the transport (-1 from then on).
        self._readiness: Readiness | None = None
        self._eof_seen = False
        self._reuse_address = 0
        conn.user = self
        self._closing = False
        self._lost = False
        self._eof_written = False
        self._reading = True
        self._high_water = HIGH_WATER
        self._low_water = LOW_WATER
        self._connected = False
        self._writes_after_loss = 0
        #: Events that arrived after pause_reading() in the burst it was called in.
        self._held: list[Event] = []
        #: sendfile() waiting for the write buffer to drain.
        self._space_waiters: list[asyncio.Future[None]] = []

    # -- events from the TCP layer ------------------------------------------------------------
    def tcp_event(self, event: Event) -> None:
        """Hand one event of the connection to the protocol, in the connection's context
        (entered once: an event a callback causes on its own connection is handled inside)."""
        if self._in_context:
            self._event(event)
            return
        self._in_context = True
        try:
            self._context.run(self._event, event)
        finally:
            self._in_context = False

    def _event(self, event: Event) -> None:
        if (self._held or not self._reading) and isinstance(event, _IN_ORDER):
            # Reading was paused in this burst (asyncio's promise: no data_received after
            # pause_reading() returns); the connection holds whatever comes later.
            self._held.append(_kept(event))
            return
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        protocol = self._protocol
        try:
            if isinstance(event, DataReceived):
                if not self._lost:
                    data = event.data
                    if type(protocol) is asyncio.StreamReaderProtocol:
                        # Its reader copies into its buffer at once: the segment's view
                        # goes in as it is, so asyncio's copy is the only one.
                        protocol.data_received(data)  # type: ignore[arg-type]
                    elif isinstance(protocol, asyncio.BufferedProtocol):
                        _feed_buffered(protocol, data)
                    else:
                        # Other protocols may keep what they are given, and expect bytes
                        # (as asyncio's transports hand out).
                        protocol.data_received(  # type: ignore[attr-defined]
                            data if type(data) is bytes else bytes(data)
                        )
            elif isinstance(event, Connected):
                self._connected = True
                if self._server is not None:
                    self._server._attach(self)
                protocol.connection_made(self)
            elif isinstance(event, EofReceived):
                self._eof_seen = True
                if not self._lost:
                    keep_open = protocol.eof_received()  # type: ignore[attr-defined]
                    if not keep_open:
                        self.close()
            elif isinstance(event, ConnectionReset):
                self._held.clear()  # a reset discards what was not read
                self._connection_lost(event.error)
            elif isinstance(event, ConnectionClosed):
                self._connection_lost(None)
            elif isinstance(event, UrgentDataReceived):
                callback = getattr(protocol, "urgent_data_received", None)
                if callback is not None and not self._lost:
                    callback(event.mark)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, f"Fatal error: protocol callback for {type(event).__name__}")

    def after_input(self) -> None:
        """Called after the connection processed input: acknowledged data may let the
        protocol write again."""
        if self._readiness is not None:
            self._update_readiness()
        if self._space_waiters and write_buffer_size(self._conn) <= self._low_water:
            self._wake_space_waiters()
        if self._protocol_paused and write_buffer_size(self._conn) <= self._low_water:
            self._protocol_paused = False
            self._call_in_context(self._resume_writing)

    def _call_in_context(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in the connection's context, entered once (as :meth:`tcp_event`,
        which keeps these steps inline: it runs once per event)."""
        if self._in_context:
            callback()
            return
        self._in_context = True
        try:
            self._context.run(callback)
        finally:
            self._in_context = False

    def _resume_writing(self) -> None:
        try:
            self._protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.resume_writing() failed")

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._conn.user = None
        self._wake_space_waiters()
        if self._server is not None:
            self._server._detach(self)
        if self._readiness is not None:
            self._readiness.set(True)
        if self._connected:
            self._loop.call_soon(self._call_connection_lost, exc, context=self._context)
        elif self._readiness is not None:
            self._readiness.close()

    # -- the descriptor of get_extra_info("socket").fileno() -----------------------------------
    def readiness_fd(self) -> int:
        """A descriptor that polls readable when a read would return at once (held data,
        the end of the stream, a loss), as a kernel socket's does; -1 once closed."""
        readiness = self._readiness
        if readiness is None:
            if self._lost:
                return -1
            readiness = self._readiness = Readiness.open()
            if readiness is None:
                return -1
            self._update_readiness()
        return readiness.fd

    def _update_readiness(self) -> None:
        assert self._readiness is not None
        self._readiness.set(
            self._lost or self._eof_seen or bool(self._held) or self._conn.holds_input
        )

    def _call_connection_lost(self, exc: Exception | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as inner:
            self._loop.call_exception_handler(
                {
                    "message": "Exception in connection_lost",
                    "exception": inner,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )
        finally:
            # Nothing more will be called: let go of what the context holds.
            self._context = _EMPTY_CONTEXT
            if self._readiness is not None:
                self._readiness.close()  # a closed socket's fileno(): -1

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        self._loop.call_exception_handler(
            {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
        )
        self._abort(exc if isinstance(exc, OSError) else None)

    # -- asyncio.WriteTransport ---------------------------------------------------------------
    def write(self, data: Any) -> None:
        self._write(data, False)

    def write_urgent(self, data: Any) -> None:
        """Write ``data`` as urgent data (RFC 9293 3.8.5): it goes in line with the rest of
        the stream, and the segments before its end carry URG and the urgent pointer, which
        marks where it ends. A kernel peer without ``SO_OOBINLINE`` takes the last byte of
        ``data`` out of band (``recv(MSG_OOB)``), as with ``send(data, MSG_OOB)``.

        Raises:
            TypeError: ``data`` is not bytes-like.
            ValueError: ``data`` is empty (urgent data needs at least one byte).
            RuntimeError: after :meth:`write_eof`.
        """
        if isinstance(data, (bytes, bytearray, memoryview)) and not data:
            raise ValueError("urgent data needs at least one byte")
        self._write(data, True)

    def _write(self, data: Any, urgent: bool) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        if self._lost or self._closing:
            # What asyncio's socket transports do after the connection is gone: drop, and
            # complain once the application keeps at it.
            self._writes_after_loss += 1
            if self._writes_after_loss == 5:
                log.warning("socket.send() raised exception.")
            return
        stack = self._stack
        now = self._loop.time()
        try:
            self._conn.send(data, now, urgent=urgent)
        except OSError as exc:
            self._fatal_error(exc, "Fatal write error on TCP transport")
            return
        stack.tcp.call(self._conn, now)
        stack.touch()
        if not self._protocol_paused and write_buffer_size(self._conn) > self._high_water:
            self._protocol_paused = True
            try:
                self._protocol.pause_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.pause_writing() failed")

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        if self._eof_written or self._closing:
            return
        self._eof_written = True
        self._drive(self._conn.shutdown)

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return write_buffer_size(self._conn) if not self._lost else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low

    async def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Send ``count`` bytes of ``file`` from ``offset`` (to its end with None), as
        ``loop.sendfile(transport, file, offset, count)`` does, on any event loop: the file
        is read in chunks in the loop's default executor, each written when the write
        buffer is below its high-water mark. The file's position is after the last byte
        sent, also when it fails.

        Returns:
            The number of bytes sent.

        Raises:
            ValueError: ``file`` is not open in binary mode, or a bad ``offset``/``count``.
            RuntimeError: the transport is closing.
            ConnectionError: the connection was lost during the transfer.
        """
        if "b" not in getattr(file, "mode", "b"):
            raise ValueError("file should be opened in binary mode")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative integer (got {offset!r})")
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count <= 0
        ):
            raise ValueError(f"count must be a positive integer (got {count!r})")
        if self.is_closing():
            raise RuntimeError("Transport is closing")
        loop = self._loop
        if offset:
            file.seek(offset)
        sent = 0
        try:
            while count is None or sent < count:
                size = SENDFILE_CHUNK if count is None else min(SENDFILE_CHUNK, count - sent)
                chunk = await loop.run_in_executor(None, file.read, size)
                if not chunk:
                    break
                while write_buffer_size(self._conn) > self._high_water and not self._lost:
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._space_waiters.append(waiter)
                    await waiter
                if self.is_closing():
                    raise self._conn.error or ConnectionResetError(
                        errno.ECONNRESET, "the connection was closed during sendfile"
                    )
                self.write(chunk)
                sent += len(chunk)
        finally:
            if sent and hasattr(file, "seek"):
                file.seek(offset + sent)
        return sent

    def _wake_space_waiters(self) -> None:
        waiters, self._space_waiters = self._space_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- asyncio.ReadTransport ----------------------------------------------------------------
    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        if self._closing or not self._reading:
            return
        self._reading = False
        self._conn.pause_reading()

    def resume_reading(self) -> None:
        if self._closing or self._reading:
            return
        self._reading = True
        # Held data is delivered on the next turn of the loop, never from inside this call:
        # asyncio's StreamReader resumes reading and only then sets up its waiter.
        self._loop.call_soon(self._call_in_context, self._resume_now)

    def _resume_now(self) -> None:
        held = self._held
        while held and self._reading and not self._lost:
            self._deliver(held.pop(0))
        if not self._reading or self._lost:
            return
        self._drive(self._conn.resume_reading)
        if self._readiness is not None:
            self._update_readiness()

    def _drive(self, step: Callable[[float], object]) -> None:
        """Apply one application call to the connection machine (``step(now)``), then let
        the TCP layer send what it produced and re-arm the stack's timer."""
        now = self._loop.time()
        step(now)
        self._stack.tcp.call(self._conn, now)
        self._stack.touch()

    # -- asyncio.BaseTransport ----------------------------------------------------------------
    def close(self) -> None:
        if not self._closing:
            self._close(None)

    def _close(self, exc: Exception | None) -> None:
        """FIN after what was written; ``connection_lost(exc)`` follows at once."""
        self._closing = True
        self._drive(self._conn.close)
        self._connection_lost(exc)

    def abort(self) -> None:
        self._abort(None)

    def abort_with(self, exc: Exception) -> None:
        """Reset the connection and report ``exc`` to ``connection_lost`` (the stack
        closing under it)."""
        self._abort(exc)

    def _force_close(self, exc: Exception | None) -> None:
        """End the connection and report ``exc`` (what asyncio's SSL protocol calls on a
        fatal TLS error). Unlike an abort, what was written goes out first, then a FIN, so a
        TLS alert written just before reaches the peer."""
        if self._lost:
            return
        if self._closing:
            self._connection_lost(exc)
        else:
            self._close(exc)

    def fail_with(self, exc: Exception) -> None:
        """Reset the connection, its protocol hearing ``exc`` rather than the quiet end the
        reset reports (the interface it ran over went away)."""
        self._connection_lost(exc)
        self._abort(None)

    def _abort(self, exc: Exception | None) -> None:
        self._closing = True
        self._drive(self._conn.abort)
        self._connection_lost(exc)

    def is_closing(self) -> bool:
        return self._closing

    def _scope(self) -> int:
        """The index of the connection's interface: the scope id of a link-local address."""
        route = self._conn.route
        return route.iface.index if route is not None and route.iface is not None else 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        conn = self._conn
        if name == "peername":
            return sockaddr(conn.remote[0], conn.remote[1], self._scope())
        if name == "sockname":
            return sockaddr(conn.local[0], conn.local[1], self._scope())
        if name == "connection":
            return conn
        if name == "urgent_mark":
            return conn.urgent_mark
        if name == "stack":
            return self._stack
        if name == "socket":
            if self._socket is None:
                self._socket = TransportSocket(self, socket.SOCK_STREAM)
            return self._socket
        return default

    # -- options (what get_extra_info("socket").setsockopt reaches) --------------------------
    def set_options(
        self,
        *,
        nodelay: bool | None = None,
        keepalive: bool | None = None,
        keepalive_idle: float | None = None,
        keepalive_interval: float | None = None,
        keepalive_count: int | None = None,
    ) -> None:
        """Change this connection's options (those of ``TcpConfig`` with these names): Nagle
        off (``TCP_NODELAY``: what it held goes out now), keep-alive and its timings.

        Raises:
            ValueError: a time that is not positive, or fewer than one probe.
        """
        given = {
            "nodelay": nodelay, "keepalive": keepalive, "keepalive_idle": keepalive_idle,
            "keepalive_interval": keepalive_interval, "keepalive_count": keepalive_count,
        }  # fmt: skip
        changes = {name: value for name, value in given.items() if value is not None}
        if not changes or self._lost:
            return
        self._drive(lambda now: self._conn.set_options(now, **changes))

    def set_socket_option(self, level: int, option: int, value: int) -> None:
        """``setsockopt`` of :class:`~netstack.drivers.sockets.TransportSocket`."""
        field = TCP_OPTIONS.get((level, option))
        if field is not None:
            changes: dict[str, Any] = {field: value}
            if field in ("nodelay", "keepalive"):
                changes[field] = bool(value)
            self.set_options(**changes)
        elif (level, option) == (socket.SOL_SOCKET, socket.SO_REUSEADDR):
            self._reuse_address = int(bool(value))
        else:
            raise unsupported(level, option, TCP_SUPPORTED)

    def get_socket_option(self, level: int, option: int) -> int:
        """``getsockopt`` of :class:`~netstack.drivers.sockets.TransportSocket`."""
        field = TCP_OPTIONS.get((level, option))
        if field is not None:
            return int(getattr(self._conn.config, field))
        key = (level, option)
        if key == (socket.SOL_SOCKET, socket.SO_REUSEADDR):
            return self._reuse_address
        if key == (socket.IPPROTO_TCP, socket.TCP_MAXSEG):
            return int(self._conn.mss)
        common = common_option(level, option, self.get_extra_info("sockname"), socket.SOCK_STREAM)
        if common is None:
            raise unsupported(level, option, TCP_SUPPORTED)
        return common

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def __repr__(self) -> str:
        conn = self._conn
        return (
            f"<TcpTransport {self.get_extra_info('sockname')} -> "
            f"{self.get_extra_info('peername')} {conn.state.value}>"
        )


class ListeningSocket:
    """What code usually asks of a listening socket: its name, family and type, as
    asyncio's server sockets give them (``AF_INET6`` and a 4-tuple name for IPv6)."""

    type = socket.SOCK_STREAM
    proto = socket.IPPROTO_TCP

    def __init__(self, ip: bytes, port: int) -> None:
        self.family = socket.AF_INET if len(ip) == 4 else socket.AF_INET6
        self._name = sockaddr(ip, port)

    def getsockname(self) -> tuple[str, int] | tuple[str, int, int, int]:
        return self._name

    def fileno(self) -> int:
        return -1

    def __repr__(self) -> str:
        return f"<netstack ListeningSocket {self._name}>"


class Server(asyncio.AbstractServer):
    """A listening TCP endpoint, shaped like :class:`asyncio.Server`."""

    def __init__(
        self,
        stack: TcpCore,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        local_ip: bytes | list[bytes],
        port: int,
        backlog: int,
        start_serving: bool = True,
        config: TcpConfig | None = None,
    ) -> None:
        self._stack = stack
        self._config = config
        self._loop = stack.loop
        self._factory = protocol_factory
        self._local_ips = [local_ip] if isinstance(local_ip, bytes) else list(local_ip)
        self._port = port
        self._backlog = backlog
        self._listeners: list[Listener] = []
        self._transports: set[TcpTransport] = set()
        self._waiters: list[asyncio.Future[None]] | None = []
        self._serving_forever: asyncio.Future[None] | None = None
        #: The context of the code that made the server: each connection's protocol is made
        #: and called in a copy of it (asyncio's servers do the same).
        self._context = contextvars.copy_context()
        if start_serving:
            self._start()

    def _start(self) -> None:
        if self._listeners:
            return
        try:
            for ip in self._local_ips:
                # With port 0 the first listener picks the port and the others share it.
                listener = self._stack.tcp.listen(
                    ip, self._port, self._backlog, self._accept, self._config
                )
                self._port = listener.port
                self._listeners.append(listener)
        except BaseException:
            for listener in self._listeners:
                self._stack.tcp.unlisten(listener)
            self._listeners = []
            raise

    def _accept(self, conn: TcpConnection) -> bool:
        context = self._context.copy()
        try:
            protocol = context.run(self._factory)
        except Exception as exc:
            self._loop.call_exception_handler(
                {"message": "protocol_factory raised", "exception": exc}
            )
            return False
        TcpTransport(self._stack, conn, protocol, server=self, context=context)
        return True

    def _attach(self, transport: TcpTransport) -> None:
        self._transports.add(transport)

    def _detach(self, transport: TcpTransport) -> None:
        self._transports.discard(transport)
        self._wakeup_if_done()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs listened on, like the sockets of :class:`asyncio.Server`."""
        return [(format_ip(ip), self._port) for ip in self._local_ips]

    @property
    def sockets(self) -> tuple[ListeningSocket, ...]:
        """Socket-like stand-ins (``getsockname()``), for code written against
        :attr:`asyncio.Server.sockets`; there is no operating-system socket."""
        return tuple(ListeningSocket(ip, self._port) for ip in self._local_ips)

    @property
    def port(self) -> int:
        return self._port

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return any(not listener.closed for listener in self._listeners)

    async def start_serving(self) -> None:
        self._start()

    def close(self) -> None:
        """Stop listening; existing connections go on (as asyncio.Server.close)."""
        open_listeners = [listener for listener in self._listeners if not listener.closed]
        for listener in open_listeners:
            self._stack.tcp.unlisten(listener)
        if self._listeners:
            # No connection will be accepted any more: let go of what the context holds.
            self._context = _EMPTY_CONTEXT
        if open_listeners:
            self._stack.touch()
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()
        self._wakeup_if_done()

    def close_clients(self) -> None:
        for transport in list(self._transports):
            transport.close()

    def abort_clients(self) -> None:
        for transport in list(self._transports):
            transport.abort()

    def _wakeup_if_done(self) -> None:
        if self._transports or self._waiters is None:
            return  # connections remain, or the waiters were woken already
        listeners = self._listeners
        if listeners and all(x.closed for x in listeners):
            waiters, self._waiters = self._waiters, None
            for fut in waiters or ():
                if not fut.done():
                    fut.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until the server is closed and its connections are gone."""
        if self._waiters is None:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(fut)
        await fut

    async def serve_forever(self) -> None:
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if not self.is_serving():
            if self._listeners:
                raise RuntimeError(f"server {self!r} is closed")
            self._start()
        self._serving_forever = self._loop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            # Stop listening; connections already accepted carry on (wait_closed() is
            # there for whoever wants to wait for them too).
            self.close()
            raise
        finally:
            self._serving_forever = None

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()

    def __repr__(self) -> str:
        return f"<netstack Server {self.addresses}>"


# -- what the composition root wires and calls --------------------------------------------------
def deliver_event(conn: TcpConnection, event: Event) -> None:
    """The TCP layer's ``on_event``: hand the event to the connection's transport."""
    transport = conn.user
    if transport is not None:
        transport.tcp_event(event)


def after_input(conn: TcpConnection) -> None:
    """The TCP layer's ``on_flushed``: the connection processed input, so acknowledged data
    may let its transport's protocol write again."""
    transport = conn.user
    if transport is not None:
        transport.after_input()


class Handshake:
    """One connection opened by :func:`handshake`, before it has a transport: ``done``
    when it connected (or failed), and the events that came after, until :func:`adopt`
    gives it a transport (the connection itself forgets its user when it closes)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, conn: TcpConnection) -> None:
        self.conn = conn
        self.done: asyncio.Future[None] = loop.create_future()
        self.events: list[Event] = []
        conn.user = self

    def tcp_event(self, event: Event) -> None:
        if self.done.done():
            self.events.append(_kept(event))
        elif isinstance(event, Connected):
            self.events.append(event)
            self.done.set_result(None)
        elif isinstance(event, ConnectionReset):
            self.done.set_exception(event.error)
        elif isinstance(event, ConnectionClosed):  # aborted under it
            self.fail(ConnectionAbortedError(errno.ECONNABORTED, "the connection was aborted"))

    def fail(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    def after_input(self) -> None:
        pass


async def handshake(
    core: TcpCore,
    dst: bytes,
    dport: int,
    src: bytes | None,
    sport: int,
    config: TcpConfig | None,
    scope: int = 0,
) -> Handshake:
    """Open one connection to ``(dst, dport)`` (``scope``: the interface of a link-local
    IPv6 ``dst``) and wait for the handshake; :func:`adopt` gives the connection its
    transport and protocol. Cancelled, it aborts the connection.

    Raises:
        ConnectionRefusedError, TimeoutError, OSError: the connection failed.
    """
    loop = core.loop
    conn = core.tcp.connect((dst, dport), loop.time(), local_ip=src, local_port=sport,
                            config=config, scope=scope)  # fmt: skip
    opened = Handshake(loop, conn)
    core.touch()
    try:
        await opened.done
    except BaseException:
        abandon(core, opened)
        raise
    return opened


def abandon(core: TcpCore, opened: Handshake) -> None:
    """Abort a connection :func:`handshake` opened that no transport took (an attempt that
    lost the race, or was cancelled)."""
    conn = opened.conn
    if conn.user is opened:
        conn.user = None
    if conn.state.value != "CLOSED":
        now = core.loop.time()
        conn.abort(now)
        core.tcp.call(conn, now)
        core.touch()


def adopt(
    core: TcpCore, opened: Handshake, protocol_factory: Callable[[], _P]
) -> tuple[TcpTransport, _P]:
    """The transport and protocol of a connection :func:`handshake` opened: the protocol
    is made now, and hears ``connection_made`` and what arrived since the handshake.

    Raises:
        Exception: what ``protocol_factory`` raised (the connection is aborted).
    """
    try:
        protocol = protocol_factory()
    except BaseException:
        abandon(core, opened)
        raise
    transport = TcpTransport(core, opened.conn, protocol)
    for event in opened.events:
        transport.tcp_event(event)
    return transport, protocol


async def connect(
    core: TcpCore,
    protocol_factory: Callable[[], _P],
    dst: bytes,
    dport: int,
    src: bytes | None,
    sport: int,
    config: TcpConfig | None,
    scope: int = 0,
) -> tuple[TcpTransport, _P]:
    """Open one connection to ``(dst, dport)`` (``scope``: the interface of a link-local
    IPv6 ``dst``): :func:`handshake`, then :func:`adopt`.

    Raises:
        ConnectionRefusedError, TimeoutError, OSError: the connection failed.
    """
    opened = await handshake(core, dst, dport, src, sport, config, scope)
    return adopt(core, opened, protocol_factory)


def abort_all(core: TcpCore, exc: Exception) -> None:
    """Reset every connection (the stack is closing); a transport's protocol hears ``exc``."""
    _reset(core, exc, lambda conn: True, lambda transport: transport.abort_with(exc))


def fail_where(core: TcpCore, exc: Exception, which: Callable[[TcpConnection], bool]) -> None:
    """Reset the connections ``which`` picks (an interface went away); a transport's protocol
    hears ``exc``."""
    _reset(core, exc, which, lambda transport: transport.fail_with(exc))


def _reset(
    core: TcpCore,
    exc: Exception,
    which: Callable[[TcpConnection], bool],
    end: Callable[[TcpTransport], None],
) -> None:
    tcp = core.tcp
    now = core.loop.time()
    for conn in list(tcp.connections.values()):
        if not which(conn):
            continue
        transport = conn.user
        if transport is None:
            # Orphaned (closed by its application, finishing in the background, or in
            # TIME-WAIT): nobody to tell.
            conn.abort(now)
            tcp.call(conn, now)
        elif isinstance(transport, TcpTransport):
            end(transport)
        else:
            if isinstance(transport, Handshake):
                transport.fail(exc)
            conn.abort(now)
            tcp.call(conn, now)
