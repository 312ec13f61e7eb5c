"""TLS over netstack's TCP: the asyncio side of both engines.

Everywhere the API takes ``ssl=``, it takes:

- an :class:`ssl.SSLContext` (or ``True`` for a client's default context): OpenSSL, through
  asyncio's own :class:`asyncio.sslproto.SSLProtocol` (an ``ssl.SSLObject`` over memory BIOs),
  the very code ``loop.create_connection(ssl=...)`` runs on kernel sockets, so TLS 1.2 and 1.3,
  SNI, ALPN and client certificates behave exactly as there;
- a :class:`netstack.tls.TLSConfig`: netstack's own TLS 1.3 (``netstack.tls.connection``), a
  sans-IO machine this module drives in :class:`TLSProtocol`.

Either way the result is an :class:`asyncio.Transport` over the TCP transport, with the
protocol the application gave; ``get_extra_info`` answers ``"peercert"``, ``"cipher"``,
``"ssl_object"``, ``"sslcontext"`` and ``"alpn_protocol"`` besides the TCP names.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import ssl as ssl_module
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

__all__ = [
    "TLS_HANDSHAKE_TIMEOUT",
    "client_context",
    "connect_tls",
    "make_tls_protocol",
    "start_tls",
    "tls_server_factory",
]

#: Seconds a handshake may take (asyncio's default, 60 s).
TLS_HANDSHAKE_TIMEOUT = 60.0


class OpenSSLProtocol(asyncio.sslproto.SSLProtocol):
    """asyncio's SSL protocol, answering ``get_extra_info("alpn_protocol")`` as well, and
    sending the alert OpenSSL wrote when a handshake fails (asyncio drops it), so the peer
    learns why (``certificate_required``, ``unknown_ca``, ...)."""

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        transport: Any = self._transport
        if handshake_exc is not None and transport is not None:
            with contextlib.suppress(Exception):
                data = self._outgoing.read()  # type: ignore[attr-defined]
                if data:
                    transport.write(data)
        super()._on_handshake_complete(handshake_exc)

    def _get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "alpn_protocol":
            sslobj = self._extra.get("ssl_object")
            return sslobj.selected_alpn_protocol() if sslobj is not None else default
        return super()._get_extra_info(name, default)


def _is_tls_config(ssl: Any) -> bool:
    """Whether ``ssl`` is a :class:`netstack.tls.TLSConfig`, without importing it: one can
    exist only once its module is imported, and importing it would load ``cryptography``,
    which TLS with OpenSSL does not need."""
    config = sys.modules.get(f"{__package__}.config")
    return config is not None and isinstance(ssl, config.TLSConfig)


def client_context(ssl: Any) -> Any:
    """What ``ssl=`` means for a client: ``True`` is the default verifying context."""
    if ssl is True:
        return ssl_module.create_default_context()
    return ssl


def check_ssl(ssl: Any, *, server_side: bool) -> None:
    """A clear error at the call for what ``ssl=`` cannot be.

    Raises:
        TypeError: neither an ``ssl.SSLContext``, a ``netstack.tls.TLSConfig`` nor (for a
            client) ``True``.
    """
    if isinstance(ssl, ssl_module.SSLContext) or _is_tls_config(ssl):
        return
    if ssl is True and not server_side:
        return
    kind = "a server" if server_side else "a client"
    raise TypeError(
        f"ssl= for {kind} must be an ssl.SSLContext or a netstack.tls.TLSConfig"
        + ("" if server_side else " (or True)")
        + f", got {ssl!r}"
    )


def make_tls_protocol(
    loop: asyncio.AbstractEventLoop,
    app_protocol: asyncio.BaseProtocol,
    ssl: Any,
    *,
    server_side: bool,
    server_hostname: str | None,
    waiter: asyncio.Future[None] | None,
    handshake_timeout: float | None = None,
    call_connection_made: bool = True,
    shutdown_timeout: float | None = None,
) -> Any:
    """The protocol to put on a TCP transport so that ``app_protocol`` speaks TLS over it.
    The application's transport is :func:`app_transport` of the result; ``waiter`` completes
    when the handshake did (or fails with its error). ``shutdown_timeout`` is asyncio's
    ``ssl_shutdown_timeout``: how long a closing connection waits for the peer."""
    if _is_tls_config(ssl):  # netstack's engine, on cryptography: imported only for it
        from .driver import TLSProtocol  # type: ignore[import-not-found,unused-ignore]

        return TLSProtocol(
            loop, app_protocol, ssl, waiter, server_side=server_side,
            server_hostname=server_hostname, handshake_timeout=handshake_timeout,
            call_connection_made=call_connection_made, shutdown_timeout=shutdown_timeout,
        )  # fmt: skip
    pending: Any = waiter  # asyncio's SSLProtocol accepts None (no one waits)
    timeout: Any = handshake_timeout
    shutdown: Any = shutdown_timeout
    return OpenSSLProtocol(
        loop, app_protocol, ssl, pending, server_side, server_hostname,
        call_connection_made=call_connection_made, ssl_handshake_timeout=timeout,
        ssl_shutdown_timeout=shutdown,
    )  # fmt: skip


def app_transport(tls_protocol: Any) -> asyncio.Transport:
    """The transport the application uses over ``tls_protocol``."""
    transport: asyncio.Transport = tls_protocol._get_app_transport()
    return transport


async def start_tls(
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    ssl: Any,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> asyncio.Transport:
    """Upgrade a connection to TLS, as :meth:`asyncio.loop.start_tls` does, on any event loop
    (uvloop's ``start_tls`` takes only its own transports).

    Returns:
        The transport ``protocol`` must use from now on.

    Raises:
        ssl.SSLError: the handshake failed (the connection is closed).
        TypeError: ``ssl`` is not a context or configuration.
    """
    loop = asyncio.get_running_loop()
    check_ssl(ssl, server_side=server_side)
    ssl = client_context(ssl) if not server_side else ssl
    waiter: asyncio.Future[None] = loop.create_future()
    tls = make_tls_protocol(
        loop, protocol, ssl, server_side=server_side, server_hostname=server_hostname,
        waiter=waiter, handshake_timeout=ssl_handshake_timeout, call_connection_made=False,
        shutdown_timeout=ssl_shutdown_timeout,
    )  # fmt: skip
    # Paused until the TLS protocol is attached, so that no byte reaches it before
    # connection_made (what asyncio's start_tls does).
    read: Any = transport
    read.pause_reading()
    transport.set_protocol(tls)
    made = loop.call_soon(tls.connection_made, transport)
    resumed = loop.call_soon(read.resume_reading)
    try:
        await waiter
    except BaseException:
        transport.close()
        made.cancel()
        resumed.cancel()
        raise
    return app_transport(tls)


async def writer_start_tls(
    writer: asyncio.StreamWriter,
    ssl: Any,
    *,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> None:
    """:meth:`asyncio.StreamWriter.start_tls` for a writer over netstack's TCP, on any event
    loop: the writer (and its reader) carry on over TLS."""
    protocol: Any = writer._protocol  # type: ignore[attr-defined]
    server_side = getattr(protocol, "_client_connected_cb", None) is not None
    await writer.drain()
    new = await start_tls(
        writer.transport, protocol, ssl, server_side=server_side,
        server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )  # fmt: skip
    writer._transport = new  # type: ignore[attr-defined]
    protocol._replace_writer(writer)


async def connect_tls(
    loop: asyncio.AbstractEventLoop,
    create_connection: Callable[..., Awaitable[tuple[Any, Any]]],
    protocol_factory: Callable[[], _P],
    ssl: Any,
    server_hostname: str | None,
    handshake_timeout: float | None,
    *args: Any,
    shutdown_timeout: float | None = None,
    **kwargs: Any,
) -> tuple[asyncio.Transport, _P]:
    """A TLS client connection over any plain ``create_connection`` (netstack's, or the
    event loop's for ``HostStack`` with netstack's TLS): ``(transport, protocol)`` once the
    handshake is done; ``shutdown_timeout`` is asyncio's ``ssl_shutdown_timeout``.

    Raises:
        ssl.SSLError: the handshake failed (the TCP connection is closed).
    """
    check_ssl(ssl, server_side=False)
    context = client_context(ssl)
    made: list[tuple[Any, _P, asyncio.Future[None]]] = []

    def factory() -> asyncio.BaseProtocol:
        app = protocol_factory()
        waiter: asyncio.Future[None] = loop.create_future()
        tls = make_tls_protocol(
            loop, app, context, server_side=False, server_hostname=server_hostname or None,
            waiter=waiter, handshake_timeout=handshake_timeout,
            shutdown_timeout=shutdown_timeout,
        )  # fmt: skip
        made.append((tls, app, waiter))
        return tls  # type: ignore[no-any-return]

    transport, _ = await create_connection(factory, *args, **kwargs)
    tls, app, waiter = made[-1]
    try:
        await waiter
    except BaseException:
        transport.abort()
        raise
    return app_transport(tls), app


def tls_server_factory(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    ssl: Any,
    handshake_timeout: float | None,
    shutdown_timeout: float | None = None,
) -> Callable[[], asyncio.BaseProtocol]:
    """Wrap a server's protocol factory so that every connection speaks TLS first."""
    check_ssl(ssl, server_side=True)

    def factory() -> asyncio.BaseProtocol:
        tls: asyncio.BaseProtocol = make_tls_protocol(
            loop, protocol_factory(), ssl, server_side=True, server_hostname=None,
            waiter=None, handshake_timeout=handshake_timeout,
            shutdown_timeout=shutdown_timeout,
        )  # fmt: skip
        return tls

    return factory
