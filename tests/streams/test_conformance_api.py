"""The conformance suite as other transports call it (:mod:`netstack.testing.conformance`):
:func:`check_two_way_stream` with a factory of connected pairs, and :func:`check_endpoints`
with a client and a server; and that the suite fails a stream that corrupts data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from netstack import Stack
from netstack.testing.conformance import (
    CHECKS,
    LISTENING_CHECKS,
    PairFactory,
    check_endpoints,
    check_two_way_stream,
)

Ends = tuple[tuple[Any, Any], tuple[Any, Any]]


def _port(name: Any) -> int:
    return int(name[1])


async def pair_factory(
    start_server: Callable[..., Awaitable[Any]],
    open_connection: Callable[[], Awaitable[tuple[Any, Any]]],
) -> tuple[PairFactory, Any]:
    """A factory of pairs over any start_server/open_connection: the accepted end is found by
    the client's port, since concurrent connections may be accepted in any order."""
    waiting: dict[int, asyncio.Future[tuple[Any, Any]]] = {}

    def slot(port: int) -> asyncio.Future[tuple[Any, Any]]:
        return waiting.setdefault(port, asyncio.get_running_loop().create_future())

    def accepted(reader: Any, writer: Any) -> None:
        slot(_port(writer.get_extra_info("peername"))).set_result((reader, writer))

    server = await start_server(accepted)

    async def make_pair() -> Ends:
        reader, writer = await open_connection()
        port = _port(writer.get_extra_info("sockname"))
        ends = await slot(port)
        del waiting[port]
        return (reader, writer), ends

    return make_pair, server


@pytest.fixture
async def memory_pairs(stack_pair: tuple[Stack, Stack]) -> AsyncIterator[PairFactory]:
    a, b = stack_pair
    make_pair, server = await pair_factory(
        lambda cb: b.start_server(cb, port=0), lambda: a.open_connection("198.18.0.2", port)
    )
    port = server.port
    yield make_pair
    server.close()


async def test_two_way_stream_over_netstack(memory_pairs: PairFactory) -> None:
    await check_two_way_stream(memory_pairs, name="netstack in memory")


async def test_two_way_stream_over_asyncio_sockets() -> None:
    """Another transport: the event loop's own streams on the loopback interface."""
    port = 0
    make_pair, server = await pair_factory(
        lambda cb: asyncio.start_server(cb, "127.0.0.1", 0),
        lambda: asyncio.open_connection("127.0.0.1", port),
    )
    port = server.sockets[0].getsockname()[1]
    async with server:
        await check_two_way_stream(make_pair, name="asyncio on loopback")


async def test_endpoints(stack_pair: tuple[Stack, Stack]) -> None:
    a, b = stack_pair
    await check_endpoints(a, b, "198.18.0.2", name="netstack in memory")


def test_listening_checks_are_checks() -> None:
    assert LISTENING_CHECKS and set(LISTENING_CHECKS) < set(CHECKS)


class CorruptingWriter:
    """A writer that changes one byte of every write longer than 1000 bytes."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        data = bytearray(data)
        if len(data) > 1000:
            data[500] ^= 0xFF
        self._writer.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


async def test_a_corrupting_stream_fails(memory_pairs: PairFactory) -> None:
    async def corrupting() -> Ends:
        (reader, writer), (server_reader, server_writer) = await memory_pairs()
        return (reader, CorruptingWriter(writer)), (server_reader, server_writer)

    with pytest.raises(AssertionError) as failure:
        await check_two_way_stream(corrupting, name="a corrupting stream")
    assert any("a corrupting stream" in note for note in failure.value.__notes__)
