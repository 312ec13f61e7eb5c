"""The contract :class:`netstack.Stack` and :class:`netstack.HostStack` both fulfil: what an
application may call on either, so that it is written once and runs on netstack's own stack
or on the operating system's (MirageOS's ``--net direct`` / ``--net socket``).

Type an application's stack as :class:`NetworkStack` and it runs on both::

    async def serve(stack: netstack.NetworkStack) -> None:
        async with await stack.start_server(handle, port=0) as server:
            print("listening on", server.addresses[0][1])
            await server.serve_forever()

``mypy --strict netstack`` proves that both classes satisfy the Protocols (the assignments in
``netstack/_typecheck.py``), and ``tests/test_contract.py`` that neither grows a public name
the other lacks, that the defaults agree, and that both raise the same error for the same
ICMP message. :class:`Stack` offers more than the contract: its link, addresses, routes and
layers, which a host stack leaves to the operating system.

This module imports neither class, so that anything may import it without a cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

__all__ = ["NetworkStack", "StackServer"]

_P = TypeVar("_P", bound=asyncio.BaseProtocol)


@runtime_checkable
class StackServer(Protocol):
    """A listening TCP server of either stack, shaped like :class:`asyncio.Server` (which
    both servers are, as :class:`asyncio.AbstractServer` subclasses) with netstack's
    ``addresses`` and ``port``."""

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The ``(host, port)`` pairs listened on, also after :meth:`close`."""
        ...

    @property
    def port(self) -> int:
        """The port listened on."""
        ...

    @property
    def sockets(self) -> tuple[object, ...]:
        """The listening sockets (socket-like objects on netstack)."""
        ...

    def get_loop(self) -> asyncio.AbstractEventLoop: ...

    def is_serving(self) -> bool: ...

    async def start_serving(self) -> None: ...

    def close(self) -> None: ...

    def close_clients(self) -> None: ...

    def abort_clients(self) -> None: ...

    async def wait_closed(self) -> None: ...

    async def serve_forever(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...


@runtime_checkable
class NetworkStack(Protocol):
    """What :class:`netstack.Stack` and :class:`netstack.HostStack` both offer, with
    asyncio's names and shapes; see each class for the details of its side."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the stack runs on."""
        ...

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        ...

    async def close(self) -> None:
        """Close every server and endpoint and end every connection made through the stack."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    # -- TCP ---------------------------------------------------------------------------------
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
        """A TCP connection, as :meth:`asyncio.loop.create_connection`."""
        ...

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
        """A TCP connection as streams, as :func:`asyncio.open_connection`."""
        ...

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int = 0,
        *,
        ssl: Any = None,
        backlog: int = 128,
        start_serving: bool = True,
        **kwargs: Any,
    ) -> StackServer:
        """A TCP server, as :meth:`asyncio.loop.create_server`."""
        ...

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
    ) -> StackServer:
        """A TCP server with streams, as :func:`asyncio.start_server`."""
        ...

    # -- UDP ---------------------------------------------------------------------------------
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
    ) -> tuple[asyncio.DatagramTransport, _P]:
        """A UDP endpoint, as :meth:`asyncio.loop.create_datagram_endpoint`."""
        ...

    # -- ICMP echo and names -----------------------------------------------------------------
    async def ping(self, host: str, *, timeout: float = 1.0, size: int = 56) -> float:
        """One ICMP or ICMPv6 echo: the round-trip time in seconds."""
        ...

    async def resolve(self, name: str, family: int = 0) -> list[str]:
        """The addresses of ``name``, IPv6 first."""
        ...

    # -- statistics --------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters of what the stack did."""
        ...

    def reset_stats(self) -> None:
        """Set the counters back to zero."""
        ...
