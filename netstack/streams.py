"""asyncio's streams over any ``create_connection``: netstack's (:class:`netstack.Stack`) or
the host's (:class:`netstack.HostStack`), with either TLS engine.

:func:`open_stream_connection` and :func:`stream_server_factory` are what
``asyncio.open_connection`` and ``asyncio.start_server`` do around ``create_connection`` and
``create_server``; :class:`NetstackStreamWriter` is the writer both stacks hand out, to
clients and to a server's callback alike. :func:`is_tls_config` tells the engines apart
without importing :mod:`netstack.tls` (and so ``cryptography``), which plain TCP never loads.
:func:`check_keywords` refuses a keyword argument a method does not take, as Python does.

The TCP driver that was here (``TcpTransport``, ``Server``, ``ListeningSocket``) is
:mod:`netstack.drivers.tcp`; the old names still import from this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "NetstackStreamWriter",
    "check_keywords",
    "is_tls_config",
    "open_stream_connection",
    "stream_server_factory",
]

_MOVED = frozenset({"ListeningSocket", "Server", "TcpTransport"})


def __getattr__(name: str) -> Any:
    """The TCP driver's classes under their old module (imported only when asked for)."""
    if name in _MOVED:
        from .drivers import tcp

        return getattr(tcp, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class NetstackStreamWriter(asyncio.StreamWriter):
    """asyncio's StreamWriter, whose :meth:`start_tls` takes either TLS engine (an
    ``ssl.SSLContext`` or a ``netstack.tls.TLSConfig``) on any event loop, over netstack's TCP
    and the host's (uvloop's ``loop.start_tls`` takes only its own transports, and every
    loop's only an ``ssl.SSLContext``)."""

    async def start_tls(
        self,
        sslcontext: Any,
        *,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> None:
        from .tls.stream import writer_start_tls

        await writer_start_tls(
            self, sslcontext, server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )  # fmt: skip


def check_keywords(method: str, kwargs: Mapping[str, Any]) -> None:
    """Refuse what is left of a method's ``**kwargs`` (kept in its signature for the
    contract's sake) as Python refuses an unknown keyword argument.

    Raises:
        TypeError: ``kwargs`` is not empty.
    """
    for name in kwargs:
        raise TypeError(f"{method}() got an unexpected keyword argument {name!r}")


def is_tls_config(ssl: Any) -> bool:
    """Whether ``ssl`` is a :class:`netstack.tls.TLSConfig` (told without importing the TLS
    package, so that plain TCP never loads ``cryptography``)."""
    return any(
        kind.__name__ == "TLSConfig" and kind.__module__.startswith("netstack.tls")
        for kind in type(ssl).__mro__
    )


async def open_stream_connection(
    loop: asyncio.AbstractEventLoop,
    create_connection: Callable[..., Any],
    limit: int,
    *args: Any,
    writer_class: type[asyncio.StreamWriter] = asyncio.StreamWriter,
    **kwargs: Any,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` over any ``create_connection`` (netstack's or the host's):
    a :class:`asyncio.StreamReaderProtocol` made here, the writer wrapped around the transport
    once connected."""
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(lambda: protocol, *args, **kwargs)
    return reader, writer_class(transport, protocol, reader, loop)


def stream_server_factory(
    loop: asyncio.AbstractEventLoop,
    client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
    limit: int,
) -> Callable[[], asyncio.StreamReaderProtocol]:
    """The protocol factory of ``asyncio.start_server``: one reader and protocol per
    connection, calling ``client_connected_cb(reader, writer)``.

    The writer is a :class:`NetstackStreamWriter`, so that the server's
    ``writer.start_tls()`` works on any loop and with either engine (asyncio's StreamWriter
    asks the loop's ``start_tls``, which on uvloop takes only uvloop's transports). asyncio's
    protocol makes the writer itself; it becomes a NetstackStreamWriter, the subclass that
    changes nothing else, before the callback sees it (the same object: a second writer
    would close the connection when the first is collected, on Python 3.13)."""

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        if type(writer) is asyncio.StreamWriter:
            writer.__class__ = NetstackStreamWriter
        return client_connected_cb(reader, writer)

    def factory() -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, connected, loop=loop)

    return factory
