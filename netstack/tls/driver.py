"""The asyncio side of netstack's own TLS 1.3: :class:`TLSProtocol` sits on a TCP transport
and drives a :class:`~netstack.tls.connection.TLSConnection` machine; the application gets a
:class:`TLSTransport` and keeps its own protocol, as with asyncio's SSL protocol.

Beyond asyncio's SSL transport, ``write_eof()`` works: it sends close_notify, which in TLS 1.3
closes only this side's writing (RFC 8446 6.1), and the peer may go on sending. A session
ticket a server sent is kept per client configuration and server name, and the next
connection with the same configuration to the same name resumes with it (RFC 8446 2.2).
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from asyncio.constants import _SendfileMode
from asyncio.transports import _FlowControlMixin
from typing import Any, cast

from .config import TLSConfig
from .connection import (
    AlertReceived,
    CloseNotifyReceived,
    ConnectionFailed,
    DataReceived,
    HandshakeCompleted,
    SessionTicketReceived,
    TLSConnection,
    TLSSession,
)
from .errors import TLSError

__all__ = ["LINGER", "TLSProtocol", "TLSTransport", "TlsProtocol", "TlsTransport"]

#: Seconds a closed TLS connection keeps reading (and dropping) what the peer still sends,
#: waiting for its FIN (asyncio's SSL shutdown timeout is 30 s as well).
LINGER = 30.0

log = logging.getLogger("netstack.tls")

#: Tickets for resumption, per client configuration, by server name (a few per name).
_SESSIONS: weakref.WeakKeyDictionary[TLSConfig, dict[str, TLSSession]] = weakref.WeakKeyDictionary()

#: A server's handshakes in progress, per configuration, oldest first (the dict keeps the
#: order of insertion): ``TLSConfig.max_pending_handshakes`` caps them.
_PENDING: weakref.WeakKeyDictionary[TLSConfig, dict[TLSProtocol, None]] = (
    weakref.WeakKeyDictionary()
)


class TLSProtocol(asyncio.Protocol):
    """The protocol on the TCP transport while TLS runs over it."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app_protocol: asyncio.BaseProtocol,
        config: TLSConfig,
        waiter: asyncio.Future[None] | None,
        *,
        server_side: bool,
        server_hostname: str | None,
        handshake_timeout: float | None = None,
        call_connection_made: bool = True,
        shutdown_timeout: float | None = None,
    ) -> None:
        if shutdown_timeout is not None and not shutdown_timeout > 0:
            raise ValueError(
                f"ssl_shutdown_timeout should be a positive number, got {shutdown_timeout}"
            )
        self._loop = loop
        self._app = app_protocol
        self._config = config
        self._waiter = waiter
        self._server_side = server_side
        self._server_hostname = server_hostname
        self._call_connection_made = call_connection_made
        self._timeout = 60.0 if handshake_timeout is None else handshake_timeout
        #: How long a closed connection waits for the peer's FIN (asyncio's
        #: ssl_shutdown_timeout).
        self._linger_time = LINGER if shutdown_timeout is None else shutdown_timeout
        session = None
        if not server_side and server_hostname:
            session = _SESSIONS.get(config, {}).get(server_hostname)
        self.conn = TLSConnection(
            config, server_side=server_side, server_hostname=server_hostname,
            random=os.urandom, session=session,
        )  # fmt: skip
        self._transport: asyncio.Transport | None = None
        self._app_transport = TLSTransport(self)
        self._established = False
        self._app_connected = False
        self._closing = False
        self._lost = False
        self._timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._draining = False
        self._tcp_eof = False

    def _get_app_transport(self) -> TLSTransport:
        return self._app_transport

    # -- the TCP side ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance() check: uvloop's transports do not derive from asyncio's classes.
        self._transport = cast(asyncio.Transport, transport)
        self._timer = self._loop.call_later(self._timeout, self._handshake_timed_out)
        if self._server_side and self._config.max_pending_handshakes is not None:
            self._admit(self._config.max_pending_handshakes)
        self.conn.start(self._loop.time())
        self._flush()

    def _admit(self, cap: int) -> None:
        pending = _PENDING.setdefault(self._config, {})
        pending[self] = None
        while len(pending) > cap:
            oldest = next(iter(pending))
            log.debug("TLS: %d handshakes in progress, closing the oldest", len(pending))
            oldest._fail(ConnectionAbortedError("too many TLS handshakes in progress"))

    def _handshake_over(self) -> None:
        pending = _PENDING.get(self._config)
        if pending is not None:
            pending.pop(self, None)

    def data_received(self, data: bytes) -> None:
        if self._lost:
            return
        self.conn.receive_data(bytes(data), self._loop.time())
        self._flush()
        self._process_events()

    def eof_received(self) -> bool | None:
        self._tcp_eof = True
        if self._draining:
            return False  # the peer closed too: close the TCP connection
        if not self._established:
            self._fail(ConnectionResetError("the connection closed during the TLS handshake"))
            return False
        # A TCP FIN without close_notify: the data may have been cut short (RFC 8446 6.1);
        # the application hears an EOF all the same, as with asyncio's SSL transport.
        log.debug("TCP EOF without close_notify")
        return self._app_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._cancel_timer()
        self._handshake_over()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(
                exc or ConnectionResetError("the connection closed during the TLS handshake")
            )
        if self._app_connected:
            self._app_connected = False
            self._loop.call_soon(self._app.connection_lost, exc)

    def pause_writing(self) -> None:
        self._app_transport._protocol_paused = True
        if self._app_connected:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        self._app_transport._protocol_paused = False
        if self._app_connected:
            self._app.resume_writing()

    # -- the machine -------------------------------------------------------------------------
    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _process_events(self) -> None:
        while (event := self.conn.next_event()) is not None:
            if self._draining and not isinstance(event, SessionTicketReceived):
                continue  # closed by the application: only the TCP connection remains
            if isinstance(event, DataReceived):
                if self._app_connected:
                    self._app.data_received(event.data)  # type: ignore[attr-defined]
            elif isinstance(event, HandshakeCompleted):
                self._established = True
                self._cancel_timer()
                self._handshake_over()
                if self._call_connection_made:
                    self._app_connected = True
                    self._app.connection_made(self._app_transport)
                else:
                    self._app_connected = True  # start_tls: the protocol is already connected
                if self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(None)
            elif isinstance(event, SessionTicketReceived):
                if self._server_hostname:
                    store = _SESSIONS.setdefault(self._config, {})
                    if len(store) > 64:
                        store.pop(next(iter(store)))
                    store[self._server_hostname] = event.session
            elif isinstance(event, CloseNotifyReceived):
                if not self._app_eof() and self._transport is not None:
                    self._app_transport.close()
            elif isinstance(event, (AlertReceived, ConnectionFailed)):
                self._fail(event.error)
                return

    def _app_eof(self) -> bool:
        if not self._app_connected:
            return False
        keep = self._app.eof_received()  # type: ignore[attr-defined]
        return bool(keep)

    def _fail(self, error: BaseException) -> None:
        self._flush()  # the alert, if one is queued
        self._cancel_timer()
        self._handshake_over()
        transport = self._transport
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
            if transport is not None:
                transport.close()
            return
        if transport is not None:
            force = getattr(transport, "_force_close", None)
            if callable(force) and isinstance(error, Exception):
                force(error)  # the application's connection_lost gets the error
            else:
                transport.close()

    def _linger(self) -> None:
        transport = self._transport
        self._draining = True
        if self._app_connected:
            self._app_connected = False
            self._loop.call_soon(self._app.connection_lost, None)
        if transport is None or transport.is_closing():
            return
        if self._tcp_eof or not transport.can_write_eof():
            # The peer's FIN came already: it sends nothing more, so there is nothing to
            # drain (and asyncio's socket transports stopped reading at it, so they would
            # not even see the reset our close_notify may draw from a peer gone for good).
            transport.close()
            return
        try:
            transport.write_eof()
        except OSError:
            # The connection is gone already (a reset not yet read: asyncio's socket
            # transports raise ENOTCONN from shutdown()); the socket must go with it now.
            transport.close()
            return
        self._linger_timer = self._loop.call_later(self._linger_time, transport.close)

    def _handshake_timed_out(self) -> None:
        self._timer = None
        if not self._established:
            self._fail(TimeoutError("the TLS handshake did not finish in time"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class TLSTransport(_FlowControlMixin):
    """The application's transport over netstack's TLS.

    A flow-control transport, as asyncio's own SSL transport is (``_protocol_paused`` says
    whether the TCP transport below paused the application), so that asyncio's
    ``loop.sendfile`` sends a file over it, in chunks that are encrypted as they go."""

    _sendfile_compatible = _SendfileMode.FALLBACK
    _protocol_paused: bool

    def __init__(self, protocol: TLSProtocol) -> None:
        super().__init__(None, protocol._loop)
        self._tls = protocol
        self._closing = False
        self._eof_written = False
        self._dropped_writes = 0

    # -- writing ---------------------------------------------------------------------------
    def write(self, data: Any) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
        if self._eof_written and not self._closing:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        if self._closing or self._tls._lost:
            # As asyncio's transports do: data written after close() goes nowhere, quietly.
            self._dropped_writes += 1
            if self._dropped_writes == 5:
                log.warning("TLS transport closed: further writes are dropped")
            return
        try:
            self._tls.conn.send_data(bytes(data))
        except TLSError as exc:
            self._tls._fail(exc)
            return
        self._tls._flush()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        """Send close_notify: this side writes no more; reading goes on (RFC 8446 6.1)."""
        if self._eof_written or self._closing:
            return
        self._eof_written = True
        self._tls.conn.close()
        self._tls._flush()

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        transport = self._tls._transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        transport = self._tls._transport
        if transport is not None:
            transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        transport = self._tls._transport
        if transport is not None:
            limits: tuple[int, int] = transport.get_write_buffer_limits()
            return limits
        return (0, 0)

    def key_update(self, *, request_peer: bool = True) -> None:
        """Switch to fresh sending keys, and (``request_peer``) ask the peer to do the same
        (a KeyUpdate, RFC 8446 4.6.3).

        Raises:
            TLSError: the connection is not established, or closed.
        """
        self._tls.conn.key_update(request_peer=request_peer)
        self._tls._flush()

    # -- reading -----------------------------------------------------------------------------
    def is_reading(self) -> bool:
        transport = self._tls._transport
        return transport is not None and transport.is_reading()

    def pause_reading(self) -> None:
        if self._tls._transport is not None:
            self._tls._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._tls._transport is not None:
            self._tls._transport.resume_reading()

    # -- closing ---------------------------------------------------------------------------
    def close(self) -> None:
        """close_notify, then a TCP FIN; the application's ``connection_lost`` follows at
        once. What the peer still sends (a session ticket it sent before it saw ours, the
        rest of its data, its own close_notify) is read and dropped until it closes too, or
        for :data:`LINGER` seconds: a closed TCP connection that received data would answer
        with a reset, which can destroy data the peer has not read yet."""
        if self._closing:
            return
        self._closing = True
        if not self._eof_written:
            self._eof_written = True
            self._tls.conn.close()
            self._tls._flush()
        self._tls._linger()

    def abort(self) -> None:
        self._closing = True
        if self._tls._transport is not None:
            self._tls._transport.abort()

    def is_closing(self) -> bool:
        return self._closing or self._tls._lost

    # -- information -----------------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        conn = self._tls.conn
        if name == "peercert":
            return conn.getpeercert()
        if name == "peercert_binary":
            return conn.getpeercert(binary_form=True)
        if name == "cipher":
            return conn.cipher
        if name == "ssl_object":
            return conn
        if name == "tls_config":
            return self._tls._config
        if name == "sslcontext":
            # None: asyncio's StreamReaderProtocol then keeps a half-closed stream open,
            # which this TLS supports (close_notify closes one direction, RFC 8446 6.1).
            return default
        if name == "alpn_protocol":
            return conn.alpn_protocol
        if name == "server_hostname":
            return conn.server_hostname
        if name == "tls_session_resumed":
            return conn.session_resumed
        transport = self._tls._transport
        return transport.get_extra_info(name, default) if transport is not None else default

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._tls._app

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._tls._app = protocol

    def __repr__(self) -> str:
        state = "closing" if self.is_closing() else "open"
        return f"<TLSTransport {state} {self._tls.conn.cipher}>"


# The names these had before netstack.tls settled on one casing (TLSConfig's).
TlsProtocol = TLSProtocol
TlsTransport = TLSTransport
